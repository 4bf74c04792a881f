"""The health monitor actor: one :class:`~taktora.actors.models.health.HealthMachine` per source,
the worst-of aggregate on :class:`GetHealth`, every :class:`HealthEvent` fanned out to its
subscribers.

The state machine itself (ARCH_0012's table) is the pure model in
:mod:`taktora.actors.models.health`; this module adds only the actor and its messages.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
from taktora.actors.control.base import TaktoraActor, handles
from taktora.actors.control.messages import (
    Ack,
    ControlMessage,
    GetHealth,
    GetStats,
    HealthReply,
    StatsReply,
)
from taktora.actors.errors import ActorError, ControlError
from taktora.actors.models.health import HealthEvent, HealthMachine, HealthState, worst_of
from taktora.transport.validators import Checks

log = logging.getLogger(__name__)
_v = Checks(ControlError)


@attrs.frozen(kw_only=True)
class ReportHealth(ControlMessage):
    """A source reports its new state (Ack, or ErrorReply REJECTED for an illegal transition)."""

    source: str
    state: HealthState = attrs.field(validator=_v.instance(HealthState))
    reason: str = ""


@attrs.frozen(kw_only=True)
class Subscribe(ControlMessage):
    """Send every HealthEvent to ``subscriber`` (an actor address; default: the sender)."""

    subscriber: Any = None


@attrs.frozen(kw_only=True)
class Unsubscribe(ControlMessage):
    """Stop sending events to ``subscriber`` (default: the sender)."""

    subscriber: Any = None


def subscribe(subscribers: list[Any], msg: Subscribe, sender: Any) -> Any:
    """Add the subscriber ``msg`` names (its sender by default) unless already there; return it.
    Addresses are compared with ``==`` (Thespian's ActorAddress is unhashable)."""
    who = sender if msg.subscriber is None else msg.subscriber
    if not any(who == s for s in subscribers):
        subscribers.append(who)
    return who


def unsubscribe(subscribers: list[Any], msg: Unsubscribe, sender: Any) -> None:
    """Remove the subscriber ``msg`` names (its sender by default); unknown ones are ignored."""
    who = sender if msg.subscriber is None else msg.subscriber
    subscribers[:] = [s for s in subscribers if s != who]


class HealthSubscribers:
    """:class:`Subscribe` / :class:`Unsubscribe` handlers for an actor that keeps
    ``self.subscribers`` (actor addresses); a new subscriber first gets
    :meth:`current_event` (if any). Mix in before :class:`TaktoraActor`."""

    subscribers: list[Any]

    def current_event(self) -> HealthEvent | None:
        """The event a new subscriber gets at once (default: none)."""
        return None

    @handles(Subscribe)
    def _subscribe(self, msg: Subscribe, sender: Any) -> Ack:
        who = subscribe(self.subscribers, msg, sender)
        event = self.current_event()
        if event is not None:
            self.send(who, event)  # type: ignore[attr-defined]  # the actor's send
        return Ack(correlation_id=msg.correlation_id)

    @handles(Unsubscribe)
    def _unsubscribe(self, msg: Unsubscribe, sender: Any) -> Ack:
        unsubscribe(self.subscribers, msg, sender)
        return Ack(correlation_id=msg.correlation_id)


class HealthMonitor(HealthSubscribers, TaktoraActor):
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

    @handles(GetHealth)
    def _get(self, msg: GetHealth, sender: Any) -> HealthReply:
        states = {k: m.state for k, m in self.machines.items()}
        last = max((m.last_event for m in self.machines.values()),
                   key=lambda e: e.timestamp_ns, default=None)
        return HealthReply(correlation_id=msg.correlation_id, source=self.name,
                           state=worst_of(states.values()) if states else HealthState.CONNECTING,
                           sources=states, last_event=last)

    @handles(GetStats)
    def _stats(self, msg: GetStats, sender: Any) -> StatsReply:
        return StatsReply(correlation_id=msg.correlation_id, source=self.name, stats={
            "sources": len(self.machines), "subscribers": len(self.subscribers)})
