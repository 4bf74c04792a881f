"""Backoff as a pure model: one settings type and one attempt counter, used by supervisors
(the delay before restarting a child) and by reconnect policies (the delay before the next
connection attempt).

Delay of attempt ``n`` (1-based)::

    base  = min(max_s, initial_s * multiplier ** (n - 1))
    delay = base * (1 + jitter * U)          # U uniform in [0, 1): jitter only ever delays

After the watched thing (a child, a connection) stayed up for ``reset_after_s`` the attempt
count starts again at 1. ``max_attempts`` (None: unlimited) bounds the attempts a
:class:`ReconnectPolicy` hands out; a supervisor bounds restarts by its intensity instead and
ignores it.

Nothing here imports Thespian, starts a thread or reads a clock it was not given: randomness
comes from an injectable ``random.Random`` and time from an injectable callable, so tests are
exact.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import attrs
from taktora.actors.errors import ActorConfigError
from taktora.transport.validators import Checks

_v = Checks(ActorConfigError)

#: The defaults, in one place (spec/actors.rst states them).
DEFAULT_INITIAL_S = 0.1
DEFAULT_MAX_S = 30.0
DEFAULT_MULTIPLIER = 2.0
DEFAULT_JITTER = 0.2
DEFAULT_RESET_AFTER_S = 60.0
#: Upper bound of every backoff time: a day. Longer waits are a configuration mistake.
MAX_BACKOFF_S = 86_400.0


@attrs.frozen(kw_only=True)
class Backoff:
    """Exponential backoff with jitter. Times in seconds, finite, at most a day."""

    initial_s: float = attrs.field(default=DEFAULT_INITIAL_S, validator=_v.number(gt=0, le=MAX_BACKOFF_S))
    max_s: float = attrs.field(default=DEFAULT_MAX_S, validator=_v.number(gt=0, le=MAX_BACKOFF_S))
    multiplier: float = attrs.field(default=DEFAULT_MULTIPLIER, validator=_v.number(ge=1, le=100))
    jitter: float = attrs.field(default=DEFAULT_JITTER, validator=_v.unit())
    reset_after_s: float | None = attrs.field(
        default=DEFAULT_RESET_AFTER_S, validator=_v.optional(_v.number(gt=0, le=MAX_BACKOFF_S)))
    max_attempts: int | None = attrs.field(default=None, validator=_v.optional(_v.positive_int()))

    def __attrs_post_init__(self) -> None:
        if self.max_s < self.initial_s:
            raise _v.problem(self, "max_s", f"{self.max_s} is below initial_s {self.initial_s}")

    def base_delay(self, attempt: int) -> float:
        """The delay of 1-based ``attempt`` before jitter."""
        return float(min(self.max_s, self.initial_s * self.multiplier ** (attempt - 1)))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The delay of 1-based ``attempt`` with jitter drawn from ``rng``."""
        return self.base_delay(attempt) * (1.0 + self.jitter * rng.random())


class ReconnectPolicy:
    """Counts attempts under a :class:`Backoff`. Not thread-safe: one owner (an actor or one
    thread) uses it."""

    def __init__(self, settings: Backoff | None = None, *,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or Backoff()
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
        return self.settings.base_delay(attempt)

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
        return s.delay(self._attempts, self._rng)

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
