"""Reading recordings back: summary (``taktora info``), messages in log-time order, recovery.

A finished file is read through its summary (mcap's seeking reader). A file whose recorder
was killed has no summary: :func:`read_info` then reads it record by record up to the last
complete chunk (``complete=False``), and :func:`recover` writes those records into a new,
finished file. Everything runs on the caller's thread and blocks on file reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
from mcap.exceptions import McapError
from mcap.reader import make_reader
from mcap.records import Channel, Chunk, Message, Metadata, Schema
from mcap.stream_reader import StreamReader, breakup_chunk
from mcap.writer import Writer
from taktora.system.recording import mcap_format as fmt
from taktora.system.recording.errors import RecordingFileError
from taktora.transport.envelope import FrameKind


@attrs.frozen
class Frame:
    """One recorded envelope message decoded: what the Player republishes. ``payload`` is a
    view of the message data; for plain channels kind is DATA and the correlation id 0."""

    codec_id: int
    kind: int
    flags: int
    correlation_id: int
    crc32: int
    payload: memoryview


def frame(channel: Channel, message: Message) -> Frame:
    """The envelope fields and payload of ``message`` (its channel says how it was stored:
    :data:`~.mcap_format.K_FRAMING`); RecordingFileError for a framed message too short for
    its header."""
    meta = channel.metadata
    data = memoryview(message.data)
    if meta.get(fmt.K_FRAMING) == fmt.FRAMED:
        if len(data) < fmt.FRAME.size:
            raise RecordingFileError(f"message of {channel.topic!r} at {message.log_time}: "
                                     f"{len(data)} B is shorter than its frame header")
        kind, flags, codec_id, crc, corr = fmt.FRAME.unpack_from(data)
        return Frame(codec_id, kind, flags, corr, crc, data[fmt.FRAME.size:])
    return Frame(int(meta.get(fmt.K_CODEC_ID, "0")), FrameKind.DATA,
                 int(meta.get(fmt.K_FLAGS, "0")), 0, 0, data)


@attrs.frozen
class ChannelSummary:
    """One recorded topic: messages, first/last log time, rate, gaps and what they lost;
    ``encoding`` lists each message encoding of the topic (plain and framed frames of one
    service are two MCAP channels)."""

    topic: str
    encoding: str
    messages: int
    first_ns: int
    last_ns: int
    gaps: int
    overflow: int
    source_lost: int
    metadata: dict[str, str] = attrs.field(factory=dict, eq=False)

    @property
    def rate_hz(self) -> float:
        span = (self.last_ns - self.first_ns) / 1e9
        return (self.messages - 1) / span if self.messages > 1 and span > 0 else 0.0


@attrs.frozen
class RecordingInfo:
    """What ``taktora info`` shows. ``complete`` is False for a file without its summary (the
    recorder died): the figures then cover the complete chunks only."""

    path: Path
    complete: bool
    channels: tuple[ChannelSummary, ...]
    metadata: dict[str, dict[str, str]]
    start_ns: int
    end_ns: int

    @property
    def messages(self) -> int:
        return sum(c.messages for c in self.channels)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9 if self.end_ns > self.start_ns else 0.0


def _open(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise RecordingFileError(f"recording {str(p)!r} does not exist (or is not a file)")
    return p.open("rb")


def iter_records(path: str | Path) -> Iterator[Any]:
    """Every complete record of ``path`` in file order, chunks opened; stops quietly at a
    truncated tail (a recorder killed mid-write). Call :func:`_check_magic` first."""
    with _open(path) as f:
        reader = StreamReader(f, skip_magic=False, emit_chunks=True)
        try:
            for record in reader.records:
                if isinstance(record, Chunk):
                    try:
                        inner = breakup_chunk(record, validate_crc=True)
                    except Exception:  # a chunk cut short or corrupted: the tail is lost
                        return
                    yield from inner
                else:
                    yield record
        except (McapError, EOFError, ValueError, OSError):
            return  # a record cut short: everything before it was yielded


def _check_magic(path: str | Path) -> None:
    with _open(path) as f:
        head = f.read(8)
    if head[:5] != b"\x89MCAP":
        raise RecordingFileError(f"{str(path)!r} is not an MCAP file (bad magic {head!r})")


def read_info(path: str | Path) -> RecordingInfo:
    """The channels, counts, rates, duration and gaps of a recording."""
    _check_magic(path)
    channels: dict[int, Channel] = {}
    metadata: dict[str, dict[str, str]] = {}
    counts: dict[str, list[int]] = {}  # topic -> [n, first, last]
    gaps: dict[str, list[int]] = {}  # channel -> [gaps, overflow, source]
    encodings: dict[str, list[str]] = {}  # topic -> encodings, in order of appearance
    channel_meta: dict[str, dict[str, str]] = {}
    complete = False
    for record in iter_records(path):
        if isinstance(record, Channel):
            channels[record.id] = record
        elif isinstance(record, Metadata):
            metadata[record.name] = dict(record.metadata)
        elif isinstance(record, Message):
            ch = channels.get(record.channel_id)
            if ch is None:
                continue
            if ch.topic == fmt.GAP_TOPIC:
                gap = fmt.parse_gap(record.data)
                g = gaps.setdefault(gap["channel"], [0, 0, 0])
                g[0] += 1
                g[1 if gap["cause"] == "overflow" else 2] += int(gap["missing"])
                continue
            seen = encodings.setdefault(ch.topic, [])
            if ch.message_encoding not in seen:
                seen.append(ch.message_encoding)
            channel_meta.setdefault(ch.topic, dict(ch.metadata))
            c = counts.setdefault(ch.topic, [0, record.log_time, record.log_time])
            c[0] += 1
            c[1] = min(c[1], record.log_time)
            c[2] = max(c[2], record.log_time)
        elif type(record).__name__ == "Footer":
            complete = True
    summaries = []
    for topic, (n, first, last) in sorted(counts.items()):
        n_gaps, overflow, source = gaps.get(topic, [0, 0, 0])
        summaries.append(ChannelSummary(topic, ", ".join(encodings[topic]), n, first, last, n_gaps,
                                        overflow, source, channel_meta[topic]))
    start = min((c.first_ns for c in summaries), default=0)
    end = max((c.last_ns for c in summaries), default=0)
    return RecordingInfo(Path(path), complete, tuple(summaries), metadata, start, end)


def iter_messages(path: str | Path, *, topics: list[str] | None = None,
                  start_ns: int | None = None, end_ns: int | None = None,
                  ) -> Iterator[tuple[Channel, Message]]:
    """Data messages (no gap records) in log-time order, ``[start_ns, end_ns)``, of
    ``topics`` (None: all). Reads a finished file through its index."""
    _check_magic(path)
    with _open(path) as f:
        reader = make_reader(f)
        try:
            if reader.get_summary() is None:
                raise RecordingFileError(f"{str(path)!r} has no summary (its recorder did not "
                                         "finish it): run `taktora recover` on it first")
        except McapError as exc:
            raise RecordingFileError(f"{str(path)!r} is not a finished MCAP file ({exc}): run "
                                     f"`taktora recover` on it first") from None
        wanted = [t for t in topics if t != fmt.GAP_TOPIC] if topics is not None else None
        for _schema, channel, message in reader.iter_messages(
                topics=wanted, starting_at=start_ns, ending_before=end_ns):
            if channel.topic != fmt.GAP_TOPIC:
                yield channel, message


def summary(path: str | Path) -> tuple[dict[int, Schema], dict[int, Channel]]:
    """The schemas and channels of a finished file, by id (from its summary)."""
    _check_magic(path)
    with _open(path) as f:
        try:
            found = make_reader(f).get_summary()
        except McapError as exc:
            raise RecordingFileError(f"{str(path)!r} is not a finished MCAP file ({exc})") from None
    if found is None:
        raise RecordingFileError(f"{str(path)!r} has no summary: run `taktora recover` on it")
    return dict(found.schemas), dict(found.channels)


def recover(path: str | Path, output: str | Path) -> int:
    """Copy every complete record of ``path`` (e.g. left by a killed recorder) into a new,
    finished ``output``; returns the number of messages recovered."""
    _check_magic(path)
    if Path(output).resolve() == Path(path).resolve():
        raise RecordingFileError("recover needs a different output file than its input")
    schemas: dict[int, int] = {}
    channels: dict[int, int] = {}
    recovered = 0
    with open(output, "wb") as out:
        writer = Writer(out)
        writer.start(profile=fmt.PROFILE, library=fmt.LIBRARY)
        for record in iter_records(path):
            if isinstance(record, Schema):
                schemas[record.id] = writer.register_schema(record.name, record.encoding,
                                                            record.data)
            elif isinstance(record, Channel):
                if record.id not in channels:
                    channels[record.id] = writer.register_channel(
                        record.topic, record.message_encoding, schemas.get(record.schema_id, 0),
                        dict(record.metadata))
            elif isinstance(record, Metadata):
                writer.add_metadata(record.name, dict(record.metadata))
            elif isinstance(record, Message) and record.channel_id in channels:
                writer.add_message(channels[record.channel_id], record.log_time, record.data,
                                   record.publish_time, record.sequence)
                recovered += 1
        writer.add_metadata("taktora.recovered", {"from": str(path),
                                                  "messages": json.dumps(recovered)})
        writer.finish()  # type: ignore[no-untyped-call]
    return recovered
