"""Health: the four-state machine of ARCH_0012, worst-of aggregation, and the monitor actor.

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

:class:`HealthMachine` is plain Python (no actors) and thread-safe. :class:`HealthMonitor` is
the actor that keeps one machine per source, answers :class:`GetHealth` with the worst-of
aggregate and forwards every :class:`HealthEvent` to its subscribers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from taktora.actors.base import TaktoraActor, handles
from taktora.actors.messages import (
    Ack,
    ControlMessage,
    GetHealth,
    GetStats,
    HealthEvent,
    HealthReply,
    HealthState,
    StatsReply,
)
from taktora.transport.errors import ActorError, ControlError

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


# --- the actor --------------------------------------------------------------------------------
def _state(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, HealthState):
        raise ControlError(f"invalid message field {attribute.name!r}: expected a HealthState")


@attrs.frozen(kw_only=True)
class ReportHealth(ControlMessage):
    """A source reports its new state (Ack, or ErrorReply REJECTED for an illegal transition)."""

    source: str
    state: HealthState = attrs.field(validator=_state)
    reason: str = ""


@attrs.frozen(kw_only=True)
class Subscribe(ControlMessage):
    """Send every HealthEvent to ``subscriber`` (an actor address; default: the sender)."""

    subscriber: Any = None


@attrs.frozen(kw_only=True)
class Unsubscribe(ControlMessage):
    """Stop sending events to ``subscriber`` (default: the sender)."""

    subscriber: Any = None


class HealthMonitor(TaktoraActor):
    """Keeps one :class:`HealthMachine` per source and tells subscribers every event.

    ``args["sources"]`` (optional) pre-creates sources in Connecting. Runs on its actor thread;
    subscribers receive :class:`HealthEvent` messages in transition order.
    """

    def on_start(self) -> None:
        self.machines: dict[str, HealthMachine] = {}
        self.subscribers: list[Any] = []
        for source in self.args.get("sources", ()):
            self._machine(str(source))

    def _machine(self, source: str) -> HealthMachine:
        m = self.machines.get(source)
        if m is None:
            m = HealthMachine(source)
            m.subscribe(self._fan_out)
            self.machines[source] = m
        return m

    def _fan_out(self, event: HealthEvent) -> None:
        for sub in self.subscribers:
            self.send(sub, event)

    @handles(ReportHealth)
    def _report(self, msg: ReportHealth, sender: Any) -> Ack:
        try:
            self._machine(msg.source).transition(msg.state, msg.reason)
        except ActorError as exc:
            raise ControlError(str(exc)) from exc
        return self.ack(msg)

    @handles(Subscribe)
    def _subscribe(self, msg: Subscribe, sender: Any) -> Ack:
        who = sender if msg.subscriber is None else msg.subscriber
        if not any(who == s for s in self.subscribers):
            self.subscribers.append(who)
        return self.ack(msg)

    @handles(Unsubscribe)
    def _unsubscribe(self, msg: Unsubscribe, sender: Any) -> Ack:
        who = sender if msg.subscriber is None else msg.subscriber
        self.subscribers = [s for s in self.subscribers if s != who]
        return self.ack(msg)

    @handles(GetHealth)
    def _get(self, msg: GetHealth, sender: Any) -> HealthReply:
        states = {k: m.state for k, m in self.machines.items()}
        last = max((m.last_event for m in self.machines.values()),
                   key=lambda e: e.timestamp_ns, default=None)
        return HealthReply(correlation_id=msg.correlation_id, source=self.name,
                           state=worst_of(states.values()) if states else C,
                           sources=states, last_event=last)

    @handles(GetStats)
    def _stats(self, msg: GetStats, sender: Any) -> StatsReply:
        return StatsReply(correlation_id=msg.correlation_id, source=self.name, stats={
            "sources": len(self.machines), "subscribers": len(self.subscribers)})
