"""Envelope fields kept through record -> replay -> record: kind, correlation id, codec id and
flags (Zenoh query / reply frames replay as such), and struct channels without a class."""

from __future__ import annotations

import ctypes
import json

import pytest
from mcap.reader import make_reader
from taktora.connectors.channel import ChannelWriter
from taktora.connectors.model import ChannelDescriptor, Direction
from taktora.system.recording import Player, RecorderItem, list_channels, read_info
from taktora.system.recording import mcap_format as fmt
from taktora.system.recording.reader import frame, iter_messages
from taktora.transport import ChannelSpec, Node, StructPayload
from taktora.transport.envelope import FLAG_CRC, CodecId, FrameKind

# what a Zenoh query channel and its reply channel carry: (value, kind, correlation id)
TRAFFIC = [
    ({"q": "temp/*"}, FrameKind.QUERY, 7),
    ({"v": 21.5}, FrameKind.REPLY_DATA, 7),
    ({"v": 22.0}, FrameKind.REPLY_DATA, 7),
    ({}, FrameKind.REPLY_END, 7),
    ({"q": "gone/*"}, FrameKind.QUERY, 8),
    ({}, FrameKind.REPLY_TIMEOUT, 8),
    ({"plain": 1}, FrameKind.DATA, 0),
    ({"request": 2}, FrameKind.DATA, 99),
]


def _frames(path, topic):
    return [(f.codec_id, f.kind, f.flags, f.correlation_id, bytes(f.payload))
            for f in (frame(c, m) for c, m in iter_messages(path, topics=[topic]))]


def _record(node, out, send):
    """Open a recorder on every channel there is, let ``send`` publish, record it all."""
    item = RecorderItem(node, list_channels(node), out)
    send()
    item.execute(None)
    item.finish()
    return item.stats()


@pytest.mark.req("REQ_1016")
def test_query_and_reply_frames_survive_record_replay_record(tmp_path):
    first, second = tmp_path / "first.mcap", tmp_path / "second.mcap"
    with Node() as node:
        crc = ChannelWriter(node, ChannelDescriptor("zq", Direction.OUTBOUND, codec="json",
                                                    buffer_size=64))  # crc on: flags bit 0
        bare = ChannelWriter(node, ChannelDescriptor("zr", Direction.INBOUND, codec="json",
                                                     buffer_size=64, crc=False))

        def send() -> None:
            for value, kind, corr in TRAFFIC:
                crc.send(value, kind=kind, correlation_id=corr)
                bare.send(value, kind=kind, correlation_id=corr)

        stats = _record(node, first, send)
        assert stats.written == 2 * len(TRAFFIC)
        crc.close()
        bare.close()
        with Player(first, rate=None, remap=["zq.out=zq.replay", "zr.in=zr.replay"],
                    node=node) as player:
            player.open()
            item = RecorderItem(node, [c for c in list_channels(node)
                                       if c.name.endswith(".replay")], second)
            report = player.run()
            item.execute(None)
            item.finish()
        assert report.messages == 2 * len(TRAFFIC) and item.stats().written == report.messages
    for topic, flags in (("zq", FLAG_CRC), ("zr", 0)):
        a = _frames(first, f"{topic}.{'out' if topic == 'zq' else 'in'}")
        assert [x[:4] for x in a] == [(CodecId.JSON, kind, flags, corr)
                                      for _v, kind, corr in TRAFFIC]
        assert [json.loads(x[4]) for x in a] == [v for v, _k, _c in TRAFFIC]
        assert _frames(second, f"{topic}.replay") == a
    # plain data frames stay bare JSON (Foxglove); the others sit on a framed channel
    with open(first, "rb") as f:
        reader = make_reader(f)
        channels = [c for c in reader.get_summary().channels.values() if c.topic == "zq.out"]
        plain = [m for _s, c, m in reader.iter_messages(topics=["zq.out"])
                 if c.metadata[fmt.K_FRAMING] == fmt.PLAIN]
    assert sorted((c.message_encoding, c.metadata[fmt.K_FRAMING]) for c in channels) == [
        ("json", fmt.PLAIN), (fmt.FRAMED_ENCODING, fmt.FRAMED)]
    assert [json.loads(m.data) for m in plain] == [{"plain": 1}]
    assert {c.topic: (c.messages, c.encoding) for c in read_info(first).channels} == {
        "zq.out": (len(TRAFFIC), f"{fmt.FRAMED_ENCODING}, json"),
        "zr.in": (len(TRAFFIC), f"{fmt.FRAMED_ENCODING}, json")}


class Opaque(ctypes.Structure):
    _fields_ = [("a", ctypes.c_uint32), ("b", ctypes.c_char_p)]  # a pointer: no JSON

    @staticmethod
    def type_name() -> str:
        return "test::Opaque.v1"


@pytest.mark.req("REQ_1015")
def test_struct_channels_without_a_usable_class_are_recorded_raw_and_replayed(tmp_path):
    first, second = tmp_path / "first.mcap", tmp_path / "second.mcap"
    with Node() as node:
        pub = node.publisher(ChannelSpec("opaque.out", StructPayload(Opaque), buffer_size=16))
        values = [Opaque(i, None) for i in range(5)]
        _record(node, first, lambda: [pub.send_copy(v) for v in values])
        pub.close()
        with Player(first, rate=None, remap={"opaque.out": "opaque.replay"}, node=node) as player:
            player.open()
            item = RecorderItem(node, [c for c in list_channels(node)
                                       if c.name == "opaque.replay"], second,
                                types=[Opaque])  # a class JSON cannot carry: raw bytes
            player.run()
            item.execute(None)
            item.finish()
    rows = [(c.message_encoding, bytes(m.data)) for c, m in iter_messages(second)]
    assert rows == [(fmt.STRUCT_ENCODING, bytes(v)) for v in values]
    with open(first, "rb") as f:
        summary = make_reader(f).get_summary()
    (channel,) = [c for c in summary.channels.values() if c.topic == "opaque.out"]
    assert json.loads(channel.metadata[fmt.K_PAYLOAD]) == {
        "kind": "struct", "type_name": "test::Opaque.v1", "size": ctypes.sizeof(Opaque),
        "alignment": ctypes.alignment(Opaque)}
    assert json.loads(summary.schemas[channel.schema_id].data)["size"] == ctypes.sizeof(Opaque)
