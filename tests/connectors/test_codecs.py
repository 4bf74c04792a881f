"""Codecs round trip, fail with project errors naming the channel and codec; model values
validate at construction and convert with cattrs."""

from __future__ import annotations

import ctypes
import pickle

import attrs
import pytest
from taktora.connectors import (
    AttrsJsonCodec,
    AttrsMsgpackCodec,
    ChannelDescriptor,
    CodecError,
    CodecRegistry,
    Congestion,
    CtypesCodec,
    DescriptorError,
    Direction,
    FrozenMap,
    JsonCodec,
    MsgpackCodec,
    OverflowPolicy,
    QoS,
    RawCodec,
    Reliability,
    Routing,
    codec_id_for,
    decode_for,
    default_registry,
    encode_for,
    structure,
    unstructure,
)
from taktora.transport import CodecId, TaktoraError


class Pose(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("flags", ctypes.c_uint32)]

    @staticmethod
    def type_name() -> str:
        return "tests::Pose.v1"


@attrs.frozen
class Joint:
    name: str
    angle: float


@attrs.frozen
class Arm:
    joints: tuple[Joint, ...]
    enabled: bool = attrs.field(validator=attrs.validators.instance_of(bool))


ARM = Arm(joints=(Joint("shoulder", 0.5), Joint("elbow", -1.25)), enabled=True)


# --- codecs -------------------------------------------------------------------------------------
@pytest.mark.req("REQ_0503")
@pytest.mark.parametrize(
    ("codec", "value"),
    [
        (RawCodec(), b"\x00\x01binary\xff"),
        (JsonCodec(), {"a": [1, 2.5, None, True], "s": "ünïcode"}),
        (MsgpackCodec(), {"a": [1, 2.5, None, True], "b": b"\x00\xff", "s": "ü"}),
        (AttrsJsonCodec(Arm), ARM),
        (AttrsMsgpackCodec(Arm), ARM),
    ],
    ids=lambda v: getattr(v, "name", "value"),
)
def test_round_trip(codec: object, value: object) -> None:
    data = encode_for(codec, value, "ch")  # type: ignore[arg-type]
    assert decode_for(codec, memoryview(bytes(data)), "ch") == value  # type: ignore[arg-type]


@pytest.mark.req("REQ_0503")
def test_ctypes_codec_writes_straight_into_the_buffer_and_decodes_a_copy() -> None:
    codec = CtypesCodec(Pose)
    assert codec.name == "ctypes:tests::Pose.v1"
    assert codec.codec_id == CodecId.CTYPES
    assert codec.size_hint(Pose()) == ctypes.sizeof(Pose)
    buf = bytearray(64)
    view = memoryview(buf)[8:]
    n = codec.encode_into(Pose(1.5, -2.0, 7), view)
    assert n == ctypes.sizeof(Pose)
    assert bytes(buf[8:8 + n]) == bytes(Pose(1.5, -2.0, 7))
    out = codec.decode(memoryview(bytes(buf[8:8 + n])).toreadonly())
    assert (out.x, out.y, out.flags) == (1.5, -2.0, 7)
    out.x = 9.0  # a private, writable copy
    assert Pose.from_buffer_copy(bytes(buf[8:8 + n])).x == 1.5


@pytest.mark.req("REQ_0503")
def test_raw_codec_can_return_the_read_only_view_itself() -> None:
    view = memoryview(b"zero-copy").toreadonly()
    assert RawCodec(copy=False).decode(view) is view
    assert RawCodec().decode(view) == b"zero-copy"


@pytest.mark.req("REQ_0503")
def test_registry_by_name_and_by_id() -> None:
    assert default_registry.by_name("json").codec_id == CodecId.JSON
    assert default_registry.by_id(CodecId.MSGPACK).name == "msgpack"
    reg = CodecRegistry((RawCodec(), CtypesCodec(Pose)))
    assert reg.by_id(CodecId.CTYPES).name == "ctypes:tests::Pose.v1"

    class Other(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int)]

    reg.register(CtypesCodec(Other))
    with pytest.raises(CodecError, match="several are registered"):
        reg.by_id(CodecId.CTYPES)
    with pytest.raises(CodecError, match=r"no codec named .nope.*known"):
        reg.by_name("nope")
    with pytest.raises(CodecError, match="already registered"):
        reg.register(CtypesCodec(Other))
    reg.register(CtypesCodec(Other), replace=True)
    assert codec_id_for("cattrs-json:some.Class") == CodecId.CATTRS_JSON
    assert codec_id_for("msgpack") == CodecId.MSGPACK
    with pytest.raises(CodecError, match="unknown family"):
        codec_id_for("protobuf:x.Y")


@pytest.mark.req("REQ_0504")
@pytest.mark.parametrize(
    ("codec", "data", "what"),
    [
        (JsonCodec(), b"{not json", "JSONDecodeError"),
        (JsonCodec(), b"\xff\xfe", "UnicodeDecodeError"),
        (MsgpackCodec(), b"\xc1", "FormatError: malformed input"),
        (MsgpackCodec(), b"\x92\x01", "unpack"),
        (CtypesCodec(Pose), b"\x00" * 3, "expected 24 B"),
        (AttrsJsonCodec(Arm), b'{"joints": [{"name": "a"}], "enabled": true}', "angle"),
        (AttrsJsonCodec(Arm), b'{"joints": []}', "required field missing @ $.enabled"),
        (AttrsMsgpackCodec(Arm), b"\x93", "decode"),
    ],
)
def test_decode_error_names_channel_codec_and_cause(codec: object, data: bytes,
                                                    what: str) -> None:
    with pytest.raises(CodecError) as info:
        decode_for(codec, memoryview(data), "robot/arm")  # type: ignore[arg-type]
    message = str(info.value)
    assert "channel 'robot/arm'" in message
    assert f"codec {codec.name!r}" in message  # type: ignore[attr-defined]
    assert what.lower() in message.lower()
    assert isinstance(info.value, TaktoraError)


