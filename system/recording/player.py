"""The Player: a recording's messages back onto their iceoryx2 services, in log-time order.

Each message becomes a fresh envelope (codec id, kind, correlation id and CRC flag as
recorded, so Zenoh queries and replies replay as such; the player's own sequence from 1 per
service, the replay's CLOCK_REALTIME timestamp) on a publisher of the recorded service, or of
its remapped name, created with the recorded static config (history, buffer size, limits;
DROP_NEWEST for services recorded without safe overflow: a replay never blocks). A struct
channel's message is the struct again (rebuilt from the JSON and the layout in its schema,
or copied from the raw bytes), on a service of the recorded type name, size and alignment.

Pacing: ``rate`` 1.0 replays at the original timing, 2.0 twice as fast, ``None`` as fast as
possible. Message *i* is due at ``t0 + (log_time_i - log_time_0) / rate`` on the monotonic
clock: absolute deadlines, so a late message does not delay the next ones (no drift).
:meth:`Player.step` publishes the next message at once, for tests driving replay from code.

Threads: :meth:`Player.run` blocks the calling thread, sleeping until each deadline (the
sleep ends early when :meth:`Player.stop` is called from another thread); the publishers are
used from that thread only.
"""

from __future__ import annotations

import ctypes
import fnmatch
import json
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs
from mcap.records import Channel, Message, Schema
from taktora.system.recording import ctypes_schema
from taktora.system.recording import mcap_format as fmt
from taktora.system.recording.discovery import shadow_struct
from taktora.system.recording.errors import RecordingError
from taktora.system.recording.reader import frame, iter_messages, read_info, summary
from taktora.transport import envelope
from taktora.transport.channel import BytesPayload, ChannelSpec, OverflowPolicy, StructPayload
from taktora.transport.envelope import FLAG_CRC, HEADER_SIZE
from taktora.transport.node import Node
from taktora.transport.pubsub import Publisher

SPIN_S = 0.0002  # the last stretch before a deadline is spent polling the clock


@attrs.frozen
class Played:
    """One published message: target service, its recorded log time, when it was due and
    when it was sent (monotonic ns; both 0 for stepped or as-fast-as-possible replays)."""

    service: str
    log_time: int
    due_ns: int
    sent_ns: int
    size: int


@attrs.frozen
class PlaybackReport:
    """What a run published: messages, per-service counts, and timing errors (sent - due, ns)."""

    messages: int
    per_service: dict[str, int]
    lateness_ns: tuple[int, ...]
    stopped: bool


