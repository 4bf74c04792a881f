"""Health as a pure model: the four states and the transition table of ARCH_0012, the event one
transition emits, worst-of aggregation, and the thread-safe :class:`HealthMachine`.

Transitions (anything else raises :class:`ActorError`)::

    Connecting -> Up          protocol stack reports connected
    Connecting -> Degraded    recovery attempt failed
    Connecting -> Down        connect attempt failed
    Up         -> Degraded    transient error
    Up         -> Down        stack-level disconnect
    Degraded   -> Up          recovered
    Degraded   -> Connecting  recovery episode begins
    Degraded   -> Down        error threshold exceeded
    Down       -> Connecting  reconnect backoff elapsed

A machine starts in Connecting (its first event has ``previous=None``). Reporting the state
the machine is already in is not a transition: nothing is emitted.

Nothing here imports Thespian: connectors and the gateway use the machine directly, and the
:class:`~taktora.actors.control.health_monitor.HealthMonitor` actor keeps one per source.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable

import attrs
from taktora.actors.errors import ActorError, ControlError
from taktora.transport.validators import Checks

_v = Checks(ControlError)


class HealthState(enum.Enum):
    """The four externally visible health states (ARCH_0012), ordered best to worst."""

    UP = "up"
    CONNECTING = "connecting"
    DEGRADED = "degraded"
    DOWN = "down"

    @property
    def severity(self) -> int:
        """0 (best, Up) .. 3 (worst, Down); used by ``worst_of``."""
        return _SEVERITY[self]


_SEVERITY = {
    HealthState.UP: 0,
    HealthState.CONNECTING: 1,
    HealthState.DEGRADED: 2,
    HealthState.DOWN: 3,
}


@attrs.frozen(kw_only=True)
class HealthEvent:
    """One health transition of one source. ``previous`` is None for the initial state."""

    state: HealthState = attrs.field(validator=_v.instance(HealthState))
    previous: HealthState | None = attrs.field(validator=_v.optional(_v.instance(HealthState)))
    reason: str = attrs.field(default="", validator=_v.string())
    source: str = attrs.field(default="", validator=_v.string())
    timestamp_ns: int = attrs.field(factory=time.time_ns, validator=_v.non_negative_int())


log = logging.getLogger(__name__)

C, U, G, D = HealthState.CONNECTING, HealthState.UP, HealthState.DEGRADED, HealthState.DOWN

#: The ARCH_0012 transition table: state -> the states it may move to.
TRANSITIONS: dict[HealthState, frozenset[HealthState]] = {
    C: frozenset({U, G, D}),
    U: frozenset({G, D}),
    G: frozenset({U, C, D}),
    D: frozenset({C}),
}

Subscriber = Callable[[HealthEvent], None]


def check_transition(old: HealthState, new: HealthState) -> None:
    """Raise :class:`ActorError` unless ``old -> new`` is in the ARCH_0012 table."""
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[old]))
        raise ActorError(f"illegal health transition {old.value} -> {new.value} "
                         f"(from {old.value} only: {allowed})")


def worst_of(states: Iterable[HealthState]) -> HealthState:
    """Aggregate several sources: all Down -> Down; some Down while another is Up -> Degraded;
    otherwise the worst state present (Up < Connecting < Degraded < Down).

    Raises :class:`ActorError` for no states at all.
    """
    present = list(states)
    if not present:
        raise ActorError("worst_of needs at least one state")
    if all(s is D for s in present):
        return D
    if D in present and U in present:
        return G
    return max(present, key=lambda s: s.severity)


class HealthMachine:
    """One source's health. Thread-safe: transitions are serialized by a lock.

    Subscribers are called with every event, in order, on the thread that made the transition
    and while the machine's lock is held (so they see events in order; they must not call back
    into the same machine from another thread and wait for it). A subscriber that raises is
    logged and counted in ``subscriber_errors``; the others still get the event.
    """

    def __init__(self, source: str = "", *, clock_ns: Callable[[], int] | None = None) -> None:
        self.source = source
        self._lock = threading.RLock()
        self._subscribers: list[Subscriber] = []
        self._clock_ns = clock_ns
        self.subscriber_errors = 0
        self._state = C
        self._last = self._event(C, None, "created")

    @property
    def state(self) -> HealthState:
        """The current state."""
        return self._state

    @property
    def last_event(self) -> HealthEvent:
        """The most recent event (the initial Connecting one at first)."""
        return self._last

    def subscribe(self, callback: Subscriber, *, replay: bool = False) -> None:
        """Call ``callback`` with every future event (and the last one now if ``replay``)."""
        with self._lock:
            self._subscribers.append(callback)
            if replay:
                self._deliver(callback, self._last)

    def unsubscribe(self, callback: Subscriber) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def transition(self, new: HealthState, reason: str = "") -> HealthEvent | None:
        """Move to ``new``; return the emitted event (None if already in ``new``).

        Raises :class:`ActorError` for a transition outside the table (state unchanged).
        """
        with self._lock:
            if new is self._state:
                return None
            check_transition(self._state, new)
            event = self._event(new, self._state, reason)
            self._state = new
            self._last = event
            for cb in list(self._subscribers):
                self._deliver(cb, event)
            return event

    def _event(self, state: HealthState, previous: HealthState | None, reason: str) -> HealthEvent:
        if self._clock_ns is None:
            return HealthEvent(state=state, previous=previous, reason=reason, source=self.source)
        return HealthEvent(state=state, previous=previous, reason=reason, source=self.source,
                           timestamp_ns=self._clock_ns())

    def _deliver(self, cb: Subscriber, event: HealthEvent) -> None:
        try:
            cb(event)
        except Exception:
            self.subscriber_errors += 1
            log.exception("health subscriber %r raised on %r", cb, event)
