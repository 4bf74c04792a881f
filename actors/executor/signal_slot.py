"""Signal/slot: one item triggers another in the same process, without iceoryx2.

``sig, slot = pair("name")``. ``sig.emit(value)`` (any thread, never blocks) queues the value
and wakes the slot's eventfd; an item declaring ``slot.trigger()`` runs in its executor and
takes the values with ``slot.take()`` / ``slot.drain()``. The queue holds ``capacity``
values; when it is full the oldest is dropped and counted in :attr:`Slot.dropped`.
:func:`emitter` and :func:`receiver` build ready-made items for chains.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from taktora.actors.executor.context import Context
from taktora.actors.executor.errors import ExecutorConfigError
from taktora.actors.executor.item import Control, Item, item
from taktora.actors.executor.triggers import FdTrigger, Trigger, on_fd


class Slot:
    """The receiving end: an fd trigger plus a bounded queue (drop-oldest, counted)."""

    def __init__(self, name: str, capacity: int) -> None:
        if capacity < 1:
            raise ExecutorConfigError(f"slot {name!r}: capacity must be >= 1, got {capacity}; "
                                      "pass the number of values to buffer (default 64)")
        self.name = name
        self.capacity = capacity
        self._queue: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.dropped = 0
        self.emitted = 0

    def fileno(self) -> int:
        """The eventfd the executor watches."""
        return self._fd

    def trigger(self) -> FdTrigger:
        """The trigger to return from ``Item.triggers()``; consumes the wakeup itself."""
        return on_fd(self, consume=self._consume)

    def _consume(self, fd: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(fd)

    def _push(self, value: Any) -> None:
        with self._lock:
            if len(self._queue) >= self.capacity:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(value)
            self.emitted += 1
        os.eventfd_write(self._fd, 1)

    def take(self) -> Any:
        """The oldest queued value, or None when empty (the slot's executor thread)."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def drain(self) -> list[Any]:
        """Every queued value, oldest first."""
        with self._lock:
            out = list(self._queue)
            self._queue.clear()
        return out

    def close(self) -> None:
        """Close the eventfd (after the executor watching it is closed)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Signal:
    """The sending end of a pair."""

    def __init__(self, slot: Slot) -> None:
        self._slot = slot

    def emit(self, value: Any = None) -> None:
        """Queue ``value`` and wake the slot's item (any thread; does not block)."""
        self._slot._push(value)


def pair(name: str, capacity: int = 64) -> tuple[Signal, Slot]:
    """A connected signal and slot."""
    slot = Slot(name, capacity)
    return Signal(slot), slot


def emitter(sig: Signal, fn: Callable[[Context], Any], triggers: Sequence[Trigger] = (),
            name: str | None = None) -> Item:
    """An item that emits ``fn(ctx)`` on ``sig`` (nothing when it returns None)."""

    def run(ctx: Context) -> Control:
        value = fn(ctx)
        if value is not None:
            sig.emit(value)
        return Control.CONTINUE

    return item(run, triggers, name=name or f"emit_{getattr(fn, '__name__', 'fn')}")


def receiver(slot: Slot, fn: Callable[[Context, Any], Control | None],
             name: str | None = None) -> Item:
    """An item triggered by ``slot`` that calls ``fn(ctx, value)`` for each queued value."""

    def run(ctx: Context) -> Control | None:
        result: Control | None = None
        while True:
            with slot._lock:
                if not slot._queue:
                    return result
                value = slot._queue.popleft()
            result = fn(ctx, value)

    return item(run, [slot.trigger()], name=name or f"recv_{slot.name}")