def _parse_remap(remap: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    if isinstance(remap, Mapping):
        return dict(remap)
    out = {}
    for item in remap:
        src, sep, dst = item.partition("=")
        if not sep or not src or not dst:
            raise RecordingError(f"remap {item!r}: expected FROM=TO (two channel names)")
        out[src] = dst
    return out


class Player:
    """Replays ``path`` onto iceoryx2 (``prefix``: default ``TAKTORA_IOX_PREFIX``).

    ``start`` / ``end``: seconds from the first recorded message (``[start, end)``);
    ``channels``: names or globs of the recorded services to replay (default: all);
    ``remap``: ``{recorded: target}`` or ``["a=b", ...]``. Raises RecordingError for an
    unusable file or options. The publishers exist from construction until :meth:`close`.
    """

    def __init__(self, path: str | Path, *, rate: float | None = 1.0, start: float | None = None,
                 end: float | None = None, channels: Sequence[str] = (),
                 remap: Mapping[str, str] | Sequence[str] = (), prefix: str | None = None,
                 node: Node | None = None) -> None:
        if rate is not None and not rate > 0:
            raise RecordingError(f"rate {rate!r}: expected a factor > 0 (or None: as fast as "
                                 f"possible)")
        if start is not None and end is not None and end < start:
            raise RecordingError(f"time range [{start}, {end}) is empty: --end must be >= "
                                 f"--start")
        self.path = Path(path)
        self.rate = rate
        self.info = read_info(self.path)
        if not self.info.complete:
            raise RecordingError(f"{str(self.path)!r} was not finished (recorder killed?): "
                                 f"run `taktora recover` on it first")
        self.remap = _parse_remap(remap)
        topics = [c.topic for c in self.info.channels]
        unknown = [s for s in self.remap if s not in topics]
        if unknown:
            raise RecordingError(f"remap of {unknown}: not in the recording (it has {topics})")
        chosen = [t for t in topics if not channels or any(fnmatch.fnmatchcase(t, p)
                                                           for p in channels)]
        missing = [p for p in channels if not any(fnmatch.fnmatchcase(t, p) for t in topics)]
        if missing:
            raise RecordingError(f"channels {missing} are not in the recording (it has {topics})")
        self.topics = chosen
        self._schemas, self._channels = summary(self.path)
        self._structs: dict[int, type[ctypes.Structure]] = {}  # MCAP channel id -> class
        base = self.info.start_ns
        self._start_ns = base + round(start * 1e9) if start is not None else None
        self._end_ns = base + round(end * 1e9) if end is not None else None
        self._own_node = node is None
        self._node = node if node is not None else Node(prefix=prefix)
        self._pubs: dict[str, Publisher] = {}
        self._seq: dict[str, int] = {}
        self._stop = threading.Event()
        #: messages published by the current run (read from any thread for progress)
        self.played = 0
        self._iter: Iterator[tuple[Channel, Message]] | None = None

    def target(self, topic: str) -> str:
        """The service ``topic`` is replayed onto (after remapping)."""
        return self.remap.get(topic, topic)

    def _struct(self, channel: Channel) -> type[ctypes.Structure] | None:
        """The class a struct channel's messages are published as (None: envelopes)."""
        if channel.id in self._structs:
            return self._structs[channel.id]
        payload = json.loads(channel.metadata.get(fmt.K_PAYLOAD, "{}"))
        if payload.get("kind") != "struct":
            return None
        schema: Schema | None = self._schemas.get(channel.schema_id)
        if channel.message_encoding == "json" and schema is not None:
            cls = ctypes_schema.struct_from_schema(schema.data)
        else:
            cls = shadow_struct(str(payload["type_name"]), int(payload["size"]),
                                int(payload["alignment"]))
        self._structs[channel.id] = cls
        return cls

    def _publisher(self, channel: Channel) -> Publisher:
        name = self.target(channel.topic)
        pub = self._pubs.get(name)
        if pub is None:
            struct = self._struct(channel)
            spec = json.loads(channel.metadata.get(fmt.K_SPEC, "{}"))
            pub = self._pubs[name] = self._node.publisher(ChannelSpec(
                name=name, payload=BytesPayload(max_size=1 << 16, growable=True)
                if struct is None else StructPayload(struct),
                history=int(spec.get("history", 0)), buffer_size=int(spec.get("buffer_size", 8)),
                max_publishers=int(spec.get("max_publishers", 4)),
                max_subscribers=int(spec.get("max_subscribers", 8)),
                max_borrowed=int(spec.get("max_borrowed", 4)),
                overflow=OverflowPolicy.DROP_OLDEST if spec.get("safe_overflow", True)
                else OverflowPolicy.DROP_NEWEST))
        return pub

    def open(self) -> None:
        """Open every target publisher now (before timing starts, so subscribers can join)."""
        for channel in self._channels.values():
            if channel.topic in self.topics:
                self._publisher(channel)

    def _messages(self) -> Iterator[tuple[Channel, Message]]:
        for channel, message in iter_messages(self.path, topics=self.topics,
                                              start_ns=self._start_ns, end_ns=self._end_ns):
            self._publisher(channel)
            yield channel, message

    def _send(self, channel: Channel, message: Message) -> int:
        pub = self._publisher(channel)
        struct = self._struct(channel)
        if struct is not None:
            value = ctypes_schema.from_json(struct, message.data) \
                if channel.message_encoding == "json" else struct.from_buffer_copy(message.data)
            pub.send_copy(value)
            return len(message.data)
        f = frame(channel, message)
        data = f.payload
        name = self.target(channel.topic)
        seq = self._seq[name] = self._seq.get(name, 0) + 1
        sample, view = pub.loan_bytes(HEADER_SIZE + len(data))
        try:
            view[HEADER_SIZE:] = data
            envelope.pack_header(view, codec_id=f.codec_id, payload_len=len(data), sequence=seq,
                                 kind=f.kind, correlation_id=f.correlation_id,
                                 crc32=zlib.crc32(data) if f.flags & FLAG_CRC else None)
        except BaseException:
            pub.discard(sample, view)
            raise
        pub.commit(sample, view)
        return len(data)

    def step(self) -> Played | None:
        """Publish the next message now; None when the recording is done."""
        if self._iter is None:
            self._iter = self._messages()
        nxt = next(self._iter, None)
        if nxt is None:
            return None
        channel, message = nxt
        size = self._send(channel, message)
        return Played(self.target(channel.topic), message.log_time, 0, 0, size)

    def run(self, repeat: int = 1) -> PlaybackReport:
        """Publish everything (paced by ``rate``) ``repeat`` times (0: until :meth:`stop`);
        returns early after :meth:`stop`. A repeat starts one mean message interval after the
        last message of the pass before, on the same absolute time line."""
        if repeat < 0:
            raise RecordingError(f"repeat={repeat}: expected passes >= 1, or 0 for endless")
        self._stop.clear()
        self.played = 0
        counts: dict[str, int] = {}
        late: list[int] = []
        t0 = time.monotonic_ns()
        n = 0
        passes = 0
        while repeat == 0 or passes < repeat:
            first: int | None = None
            last = 0
            in_pass = 0
            for channel, message in self._messages():
                log_time = last = message.log_time
                if first is None:
                    first = log_time
                due = 0
                if self.rate is not None:
                    due = t0 + round((log_time - first) / self.rate)
                    if self._wait_until(due):
                        return PlaybackReport(n, counts, tuple(late), True)
                self._send(channel, message)
                if self.rate is not None:
                    late.append(time.monotonic_ns() - due)
                name = self.target(channel.topic)
                counts[name] = counts.get(name, 0) + 1
                n += 1
                self.played = n
                in_pass += 1
                if self._stop.is_set():
                    return PlaybackReport(n, counts, tuple(late), True)
            passes += 1
            if first is None:  # nothing in range: repeating would spin
                break
            if self.rate is not None:
                span = last - first
                period = span / (in_pass - 1) if in_pass > 1 else 0.0
                t0 += round((span + period) / self.rate)
        return PlaybackReport(n, counts, tuple(late), False)

    def _wait_until(self, due_ns: int) -> bool:
        """Sleep until ``due_ns`` (monotonic); True if stopped meanwhile."""
        while True:
            left = (due_ns - time.monotonic_ns()) / 1e9
            if left <= 0:
                return self._stop.is_set()
            if left > SPIN_S:
                if self._stop.wait(left - SPIN_S):
                    return True
            elif self._stop.is_set():
                return True

    def stop(self) -> None:
        """Make :meth:`run` return after the message in flight (any thread)."""
        self._stop.set()

    def close(self) -> None:
        """Close the publishers (and the node, if the player made it). Idempotent."""
        for pub in self._pubs.values():
            pub.close()
        self._pubs.clear()
        if self._own_node:
            self._node.close()

    def __enter__(self) -> Player:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
