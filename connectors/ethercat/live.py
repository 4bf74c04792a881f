"""Requests on the live bus (:class:`BusRequests`): callers on any thread, each request run on
the cycle thread between two exchanges (pysoem is not thread-safe), its result or exception
handed back to the caller."""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from taktora.connectors.ethercat.bus import Bus
from taktora.connectors.ethercat.errors import EthercatError

REQUEST_QUEUE = 16
T = TypeVar("T")


class BusRequests:
    """A bounded queue of requests (``REQUEST_QUEUE``) that the cycle serves, one per tick."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.Queue[tuple[Callable[[Bus], Any], Future[Any]]] = queue.Queue(REQUEST_QUEUE)

    def call(self, fn: Callable[[Bus], T], timeout: float) -> T:
        """Queue ``fn(bus)`` and wait up to ``timeout`` for the cycle to run it (the caller's
        thread). EthercatError when the queue is full ("busy") or the time passes."""
        fut: Future[T] = Future()
        try:
            self._queue.put_nowait((fn, fut))
        except queue.Full:
            raise EthercatError(f"EtherCAT {self.name}: busy ({REQUEST_QUEUE} requests waiting)") from None
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()
            raise EthercatError(f"EtherCAT {self.name}: request not served within {timeout} s") from None

    def waiting(self) -> bool:
        """True when a request waits (cycle thread; read without the queue's lock)."""
        return bool(self._queue.queue)

    def serve(self, bus: Bus) -> None:
        """Run the oldest waiting request on ``bus``, if any (cycle thread)."""
        try:
            fn, fut = self._queue.get_nowait()
        except queue.Empty:
            return
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn(bus))
        except BaseException as exc:  # handed to the caller
            fut.set_exception(exc)

    def fail_all(self) -> None:
        """Fail every waiting request: the bus closed (owner's thread, after the cycle ended)."""
        while True:
            try:
                _fn, fut = self._queue.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                fut.set_exception(EthercatError(f"EtherCAT {self.name}: closed"))
