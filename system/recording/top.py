"""A live view of every channel under a prefix: ``taktora top``.

:class:`ChannelWatch` taps every taktora channel (one subscriber each, joined with the
channel's own limits) and turns what the taps see into rates. A tap that falls behind loses
samples under the channel's overflow policy; the rate is therefore computed from the
transport sequence numbers (received + lost), which is what the publishers sent, not what
this tap kept. New channels are picked up at each :meth:`ChannelWatch.rescan`.

Threads: used by one thread (the CLI's main thread); :meth:`ChannelWatch.poll` never blocks.
"""

from __future__ import annotations

import time

import attrs
from taktora.system.recording.discovery import ChannelInfo, list_channels, tap_spec
from taktora.transport.node import Node
from taktora.transport.pubsub import Subscriber


@attrs.frozen
class ChannelRow:
    """One line of the view: ports, published rate (Hz), payload bandwidth (B/s) and samples
    the publishers sent that this tap did not get (``tap_lost``)."""

    name: str
    payload: str
    publishers: int
    subscribers: int
    rate_hz: float
    bytes_per_s: float
    tap_lost: int


class _Watched:
    def __init__(self, info: ChannelInfo, sub: Subscriber) -> None:
        self.info = info
        self.sub = sub
        self.bytes = 0
        self.base_count = 0  # received + lost at the last snapshot
        self.base_bytes = 0


class ChannelWatch:
    """Taps on every taktora channel of ``node``'s prefix."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._watched: dict[str, _Watched] = {}
        self._infos: dict[str, ChannelInfo] = {}
        self._since = time.monotonic()
        self.rescan()

    def rescan(self) -> None:
        """List the channels again; tap the new ones (port counts are refreshed too)."""
        for info in list_channels(self._node):
            self._infos[info.name] = info
            if info.name not in self._watched and info.taktora:
                try:
                    sub = self._node.subscriber(tap_spec(info))
                except Exception:  # limits reached, or gone meanwhile: shown without rates
                    continue
                self._watched[info.name] = _Watched(info, sub)

    def poll(self) -> None:
        """Take every queued sample off every tap (never blocks)."""
        for w in self._watched.values():
            receive = w.sub.receive
            while (sample := receive()) is not None:
                w.bytes += sample.size
                sample.release()
            w.sub.consume_wakeups()

    def rows(self) -> list[ChannelRow]:
        """The figures since the previous call (or the start)."""
        now = time.monotonic()
        span = max(now - self._since, 1e-9)
        self._since = now
        out = []
        for name in sorted(self._infos):
            info = self._infos[name]
            w = self._watched.get(name)
            rate = bw = 0.0
            lost = 0
            # the tap itself is one of the subscribers the listing counts
            subs = info.subscribers - (1 if w is not None and info.subscribers > 0 else 0)
            if w is not None:
                stats = w.sub.stats
                count = stats.received + stats.lost
                rate = (count - w.base_count) / span
                bw = (w.bytes - w.base_bytes) / span
                w.base_count, w.base_bytes = count, w.bytes
                lost = stats.lost
            payload = "envelope" if info.envelope else info.payload_type
            out.append(ChannelRow(name, payload, info.publishers, subs, rate, bw, lost))
        return out

    def close(self) -> None:
        for w in self._watched.values():
            w.sub.close()
        self._watched.clear()