@pytest.mark.req("REQ_0504")
@pytest.mark.parametrize(
    ("codec", "value"),
    [
        (JsonCodec(), {"x": object()}),
        (MsgpackCodec(), 1 << 70),
        (MsgpackCodec(), {1.5j: 1}),
        (RawCodec(), "text is not bytes"),
        (CtypesCodec(Pose), b"not a Pose"),
        (AttrsJsonCodec(Arm), Joint("x", 1.0)),
    ],
)
def test_encode_error_names_channel_and_codec(codec: object, value: object) -> None:
    with pytest.raises(CodecError, match=r"channel 'ch', codec .* cannot encode: "):
        encode_for(codec, value, "ch")  # type: ignore[arg-type]


# --- model --------------------------------------------------------------------------------------
@pytest.mark.req("REQ_0501")
@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Routing(kind="UDP"), "Routing.kind"),
        (lambda: Routing(kind="udp", address=5), "Routing.address"),
        (lambda: Routing(kind="udp", options={"p": [1]}), "Routing.options['p']"),
        (lambda: Routing(kind="udp", options=[1, 2]), "Routing.options"),
        (lambda: QoS(priority=0), "QoS.priority"),
        (lambda: QoS(priority=8), "QoS.priority"),
        (lambda: QoS(reliability="reliable"), "QoS.reliability"),
        (lambda: QoS(express=1), "QoS.express"),
        (lambda: ChannelDescriptor("", Direction.INBOUND), "ChannelDescriptor.name"),
        (lambda: ChannelDescriptor("a b", Direction.INBOUND), "ChannelDescriptor.name"),
        (lambda: ChannelDescriptor("ok", "in"), "ChannelDescriptor.direction"),
        (lambda: ChannelDescriptor("ok", Direction.INBOUND, codec="JSON!"),
         "ChannelDescriptor.codec"),
        (lambda: ChannelDescriptor("ok", Direction.INBOUND, max_payload=0),
         "ChannelDescriptor.max_payload"),
        (lambda: ChannelDescriptor("ok", Direction.INBOUND, buffer_size=0),
         "ChannelDescriptor.buffer_size"),
        (lambda: ChannelDescriptor("ok", Direction.INBOUND, overflow="drop"),
         "ChannelDescriptor.overflow"),
        (lambda: ChannelDescriptor("ok", Direction.INBOUND, routing="udp://x"),
         "ChannelDescriptor.routing"),
    ],
)
def test_invalid_model_values_name_the_field(make: object, field: str) -> None:
    with pytest.raises(DescriptorError) as info:
        make()  # type: ignore[operator]
    assert str(info.value).startswith(f"{field}=")


@pytest.mark.req("REQ_0501")
def test_descriptor_values_service_names_and_channel_spec() -> None:
    routing = Routing("udp", "127.0.0.1:9000", {"local_port": 9001, "tag": "a"})
    out = ChannelDescriptor("robot/cmd", Direction.OUTBOUND, codec="json", max_payload=256,
                            qos=QoS(Reliability.BEST_EFFORT, 2, Congestion.BLOCK, True),
                            routing=routing, buffer_size=4, overflow=OverflowPolicy.BLOCK)
    assert out.service_name == "robot/cmd.out"
    assert attrs.evolve(out, direction=Direction.INBOUND).service_name == "robot/cmd.in"
    spec = out.channel_spec()
    assert spec.name == "robot/cmd.out"
    assert spec.payload.max_size == 48 + 256
    assert (spec.buffer_size, spec.overflow) == (4, OverflowPolicy.BLOCK)
    assert routing.option("local_port", 0) == 9001
    assert routing.option("missing", "dflt") == "dflt"
    assert hash(out) == hash(pickle.loads(pickle.dumps(out)))
    assert {out: 1}[pickle.loads(pickle.dumps(out))] == 1
    with pytest.raises(AttributeError):
        out.name = "x"  # type: ignore[misc]
    assert FrozenMap({"b": 1, "a": 2}) == {"a": 2, "b": 1}


@pytest.mark.req("REQ_0502")
def test_descriptors_convert_with_cattrs_and_bad_documents_name_the_key_path() -> None:
    doc = {
        "name": "robot/cmd",
        "direction": "outbound",
        "codec": "msgpack",
        "qos": {"priority": 1, "reliability": "best_effort"},
        "routing": {"kind": "udp", "address": "127.0.0.1:7000", "options": {"local_port": 7001}},
        "overflow": "drop_newest",
    }
    d = structure(doc, ChannelDescriptor)
    assert d.routing.options == {"local_port": 7001}
    assert d.qos.reliability is Reliability.BEST_EFFORT
    assert d.overflow is OverflowPolicy.DROP_NEWEST
    assert structure(unstructure(d), ChannelDescriptor) == d
    assert unstructure(d)["routing"]["options"] == {"local_port": 7001}
    for bad, path, why in [
        ({**doc, "direction": "sideways"}, "$.direction", "Direction"),
        ({**doc, "qos": {"priority": 9}}, "$.qos", "QoS.priority=9"),
        ({**doc, "routing": {"kind": "UDP"}}, "$.routing", "Routing.kind"),
        ({**doc, "colour": "red"}, "$", "extra fields"),
        ({"direction": "inbound"}, "$.name", "required field missing"),
    ]:
        with pytest.raises(DescriptorError) as info:
            structure(bad, ChannelDescriptor)
        assert path in str(info.value) and why in str(info.value)
