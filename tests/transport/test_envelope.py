"""The envelope's byte layout matches spec/envelope.rst, and malformed input is rejected."""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from taktora.transport import EnvelopeCounters, EnvelopeError, TaktoraError
from taktora.transport import envelope as env

SPEC = Path(__file__).resolve().parents[2] / "spec" / "envelope.rst"
FUZZ = int(os.environ.get("TAKTORA_FUZZ_EXAMPLES", "300"))  # `make bench` runs a long profile
STRUCT_CODES = {("u8", 1): "B", ("u16", 2): "H", ("u32", 4): "I", ("u64", 8): "Q", ("bytes", 4): "4s"}


def spec_table() -> list[tuple[int, int, str, str]]:
    """(offset, size, type, field) rows of the layout table in spec/envelope.rst."""
    rows = []
    for line in SPEC.read_text().splitlines():
        m = re.match(r"^\s+(\d+)\s+(\d+)\s+(u8|u16|u32|u64|bytes)\s+(\w+)\s", line)
        if m:
            rows.append((int(m[1]), int(m[2]), m[3], m[4]))
    return rows


@pytest.mark.req("REQ_0111")
def test_spec_table_decodes_raw_bytes_written_by_the_encoder() -> None:
    rows = spec_table()
    assert [r[3] for r in rows][:3] == ["magic", "version", "flags"], "table not found in spec"
    fmt = "<" + "".join(STRUCT_CODES[(t, size)] for _, size, t, _ in rows)
    assert struct.calcsize(fmt) == env.HEADER_SIZE == sum(r[1] for r in rows) == 48
    offset = 0
    for off, size, _, field in rows:  # contiguous, in order
        assert off == offset, f"{field} at {off}, expected {offset}"
        offset += size
    payload = b"\x01\x02hello"
    raw = env.encode(payload, codec_id=2, sequence=77, correlation_id=0xABCDEF, kind=3, with_crc=True)
    fields = dict(zip([r[3] for r in rows], struct.unpack_from(fmt, raw), strict=True))
    assert fields["magic"] == b"TKEV" and fields["version"] == 1 and fields["flags"] == 1
    assert fields["header_len"] == 48 and fields["codec_id"] == 2 and fields["kind"] == 3
    assert fields["payload_len"] == len(payload) and fields["sequence"] == 77
    assert fields["correlation_id"] == 0xABCDEF and fields["crc32"] == zlib.crc32(payload)
    assert raw[fields["header_len"]:] == payload
    header, view = env.decode(raw)
    assert bytes(view) == payload and header.sequence == 77 and header.kind == 3


@pytest.mark.req("REQ_0112")
@pytest.mark.parametrize(
    ("mutate", "cause"),
    [
        (lambda b: b[:20], "short"),
        (lambda b: b"XXXX" + b[4:], "magic"),
        (lambda b: b[:4] + bytes([9]) + b[5:], "version"),
        (lambda b: b[:6] + struct.pack("<H", 12) + b[8:], "header_len"),
        (lambda b: b[:12] + struct.pack("<I", 10_000) + b[16:], "length"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 0xFF]), "crc"),
    ],
)
def test_malformed_envelopes_raise_and_are_counted(mutate: object, cause: str) -> None:
    good = env.encode(b"payload-bytes", codec_id=1, sequence=1, with_crc=True)
    counters = EnvelopeCounters()
    with pytest.raises(EnvelopeError) as info:
        env.decode(mutate(good), counters)  # type: ignore[operator]
    assert isinstance(info.value, TaktoraError) and str(info.value)
    assert counters.snapshot()[cause] == 1 and counters.total == 1


@pytest.mark.req("REQ_0112")
@settings(max_examples=FUZZ, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoder(data: bytes) -> None:
    counters = EnvelopeCounters()
    try:
        header, view = env.decode(data, counters)
    except EnvelopeError:
        assert counters.total == 1
    else:
        assert header.payload_len == len(view) <= len(data) - env.HEADER_SIZE


@pytest.mark.req("REQ_0112")
@settings(max_examples=FUZZ, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 2**64 - 1), st.integers(0, 2**16 - 1))
def test_round_trip_any_payload(payload: bytes, seq: int, codec: int) -> None:
    header, view = env.decode(env.encode(payload, codec_id=codec, sequence=seq, with_crc=True))
    assert bytes(view) == payload and header.sequence == seq and header.codec_id == codec
