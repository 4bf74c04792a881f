"""An MCAP writer with a per-message path of one ``struct.pack``: the recorder's hot path.

The ``mcap`` package's :class:`mcap.writer.Writer` builds a ``Message`` object per message and
writes it field by field (a dozen calls through its ``RecordBuilder``), and its message index
two calls per message: about 3 us per message here, as much as everything else the recorder
does. :class:`ChunkWriter` writes the same file layout (header; schemas, channels and messages
in compressed chunks, each followed by its message indexes; metadata records between chunks;
data end; a summary of schemas, channels, statistics, chunk and metadata indexes with its
offsets; footer with the summary CRC), but appends a message to the chunk buffer with one
packed 31-byte record header and keeps its index in an ``array``. Records other than
messages are written with the ``mcap`` package's own record classes.

The result is read by :func:`mcap.reader.make_reader` (tests do) and by any MCAP tool.
Threads: one thread at a time; every call may block on the file (a full chunk is compressed
and written inside :meth:`ChunkWriter.add_message`).
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Callable
from typing import IO

import zstandard
from mcap.data_stream import RecordBuilder
from mcap.opcode import Opcode
from mcap.records import (
    Channel,
    ChunkIndex,
    DataEnd,
    Footer,
    Header,
    Metadata,
    MetadataIndex,
    Schema,
    Statistics,
    SummaryOffset,
)
from mcap.writer import MCAP0_MAGIC
from taktora.system.recording.errors import RecordingError

_MESSAGE = struct.Struct("<BQHIQQ")  # opcode, record length, channel, sequence, log, publish
_CHUNK = struct.Struct("<BQQQQII")  # opcode, length, start, end, size, crc, compression length
_INDEX = struct.Struct("<BQHI")  # opcode, record length, channel id, records length
_OP_MESSAGE = int(Opcode.MESSAGE)
_LITTLE = sys.byteorder == "little"


Compress = Callable[[bytearray], bytes]


def _end(builder: RecordBuilder) -> bytes:
    """The records written into ``builder`` (mcap's RecordBuilder is not typed)."""
    data: bytes = builder.end()  # type: ignore[no-untyped-call]
    return data


def _compressor(name: str) -> Compress | None:
    if name == "zstd":
        compress: Compress = zstandard.ZstdCompressor().compress
        return compress
    if name == "lz4":
        import lz4.frame  # type: ignore[import-untyped]

        compress = lz4.frame.compress
        return compress
    if name == "":
        return None
    raise RecordingError(f"compression {name!r}: expected zstd, lz4 or '' (none)")


class ChunkWriter:
    """Writes one MCAP file to ``stream`` (see the module docstring); ``compression`` is
    ``"zstd"``, ``"lz4"`` or ``""``; a chunk is closed once it holds ``chunk_size`` bytes."""

    def __init__(self, stream: IO[bytes], *, chunk_size: int = 1 << 20,
                 compression: str = "zstd") -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self._compression = compression
        self._compress = _compressor(compression)
        self._zstd = zstandard.ZstdCompressor()  # streams a chunk that ends in a big message
        self._pos = 0  # bytes written to the stream
        self._chunk = bytearray()
        self._index: dict[int, array[int]] = {}  # channel -> log_time, offset, ...
        self._start = 0
        self._end = 0
        self._schemas: list[Schema] = []
        self._channels: list[Channel] = []
        self._chunk_indexes: list[ChunkIndex] = []
        self._metadata_indexes: list[MetadataIndex] = []
        self._counts: dict[int, int] = {}
        self._stats = Statistics(message_count=0, schema_count=0, channel_count=0,
                                 attachment_count=0, metadata_count=0, chunk_count=0,
                                 message_start_time=0, message_end_time=0,
                                 channel_message_counts={})

    @property
    def position(self) -> int:
        """Bytes written to the stream so far (the chunk in progress not included)."""
        return self._pos

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        self._stream.write(data)
        self._pos += len(data)

    def _record(self, record: Header | Metadata | DataEnd | Footer) -> int:
        builder = RecordBuilder()
        record.write(builder)
        data = _end(builder)
        self._write(data)
        return len(data)

    def start(self, profile: str, library: str) -> None:
        self._write(MCAP0_MAGIC)
        self._record(Header(profile=profile, library=library))

    def register_schema(self, name: str, encoding: str, data: bytes) -> int:
        schema = Schema(id=len(self._schemas) + 1, name=name, encoding=encoding, data=data)
        self._schemas.append(schema)
        builder = RecordBuilder()
        schema.write(builder)
        self._chunk += _end(builder)
        return schema.id

    def register_channel(self, topic: str, message_encoding: str, schema_id: int,
                         metadata: dict[str, str] | None = None) -> int:
        channel = Channel(id=len(self._channels) + 1, topic=topic,
                          message_encoding=message_encoding, schema_id=schema_id,
                          metadata=dict(metadata or {}))
        self._channels.append(channel)
        builder = RecordBuilder()
        channel.write(builder)
        self._chunk += _end(builder)
        return channel.id

    def add_message(self, channel_id: int, log_time: int, data: bytes | memoryview,
                    publish_time: int, sequence: int = 0) -> None:
        """Append one message to the chunk in progress (``data`` is copied at once, or, for a
        message that fills a chunk alone, compressed and written from where it is)."""
        chunk = self._chunk
        offset = len(chunk)
        chunk += _MESSAGE.pack(_OP_MESSAGE, 22 + len(data), channel_id, sequence, log_time,
                               publish_time)
        tail = None
        if len(data) > self._chunk_size and self._compression != "lz4":
            tail = data  # big: no copy into the chunk, the chunk ends with it
        else:
            chunk += data
        index = self._index.get(channel_id)
        if index is None:
            index = self._index[channel_id] = array("Q")
            if len(self._index) == 1:
                self._start = self._end = log_time
        index.append(log_time)
        index.append(offset)
        if log_time < self._start:
            self._start = log_time
        elif log_time > self._end:
            self._end = log_time
        if tail is not None or len(chunk) > self._chunk_size:
            self._finish_chunk(tail)

    def add_metadata(self, name: str, values: dict[str, str]) -> None:
        """A metadata record (written to the file now, before the chunk in progress)."""
        offset = self._pos
        length = self._record(Metadata(name=name, metadata=dict(values)))
        self._metadata_indexes.append(MetadataIndex(offset=offset, length=length, name=name))
        self._stats.metadata_count += 1

    def _compressed(self, chunk: bytearray, tail: bytes | memoryview | None
                    ) -> list[bytes | bytearray | memoryview]:
        """The chunk's records as written: compressed, or the buffers themselves."""
        if tail is None:
            return [self._compress(chunk) if self._compress is not None else chunk]
        if self._compression == "":
            return [chunk, tail]
        stream = self._zstd.compressobj(size=len(chunk) + len(tail))
        return [stream.compress(chunk) + stream.compress(tail) + stream.flush()]

    def _finish_chunk(self, tail: bytes | memoryview | None = None) -> None:
        chunk = self._chunk
        if not self._index:  # schemas and channels alone wait for the next message
            return
        stats = self._stats
        if stats.message_count == 0 or self._start < stats.message_start_time:
            stats.message_start_time = self._start
        stats.message_end_time = max(stats.message_end_time, self._end)
        size = len(chunk) + (len(tail) if tail is not None else 0)
        crc = zlib.crc32(chunk)
        if tail is not None:
            crc = zlib.crc32(tail, crc)
        parts = self._compressed(chunk, tail)
        compressed = sum(len(p) for p in parts)
        name = self._compression.encode()
        start = self._pos
        head = _CHUNK.pack(int(Opcode.CHUNK), 8 + 8 + 8 + 4 + 4 + len(name) + 8 + compressed,
                           self._start, self._end, size, crc, len(name))
        self._write(head + name + struct.pack("<Q", compressed))
        for part in parts:
            self._write(part)
        chunk_length = self._pos - start
        offsets: dict[int, int] = {}
        index_start = self._pos
        for cid, index in self._index.items():
            n = len(index) // 2
            offsets[cid] = self._pos
            if not _LITTLE:
                index.byteswap()
            self._write(_INDEX.pack(int(Opcode.MESSAGE_INDEX), 2 + 4 + 16 * n, cid, 16 * n))
            self._write(index.tobytes())
            self._counts[cid] = self._counts.get(cid, 0) + n
            stats.message_count += n
        self._chunk_indexes.append(ChunkIndex(
            message_start_time=self._start, message_end_time=self._end,
            chunk_start_offset=start, chunk_length=chunk_length, message_index_offsets=offsets,
            message_index_length=self._pos - index_start, compression=self._compression,
            compressed_size=compressed, uncompressed_size=size))
        stats.chunk_count += 1
        self._chunk = bytearray()
        self._index = {}

    def flush(self) -> None:
        """Close the chunk in progress and flush the stream (no fsync)."""
        self._finish_chunk()
        self._stream.flush()

    def finish(self) -> None:
        """The last chunk, data end, summary and footer; the stream is flushed, not closed."""
        self._finish_chunk()
        self._record(DataEnd(data_section_crc=0))
        stats = self._stats
        stats.schema_count = len(self._schemas)
        stats.channel_count = len(self._channels)
        stats.channel_message_counts = dict(self._counts)
        summary_start = self._pos
        builder = RecordBuilder()
        offsets = []
        groups: list[tuple[Opcode, list[Schema] | list[Channel] | list[Statistics]
                           | list[ChunkIndex] | list[MetadataIndex]]] = [
            (Opcode.SCHEMA, self._schemas), (Opcode.CHANNEL, self._channels),
            (Opcode.STATISTICS, [stats]), (Opcode.CHUNK_INDEX, self._chunk_indexes),
            (Opcode.METADATA_INDEX, self._metadata_indexes)]
        for opcode, records in groups:
            group_start = builder.count
            for record in records:
                record.write(builder)
            offsets.append(SummaryOffset(group_opcode=opcode,
                                         group_start=summary_start + group_start,
                                         group_length=builder.count - group_start))
        offset_start = summary_start + builder.count
        for offset in offsets:
            offset.write(builder)
        summary = _end(builder)
        crc = zlib.crc32(struct.pack("<BQQQ", int(Opcode.FOOTER), 8 + 8 + 4, summary_start,
                                     offset_start), zlib.crc32(summary))
        self._write(summary)
        self._record(Footer(summary_start=summary_start, summary_offset_start=offset_start,
                            summary_crc=crc))
        self._write(MCAP0_MAGIC)
        self._stream.flush()
