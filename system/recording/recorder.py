"""The Recorder: iceoryx2 channels -> one MCAP file (layout: :mod:`.mcap_format`).

:class:`RecorderItem` is an executor item: ``on_data`` over one read-only subscriber per
recorded channel, plus an ``every(flush_interval)`` tick. Each run drains every subscriber
and appends each sample to the MCAP writer; the tick flushes the chunk in progress, so at
most ``flush_interval`` seconds of data are lost when the process is killed (:attr:`
RecorderStats.flushed` counts what is on disk, i.e. acknowledged). Host it in your own
executor, or let :class:`Recorder` run it in an executor of its own thread.

Threads and blocking: the item runs in the executor thread (or pool worker) and blocks there
on file writes and chunk compression (zstd / lz4), never on a publisher. While it writes, its
subscribers' queues fill; a full queue drops per the channel's overflow policy, and the
recorder counts the loss as ``overflow`` (a transport sequence gap) and writes it into the
file as a gap. A gap the writer's own envelope sequence already had is written with cause
``source``. :meth:`RecorderItem.stats` may be read from any thread.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import threading
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import attrs
from mcap.writer import CompressionType, Writer
from taktora.actors.executor import Context, Executor, Item, Trigger, every, on_data
from taktora.system.recording import mcap_format as fmt
from taktora.system.recording.discovery import ChannelInfo, list_channels, select, tap_spec
from taktora.system.recording.errors import ChannelNotFoundError, RecordingError
from taktora.transport import envelope
from taktora.transport.envelope import HEADER_SIZE, MAGIC, VERSION
from taktora.transport.errors import EnvelopeError, TaktoraError
from taktora.transport.node import Node
from taktora.transport.pubsub import Subscriber

log = logging.getLogger(__name__)

COPY_BELOW = 16 * 1024  # bytes: below this a sample is copied out, above it read in place
_unpack = envelope.HEADER.unpack_from

COMPRESSIONS = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4,
                "none": CompressionType.NONE}


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
    acknowledged ones) and the files written (several when splitting)."""

    channels: tuple[ChannelStats, ...]
    written: int
    flushed: int
    files: tuple[Path, ...] = ()

    def channel(self, name: str) -> ChannelStats:
        return next(c for c in self.channels if c.name == name)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("taktora", "iceoryx2", "mcap"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


class _Channel:
    """One recorded service: its subscriber, counters and MCAP channel ids by codec."""

    def __init__(self, info: ChannelInfo, subscriber: Subscriber) -> None:
        self.info = info
        self.sub = subscriber
        self.mcap_ids: dict[int, int] = {}
        self.last: dict[int, tuple[int, int]] = {}  # publisher -> (transport seq, envelope seq)
        self.lost_seen = 0  # the subscriber's ``stats.lost`` accounted for so far
        self.counts = dict.fromkeys(("received", "written", "overflow", "source_lost", "gaps",
                                     "malformed", "bytes"), 0)

    def snapshot(self) -> ChannelStats:
        return ChannelStats(self.info.name, **self.counts)


class RecorderItem(Item):
    """Records ``channels`` (discovered :class:`ChannelInfo`) into ``output``.

    Create it on the thread that will run it (it opens subscribers on ``node``); the file
    is started at once (header, metadata) and finished by :meth:`on_stop` (summary, stats).
    With ``split_bytes`` or ``split_seconds`` the recording is split into numbered files
    (``{stem}_000.mcap`` ...), each a complete MCAP file with its own schemas, channels and
    metadata; the check runs at each flush, so a part overshoots by up to one flush interval.
    """

    name = "recorder"

    def __init__(self, node: Node, channels: Sequence[ChannelInfo], output: str | Path, *,
                 compression: str = "zstd", chunk_size: int = 1 << 20,
                 flush_interval: float = 0.5, metadata: dict[str, str] | None = None,
                 patterns: Sequence[str] = (), split_bytes: int | None = None,
                 split_seconds: float | None = None) -> None:
        if compression not in COMPRESSIONS:
            raise RecordingError(f"compression {compression!r} is not one of "
                                 f"{sorted(COMPRESSIONS)}")
        if not channels and not any(_is_glob(p) for p in patterns):
            raise RecordingError("nothing to record: no channel matched "
                                 f"{list(patterns) or '(none given)'}")
        if split_bytes is not None and split_bytes < 1:
            raise RecordingError(f"split_bytes={split_bytes}: expected bytes >= 1 (or None)")
        if split_seconds is not None and not split_seconds > 0:
            raise RecordingError(f"split_seconds={split_seconds}: expected seconds > 0 (or None)")
        self.flush_interval = flush_interval
        self.split_bytes = split_bytes
        self.split_seconds = split_seconds
        self._lock = threading.Lock()
        self._channels: list[_Channel] = []
        self._extra = 0
        self._output = Path(output)
        self._chunk_size = chunk_size
        self._compression = compression
        self._meta = {"host": socket.gethostname(), "pid": str(os.getpid()),
                      "prefix": node.prefix, "patterns": json.dumps(list(patterns)),
                      "compression": compression, "started_ns": str(time.time_ns()),
                      **_versions(), **(metadata or {})}
        self.files: list[Path] = []
        self._written = 0
        self._flushed = 0
        self._finished = False
        try:
            for info in channels:
                if not info.envelope:
                    raise RecordingError(f"channel {info.name!r} is not a taktora byte channel "
                                         f"(payload {info.payload_type!r}): only envelope "
                                         "channels are recorded")
                self._channels.append(_Channel(info, node.subscriber(tap_spec(info))))
            self._open_part()
        except BaseException:
            for ch in self._channels:
                ch.sub.close()
            raise

    @property
    def path(self) -> Path:
        """The file being written now (the last part when splitting)."""
        return self.files[-1]

    def _part_path(self) -> Path:
        if self.split_bytes is None and self.split_seconds is None:
            return self._output
        out = self._output
        return out.with_name(f"{out.stem}_{len(self.files):03d}{out.suffix or '.mcap'}")

    def _open_part(self) -> None:
        """Start a file: header, recording metadata, the gap channel; channels re-register."""
        path = self._part_path()
        try:
            self._file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in _close_part
        except OSError as exc:
            raise RecordingError(f"cannot write {str(path)!r}: {exc.strerror}") from None
        self.files.append(path)
        self._writer = Writer(self._file, chunk_size=self._chunk_size,
                              compression=COMPRESSIONS[self._compression])
        self._writer.start(profile=fmt.PROFILE, library=fmt.LIBRARY)
        self._writer.add_metadata(fmt.META_RECORDING,
                                  {**self._meta, "part": str(len(self.files) - 1)})
        self._schemas: dict[int, int] = {}
        for ch in self._channels:
            ch.mcap_ids.clear()
        gap = fmt.GAP_SCHEMA
        self._gap_channel = self._writer.register_channel(
            fmt.GAP_TOPIC, "json", self._writer.register_schema(gap.name, gap.encoding, gap.data))
        self._part_started = time.monotonic()
        self._flush()

    def _close_part(self) -> None:
        """Finish the file: per-channel counters (cumulative since the start), summary."""
        try:
            stats: dict[str, str] = {}
            for ch in self._channels:
                for key, value in ch.counts.items():
                    stats[f"{ch.info.name}:{key}"] = str(value)
            self._writer.add_metadata(fmt.META_STATS, stats)
            self._writer.finish()  # type: ignore[no-untyped-call]
            self._flushed = self._written
        finally:
            self._file.close()

    def _split_due(self) -> bool:
        if self.split_bytes is not None and self._file.tell() >= self.split_bytes:
            return True
        return self.split_seconds is not None and \
            time.monotonic() - self._part_started >= self.split_seconds

    # -- item ------------------------------------------------------------------------------------
    def triggers(self) -> Sequence[Trigger]:
        tick = every(self.flush_interval)
        if not self._channels:
            return (tick,)
        return (on_data(*(c.sub for c in self._channels)), tick)

    @property
    def recorded(self) -> list[str]:
        """Names of the channels recorded so far (any thread)."""
        with self._lock:
            return [c.info.name for c in self._channels]

    def add_channels(self, node: Node, infos: Sequence[ChannelInfo]) -> Item | None:
        """Start recording channels that appeared after the start (envelope channels not
        recorded yet; others are skipped). Returns the item to add to the executor that runs
        this one (it wakes on the new channels and drains them all), or None if none is new.
        Call it from the executor's own thread, between runs."""
        with self._lock:
            known = {c.info.name for c in self._channels}
            fresh = [_Channel(i, node.subscriber(tap_spec(i))) for i in infos
                     if i.envelope and i.name not in known]
            if not fresh or self._finished:
                for ch in fresh:
                    ch.sub.close()
                return None
            self._channels.extend(fresh)
            self._extra += 1
        return _MoreChannels(self, [c.sub for c in fresh], f"{self.name}+{self._extra}")

    def execute(self, ctx: Context) -> None:
        """Drain every channel into the file; flush when ``flush_interval`` passed."""
        with self._lock:
            if self._finished:
                return
            for ch in self._channels:
                ch.sub.consume_wakeups()
                self._drain(ch)
            if time.monotonic() - self._last_flush >= self.flush_interval:
                self._flush()
                if self._split_due():
                    self._close_part()
                    self._open_part()

    def on_stop(self) -> None:
        """Finish the file (chunk, stats metadata, summary) and close the subscribers."""
        self.finish()

    # -- writing ---------------------------------------------------------------------------------
    def _mcap_channel(self, ch: _Channel, codec_id: int) -> int:
        cid = ch.mcap_ids.get(codec_id)
        if cid is None:
            sid = self._schemas.get(codec_id)
            if sid is None:
                schema = fmt.schema_for(codec_id)
                sid = self._schemas[codec_id] = self._writer.register_schema(
                    schema.name, schema.encoding, schema.data)
            spec = {k: getattr(ch.info, k) for k in ("history", "buffer_size", "max_publishers",
                                                     "max_subscribers", "max_borrowed",
                                                     "safe_overflow")}
            cid = ch.mcap_ids[codec_id] = self._writer.register_channel(
                ch.info.name, fmt.message_encoding(codec_id), sid,
                {fmt.K_SERVICE: ch.info.name, fmt.K_CODEC_ID: str(codec_id),
                 fmt.K_CODEC: fmt.codec_name(codec_id), fmt.K_SPEC: json.dumps(spec)})
        return cid

    def _gap(self, ch: _Channel, cause: str, after: int, missing: int, log_time: int) -> None:
        ch.counts["gaps"] += 1
        self._writer.add_message(self._gap_channel, log_time,
                                 fmt.gap_record(ch.info.name, cause, after, missing), log_time)

    def _drain(self, ch: _Channel) -> None:
        receive = ch.sub.receive
        record = self._record
        while (sample := receive()) is not None:
            # small samples: one copy out of shared memory is cheaper than a checked view
            data = sample.copy() if sample.size <= COPY_BELOW else sample.payload
            try:
                record(ch, data, sample.publisher, sample.sequence)
            finally:
                del data
                sample.release()

    @staticmethod
    def _baseline(ch: _Channel, tseq: int) -> tuple[int, int] | None:
        """What to compare the first sample of a new publisher with.

        The transport subscriber counts, in ``stats.lost``, the samples a publisher that
        started after it owed it (its first send came later). Missing ones, or a first
        sample with transport sequence 1, mean the publisher started after this recorder:
        every sequence from 1 was owed to it, baseline (0, 0). Otherwise it is a late join:
        no baseline, this sample becomes the reference.
        """
        missing = ch.sub.stats.lost - ch.lost_seen  # counted again as the jump from (0, 0)
        return (0, 0) if missing > 0 or tseq == 1 else None

    def _record(self, ch: _Channel, data: bytes | memoryview, publisher: int, tseq: int) -> None:
        counts = ch.counts
        counts["received"] += 1
        try:
            fields = _unpack(data) if len(data) >= HEADER_SIZE else None
            if fields is not None and fields[0] == MAGIC and fields[1] == VERSION \
                    and fields[3] == HEADER_SIZE and fields[7] <= len(data) - HEADER_SIZE:
                payload = data[HEADER_SIZE:HEADER_SIZE + fields[7]]  # the common, valid case
            else:  # the full checks, for the error message and the cause
                fields, payload = envelope.split(data, verify_crc=False)
            codec_id, eseq, stamp = int(fields[4]), int(fields[8]), int(fields[9])
        except EnvelopeError:
            counts["malformed"] += 1
            payload, codec_id, eseq, stamp = data, 0, 0, time.time_ns()
        last = ch.last.get(publisher)
        if last is None:
            last = self._baseline(ch, tseq)
        if last is not None:
            jump_t, jump_e = tseq - last[0], eseq - last[1]
            if jump_t > 1:
                counts["overflow"] += jump_t - 1
                ch.lost_seen += jump_t - 1
                self._gap(ch, "overflow", last[1], jump_t - 1, stamp)
            if eseq and jump_e > jump_t:
                counts["source_lost"] += jump_e - jump_t
                self._gap(ch, "source", last[1], jump_e - jump_t, stamp)
        ch.last[publisher] = (tseq, eseq)
        size = len(payload)
        # the writer copies the view into its chunk buffer before returning: no copy of ours
        self._writer.add_message(self._mcap_channel(ch, codec_id), stamp, payload,  # type: ignore[arg-type]
                                 stamp, eseq & 0xFFFFFFFF)
        del payload
        counts["written"] += 1
        counts["bytes"] += size
        self._written += 1

    def _flush(self) -> None:
        self._writer.flush()  # type: ignore[no-untyped-call]
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
                    self._drain(ch)
            finally:
                self._finished = True
                try:
                    self._close_part()
                finally:
                    for ch in self._channels:
                        ch.sub.close()

    def stats(self) -> RecorderStats:
        """Counters so far (any thread)."""
        return RecorderStats(tuple(c.snapshot() for c in self._channels), self._written,
                             self._flushed, tuple(self.files))


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


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


class Recorder:
    """A :class:`RecorderItem` in an executor of its own thread (``taktora-recorder``).

    :meth:`start` discovers the channels matching ``patterns`` (names or globs) under
    ``prefix`` (default: ``TAKTORA_IOX_PREFIX``), opens them and the file in the recorder
    thread, and returns once recording runs (or raises what went wrong there). With a glob
    among the patterns the thread looks for new matching channels every ``rescan_interval``
    seconds and records them from then on. ``split_bytes`` / ``split_seconds`` split the
    recording into finished files ``{stem}_000.mcap``, ``{stem}_001.mcap`` ... (checked at
    each flush). :meth:`stop`
    wakes the executor, waits for the thread to finish the file (at most ``timeout`` s) and
    returns the final stats. The owner of a started Recorder must stop it.
    """

    def __init__(self, output: str | Path, patterns: Sequence[str], *, prefix: str | None = None,
                 compression: str = "zstd", chunk_size: int = 1 << 20,
                 flush_interval: float = 0.5, metadata: dict[str, str] | None = None,
                 rescan_interval: float = 1.0, split_bytes: int | None = None,
                 split_seconds: float | None = None) -> None:
        self.output = Path(output)
        self.rescan_interval = rescan_interval
        self._stopping = threading.Event()
        self.patterns = tuple(patterns)
        self.prefix = prefix
        self._kwargs: dict[str, Any] = {"compression": compression, "chunk_size": chunk_size,
                                        "flush_interval": flush_interval, "metadata": metadata,
                                        "split_bytes": split_bytes,
                                        "split_seconds": split_seconds}
        self._item: RecorderItem | None = None
        self._executor: Executor | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.channels: list[ChannelInfo] = []

    def start(self, timeout: float = 10.0) -> Recorder:
        if self._thread is not None:
            raise RecordingError("recorder already started")
        self._thread = threading.Thread(target=self._main, name="taktora-recorder", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RecordingError(f"recorder did not start within {timeout} s")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def _main(self) -> None:
        node = None
        try:
            node = Node() if self.prefix is None else Node(prefix=self.prefix)
            try:
                self.channels = select(list_channels(node), self.patterns)
            except ChannelNotFoundError as exc:
                raise ChannelNotFoundError(f"prefix {node.prefix!r}: {exc}") from None
            self._item = RecorderItem(node, self.channels, self.output, patterns=self.patterns,
                                      **self._kwargs)
            self._executor = Executor("recorder", signals=False)
            self._executor.add(self._item)
        except BaseException as exc:
            self._error = exc
            if self._item is not None:
                self._item.finish()
            if node is not None:
                node.close()
            self._ready.set()
            return
        self._ready.set()
        globs = [p for p in self.patterns if _is_glob(p)]
        try:
            if not globs:
                self._executor.run()
            while globs and not self._stopping.is_set():
                self._executor.run_for(self.rescan_interval)
                if self._stopping.is_set():
                    break
                try:
                    extra = self._item.add_channels(node, select(list_channels(node), globs))
                except TaktoraError as exc:  # e.g. a channel that vanished while we opened it
                    log.warning("recorder: rescan failed, trying again in %s s: %s",
                                self.rescan_interval, exc)
                    continue
                if extra is not None:
                    self._executor.add(extra)
        finally:
            self._executor.close()  # runs on_stop: finishes the file
            node.close()

    @property
    def recorded(self) -> list[str]:
        """Names of the channels being recorded (grows as globs match new channels)."""
        return self._item.recorded if self._item is not None else []

    def stats(self) -> RecorderStats:
        if self._item is None:
            raise RecordingError("recorder not started")
        return self._item.stats()

    def stop(self, timeout: float = 10.0) -> RecorderStats:
        if self._thread is None or self._executor is None or self._item is None:
            raise RecordingError("recorder not started")
        self._stopping.set()
        self._executor.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RecordingError(f"recorder thread did not finish within {timeout} s")
        return self._item.stats()

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.stop()
