"""Reconnect policy: exponential backoff with jitter, attempt limit, reset after stability.

- :class:`ReconnectPolicySettings` is the frozen, validated configuration.
- :class:`ReconnectPolicy` is the pure, synchronous policy (no actors, no threads): ask it for
  the next delay, tell it when the connection came up. Its randomness comes from an injectable
  ``random.Random`` and its clock from an injectable callable, so tests are exact.
- :class:`ReconnectPolicyActor` wraps it for a connector: the owner reports
  :class:`ConnectionLost` / :class:`ConnectionUp`; the actor arms a timer and, when it fires,
  sends :class:`AttemptReconnect` to the owner. Re-arming or cancelling makes an earlier timer
  stale (Thespian timers cannot be cancelled); a stale wakeup is dropped and counted.

Delay of attempt ``n`` (1-based)::

    base  = min(max_s, initial_s * multiplier ** (n - 1))
    delay = base * (1 + jitter * rng.random())        # jitter in [0, 1]: only ever later

After the connection stayed up for ``reset_after_s`` the attempt counter starts again at 1.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import attrs
from taktora.actors.base import TaktoraActor, handles
from taktora.actors.messages import Ack, ControlMessage, GetStats, Reconnect, StatsReply
from taktora.transport.errors import ActorError


def _positive(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ActorError(f"invalid reconnect setting {attribute.name!r}: expected a number > 0, "
                         f"got {value!r}")


def _unit(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ActorError(f"invalid reconnect setting {attribute.name!r}: expected 0 <= x <= 1, "
                         f"got {value!r}")


def _opt_positive_int(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ActorError(f"invalid reconnect setting {attribute.name!r}: expected None or an int "
                         f">= 1, got {value!r}")


def _opt_positive(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _positive(inst, attribute, value)


@attrs.frozen(kw_only=True)
class ReconnectPolicySettings:
    """Backoff configuration. Times in seconds.

    ``max_attempts`` None means unlimited; ``reset_after_s`` None means never reset on its own.
    """

    initial_s: float = attrs.field(default=0.1, validator=_positive)
    max_s: float = attrs.field(default=30.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_unit)
    max_attempts: int | None = attrs.field(default=None, validator=_opt_positive_int)
    reset_after_s: float | None = attrs.field(default=60.0, validator=_opt_positive)

    def __attrs_post_init__(self) -> None:
        if self.max_s < self.initial_s:
            raise ActorError(f"invalid reconnect setting 'max_s': {self.max_s} is below "
                             f"initial_s {self.initial_s}")
        if self.multiplier < 1:
            raise ActorError(f"invalid reconnect setting 'multiplier': expected >= 1, got "
                             f"{self.multiplier}")


class ReconnectPolicy:
    """The pure policy. Not thread-safe: one owner (an actor or one thread) uses it."""

    def __init__(self, settings: ReconnectPolicySettings | None = None, *,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or ReconnectPolicySettings()
        self._rng = rng or random.Random()
        self._clock = clock
        self._attempts = 0
        self._up_since: float | None = None

    @property
    def attempts(self) -> int:
        """Attempts handed out since the last reset."""
        return self._attempts

    def base_delay(self, attempt: int) -> float:
        """The delay of 1-based ``attempt`` before jitter."""
        s = self.settings
        return float(min(s.max_s, s.initial_s * s.multiplier ** (attempt - 1)))

    def next_delay(self) -> float | None:
        """Count one attempt and return how long to wait before it, or None to give up.

        Called when the connection is (still) down. If it had been up for ``reset_after_s``
        since :meth:`mark_up`, the counter restarts first.
        """
        self._maybe_reset()
        self._up_since = None
        s = self.settings
        if s.max_attempts is not None and self._attempts >= s.max_attempts:
            return None
        self._attempts += 1
        return self.base_delay(self._attempts) * (1.0 + s.jitter * self._rng.random())

    def mark_up(self) -> None:
        """The connection came up; the stable period starts now."""
        self._up_since = self._clock()

    def _maybe_reset(self) -> None:
        ra = self.settings.reset_after_s
        if self._up_since is not None and ra is not None and self._clock() - self._up_since >= ra:
            self._attempts = 0

    def reset(self) -> None:
        """Start counting from attempt 1 again."""
        self._attempts = 0


# --- the actor --------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class ConnectionLost(ControlMessage):
    """Owner -> policy: the connection is down (or an attempt failed); schedule the next try."""

    reason: str = ""


@attrs.frozen(kw_only=True)
class ConnectionUp(ControlMessage):
    """Owner -> policy: connected; cancel any pending attempt, start the stable period."""


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

    Settings come from ``args["settings"]`` (a :class:`ReconnectPolicySettings` or a dict of its
    fields) and ``args["seed"]`` (optional). Handlers run on the actor thread and never block.
    """

    def on_start(self) -> None:
        raw = self.args.get("settings")
        settings = (raw if isinstance(raw, ReconnectPolicySettings)
                    else ReconnectPolicySettings(**(raw or {})))
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
