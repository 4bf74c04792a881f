"""Read-only taps for ``taktora echo`` / ``hz``: a subscriber on a discovered channel, the
envelope decoded by its codec id, and interval statistics.

Threads: a :class:`Tap` is used by one thread (the CLI's main thread); :meth:`Tap.next`
blocks it in the channel's listener (GIL released) up to its timeout.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from typing import Any

import attrs
import msgpack
from taktora.system.recording.discovery import ChannelInfo, tap_spec
from taktora.transport import envelope
from taktora.transport.envelope import CodecId, EnvelopeHeader
from taktora.transport.errors import EnvelopeError
from taktora.transport.node import Node


@attrs.frozen
class Tapped:
    """One received sample: its envelope header (None for struct or malformed samples), the
    payload bytes and the monotonic receive time."""

    header: EnvelopeHeader | None
    payload: bytes
    received_ns: int


def hexdump(data: bytes, limit: int = 256) -> str:
    """``data`` as spaced hex, cut at ``limit`` bytes with the full length said."""
    text = data[:limit].hex(" ")
    return text + (f" ... ({len(data)} B)" if len(data) > limit else "")


def render(t: Tapped) -> str:
    """A received value as text: JSON / msgpack decoded, everything else as hex."""
    codec = t.header.codec_id if t.header is not None else -1
    try:
        if codec in (CodecId.JSON, CodecId.CATTRS_JSON):
            return json.dumps(json.loads(t.payload), ensure_ascii=False)
        if codec in (CodecId.MSGPACK, CodecId.CATTRS_MSGPACK):
            return repr(msgpack.unpackb(t.payload, raw=False))
    except Exception as exc:  # a payload its codec id does not match: show the bytes
        return f"<undecodable {type(exc).__name__}> {hexdump(t.payload)}"
    return hexdump(t.payload)


class Tap:
    """A read-only subscriber on ``info`` (joins the channel with its own limits)."""

    def __init__(self, node: Node, info: ChannelInfo) -> None:
        self.info = info
        self._sub = node.subscriber(tap_spec(info))

    def next(self, timeout: float | None) -> Tapped | None:
        """The next sample, waiting up to ``timeout`` s (None: forever); None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            sample = self._sub.receive()
            if sample is not None:
                now = time.monotonic_ns()
                with sample:
                    data = bytes(sample.payload)
                header: EnvelopeHeader | None = None
                payload = data
                if self.info.envelope:
                    try:
                        header, view = envelope.decode(data, verify_crc=False)
                        payload = bytes(view)
                    except EnvelopeError:
                        header = None
                return Tapped(header, payload, now)
            if deadline is None:
                self._sub.wait(1.0)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._sub.wait(min(left, 1.0))

    def close(self) -> None:
        self._sub.close()


@attrs.frozen
class RateStats:
    """Rate over the last ``window`` intervals: mean rate (Hz) and min/max/std of the
    interval (s), like ``ros2 topic hz``."""

    rate_hz: float
    min_s: float
    max_s: float
    std_s: float
    window: int

    def line(self) -> str:
        return (f"average rate: {self.rate_hz:.3f} Hz  min: {self.min_s:.6f}s  "
                f"max: {self.max_s:.6f}s  std dev: {self.std_s:.6f}s  window: {self.window}")


class RateMeter:
    """Receive intervals of the last ``window`` samples."""

    def __init__(self, window: int = 10_000) -> None:
        self._intervals: deque[int] = deque(maxlen=window)
        self._last: int | None = None
        self.samples = 0

    def add(self, t_ns: int) -> None:
        if self._last is not None:
            self._intervals.append(t_ns - self._last)
        self._last = t_ns
        self.samples += 1

    def stats(self) -> RateStats | None:
        """None until two samples arrived."""
        n = len(self._intervals)
        if not n:
            return None
        xs = [i / 1e9 for i in self._intervals]
        mean = sum(xs) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / n)
        return RateStats(1.0 / mean if mean > 0 else math.inf, min(xs), max(xs), std, n)


class ByteMeter:
    """Bytes per second over the samples received in the last ``window`` seconds."""

    def __init__(self, window: float = 10.0) -> None:
        self.window_ns = round(window * 1e9)
        self._samples: deque[tuple[int, int]] = deque()
        self.samples = 0

    def add(self, t_ns: int, size: int) -> None:
        self._samples.append((t_ns, size))
        self.samples += 1
        while self._samples and self._samples[0][0] < t_ns - self.window_ns:
            self._samples.popleft()

    def line(self) -> str | None:
        """``"12.3 KB/s from 45 messages, mean 280 B, min 64 B, max 1024 B"`` or None."""
        if len(self._samples) < 2:
            return None
        span = (self._samples[-1][0] - self._samples[0][0]) / 1e9
        sizes = [s for _t, s in self._samples]
        rate = sum(sizes[1:]) / span if span > 0 else math.inf
        return (f"{si(rate)}B/s from {len(sizes)} messages, mean {sum(sizes) / len(sizes):.0f} B, "
                f"min {min(sizes)} B, max {max(sizes)} B")


def si(value: float) -> str:
    """``value`` with an SI prefix: ``12.30 K``."""
    for unit in ("", "K", "M", "G"):
        if abs(value) < 1000:
            return f"{value:.2f} {unit}"
        value /= 1000
    return f"{value:.2f} T"


def decode_any(t: Tapped) -> Any:
    """The decoded value (JSON / msgpack) or the raw bytes."""
    codec = t.header.codec_id if t.header is not None else -1
    if codec in (CodecId.JSON, CodecId.CATTRS_JSON):
        return json.loads(t.payload)
    if codec in (CodecId.MSGPACK, CodecId.CATTRS_MSGPACK):
        return msgpack.unpackb(t.payload, raw=False)
    return t.payload
