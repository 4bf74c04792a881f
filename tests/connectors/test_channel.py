"""ChannelWriter -> iceoryx2 -> ChannelReader: envelopes, sequences, gaps, malformed input."""

from __future__ import annotations

import ctypes
import multiprocessing
import zlib
from typing import Any

import pytest
from taktora.connectors import (
    ChannelDescriptor,
    ChannelReader,
    ChannelWriter,
    CodecError,
    ConnectorError,
    CtypesCodec,
    Direction,
    OverflowPolicy,
    RawCodec,
)
from taktora.transport import CodecId, EnvelopeError, Node
from taktora.transport.envelope import HEADER_SIZE, encode, pack_header

from .helpers import child_writer, collect, settle


class Pose(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]

    @staticmethod
    def type_name() -> str:
        return "tests::Pose.v1"


def desc(name: str = "ch", codec: str = "json", **kw: Any) -> ChannelDescriptor:
    return ChannelDescriptor(name, Direction.INBOUND, codec=codec, **kw)


@pytest.fixture
def node() -> Any:
    with Node("test") as n:
        yield n


@pytest.mark.req("REQ_0505")
def test_values_travel_in_envelopes_with_per_writer_sequences(node: Node) -> None:
    d = desc(max_payload=128)
    reader: ChannelReader[Any] = ChannelReader(node, d)
    writer: ChannelWriter[Any] = ChannelWriter(node, d)
    seqs = [writer.send({"i": i}) for i in range(5)]
    seqs.append(writer.send({"q": 1}, correlation_id=77))
    assert seqs == [1, 2, 3, 4, 5, 6]
    got = list(reader)
    assert [g.value for g in got] == [{"i": i} for i in range(5)] + [{"q": 1}]
    assert [g.header.sequence for g in got] == seqs
    assert all(g.header.codec_id == CodecId.JSON for g in got)
    assert got[-1].header.correlation_id == 77
    assert got[0].header.flags & 1  # CRC present (descriptor.crc defaults to True)
    assert got[0].header.crc32 == zlib.crc32(b'{"i":0}')
    assert reader.stats().delivered == 6 and writer.stats().sent == 6


@pytest.mark.req("REQ_0505")
def test_ctypes_values_are_written_in_place_and_read_as_copies(node: Node) -> None:
    codec = CtypesCodec(Pose)
    d = desc(codec=codec.name, max_payload=ctypes.sizeof(Pose), crc=False)
    reader = ChannelReader(node, d, codec)
    writer = ChannelWriter(node, d, codec)
    writer.send(Pose(1.0, 2.0))
    got = reader.try_recv()
    assert got is not None
    assert (got.value.x, got.value.y) == (1.0, 2.0)
    assert got.header.payload_len == ctypes.sizeof(Pose)
    assert not got.header.flags & 1
    with pytest.raises(ConnectorError, match="declares codec 'json'"):
        ChannelWriter(node, desc("other"), codec)


@pytest.mark.req("REQ_0505")
def test_encode_errors_send_nothing_and_keep_the_sequence(node: Node) -> None:
    d = desc(max_payload=64)
    reader: ChannelReader[Any] = ChannelReader(node, d)
    writer: ChannelWriter[Any] = ChannelWriter(node, d)
    with pytest.raises(CodecError, match="channel 'ch', codec 'json' cannot encode"):
        writer.send({"x": object()})
    assert writer.send("ok") == 1
    assert [g.header.sequence for g in reader] == [1]
    assert writer.stats().encode_errors == 1


@pytest.mark.req("REQ_0506")
def test_drop_oldest_overflow_gaps_are_counted_exactly(node: Node) -> None:
    d = desc(buffer_size=4, overflow=OverflowPolicy.DROP_OLDEST)
    reader: ChannelReader[Any] = ChannelReader(node, d)
    writer: ChannelWriter[Any] = ChannelWriter(node, d)
    assert reader.overflow is OverflowPolicy.DROP_OLDEST
    writer.send(1)
    assert [g.value for g in reader] == [1]
    for i in range(2, 11):  # 9 more into a queue of 4: 2..6 are overwritten
        writer.send(i)
    assert [g.value for g in reader] == [7, 8, 9, 10]
    stats = reader.stats()
    assert (stats.gaps, stats.lost, stats.delivered) == (1, 5, 5)
    assert stats.overflow is OverflowPolicy.DROP_OLDEST


@pytest.mark.req("REQ_0506", "REQ_0509")
def test_drop_newest_overflow_is_counted_by_writer_and_reader(node: Node) -> None:
    d = desc(buffer_size=4, overflow=OverflowPolicy.DROP_NEWEST)
    reader: ChannelReader[Any] = ChannelReader(node, d)
    writer: ChannelWriter[Any] = ChannelWriter(node, d)
    writer.send(1)
    assert [g.value for g in reader] == [1]
    for i in range(2, 11):  # 2..5 fit, 6..10 are refused
        writer.send(i)
    assert [g.value for g in reader] == [2, 3, 4, 5]
    writer.send(11)
    assert [g.value for g in reader] == [11]
    assert writer.stats().undelivered == writer.stats().refused == 5
    assert writer.stats().no_subscriber == 0  # one cause per counter: there was a subscriber
    assert writer.stats().overflow is OverflowPolicy.DROP_NEWEST
    stats = reader.stats()
    assert (stats.gaps, stats.lost) == (1, 5)


