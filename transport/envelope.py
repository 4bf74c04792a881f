"""The connector envelope: a fixed 48-byte little-endian header in front of every payload.

The layout is part of the wire contract (spec/envelope.rst has the table a C or Rust reader
needs)::

    offset size field           meaning
    0      4    magic           b"TKEV"
    4      1    version         1
    5      1    flags           bit 0: crc32 is valid; other bits reserved (0), ignored
    6      2    header_len      48 in version 1; the payload starts here
    8      2    codec_id        which codec encoded the payload (see CodecId)
    10     1    kind            frame kind (see FrameKind)
    11     1    reserved        0
    12     4    payload_len     bytes of payload after the header
    16     8    sequence        per-sender sequence number, from 1 (per hop: spec/loss.rst)
    24     8    timestamp_ns    CLOCK_REALTIME nanoseconds at encode
    32     8    correlation_id  request/query id, 0 when unused
    40     4    crc32           zlib CRC-32 of the payload when flags bit 0 is set
    44     4    reserved        0

Decoding never trusts a length: a buffer shorter than the header, a bad magic, an unknown
version, a header_len below 48, or a payload_len past the buffer raise :class:`EnvelopeError`
naming the field, and :class:`EnvelopeCounters` counts each cause.
"""

from __future__ import annotations

import enum
import struct
import threading
import time
import zlib
from typing import Any

import attrs
from taktora.transport.errors import EnvelopeError

MAGIC = b"TKEV"
VERSION = 1
HEADER = struct.Struct("<4sBBHHBBIQQQII")
HEADER_SIZE = HEADER.size  # 48
FLAG_CRC = 0x01
assert HEADER_SIZE == 48
SEQUENCE_OFFSET = 16
"""Offset of the sequence in the header: a hop that renumbers (spec/loss.rst) rewrites only
these 8 bytes, little-endian u64 (the CRC covers the payload, so it stays valid)."""


class CodecId(enum.IntEnum):
    """Codec ids carried in the envelope (codecs live in taktora.connectors)."""

    RAW = 0
    JSON = 1
    MSGPACK = 2
    CTYPES = 3
    CATTRS_JSON = 4
    CATTRS_MSGPACK = 5
    USER = 0x8000  # 0x8000.. are free for applications


class FrameKind(enum.IntEnum):
    """What a frame is: data, or one of the query/reply stream frames."""

    DATA = 0
    REPLY_DATA = 1
    REPLY_END = 2
    REPLY_TIMEOUT = 3
    QUERY = 4


@attrs.frozen
class EnvelopeHeader:
    """The decoded header of one envelope."""

    codec_id: int
    payload_len: int
    sequence: int
    timestamp_ns: int
    correlation_id: int = 0
    kind: int = FrameKind.DATA
    flags: int = 0
    crc32: int = 0
    version: int = VERSION
    header_len: int = HEADER_SIZE


