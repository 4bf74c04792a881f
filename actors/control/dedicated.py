"""``DedicatedExecutor``: an executor in a process of its own, driven like an in-process one.

Why. An executor thread shares its process's GIL: one CPU-bound Python thread beside it made a
1 kHz interval's p99 18-57x worse. A *dedicated* executor runs in a child process, so nothing
of the host competes for its GIL.

Process model. :meth:`DedicatedExecutor.start` spawns the child (multiprocessing ``"spawn"``:
a fresh interpreter, never a fork of a process that used iceoryx2) from the calling thread and
blocks until the child reports *ready* or *failed* (``start_timeout_s``). The child
(:mod:`.dedicated_child`):

1. sets ``PR_SET_PDEATHSIG`` to SIGTERM (Linux delivers it when the *thread* that spawned the
   child ends: start it from a long-lived thread, e.g. the actor's) and watches its control
   pipe: end of file means the parent is gone, and the executor is stopped;
2. sends its stdout/stderr (file descriptors 1 and 2, C output included) and its ``logging``
   records to the parent, which logs them (logger ``taktora.actors.dedicated.<name>``);
3. applies the :class:`DedicatedOptions` to its main thread before any other thread of the
   executor exists (so pool workers inherit them): CPU affinity, SCHED_FIFO priority,
   ``mlockall``; a refusal raises :class:`DedicatedCapabilityError` in ``start()`` unless
   ``best_effort`` (then it is logged and listed in :attr:`DedicatedExecutor.info`);
4. builds the executor from the *recipe*: a ``"module:function"`` string, a picklable
   zero-argument callable, or a picklable object with ``build()`` / ``build(prefix)``;
5. applies the gc policy (``"freeze"``: collect, ``gc.freeze()``, ``gc.disable()``, and an
   item ``taktora-gc`` collecting generations 0-1 every ``gc_period_s``, timed);
6. runs the executor in its main thread (SIGINT/SIGTERM stop it cleanly), reports how it
   ended and exits (0 after ``run()`` returned, 1 after it raised).

Stop protocol. :meth:`stop` (any thread, returns at once) sends ``stop`` over the pipe; the
child stops its executor. The thread in :meth:`run` sends SIGTERM ``stop_timeout_s`` after the
request if the child still runs, and SIGKILL ``kill_timeout_s`` later. :meth:`close` does the
same synchronously and reaps the child.

Threads of the parent: :meth:`run` blocks its caller (the item host's executor thread) reading
the child's messages and output until the child has ended; :meth:`monitor_snapshot` (any
thread) asks the child and waits at most ``snapshot_timeout_s``. Errors are
:class:`DedicatedError` (a project error: the item host crashes, its supervisor restarts it).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import pickle
import signal
import threading
import time
from typing import Any

from taktora.actors.control.dedicated_child import (
    GC_POLICIES,
    DedicatedCapabilityError,
    DedicatedError,
    DedicatedOptions,
    child_main,
)

__all__ = ["GC_POLICIES", "DedicatedCapabilityError", "DedicatedError", "DedicatedExecutor",
           "DedicatedOptions"]

log = logging.getLogger(__name__)

# ---- the parent side -----------------------------------------------------------------------
def _exit_text(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        return f"was killed by signal {-code} ({sig})"
    return f"exited with code {code}"


class DedicatedExecutor:
    """The executor API (``run``, ``stoppable().stop()``, ``monitor_snapshot``, ``close``) over
    an executor in a spawned child process; see the module docstring.

    ``recipe``: ``"module:function"``, a picklable zero-argument callable, or a picklable
    object with ``build()`` / ``build(prefix)`` (``prefix`` is passed as given; None lets the
    recipe use ``TAKTORA_IOX_PREFIX``, which the child inherits).
    """

    def __init__(self, recipe: Any, options: DedicatedOptions | None = None, *,
                 name: str = "dedicated", start_timeout_s: float = 60.0,
                 stop_timeout_s: float = 2.0, kill_timeout_s: float = 1.5,
                 snapshot_timeout_s: float = 2.0, prefix: str | None = None) -> None:
        self.recipe = recipe
        self.prefix = prefix
        self.options = options or DedicatedOptions()
        self.name = name
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.kill_timeout_s = kill_timeout_s
        self.snapshot_timeout_s = snapshot_timeout_s
        self.log = logging.getLogger(f"{__name__}.{name}")
        #: what the child reported when ready (pid, refused options, scheduling, gc), or {}
        self.info: dict[str, Any] = {}
        #: the last executor stats and gc figures the child sent with a snapshot
        self.last_stats: dict[str, Any] | None = None
        self.last_gc: dict[str, Any] | None = None
        self._proc: Any = None
        self._conn: Any = None
        self._out: Any = None
        self._out_buf = b""
        self._eof: set[Any] = set()  # pipes that reached end of file
        self._send_lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._seq = itertools.count(1)
        self._replies: dict[int, Any] = {}
        self._reply_cv = threading.Condition()
        self._failure: tuple[str, bool] | None = None
        self._exited_signal: int | None = None
        self._stop_at: float | None = None
        self._escalated = ""

    # -- lifecycle (the caller's thread) -------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The child's process id (None before start)."""
        return None if self._proc is None else int(self._proc.pid)

    def start(self) -> None:
        """Spawn the child and block until it is ready (``start_timeout_s`` at most).

        Raises :class:`DedicatedCapabilityError` when an option was refused (not best effort),
        :class:`DedicatedError` when the recipe cannot be pickled or built, or the child died.
        """
        if self._proc is not None:
            raise DedicatedError(f"dedicated executor {self.name!r} was already started")
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe(duplex=True)
        self._out, child_out = ctx.Pipe(duplex=False)
        level = logging.getLogger().getEffectiveLevel()
        proc = ctx.Process(target=child_main, name=f"taktora-dedicated-{self.name}",
                           args=(self.recipe, self.options, self.name, child_conn, child_out,
                                 os.getpid(), level, self.prefix), daemon=True)
        try:
            proc.start()
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            self._close_pipes()
            raise DedicatedError(f"dedicated executor {self.name!r}: cannot send the recipe "
                                 f"{self.recipe!r} to a spawned process ({exc}); use a "
                                 "'module:function' string or a module-level picklable "
                                 "object") from exc
        finally:
            child_conn.close()
            child_out.close()
        self._proc = proc
        deadline = time.monotonic() + self.start_timeout_s
        while not self.info and self._failure is None:
            ended = self._pump(0.05)
            if ended and not self.info and self._failure is None:
                self._drain()
                break
            if time.monotonic() > deadline:
                self._reap()
                self._close_pipes()
                raise DedicatedError(f"dedicated executor {self.name!r} (pid {proc.pid}) was "
                                     f"not ready within {self.start_timeout_s} s; killed")
        if self._failure is not None or not self.info:
            self._reap()
            self._close_pipes()
            text = self._failure[0] if self._failure else f"the process {_exit_text(proc.exitcode)}"
            if "DedicatedCapabilityError" in text:
                raise DedicatedCapabilityError(f"dedicated executor {self.name!r}: "
                                               + text.split(": ", 1)[1])
            raise DedicatedError(f"dedicated executor {self.name!r} (pid {proc.pid}) did not "
                                 f"start: {text}")
        self.log.info("dedicated executor %s runs in pid %d (%s)", self.name, proc.pid,
                      self.info)

    def run(self) -> None:
        """Start the child if needed, then block until it has ended (the caller's thread reads
        its messages and output meanwhile and escalates a stop: SIGTERM, then SIGKILL).

        Returns after a requested stop, or when the child's ``run()`` returned unasked.
        Raises :class:`DedicatedError` naming the exit code or signal when the child died or
        its executor raised (or was stopped by a signal nobody here sent).
        """
        if self._proc is None:
            self.start()
        proc = self._proc
        while not self._pump(0.05):
            self._escalate()
        self._drain()
        proc.join(self.kill_timeout_s)
        code = proc.exitcode
        if self._failure is not None:
            raise DedicatedError(f"dedicated executor {self.name!r} (pid {proc.pid}) failed: "
                                 f"{self._failure[0]} (the process {_exit_text(code)})")
        if self._stop_at is not None:
            if self._escalated:
                self.log.warning("dedicated executor %s (pid %d) needed %s to stop",
                                 self.name, proc.pid, self._escalated)
            return
        if code != 0 or self._exited_signal is None:
            raise DedicatedError(f"dedicated executor process {proc.pid} of {self.name!r} "
                                 f"{_exit_text(code)}")
        if self._exited_signal:
            raise DedicatedError(f"dedicated executor {self.name!r} (pid {proc.pid}) was "
                                 f"stopped by {signal.Signals(self._exited_signal).name}, "
                                 "not by its host")

    def stoppable(self) -> DedicatedExecutor:
        """The stop handle (this object: :meth:`stop` is thread-safe)."""
        return self

    def stop(self) -> None:
        """Ask the child to stop; returns at once, from any thread."""
        if self._stop_at is None:
            self._stop_at = time.monotonic()
        self._send("stop")

    def monitor_snapshot(self) -> dict[str, Any]:
        """The child executor's monitor snapshot as a dict (any thread; blocks at most
        ``snapshot_timeout_s``). Also refreshes :attr:`last_stats` and :attr:`last_gc`.
        Raises :class:`DedicatedError` without a child, on timeout, or without a monitor."""
        if self._proc is None or not self._proc.is_alive():
            raise DedicatedError(f"dedicated executor {self.name!r} is not running")
        seq = next(self._seq)
        self._send("snapshot", seq)
        deadline = time.monotonic() + self.snapshot_timeout_s
        while seq not in self._replies:
            if time.monotonic() > deadline:
                raise DedicatedError(f"dedicated executor {self.name!r} (pid {self.pid}) did "
                                     f"not answer a snapshot request within "
                                     f"{self.snapshot_timeout_s} s")
            if self._io_lock.acquire(blocking=False):  # nobody reads: read here
                try:
                    self._pump_locked(0.02)
                finally:
                    self._io_lock.release()
            else:
                with self._reply_cv:
                    self._reply_cv.wait(0.02)
        reply = self._replies.pop(seq)
        self.last_stats, self.last_gc = reply.get("stats"), reply.get("gc")
        if reply["monitor"] is None:
            raise DedicatedError(f"dedicated executor {self.name!r}: {reply['monitor_error']}")
        return dict(reply["monitor"])

    def describe(self) -> dict[str, Any]:
        """Plain values for stats: pid, requested options, what the child applied, gc."""
        return {"pid": self.pid, "alive": self._proc is not None and self._proc.is_alive(),
                "options": self.options.describe(), "applied": dict(self.info),
                "executor_stats": self.last_stats, "gc": self.last_gc}

    def close(self) -> None:
        """Stop the child if it runs (request, SIGTERM, SIGKILL) and reap it; idempotent.
        Blocks the caller up to ``stop_timeout_s + kill_timeout_s`` (+ 1 s)."""
        proc = self._proc
        if proc is not None and proc.is_alive():
            self.stop()
            proc.join(self.stop_timeout_s)
            if proc.is_alive():
                self.log.warning("dedicated executor %s (pid %d) did not stop within %s s: "
                                 "SIGTERM", self.name, proc.pid, self.stop_timeout_s)
                proc.terminate()
                proc.join(self.kill_timeout_s)
        if proc is not None:
            self._reap()
        self._close_pipes()

    # -- internals -----------------------------------------------------------------------------
    def _send(self, *msg: Any) -> None:
        if self._conn is None:
            return
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            self._conn.send(msg)

    def _escalate(self) -> None:
        if self._stop_at is None:
            return
        late = time.monotonic() - self._stop_at
        if late > self.stop_timeout_s + self.kill_timeout_s and self._escalated != "SIGKILL":
            self.log.error("dedicated executor %s (pid %d) ignored SIGTERM: SIGKILL",
                           self.name, self._proc.pid)
            self._proc.kill()
            self._escalated = "SIGKILL"
        elif late > self.stop_timeout_s and not self._escalated:
            self.log.warning("dedicated executor %s (pid %d) did not stop within %s s: "
                             "SIGTERM", self.name, self._proc.pid, self.stop_timeout_s)
            self._proc.terminate()
            self._escalated = "SIGTERM"

    def _pump(self, timeout: float) -> bool:
        with self._io_lock:
            return self._pump_locked(timeout)

    def _pump_locked(self, timeout: float) -> bool:
        """Handle what the child sent within ``timeout``; True once the process has ended."""
        waiting = [c for c in (self._conn, self._out) if c is not None and c not in self._eof]
        for ready in mpc.wait([*waiting, self._proc.sentinel], timeout):
            read = (self._read_conn if ready is self._conn
                    else self._read_out if ready is self._out else None)
            if read is not None and not read():
                self._eof.add(ready)
        return not self._proc.is_alive()

    def _drain(self) -> None:
        """After the child ended: everything still in the pipes."""
        with self._io_lock:
            while self._conn is not None and self._conn.poll(0) and self._read_conn():
                pass
            while self._out is not None and self._out.poll(0) and self._read_out():
                pass
            if self._out_buf:
                self.log.warning("[pid %s] %s", self.pid, self._out_buf.decode(errors="replace"))
                self._out_buf = b""

    def _read_conn(self) -> bool:
        try:
            msg = self._conn.recv()
        except (EOFError, OSError):
            return False
        kind = msg[0]
        if kind == "log":
            record = logging.makeLogRecord(msg[1])
            logging.getLogger(record.name).handle(record)
        elif kind == "reply":
            with self._reply_cv:
                self._replies[msg[1]] = msg[2]
                self._reply_cv.notify_all()
        elif kind == "ready":
            self.info = dict(msg[1])
        elif kind == "exited":
            self._exited_signal = int(msg[1])
        elif kind == "failed":
            self._failure = (str(msg[1]), bool(msg[2]))
        return True

    def _read_out(self) -> bool:
        try:
            data = os.read(self._out.fileno(), 65536)
        except OSError:
            return False
        if not data:
            return False
        lines = (self._out_buf + data).split(b"\n")
        self._out_buf = lines.pop()
        for line in lines:
            self.log.warning("[pid %s] %s", self.pid, line.decode(errors="replace"))
        return True

    def _reap(self) -> None:
        proc = self._proc
        if proc.is_alive():
            proc.kill()
        proc.join(5.0)

    def _close_pipes(self) -> None:
        for conn in (self._conn, self._out):
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.close()
        self._conn = self._out = None
