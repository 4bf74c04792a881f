"""Event services: notifiers wake listeners, carrying a small event id and no payload."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import iceoryx2 as iox
from taktora.transport.channel import EventSpec
from taktora.transport.errors import ServiceOpenError, TransportError

if TYPE_CHECKING:
    from taktora.transport.node import Node


def _open(node: Node, spec: EventSpec) -> Any:
    return node.open_event(spec.name, spec.max_notifiers, spec.max_listeners, spec.max_event_id)


def _ids(activations: Any) -> list[int]:
    """iceoryx2 folds repeated notifications of one id into a count: unfold them."""
    return [int(a.id.as_value) for a in activations for _ in range(int(a.count))]


class Wakeable:
    """Mixin of ports paired with an event listener (subscribers, clients, servers).

    The owning class sets ``self._listener`` to the iceoryx2 Listener that its peers notify.
    """

    _listener: Any
    _wait_s: float = -1.0
    _wait: Any = None

    @property
    def listener(self) -> Any:
        """The iceoryx2 Listener woken by this port's peers (attach it to a WaitSet)."""
        return self._listener

    def consume_wakeups(self) -> int:
        """Empty the listener's pending wake-ups without blocking; return how many there were."""
        return sum(int(a.count) for a in self._listener.try_wait())

    def wait(self, timeout: float | None = None) -> int:
        """Block until a wake-up arrives or ``timeout`` seconds pass, consuming the pending
        wake-ups. Returns the number of distinct event ids that fired (0 on timeout; a port
        uses one id, so 1 when woken). The GIL is released while waiting.

        A signal that interrupts the wait (EINTR: SIGCHLD, a profiler attaching) returns 0
        early, as a spurious wake-up: Python's signal handlers run, and callers that wait for
        data loop until their own deadline. Never raises for it."""
        try:
            if timeout is None:
                return len(self._listener.blocking_wait())
            if timeout != self._wait_s:  # the iceoryx2 Duration of the last timeout, kept
                self._wait_s, self._wait = timeout, iox.Duration.from_secs_f64(timeout)
            return len(self._listener.timed_wait(self._wait))
        except iox.ListenerWaitError as exc:
            if "Interrupt" in str(exc):
                return 0
            raise


class Notifier:
    """Wakes every listener of an event service. Never blocks. Not thread-safe."""

    def __init__(self, node: Node, spec: EventSpec) -> None:
        self.spec = spec
        self._node = node
        try:
            self._notifier = _open(node, spec).notifier_builder().create()
        except ServiceOpenError:
            raise
        except Exception as exc:
            raise ServiceOpenError(f"notifier on {spec.name!r}: {exc}") from exc
        self._closed = False

    def notify(self, event_id: int = 0) -> int:
        """Wake the listeners with ``event_id``; returns how many listeners were notified."""
        if not 0 <= event_id <= self.spec.max_event_id:
            raise TransportError(
                f"event id {event_id} outside 0..{self.spec.max_event_id} of {self.spec.name!r}"
            )
        if event_id == 0:
            return int(self._notifier.notify())
        return int(self._notifier.notify_with_custom_event_id(iox.EventId.new(event_id)))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._notifier.delete()
            self._node._forget(self)

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Listener:
    """Receives the event ids notified on an event service.

    ``try_wait`` never blocks; ``wait`` blocks the calling thread (the GIL is released while
    it waits) until an event arrives or the timeout passes. A listener blocked in ``wait`` must
    be woken by a notification, never by calling it from another thread.
    """

    def __init__(self, node: Node, spec: EventSpec) -> None:
        self.spec = spec
        self._node = node
        try:
            self._listener = _open(node, spec).listener_builder().create()
        except ServiceOpenError:
            raise
        except Exception as exc:
            raise ServiceOpenError(f"listener on {spec.name!r}: {exc}") from exc
        self._closed = False

    @property
    def raw(self) -> Any:
        """The iceoryx2 Listener (attach it to a WaitSet)."""
        return self._listener

    def try_wait(self) -> list[int]:
        """Every event id pending now (possibly empty)."""
        return _ids(self._listener.try_wait())

    def wait(self, timeout: float | None = None) -> list[int]:
        """Block until at least one event arrives (or ``timeout`` seconds pass)."""
        if timeout is None:
            return _ids(self._listener.blocking_wait())
        return _ids(self._listener.timed_wait(iox.Duration.from_secs_f64(timeout)))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._listener.delete()
            self._node._forget(self)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
