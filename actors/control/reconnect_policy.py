"""The reconnect policy actor: a :class:`~taktora.actors.models.backoff.ReconnectPolicy` for one
owner.

The owner reports :class:`ConnectionLost` / :class:`ConnectionUp`; the actor arms a timer and,
when it fires, sends :class:`AttemptReconnect` to the owner. The owner is whoever sent the last
report: in a gateway group the policy outlives the gateway, so a restarted gateway simply
becomes the owner and the attempt count carries on across the crash. Re-arming or cancelling makes an
earlier timer stale (Thespian timers cannot be cancelled); a stale wakeup is dropped and
counted. The backoff arithmetic is the pure model in :mod:`taktora.actors.models.backoff`.
"""

from __future__ import annotations

import random
from typing import Any

import attrs
from taktora.actors.control.base import TaktoraActor, handles
from taktora.actors.control.messages import Ack, ControlMessage, GetStats, Reconnect, StatsReply
from taktora.actors.models.backoff import Backoff, ReconnectPolicy


@attrs.frozen(kw_only=True)
class ConnectionLost(ControlMessage):
    """Owner -> policy: the connection is down (or an attempt failed); schedule the next try."""

    reason: str = ""


@attrs.frozen(kw_only=True)
class ConnectionUp(ControlMessage):
    """Owner -> policy: connected; cancel any pending attempt, start the stable period."""


@attrs.frozen(kw_only=True)
class ResetBackoff(ControlMessage):
    """Owner -> policy: a reconnect was requested from outside; cancel any pending attempt and
    count from attempt 1 again (Ack). Unlike :class:`~taktora.actors.control.messages.
    Reconnect` it asks for no attempt: the owner is connecting already."""


@attrs.frozen(kw_only=True)
class AttemptReconnect:
    """Policy -> owner: try to connect now (``attempt`` is 1-based)."""

    attempt: int
    delay_s: float


@attrs.frozen(kw_only=True)
class ReconnectGaveUp:
    """Policy -> owner: ``max_attempts`` reached; no further attempts until ``Reconnect``."""

    attempts: int


class ReconnectPolicyActor(TaktoraActor):
    """Schedules reconnect attempts for one owner (the sender of ``ConnectionLost``).

    Settings come from ``args["settings"]`` (a :class:`~taktora.actors.models.backoff.Backoff`
    or a dict of its fields) and ``args["seed"]`` (optional). Handlers run on the actor thread
    and never block.
    """

    def on_start(self) -> None:
        raw = self.args.get("settings")
        settings = raw if isinstance(raw, Backoff) else Backoff(**(raw or {}))
        self.policy = ReconnectPolicy(settings, rng=random.Random(self.args.get("seed")))
        self.owner: Any = None
        self.pending = False
        self.gave_up = 0

    @handles(ConnectionLost)
    def _lost(self, msg: ConnectionLost, sender: Any) -> Ack:
        self.owner = sender
        self._schedule()
        return self.ack(msg, "scheduled" if self.pending else "gave up")

    @handles(ConnectionUp)
    def _up(self, msg: ConnectionUp, sender: Any) -> Ack:
        self.owner = sender
        self.cancel_timer("attempt")
        self.pending = False
        self.policy.mark_up()
        return self.ack(msg)

    @handles(ResetBackoff)
    def _reset(self, msg: ResetBackoff, sender: Any) -> Ack:
        self.owner = sender
        self.cancel_timer("attempt")
        self.pending = False
        self.policy.reset()
        return self.ack(msg)

    @handles(Reconnect)
    def _now(self, msg: Reconnect, sender: Any) -> Ack:
        self.cancel_timer("attempt")
        self.pending = False
        self.policy.reset()
        if self.owner is not None:
            self.send(self.owner, AttemptReconnect(attempt=0, delay_s=0.0))
        return self.ack(msg, "attempting now")

    @handles(GetStats)
    def _stats(self, msg: GetStats, sender: Any) -> StatsReply:
        return StatsReply(correlation_id=msg.correlation_id, source=self.name, stats={
            "attempts": self.policy.attempts, "pending": self.pending,
            "stale_timers": self.stale_timers, "gave_up": self.gave_up})

    def _schedule(self) -> None:
        delay = self.policy.next_delay()
        if delay is None:
            self.cancel_timer("attempt")
            self.pending = False
            self.gave_up += 1
            self.send(self.owner, ReconnectGaveUp(attempts=self.policy.attempts))
            return
        self.pending = True
        self.start_timer("attempt", delay, (self.policy.attempts, delay))

    def on_timer(self, name: str, data: Any) -> None:
        if name == "attempt" and self.owner is not None:
            self.pending = False
            attempt, delay = data
            self.send(self.owner, AttemptReconnect(attempt=attempt, delay_s=delay))
