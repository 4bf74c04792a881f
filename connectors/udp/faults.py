"""Fault injection for the UDP reference connector, driven from code (tests, the demo).

One :class:`FaultInjector` is shared by the code that sets faults (any thread) and the
connector that applies them on its outbound thread (sends) and inbound thread (link down).
Every decision is counted by cause, and randomness comes from a seeded ``random.Random``, so a
test knows exactly what was dropped or corrupted.

Faults, applied to each sent frame in this order:

- ``link down``: nothing is sent; ``send`` raises LinkDownError and frames arriving meanwhile
  are discarded (health reports Down).
- ``drop``: every ``drop_every``-th frame, and/or each frame with probability
  ``drop_probability``, silently vanishes (as on a lossy link; the far side sees a gap).
- ``corrupt``: one payload byte of every ``corrupt_every``-th frame (and/or with probability
  ``corrupt_probability``) is flipped; the envelope's CRC-32 lets the far side notice.
- ``delay``: the frame leaves ``delay_ms`` later (the sending thread sleeps: order is kept and
  the outbound dispatcher is slowed down, as behind a slow link).
"""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Callable

import attrs
from taktora.connectors.errors import ConnectorError
from taktora.connectors.model import FrozenMap
from taktora.transport.envelope import HEADER_SIZE


class Verdict(enum.Enum):
    """What happens to one outbound frame."""

    SEND = "send"
    LINK_DOWN = "link_down"
    DROP = "fault_drop"
    CORRUPT = "fault_corrupt"


@attrs.frozen
class Decision:
    """The fate of one frame: its verdict, the bytes to send (corrupted or not), the delay."""

    verdict: Verdict
    frame: bytes | memoryview | bytearray
    delay_s: float = 0.0


def _check_rate(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConnectorError(f"FaultInjector.{name}={value!r}: must be a number in 0..1")
    return float(value)


def _check_every(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConnectorError(f"FaultInjector.{name}={value!r}: must be an integer >= 0 "
                             "(0 turns it off)")
    return value


class FaultInjector:
    """Programmable link faults (see the module doc). Thread-safe; all off by default."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._link_down = False
        self._delay_s = 0.0
        self._drop_every = 0
        self._drop_p = 0.0
        self._corrupt_every = 0
        self._corrupt_p = 0.0
        self.frames = 0
        """Outbound frames seen (the n of ``every``-th): counted by :meth:`decide`, and by
        the connector itself while :attr:`active` is False."""
        self.active = False
        """True while any fault is set (read without the lock, on the sending thread: while
        it is False the connector sends without asking :meth:`decide`)."""
        self._counts: dict[str, int] = {}
        self.on_link: Callable[[bool], None] | None = None
        """Called with False when the link is cut and True when it is restored (on the thread
        that changed it); the UDP connector reports its health through it."""

    # -- setting faults (any thread) -----------------------------------------------------------
    def link_down(self) -> None:
        """Cut the link: sends fail with LinkDownError, arriving frames are discarded."""
        with self._lock:
            changed, self._link_down = not self._link_down, True
            self._update()
        if changed:
            self._tell(False)

    def link_up(self) -> None:
        """Restore the link."""
        with self._lock:
            changed, self._link_down = self._link_down, False
            self._update()
        if changed:
            self._tell(True)

    def _update(self) -> None:
        """Recompute :attr:`active` (under the lock, after every change)."""
        self.active = bool(self._link_down or self._delay_s or self._drop_every or self._drop_p
                           or self._corrupt_every or self._corrupt_p)

    def _tell(self, up: bool) -> None:
        callback = self.on_link
        if callback is not None:
            callback(up)

    @property
    def is_link_down(self) -> bool:
        return self._link_down

    def delay(self, ms: float) -> None:
        """Hold every sent frame ``ms`` milliseconds (0: off)."""
        if isinstance(ms, bool) or not isinstance(ms, int | float) or ms < 0:
            raise ConnectorError(f"FaultInjector.delay ms={ms!r}: must be a number >= 0")
        with self._lock:
            self._delay_s = ms / 1000.0
            self._update()

    def drop(self, every: int = 0, probability: float = 0.0) -> None:
        """Drop every ``every``-th frame and/or each with ``probability`` (0 and 0.0: off)."""
        every = _check_every("drop every", every)
        probability = _check_rate("drop probability", probability)
        with self._lock:
            self._drop_every, self._drop_p = every, probability
            self._update()

    def corrupt(self, every: int = 0, probability: float = 0.0) -> None:
        """Flip a payload byte of every ``every``-th frame and/or each with ``probability``."""
        every = _check_every("corrupt every", every)
        probability = _check_rate("corrupt probability", probability)
        with self._lock:
            self._corrupt_every, self._corrupt_p = every, probability
            self._update()

    def clear(self) -> None:
        """Turn every fault off (the link comes up); counters stay."""
        with self._lock:
            changed, self._link_down = self._link_down, False
            self._delay_s = 0.0
            self._drop_every = self._corrupt_every = 0
            self._drop_p = self._corrupt_p = 0.0
            self._update()
        if changed:
            self._tell(True)

    # -- applying them (connector threads) -----------------------------------------------------
    def decide(self, frame: bytes | bytearray | memoryview) -> Decision:
        """The fate of one outbound frame; counts it under its cause."""
        with self._lock:
            if self._link_down:
                return self._count(Decision(Verdict.LINK_DOWN, frame))
            self.frames += 1
            n = self.frames
            if self._hit(n, self._drop_every, self._drop_p):
                return self._count(Decision(Verdict.DROP, frame))
            delay = self._delay_s
            if delay:
                self._counts["fault_delay"] = self._counts.get("fault_delay", 0) + 1
            if self._hit(n, self._corrupt_every, self._corrupt_p):
                return self._count(Decision(Verdict.CORRUPT, self._flip(frame), delay))
            return Decision(Verdict.SEND, frame, delay)

    def discard_inbound(self) -> bool:
        """True (and counted as ``link_down_rx``) when an arriving frame must be discarded."""
        if not self._link_down:  # the common case, without the lock
            return False
        with self._lock:
            down = self._link_down  # it may have come back up meanwhile
            if down:
                self._counts["link_down_rx"] = self._counts.get("link_down_rx", 0) + 1
            return down

    def _hit(self, n: int, every: int, probability: float) -> bool:
        hit = bool(every) and n % every == 0
        if probability and self._rng.random() < probability:
            hit = True
        return hit

    def _flip(self, frame: bytes | bytearray | memoryview) -> bytearray:
        out = bytearray(frame)
        if out:
            # a payload byte when there is one, so the envelope CRC (not the header checks)
            # is what catches it
            start = HEADER_SIZE if len(out) > HEADER_SIZE else 0
            index = self._rng.randrange(start, len(out))
            out[index] ^= 0xFF
        return out

    def _count(self, decision: Decision) -> Decision:
        cause = decision.verdict.value
        self._counts[cause] = self._counts.get(cause, 0) + 1
        return decision

    def stats(self) -> FrozenMap[str, int]:
        """Counts by cause: ``link_down``, ``link_down_rx``, ``fault_drop``, ``fault_corrupt``,
        ``fault_delay``."""
        with self._lock:
            return FrozenMap(self._counts)