class EnvelopeCounters:
    """Thread-safe counts of malformed envelopes, by cause."""

    CAUSES = ("short", "magic", "version", "header_len", "length", "crc")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.CAUSES, 0)

    def add(self, cause: str) -> None:
        with self._lock:
            self._counts[cause] = self._counts.get(cause, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


def pack_header(
    buf: Any,
    *,
    codec_id: int,
    payload_len: int,
    sequence: int,
    correlation_id: int = 0,
    kind: int = FrameKind.DATA,
    timestamp_ns: int | None = None,
    crc32: int | None = None,
    offset: int = 0,
) -> None:
    """Write a header into ``buf`` (a writable buffer, e.g. a loaned shared-memory view)."""
    flags = FLAG_CRC if crc32 is not None else 0
    HEADER.pack_into(
        buf, offset, MAGIC, VERSION, flags, HEADER_SIZE, codec_id, kind, 0, payload_len,
        sequence, time.time_ns() if timestamp_ns is None else timestamp_ns, correlation_id,
        crc32 or 0, 0,
    )


def encode(payload: bytes | bytearray | memoryview, *, codec_id: int, sequence: int, correlation_id: int = 0,
           kind: int = FrameKind.DATA, with_crc: bool = False) -> bytes:
    """Header + payload (any bytes-like object) as one new bytes object, the header stamped
    now. The cheapest way to a small envelope (one pack, one concatenation): the channel
    writer and the gateway's sink send small frames this way; large ones are written in
    place into a loan with :func:`pack_header`."""
    size = len(payload) if type(payload) is bytes else memoryview(payload).nbytes
    head = HEADER.pack(MAGIC, VERSION, FLAG_CRC if with_crc else 0, HEADER_SIZE, codec_id, kind,
                       0, size, sequence, time.time_ns(), correlation_id,
                       zlib.crc32(payload) if with_crc else 0, 0)
    return head + payload


def _bad(counters: EnvelopeCounters | None, cause: str, message: str) -> EnvelopeError:
    if counters is not None:
        counters.add(cause)
    return EnvelopeError(message)


_unpack_header = HEADER.unpack_from
_crc32 = zlib.crc32


def _check(counters: EnvelopeCounters | None, size: int, magic: bytes, version: int,
           header_len: int, payload_len: int) -> None:
    """The header's sanity checks (everything but the CRC); raises EnvelopeError, counted."""
    if magic != MAGIC:
        raise _bad(counters, "magic",
                   f"bad envelope magic {bytes(magic)!r} (expected {MAGIC!r}): not a "
                   "taktora envelope, or the channel carries another format")
    if version != VERSION:
        raise _bad(counters, "version",
                   f"unknown envelope version {version} (this build reads {VERSION}): "
                   "upgrade the reader or downgrade the writer")
    if header_len < HEADER_SIZE or header_len > size:
        raise _bad(counters, "header_len",
                   f"envelope header_len {header_len} is outside {HEADER_SIZE}..{size}")
    if payload_len > size - header_len:
        raise _bad(counters, "length", f"envelope payload_len {payload_len} runs past the buffer "
                   f"({size - header_len} B after the header)")


def _short(counters: EnvelopeCounters | None, size: int) -> EnvelopeError:
    return _bad(counters, "short", f"envelope of {size} B is shorter than its {HEADER_SIZE} B "
                "header")


# magic, version, flags, header_len, (codec_id, kind, reserved), payload_len, sequence
_PREFIX = struct.Struct("<4sBBHxxxxIQ")
_unpack_prefix = _PREFIX.unpack_from


def frame_size(buf: Any, counters: EnvelopeCounters | None = None,
               verify_crc: bool = False) -> tuple[int, int]:
    """:func:`split`'s checks, counts and errors for a frame that is forwarded whole, without
    building a view: the header's sanity (for frames that never left shared memory), and the
    CRC too with ``verify_crc`` (for frames that crossed a link; see spec/envelope.rst).
    Returns ``(header_len + payload_len, sequence)``: where the envelope ends (a trailer
    beyond it is not part of it) and its sequence number."""
    if not verify_crc:
        _, end, sequence = bounds(buf, counters)
        return end, sequence
    size = len(buf)
    if size < HEADER_SIZE:
        raise _short(counters, size)
    (magic, version, flags, header_len, _codec_id, _kind, _r0, payload_len, sequence,
     _timestamp_ns, _correlation_id, crc, _r1) = _unpack_header(buf, 0)
    if magic != MAGIC or version != VERSION or not HEADER_SIZE <= header_len <= size \
            or payload_len > size - header_len:
        _check(counters, size, magic, version, header_len, payload_len)
    end = header_len + payload_len
    if flags & FLAG_CRC and _crc32(memoryview(buf)[header_len:end]) != crc:
        raise _bad(counters, "crc",
                   f"envelope seq {sequence}: payload CRC-32 mismatch (corrupted in transit)")
    return end, sequence


def bounds(buf: Any, counters: EnvelopeCounters | None = None) -> tuple[int, int, int]:
    """Header sanity only (as :func:`frame_size` without ``verify_crc``), returning where the
    payload lies: ``(header_len, header_len + payload_len, sequence)``; builds no view (a
    caller slices ``buf`` itself: a bytes slice of a small frame costs less than a view)."""
    size = len(buf)
    if size < HEADER_SIZE:
        raise _short(counters, size)
    magic, version, _flags, header_len, payload_len, sequence = _unpack_prefix(buf, 0)
    if magic != MAGIC or version != VERSION or not HEADER_SIZE <= header_len <= size \
            or payload_len > size - header_len:
        _check(counters, size, magic, version, header_len, payload_len)
    return header_len, header_len + payload_len, sequence


def split(buf: Any, counters: EnvelopeCounters | None = None,
          verify_crc: bool = True) -> tuple[tuple[Any, ...], memoryview]:
    """:func:`decode` without building the :class:`EnvelopeHeader`: the same checks, counts and
    errors, returning the raw header fields (in :data:`HEADER` order: magic, version, flags,
    header_len, codec_id, kind, reserved, payload_len, sequence, timestamp_ns, correlation_id,
    crc32, reserved) and the zero-copy payload view. For per-frame paths that read one or two
    fields (the dispatcher); building the attrs header costs about as much as the checks."""
    view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf
    if view.format != "B":
        view = view.cast("B")
    size = len(view)
    if size < HEADER_SIZE:
        raise _short(counters, size)
    fields = _unpack_header(view, 0)
    (magic, version, flags, header_len, _codec_id, _kind, _r0, payload_len, sequence,
     _timestamp_ns, _correlation_id, crc, _r1) = fields
    if magic != MAGIC or version != VERSION or not HEADER_SIZE <= header_len <= size \
            or payload_len > size - header_len:
        _check(counters, size, magic, version, header_len, payload_len)
    payload = view[header_len:header_len + payload_len]
    if verify_crc and flags & FLAG_CRC and _crc32(payload) != crc:
        raise _bad(counters, "crc",
                   f"envelope seq {sequence}: payload CRC-32 mismatch (corrupted in transit)")
    return fields, payload


def decode(buf: Any, counters: EnvelopeCounters | None = None,
           verify_crc: bool = True) -> tuple[EnvelopeHeader, memoryview]:
    """Split ``buf`` into its header and a zero-copy view of its payload.

    Raises EnvelopeError (and counts the cause in ``counters``) on any malformation.
    """
    fields, payload = split(buf, counters, verify_crc)
    return header_of(fields), payload


def header_of(fields: tuple[Any, ...]) -> EnvelopeHeader:
    """The :class:`EnvelopeHeader` of the raw header fields :func:`split` returned."""
    (_magic, version, flags, header_len, codec_id, kind, _r0, payload_len, sequence,
     timestamp_ns, correlation_id, crc, _r1) = fields
    return EnvelopeHeader(codec_id, payload_len, sequence, timestamp_ns, correlation_id, kind,
                          flags, crc, version, header_len)
