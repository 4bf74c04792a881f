"""The recorder item: iceoryx2 channels -> MCAP (layout: :mod:`.mcap_format`).

:class:`RecorderItem` is an executor item: ``on_data`` over one read-only subscriber per
recorded channel, plus an ``every(tick)`` tick. Each run drains every subscriber and appends
each sample to the current MCAP part (:mod:`.file_parts`); the tick flushes the chunk in
progress, so at most ``flush_interval`` seconds of data are lost when the process is killed
(:attr:`RecorderStats.flushed` counts what is on disk, i.e. acknowledged). Host it in your own
executor, let :class:`~.recorder_thread.Recorder` run it in a thread of its own, or put it in
an item host of a system file (:mod:`.hosted`).

Envelope channels: each sample's payload is written with the envelope's timestamp and
sequence; its kind, correlation id, codec id and flags are kept (plain data frames as bare
payloads, other frames framed, see :mod:`.mcap_format`). Struct channels: given the ctypes
class (``types``, matched by type name), each sample is written as JSON of its fields,
otherwise as raw bytes; log time is the transport's send time.

Threads and blocking: the item runs in the executor thread (or pool worker) and blocks there
on file writes and chunk compression (zstd / lz4), never on a publisher. While it writes, its
subscribers' queues fill; a full queue drops per the channel's overflow policy, and the
recorder counts the loss as ``overflow`` (a transport sequence gap) and writes it into the
file as a gap. A gap the writer's own envelope sequence already had is written with cause
``source``. :meth:`RecorderItem.stats` may be read from any thread.
"""

from __future__ import annotations

import ctypes
import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from taktora.actors.executor import Context, Item, Trigger, every, on_data
from taktora.system.recording import ctypes_schema
from taktora.system.recording import mcap_format as fmt
from taktora.system.recording import metadata as meta
from taktora.system.recording.discovery import ChannelInfo, list_channels, select, tap_spec
from taktora.system.recording.errors import RecordingError
from taktora.system.recording.file_parts import PartWriter
from taktora.transport import envelope
from taktora.transport.envelope import HEADER_SIZE, MAGIC, VERSION
from taktora.transport.errors import EnvelopeError, TaktoraError
from taktora.transport.node import Node
from taktora.transport.pubsub import Subscriber

log = logging.getLogger(__name__)

COPY_BELOW = 16 * 1024  # bytes: below this a sample is copied out, above it read in place
BATCH = 256  # samples taken from one channel before the next channel gets its turn
_unpack = envelope.HEADER.unpack_from
_frame = fmt.FRAME.pack
_SPEC_KEYS = ("history", "buffer_size", "max_publishers", "max_subscribers", "max_borrowed",
              "safe_overflow")


@attrs.frozen
class ChannelStats:
    """Per-channel counters: ``received`` samples, ``written`` messages, ``overflow`` samples
    this recorder lost (its queue overflowed), ``source_lost`` samples missing in the writer's
    own sequence, ``gaps`` gap records written, ``malformed`` samples that were no envelope
    (written as raw bytes, codec ``raw``), ``bytes`` payload bytes written."""

    name: str
    received: int = 0
    written: int = 0
    overflow: int = 0
    source_lost: int = 0
    gaps: int = 0
    malformed: int = 0
    bytes: int = 0


@attrs.frozen
class RecorderStats:
    """A snapshot: per-channel counters, messages written, messages flushed to disk (the
    acknowledged ones) and the files written (several when splitting or rotating)."""

    channels: tuple[ChannelStats, ...]
    written: int
    flushed: int
    files: tuple[Path, ...] = ()

    def channel(self, name: str) -> ChannelStats:
        return next(c for c in self.channels if c.name == name)


class _Channel:
    """One recorded service: its subscriber, counters and MCAP channel ids by key."""

    def __init__(self, info: ChannelInfo, subscriber: Subscriber,
                 struct: type[ctypes.Structure] | None) -> None:
        self.info = info
        self.sub = subscriber
        self.struct = struct  # struct channels: the class to write JSON with (None: raw)
        self.mcap_ids: dict[int, int] = {}
        self.generation = 0  # the PartWriter generation mcap_ids belong to
        self.last: dict[int, tuple[int, int]] = {}  # publisher -> (transport seq, envelope seq)
        self.lost_seen = 0  # the subscriber's ``stats.lost`` accounted for so far
        self.counts = dict.fromkeys(("received", "written", "overflow", "source_lost", "gaps",
                                     "malformed", "bytes"), 0)

    def snapshot(self) -> ChannelStats:
        return ChannelStats(self.info.name, **self.counts)


