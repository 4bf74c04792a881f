"""The context handed to ``Item.execute``: what fired, when, the item's ports, and a stop handle.

One :class:`Context` exists per item for the executor's lifetime; the executor overwrites its
fields before each run instead of building a new object (no allocation per dispatch). Do not
keep a reference to it past ``execute`` expecting the values to stay.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from typing import Any

from taktora.actors.executor.triggers import Trigger, TriggerKind


class Stoppable:
    """A thread-safe handle that stops an executor and wakes its WaitSet.

    ``stop()`` may be called from any thread (or a signal handler); it never blocks. It sets a
    flag and writes to an eventfd the executor's WaitSet watches, so an idle executor wakes at
    once. Stopping twice is harmless.
    """

    __slots__ = ("_event", "_fd")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._event = threading.Event()

    def stop(self) -> None:
        """Ask the executor to stop after the current dispatch; returns at once."""
        self._event.set()
        # OSError: the executor is closed (fd gone) or the counter is saturated; the flag is
        # set, which is all a closed or already-woken executor needs
        with contextlib.suppress(OSError):
            os.eventfd_write(self._fd, 1)

    @property
    def stopped(self) -> bool:
        """True once ``stop()`` was called (until the executor re-arms it for a new run)."""
        return self._event.is_set()

    def _reset(self) -> None:
        self._event.clear()


class Context:
    """What an item sees during one ``execute`` call (fields are read-only to the item).

    - ``item_name``: the item's name.
    - ``trigger`` / ``kind``: the declaration that fired and its :class:`TriggerKind` (for an
      item inside a chain or graph: the head's trigger).
    - ``source``: the port or fd object that woke it (``None`` for intervals).
    - ``now_ns``: ``time.monotonic_ns()`` when the executor dispatched this run.
    - ``scheduled_ns``: for an interval, the tick time this run belongs to (else ``now_ns``).
    - ``missed_deadline``: True when a deadline trigger fired because no data came in time.
    - ``publishers``: the publishers the item declared.
    """

    __slots__ = ("_stoppable", "executor_name", "item_name", "kind", "missed_deadline",
                 "now_ns", "publishers", "scheduled_ns", "source", "trigger")

    def __init__(self, executor_name: str, item_name: str, publishers: Mapping[str, Any],
                 stoppable: Stoppable) -> None:
        self.executor_name = executor_name
        self.item_name = item_name
        self.publishers: Mapping[str, Any] = publishers
        self._stoppable = stoppable
        self.trigger: Trigger | None = None
        self.kind: TriggerKind | None = None
        self.source: Any = None
        self.now_ns = 0
        self.scheduled_ns = 0
        self.missed_deadline = False

    def stop(self) -> None:
        """Stop the executor after this dispatch (the current chain/graph run finishes)."""
        self._stoppable.stop()

    @property
    def stoppable(self) -> Stoppable:
        """The executor's stop handle (to hand to another thread)."""
        return self._stoppable

    def loan(self, publisher: str, size: int | None = None) -> Any:
        """``publishers[publisher].loan(size)``: a context manager yielding writable memory."""
        pub = self.publishers[publisher]
        return pub.loan() if size is None else pub.loan(size)
