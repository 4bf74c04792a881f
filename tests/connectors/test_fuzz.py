"""Fuzzing: malformed envelopes and arbitrary codec inputs give project errors only, never a
crash or a hang, and the reader and the dispatcher keep working afterwards."""

from __future__ import annotations

import ctypes
import os
import queue
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from taktora.connectors import (
    AttrsJsonCodec,
    AttrsMsgpackCodec,
    ChannelDescriptor,
    ChannelReader,
    ChannelWriter,
    CodecError,
    Connector,
    ConnectorContext,
    CtypesCodec,
    Direction,
    Dispatcher,
    Frame,
    HealthState,
    Inbound,
    JsonCodec,
    MsgpackCodec,
    RawCodec,
    decode_for,
    encode_for,
)
from taktora.transport import CodecId, Node
from taktora.transport.envelope import encode

from .helpers import collect, wait_until

EXAMPLES = int(os.environ.get("TAKTORA_FUZZ_EXAMPLES", "100"))  # `make bench` may raise it
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


class Pose(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("n", ctypes.c_uint16)]

    @staticmethod
    def type_name() -> str:
        return "fuzz::Pose.v1"


@attrs.frozen
class Cmd:
    name: str
    speed: float
    tags: tuple[str, ...] = ()


CODECS = [RawCodec(), JsonCodec(), MsgpackCodec(), CtypesCodec(Pose), AttrsJsonCodec(Cmd),
          AttrsMsgpackCodec(Cmd)]

GOOD = encode(b'"ok"', codec_id=CodecId.JSON, sequence=1, with_crc=True)


def mutations() -> st.SearchStrategy[bytes]:
    """Random bytes, and valid envelopes with bytes flipped, cut short or extended."""
    flipped = st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)).map(
        lambda p: GOOD[: p[0]] + bytes([GOOD[p[0]] ^ p[1]]) + GOOD[p[0] + 1:])
    cut = st.integers(0, len(GOOD)).map(lambda n: GOOD[:n])
    extended = st.binary(max_size=16).map(lambda tail: GOOD + tail)
    return st.one_of(st.binary(max_size=200), flipped, cut, extended)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.req("REQ_0517")
@FUZZ
@given(codec=st.sampled_from(CODECS), data=st.binary(max_size=300))
def test_any_bytes_decode_to_a_value_or_a_codec_error(codec: Any, data: bytes) -> None:
    try:
        decode_for(codec, memoryview(data).toreadonly(), "fuzz")
    except CodecError as exc:
        assert "channel 'fuzz'" in str(exc) and codec.name in str(exc)


@pytest.mark.req("REQ_0517")
@FUZZ
@given(codec=st.sampled_from([JsonCodec(), MsgpackCodec()]), value=json_values)
def test_encodable_values_round_trip_others_give_codec_errors(codec: Any, value: Any) -> None:
    try:
        data = encode_for(codec, value, "fuzz")
    except CodecError:
        return  # e.g. an integer beyond 64 bits for msgpack
    assert decode_for(codec, memoryview(bytes(data)), "fuzz") == value


@pytest.mark.req("REQ_0517")
@FUZZ
@given(value=st.builds(Cmd, st.text(), st.floats(allow_nan=False),
                       st.lists(st.text(), max_size=3).map(tuple)))
def test_attrs_values_round_trip_in_both_flavours(value: Cmd) -> None:
    for codec in (AttrsJsonCodec(Cmd), AttrsMsgpackCodec(Cmd)):
        assert decode_for(codec, memoryview(bytes(encode_for(codec, value, "c"))), "c") == value


@pytest.mark.req("REQ_0517")
def test_reader_survives_fuzzed_envelopes() -> None:
    d = ChannelDescriptor("fuzz", Direction.INBOUND, codec="json", max_payload=256,
                          growable=True, buffer_size=64)
    with Node("fuzz") as node:
        reader: ChannelReader[Any] = ChannelReader(node, d)
        raw = node.publisher(d.channel_spec())

        @FUZZ
        @given(frames=st.lists(mutations(), min_size=1, max_size=8))
        def feed(frames: list[bytes]) -> None:
            for frame in frames:
                raw.send_copy(frame)
            for got in reader:  # never raises; whatever decodes is a proper Received
                assert got.header.codec_id == CodecId.JSON

        feed()
        stats = reader.stats()
        assert stats.received == stats.delivered + stats.malformed_total + stats.decode_errors
        assert stats.malformed_total > 0
        writer: ChannelWriter[Any] = ChannelWriter(node, d)
        writer.send("still alive")
        assert [g.value for g in reader] == ["still alive"]


class Feeder(Connector):
    """Hands the dispatcher whatever frames the test queues (as if from the protocol)."""

    def __init__(self) -> None:
        self.frames: queue.Queue[Inbound] = queue.Queue()

    def open(self, ctx: ConnectorContext) -> None:
        ctx.report(HealthState.UP, "feeding")

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        pass

    def poll(self, timeout: float) -> Inbound | None:
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            return None


@pytest.mark.req("REQ_0517", "REQ_0512")
def test_dispatcher_survives_fuzzed_frames() -> None:
    d = ChannelDescriptor("fuzz", Direction.INBOUND, codec="json", max_payload=64,
                          buffer_size=64)
    conn = Feeder()
    disp = Dispatcher(None, conn, [d], name="fuzz-gw").start()
    sent = 0
    try:
        with Node("app") as node:
            reader: ChannelReader[Any] = ChannelReader(node, d)

            @settings(FUZZ, max_examples=max(10, EXAMPLES // 2))
            @given(frames=st.lists(mutations(), min_size=1, max_size=8))
            def feed(frames: list[bytes]) -> None:
                nonlocal sent
                for frame in frames:
                    conn.frames.put(("fuzz", frame))
                sent += len(frames)
                assert wait_until(lambda: _handled(disp) == sent)
                list(reader)

            feed()
            assert disp.stats().running
            assert disp.stats().inbound_dropped.get("malformed", 0) > 0
            conn.frames.put(("fuzz", encode(b'"after"', codec_id=CodecId.JSON, sequence=10**6)))
            assert [g.value for g in collect(reader, 1)] == ["after"]
    finally:
        report = disp.stop()
    assert report.clean


def _handled(disp: Dispatcher) -> int:
    stats = disp.stats()
    return stats.inbound_forwarded + sum(stats.inbound_dropped.values())