def _recordable(info: ChannelInfo) -> bool:
    return info.envelope or (info.taktora and not info.dynamic)


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` is an fnmatch glob (holds one of ``*?[``)."""
    return any(ch in pattern for ch in "*?[")


class RecorderItem(Item):
    """Records ``channels`` (discovered :class:`ChannelInfo`) into ``output``.

    Create it on the thread that will run it (it opens subscribers on ``node``); the file
    is started at once (header, metadata) and finished by :meth:`on_stop` (summary, stats).
    With ``split_bytes`` or ``split_seconds`` (or ``rotate``) the recording is a numbered
    series (:mod:`.file_parts`); the split check runs at each flush, so a part overshoots by
    up to one flush interval. ``types``: ctypes classes of struct channels (matched by type
    name) to record as JSON. ``config``: the system file, embedded as metadata.
    ``rescan_interval``: look for new channels matching the glob patterns that often, from
    the item's own runs (for hosts that cannot add items; new channels are then drained at
    every run, i.e. at least every tick).
    """

    name = "recorder"

    def __init__(self, node: Node, channels: Sequence[ChannelInfo], output: str | Path, *,
                 compression: str = "zstd", chunk_size: int = 1 << 20,
                 flush_interval: float = 0.5, metadata: dict[str, str] | None = None,
                 patterns: Sequence[str] = (), split_bytes: int | None = None,
                 split_seconds: float | None = None, rotate: bool = False,
                 types: Sequence[type[ctypes.Structure]] = (), config: str | Path | None = None,
                 rescan_interval: float | None = None) -> None:
        if not channels and not any(is_glob(p) for p in patterns):
            raise RecordingError("nothing to record: no channel matched "
                                 f"{list(patterns) or '(none given)'}")
        records = {fmt.META_RECORDING: meta.recording(node.prefix, patterns, compression,
                                                      metadata)}
        self._declared: dict[str, str] = {}  # service -> codec name the system file declares
        if config is not None:
            records[fmt.META_SYSTEM] = meta.system_config(config)
            try:
                self._declared = {k: v[0] for k, v in meta.declared_channels(config).items()}
            except TaktoraError as exc:  # embedded all the same; the codecs stay generic
                log.warning("recorder: system config %s: %s", config, exc)
        self._parts = PartWriter(output, compression=compression, chunk_size=chunk_size,
                                 metadata=records, numbered=rotate, split_bytes=split_bytes,
                                 split_seconds=split_seconds)
        self.flush_interval = flush_interval
        self.rescan_interval = rescan_interval
        self._globs = [p for p in patterns if is_glob(p)]
        self._types = {ctypes_schema.type_name(t): t for t in types}
        self._node = node
        self._lock = threading.Lock()
        self._channels: list[_Channel] = []
        self._extra = 0
        self._written = 0
        self._flushed = 0
        self._finished = False
        self._last_flush = self._last_scan = time.monotonic()
        # struct samples carry CLOCK_MONOTONIC send times: log them on the realtime clock
        self._realtime_offset = time.time_ns() - time.monotonic_ns()
        try:
            for info in channels:
                if not _recordable(info):
                    raise RecordingError(f"channel {info.name!r} is not a taktora channel "
                                         f"(payload {info.payload_type!r}, header "
                                         f"{info.user_header!r}): it cannot be recorded")
                self._channels.append(self._open(node, info))
            self._parts.open()
        except BaseException:
            for ch in self._channels:
                ch.sub.close()
            raise

    def _open(self, node: Node, info: ChannelInfo) -> _Channel:
        struct = None if info.envelope else self._types.get(info.payload_type)
        if struct is not None and ctypes.sizeof(struct) != info.payload_size:
            raise RecordingError(f"channel {info.name!r}: type {info.payload_type!r} is "
                                 f"{info.payload_size} B, the given class "
                                 f"{struct.__name__} {ctypes.sizeof(struct)} B")
        if struct is not None:
            try:
                ctypes_schema.layout(struct)
            except RecordingError as exc:
                log.warning("recorder: %s: raw bytes instead of JSON (%s)", info.name, exc)
                struct = None
        return _Channel(info, node.subscriber(tap_spec(info)), struct)

    @property
    def files(self) -> list[Path]:
        return self._parts.files

    @property
    def path(self) -> Path:
        """The file being written now (the last part when splitting)."""
        return self._parts.files[-1]

    # -- item ------------------------------------------------------------------------------------
    def triggers(self) -> Sequence[Trigger]:
        tick = every(min(self.flush_interval, self.rescan_interval or self.flush_interval))
        if not self._channels:
            return (tick,)
        return (on_data(*(c.sub for c in self._channels)), tick)

    @property
    def recorded(self) -> list[str]:
        """Names of the channels recorded so far (any thread)."""
        with self._lock:
            return [c.info.name for c in self._channels]

    def add_channels(self, node: Node, infos: Sequence[ChannelInfo]) -> Item | None:
        """Start recording channels that appeared after the start (taktora channels not
        recorded yet; others are skipped). Returns the item to add to the executor that runs
        this one (it wakes on the new channels and drains them all), or None if none is new.
        Call it from the executor's own thread, between runs."""
        with self._lock:
            known = {c.info.name for c in self._channels}
            fresh = [self._open(node, i) for i in infos if _recordable(i) and i.name not in known]
            if not fresh or self._finished:
                for ch in fresh:
                    ch.sub.close()
                return None
            self._channels.extend(fresh)
            self._extra += 1
        return _MoreChannels(self, [c.sub for c in fresh], f"{self.name}+{self._extra}")

    def _rescan(self) -> None:
        self._last_scan = time.monotonic()
        try:  # the item runs them itself: the returned wake item is not needed
            self.add_channels(self._node, select(list_channels(self._node), self._globs))
        except TaktoraError as exc:  # e.g. a channel that vanished while we opened it
            log.warning("recorder: rescan failed, trying again in %s s: %s",
                        self.rescan_interval, exc)

    def execute(self, ctx: Context | None) -> None:
        """Drain every channel into the file; flush when ``flush_interval`` passed. A run
        ends when the queues are empty or at a flush (what is left: the next run, at the
        latest the next tick)."""
        if self.rescan_interval is not None and self._globs and not self._finished and \
                time.monotonic() - self._last_scan >= self.rescan_interval:
            self._rescan()
        with self._lock:
            if self._finished:
                return
            for ch in self._channels:
                ch.sub.consume_wakeups()
            while True:  # batches per channel, round robin, until every queue is empty
                busy = False
                for ch in self._channels:
                    busy = self._drain(ch, BATCH) or busy
                if time.monotonic() - self._last_flush >= self.flush_interval:
                    self._flush()
                    if self._parts.split_due():
                        self._parts.close(self._stats_record())
                        self._parts.open()
                    break  # a run ends at a flush, also under a stream that never pauses
                if not busy:
                    break

    def on_stop(self) -> None:
        """Finish the file (chunk, stats metadata, summary) and close the subscribers."""
        self.finish()

    # -- writing ---------------------------------------------------------------------------------
    def _mcap_channel(self, ch: _Channel, key: int) -> int:
        """The MCAP channel of ``ch`` for ``key`` = codec id | flags << 16 | framed << 24."""
        if ch.generation != self._parts.generation:
            ch.mcap_ids.clear()
            ch.generation = self._parts.generation
        cid = ch.mcap_ids.get(key)
        if cid is not None:
            return cid
        info = ch.info
        spec = json.dumps({k: getattr(info, k) for k in _SPEC_KEYS})
        metadata = {fmt.K_SERVICE: info.name, fmt.K_SPEC: spec}
        if not info.envelope:
            metadata[fmt.K_PAYLOAD] = json.dumps({"kind": "struct", "type_name": info.payload_type,
                                                  "size": info.payload_size,
                                                  "alignment": info.alignment})
            if ch.struct is not None:
                schema = fmt.SchemaDef(info.payload_type, "jsonschema",
                                       ctypes_schema.json_schema(ch.struct))
                encoding = "json"
            else:
                schema = fmt.struct_schema(info.payload_type, info.payload_size, info.alignment)
                encoding = fmt.STRUCT_ENCODING
            sid = self._parts.schema(("struct", info.payload_type, encoding), schema)
        else:
            codec_id, flags, framed = key & 0xFFFF, (key >> 16) & 0xFF, key >> 24
            metadata.update({fmt.K_CODEC_ID: str(codec_id), fmt.K_CODEC: fmt.codec_name(codec_id),
                             fmt.K_FLAGS: str(flags),
                             fmt.K_FRAMING: fmt.FRAMED if framed else fmt.PLAIN})
            declared = self._declared.get(info.name, "")
            if declared.partition(":")[0] == fmt.codec_name(codec_id):  # e.g. its attrs class
                metadata[fmt.K_CODEC] = declared
            if framed:
                encoding = fmt.FRAMED_ENCODING
                sid = self._parts.schema("frame", fmt.FRAME_SCHEMA)
            else:
                encoding = fmt.message_encoding(codec_id)
                sid = self._parts.schema((codec_id, metadata[fmt.K_CODEC]),
                                         fmt.schema_for(codec_id, metadata[fmt.K_CODEC]))
        cid = ch.mcap_ids[key] = self._parts.channel(info.name, encoding, sid, metadata)
        return cid

    def _gap(self, ch: _Channel, cause: str, after: int, missing: int, log_time: int) -> None:
        ch.counts["gaps"] += 1
        self._parts.gap(fmt.gap_record(ch.info.name, cause, after, missing), log_time)

    def _drain(self, ch: _Channel, limit: int) -> bool:
        """Record up to ``limit`` queued samples of ``ch``; True if it may hold more."""
        if not ch.info.envelope:
            return self._drain_structs(ch, limit)
        if ch.generation != self._parts.generation:
            ch.mcap_ids.clear()
            ch.generation = self._parts.generation
        # one loop, names bound locally: this runs once per recorded sample (tests/bench)
        receive, add, ids, last = ch.sub.receive, self._parts.writer.add_message, ch.mcap_ids, \
            ch.last
        n = size = 0
        try:
            for _ in range(limit):
                sample = receive()
                if sample is None:
                    return False
                # small samples: one copy out of shared memory is cheaper than a checked view
                data = sample.copy() if sample.size <= COPY_BELOW else sample.payload
                try:
                    fields = _unpack(data) if len(data) >= HEADER_SIZE else None
                    if fields is not None and fields[0] == MAGIC and fields[1] == VERSION \
                            and fields[3] == HEADER_SIZE and fields[7] <= len(data) - HEADER_SIZE:
                        payload = data[HEADER_SIZE:HEADER_SIZE + fields[7]]  # the valid case
                    else:
                        fields, payload = self._malformed(ch, data)
                    publisher, tseq, eseq, stamp = sample.publisher, sample.sequence, fields[8], \
                        fields[9]
                    prev = last.get(publisher)
                    if prev is None or tseq != prev[0] + 1 or (eseq and eseq - prev[1] > 1):
                        self._account(ch, publisher, tseq, eseq, stamp)
                    else:  # the common case: the next sample of a known publisher
                        last[publisher] = (tseq, eseq)
                    key = fields[4] | fields[2] << 16  # codec id, flags
                    if fields[5] or fields[10]:  # a query / reply / correlated frame: framed
                        key |= 1 << 24
                        payload = _frame(fields[5], fields[2], fields[4], fields[11],
                                         fields[10]) + bytes(payload)
                    cid = ids.get(key)
                    if cid is None:
                        cid = self._mcap_channel(ch, key)
                    # the writer copies the view into its chunk before returning: no copy here
                    add(cid, stamp, payload, stamp, eseq & 0xFFFFFFFF)
                    size += len(payload)
                    n += 1
                finally:
                    del data
                    sample.release()
            return True
        finally:
            counts = ch.counts
            counts["received"] += n
            counts["written"] += n
            counts["bytes"] += size
            self._written += n

    @staticmethod
    def _malformed(ch: _Channel, data: bytes | memoryview) -> tuple[tuple[Any, ...],
                                                                    bytes | memoryview]:
        """The full envelope checks of a sample the fast check refused: its fields and
        payload, or (not an envelope: counted ``malformed``) zeros, now, and the raw bytes."""
        try:
            return envelope.split(data, verify_crc=False)
        except EnvelopeError:
            ch.counts["malformed"] += 1
            return (b"", 0, 0, 0, 0, 0, 0, 0, 0, time.time_ns(), 0, 0, 0), data

    def _drain_structs(self, ch: _Channel, limit: int) -> bool:
        receive = ch.sub.receive
        for _ in range(limit):
            sample = receive()
            if sample is None:
                return False
            try:
                self._record_struct(ch, sample.copy(), sample.publisher, sample.sequence,
                                    sample.timestamp_ns)
            finally:
                sample.release()
        return True

    @staticmethod
    def _baseline(ch: _Channel, tseq: int, eseq: int) -> tuple[int, int] | None:
        """What to compare the first sample of a new publisher with.

        The transport subscriber counts, in ``stats.lost``, the samples a publisher that
        started after it owed it (its first send came later). Missing ones, or a first
        sample with transport sequence 1, mean the publisher started after this recorder:
        every transport sequence from 1 was owed to it, baseline (0, eseq - tseq). The
        envelope part says no source loss before the first sample: a writer's sends that
        reached no subscriber at all (before the recorder existed) advance its envelope
        sequence but not the transport's, and are no loss of the source. Otherwise it is a
        late join: no baseline, this sample becomes the reference.
        """
        missing = ch.sub.lost - ch.lost_seen  # counted again as the jump from (0, 0)
        return (0, max(0, eseq - tseq)) if missing > 0 or tseq == 1 else None

    def _account(self, ch: _Channel, publisher: int, tseq: int, eseq: int, stamp: int) -> None:
        """Count and write the gaps before this sample (ARCH_1004)."""
        last = ch.last.get(publisher)
        if last is None:
            last = self._baseline(ch, tseq, eseq)
        if last is not None:
            jump_t, jump_e = tseq - last[0], eseq - last[1]
            if jump_t > 1:
                ch.counts["overflow"] += jump_t - 1
                ch.lost_seen += jump_t - 1
                self._gap(ch, "overflow", last[1], jump_t - 1, stamp)
            if eseq and jump_e > jump_t:
                ch.counts["source_lost"] += jump_e - jump_t
                self._gap(ch, "source", last[1], jump_e - jump_t, stamp)
        ch.last[publisher] = (tseq, eseq)

    def _record_struct(self, ch: _Channel, data: ctypes.Structure, publisher: int, tseq: int,
                       sent_ns: int) -> None:
        ch.counts["received"] += 1
        stamp = sent_ns + self._realtime_offset
        self._account(ch, publisher, tseq, 0, stamp)
        body = ctypes_schema.to_json(ch.struct.from_buffer_copy(data)) \
            if ch.struct is not None else bytes(memoryview(data).cast("B"))
        self._parts.writer.add_message(self._mcap_channel(ch, 0), stamp, body, stamp,
                                       tseq & 0xFFFFFFFF)
        ch.counts["written"] += 1
        ch.counts["bytes"] += len(body)
        self._written += 1

    def _stats_record(self) -> dict[str, str]:
        """Per-channel counters, cumulative since the start."""
        return {f"{ch.info.name}:{key}": str(value)
                for ch in self._channels for key, value in ch.counts.items()}

    def _flush(self) -> None:
        self._parts.flush()
        self._flushed = self._written
        self._last_flush = time.monotonic()

    def flush(self) -> None:
        """Write the chunk in progress to the file now (any thread)."""
        with self._lock:
            if not self._finished:
                self._flush()

    def finish(self) -> None:
        """Drain what is queued, write the stats and the summary, close file and subscribers.
        Idempotent; blocks on the file writes."""
        with self._lock:
            if self._finished:
                return
            try:
                for ch in self._channels:
                    while self._drain(ch, BATCH):
                        pass
            finally:
                self._finished = True
                try:
                    self._parts.close(self._stats_record())
                    self._flushed = self._written
                finally:
                    for ch in self._channels:
                        ch.sub.close()

    def stats(self) -> RecorderStats:
        """Counters so far (any thread)."""
        return RecorderStats(tuple(c.snapshot() for c in self._channels), self._written,
                             self._flushed, tuple(self._parts.files))


class _MoreChannels(Item):
    """Wakes the recorder on channels it took on after it started."""

    def __init__(self, owner: RecorderItem, subs: list[Subscriber], name: str) -> None:
        self._owner = owner
        self._subs = subs
        self.name = name

    def triggers(self) -> Sequence[Trigger]:
        return (on_data(*self._subs),)

    def execute(self, ctx: Context) -> None:
        self._owner.execute(ctx)
