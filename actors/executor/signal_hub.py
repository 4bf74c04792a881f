"""The process-wide SIGINT/SIGTERM hub shared by every executor that runs with ``signals=True``.

Internal to the executor (not exported). CPython runs signal handlers in the main thread, and
only the main thread may install them; :data:`HUB` installs one pair of handlers for the whole
process plus a non-blocking wakeup pipe (``signal.set_wakeup_fd``). Each running executor
attaches the pipe's read end to its WaitSet, so a signal wakes every executor wherever it runs;
the executor thread then drains the pipe (:meth:`SignalHub.drain`) and stops.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any, Protocol

from taktora.actors.executor.errors import ExecutorError


class SignalTarget(Protocol):
    """What the hub stops when a signal arrives (an :class:`Executor`)."""

    def _on_signal(self, signum: int) -> None:
        """Record ``signum`` and ask to stop; returns at once (main thread or executor thread)."""


class SignalHub:
    """SIGINT/SIGTERM handlers + a wakeup pipe shared by every executor of the process.

    ``install`` must run in the main thread (CPython's rule for ``signal.signal``). The
    handler (main thread) stops every running executor; the wakeup pipe, attached to each
    running executor's WaitSet, wakes them at once wherever they run. With no executor
    running, the handler calls the handler that was there before (so Ctrl-C still raises
    KeyboardInterrupt in a program between runs).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed = False
        self.read_fd = -1
        self.write_fd = -1
        self.previous: dict[int, Any] = {}
        self.previous_wakeup_fd = -1
        self.running: list[SignalTarget] = []

    def install(self) -> None:
        """Install the handlers and the wakeup pipe; idempotent.

        Main thread only: raises :class:`ExecutorError` from any other thread.
        """
        if threading.current_thread() is not threading.main_thread():
            raise ExecutorError("signal handlers can only be installed from the main thread; "
                                "call install_signal_handlers() there or use Runner.start()")
        with self.lock:
            if self.installed:
                return
            self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self.previous_wakeup_fd = signal.set_wakeup_fd(self.write_fd,
                                                           warn_on_full_buffer=False)
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
            self.installed = True

    def uninstall(self) -> None:
        """Restore the previous handlers (main thread, no executor running)."""
        with self.lock:
            if not self.installed or self.running:
                return
            if threading.current_thread() is not threading.main_thread():
                return
            for sig, prev in self.previous.items():
                signal.signal(sig, prev)
            signal.set_wakeup_fd(self.previous_wakeup_fd)
            os.close(self.read_fd)
            os.close(self.write_fd)
            self.read_fd = self.write_fd = -1
            self.installed = False

    def drain(self) -> int:
        """Empty the wakeup pipe; return the last SIGINT/SIGTERM number seen in it (or 0)."""
        return max(self._drain_all(), default=0)

    def _drain_all(self) -> set[int]:
        """Empty the wakeup pipe; the SIGINT/SIGTERM numbers found in it."""
        found: set[int] = set()
        while True:
            try:
                data = os.read(self.read_fd, 64)
            except (BlockingIOError, OSError):
                return found
            if not data:
                return found
            found.update(b for b in data if b in _STOPS)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler (main thread): stop every running executor, or fall back to
        the handler installed before (``KeyboardInterrupt`` for SIGINT by default)."""
        in_pipe = signum in self._drain_all()
        with self.lock:
            running = list(self.running)
        if not in_pipe and not running:
            # an executor thread read this signal from the wakeup pipe before this handler ran
            # (under load it can finish stopping first): it was handled, do not fall back
            return
        if running:
            for ex in running:
                ex._on_signal(signum)
            return
        prev = self.previous.get(signum)
        if callable(prev):
            prev(signum, frame)
        elif prev == signal.SIG_DFL:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def enter(self, ex: SignalTarget) -> None:
        """Register ``ex`` as running (its executor thread, at the start of a run)."""
        with self.lock:
            self.running.append(ex)

    def leave(self, ex: SignalTarget) -> None:
        """Unregister ``ex`` (its executor thread, at the end of a run); no-op if absent."""
        with self.lock:
            if ex in self.running:
                self.running.remove(ex)


_STOPS = frozenset((signal.SIGINT, signal.SIGTERM))

HUB = SignalHub()
"""The process's one hub (signal handlers are process-global)."""
