"""Runner: an executor on a background thread, with start/stop/join and ``with`` support."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from taktora.actors.executor.errors import ExecutorError
from taktora.actors.executor.executor import Executor

log = logging.getLogger("taktora.actors.runner")


class Runner:
    """Runs ``executor.run()`` on its own thread (named after the executor).

    ``start()`` installs the SIGINT/SIGTERM handlers first when the executor has
    ``signals=True`` and ``start()`` is called from the main thread, so a signal stops the
    executor cleanly even though it runs in a worker thread. With ``close_executor=True`` (the
    default) the runner's thread closes the executor when ``run()`` returns, so each item's
    ``on_stop`` runs there. An item error that stopped the executor is re-raised by
    :meth:`stop` and :meth:`join` (once).
    """

    def __init__(self, executor: Executor, close_executor: bool = True) -> None:
        self.executor = executor
        self.close_executor = close_executor
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._reported = False

    def start(self) -> Runner:
        """Start the thread; returns at once. Raises if already started."""
        if self._thread is not None:
            raise ExecutorError(f"runner of {self.executor.name!r} already started")
        ex = self.executor
        if ex.signals and threading.current_thread() is threading.main_thread():
            ex.install_signal_handlers()
        self._thread = threading.Thread(target=self._main, name=f"{ex.name}-runner")
        self._thread.start()
        return self

    def _main(self) -> None:
        try:
            self.executor.run()
        except BaseException as exc:
            self._error = exc
        finally:
            if self.close_executor:
                try:
                    self.executor.close()
                except BaseException as exc:
                    if self._error is None:
                        self._error = exc

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the executor and :meth:`join` it (blocks up to ``timeout`` seconds)."""
        self.executor.stop()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end; re-raise the error that ended it.

        Raises :class:`ExecutorError` if it is still running after ``timeout`` seconds (an
        item that does not return blocks shutdown).
        """
        t = self._thread
        if t is None:
            return
        t.join(timeout)
        if t.is_alive():
            raise ExecutorError(f"executor {self.executor.name!r} did not stop within "
                                f"{timeout} s: an item is still running")
        if self._error is not None and not self._reported:
            self._reported = True
            raise self._error

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Runner:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.stop()
            return
        try:
            self.stop()
        except Exception as err:
            # the body's exception wins; the executor's error is logged and join() re-raises it
            log.error("runner of %s: stopping after %r also failed: %r", self.executor.name,
                      exc, err)
            self._reported = False