def _raw_frames() -> list[tuple[str, bytes]]:
    good = encode(b'"x"', codec_id=CodecId.JSON, sequence=1, with_crc=True)
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0x01
    bad_version = bytearray(good)
    bad_version[4] = 99
    short_header_len = bytearray(good)
    short_header_len[6:8] = (10).to_bytes(2, "little")
    too_long = bytearray(HEADER_SIZE + 2)
    pack_header(too_long, codec_id=CodecId.JSON, payload_len=500, sequence=2)
    return [
        ("short", b"TKEV\x01"),
        ("magic", b"XXXX" + good[4:]),
        ("version", bytes(bad_version)),
        ("header_len", bytes(short_header_len)),
        ("length", bytes(too_long)),
        ("crc", bytes(bad_crc)),
    ]


@pytest.mark.req("REQ_0507")
def test_malformed_envelopes_are_counted_by_cause_and_skipped(node: Node) -> None:
    d = desc(max_payload=64)
    reader: ChannelReader[Any] = ChannelReader(node, d, verify_crc=True)
    raw = node.publisher(d.channel_spec())
    writer: ChannelWriter[Any] = ChannelWriter(node, d)
    for _, frame in _raw_frames():
        raw.send_copy(frame)
    writer.send("still works")
    assert [g.value for g in reader] == ["still works"]
    stats = reader.stats()
    assert dict(stats.malformed) == {cause: 1 for cause, _ in _raw_frames()}
    assert stats.malformed_total == 6 and stats.received == 7 and stats.delivered == 1


@pytest.mark.req("REQ_0507", "REQ_0504")
def test_decode_errors_are_counted_and_the_channel_keeps_running(node: Node) -> None:
    d = desc(max_payload=64)
    reader: ChannelReader[Any] = ChannelReader(node, d)
    raw = node.publisher(d.channel_spec())
    writer: ChannelWriter[Any] = ChannelWriter(node, d)
    raw.send_copy(encode(b"{broken", codec_id=CodecId.JSON, sequence=1))
    raw.send_copy(encode(b"\x01\x02", codec_id=CodecId.RAW, sequence=2))  # wrong codec id
    writer.send([1, 2])
    assert [g.value for g in reader] == [[1, 2]]
    stats = reader.stats()
    assert stats.decode_errors == 2 and stats.malformed_total == 0


@pytest.mark.req("REQ_0507", "REQ_0504")
def test_strict_readers_raise_project_errors_naming_channel_and_codec(node: Node) -> None:
    d = desc("strict", max_payload=64)
    reader: ChannelReader[Any] = ChannelReader(node, d, strict=True)
    raw = node.publisher(d.channel_spec())
    raw.send_copy(b"XXXX" + bytes(60))
    with pytest.raises(EnvelopeError, match="magic"):
        reader.try_recv()
    raw.send_copy(encode(b"{broken", codec_id=CodecId.JSON, sequence=1))
    with pytest.raises(CodecError, match="channel 'strict', codec 'json' cannot decode"):
        reader.try_recv()
    assert reader.try_recv() is None
    assert reader.stats().decode_errors == 1 and reader.stats().malformed["magic"] == 1


@pytest.mark.req("REQ_0508")
def test_recv_waits_on_the_listener_and_times_out(node: Node) -> None:
    d = desc(codec="raw")
    reader: ChannelReader[Any] = ChannelReader(node, d, RawCodec())
    writer: ChannelWriter[Any] = ChannelWriter(node, d)
    assert reader.recv(0.05) is None
    writer.send(b"wake")
    assert reader.consume_wakeups() >= 1  # the listener an executor's WaitSet would attach
    assert reader.listener is not None
    got = reader.recv(1.0)
    assert got is not None and got.value == b"wake"


@pytest.mark.req("REQ_0508")
def test_cross_process_writer_to_reader(node: Node) -> None:
    d = desc("xproc", max_payload=128, buffer_size=64)
    reader: ChannelReader[Any] = ChannelReader(node, d)
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    child = ctx.Process(target=child_writer, args=(d, 20, ready, done))
    child.start()
    try:
        ready.set()
        got = collect(reader, 20)
    finally:
        done.set()
        child.join(30)
    assert child.exitcode == 0
    assert [g.value["i"] for g in got] == list(range(20))
    assert [g.header.sequence for g in got] == list(range(1, 21))
    assert {g.value["pid"] for g in got} == {child.pid}
    assert settle(reader, 0.05) == []
    assert reader.stats().lost == 0
