"""The Recorder: MCAP layout read back with the mcap package's own reader, compression,
metadata, overflow and source gaps."""

from __future__ import annotations

import itertools
import json

import pytest
from mcap.reader import make_reader
from rec_helpers import wait_for
from taktora.connectors.channel import ChannelWriter
from taktora.connectors.model import ChannelDescriptor, Direction
from taktora.system.recording import Recorder, RecorderItem, RecordingError, list_channels, read_info
from taktora.system.recording import mcap_format as fmt
from taktora.transport import BytesPayload, ChannelSpec, Node, envelope


def _read(path):
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        messages = [(c.topic, m) for _s, c, m in reader.iter_messages()]
        metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
        header = reader.get_header()
    return summary, messages, metadata, header


@pytest.mark.req("REQ_1010")
def test_recording_layout_read_by_the_mcap_reader(tmp_path):
    out = tmp_path / "r.mcap"
    with Node() as node:
        js = ChannelWriter(node, ChannelDescriptor("pose", Direction.OUTBOUND, codec="json",
                                                   buffer_size=64))
        raw = ChannelWriter(node, ChannelDescriptor("blob", Direction.INBOUND, codec="raw",
                                                    buffer_size=64))
        with Recorder(out, ["pose.out", "blob.*"]) as rec:
            assert [c.name for c in rec.channels] == ["blob.in", "pose.out"]
            for i in range(20):
                js.send({"i": i})
                raw.send(bytes([i]) * 64)
            wait_for(lambda: rec.stats().written == 40, what="40 messages written")
        stats = rec.stats()
    assert stats.channel("pose.out").received == 20 and stats.flushed == 40
    summary, messages, metadata, header = _read(out)
    assert header.profile == fmt.PROFILE
    topics = {c.topic: c for c in summary.channels.values()}
    assert set(topics) == {"pose.out", "blob.in", fmt.GAP_TOPIC}
    pose = topics["pose.out"]
    assert pose.message_encoding == "json" and pose.metadata[fmt.K_CODEC] == "json"
    assert json.loads(pose.metadata[fmt.K_SPEC])["buffer_size"] == 64
    assert summary.schemas[pose.schema_id].encoding == "jsonschema"
    assert topics["blob.in"].message_encoding == "taktora.raw"
    assert summary.statistics.message_count == 40
    pose_msgs = [m for t, m in messages if t == "pose.out"]
    assert [json.loads(m.data) for m in pose_msgs] == [{"i": i} for i in range(20)]
    assert [m.sequence for m in pose_msgs] == list(range(1, 21))
    assert all(m.log_time == m.publish_time for m in pose_msgs)
    assert all(a.log_time <= b.log_time for a, b in itertools.pairwise(pose_msgs))
    assert [m.data for t, m in messages if t == "blob.in"] == [bytes([i]) * 64 for i in range(20)]
    rec_meta = metadata[fmt.META_RECORDING]
    assert {"host", "taktora", "iceoryx2", "mcap", "python", "prefix"} <= set(rec_meta)
    assert metadata[fmt.META_STATS]["pose.out:written"] == "20"


@pytest.mark.req("REQ_1011")
@pytest.mark.parametrize("compression", ["zstd", "lz4", "none"])
def test_compression(tmp_path, compression):
    out = tmp_path / f"{compression}.mcap"
    with Node() as node:
        w = ChannelWriter(node, ChannelDescriptor("c", Direction.OUTBOUND, max_payload=4096,
                                                  buffer_size=32))
        with Recorder(out, ["c.out"], compression=compression) as rec:
            for _ in range(10):
                w.send(b"z" * 4000)
            wait_for(lambda: rec.stats().written == 10)
    with open(out, "rb") as f:
        reader = make_reader(f)
        chunks = reader.get_summary().chunk_indexes
        assert {c.compression for c in chunks} == {"" if compression == "none" else compression}
        assert [m.data for _s, _c, m in reader.iter_messages()] == [b"z" * 4000] * 10


@pytest.mark.req("REQ_1012")
def test_overflow_is_counted_and_written_as_a_gap(tmp_path):
    out = tmp_path / "o.mcap"
    with Node() as node:
        w = ChannelWriter(node, ChannelDescriptor("fast", Direction.OUTBOUND, buffer_size=4))
        item = RecorderItem(node, list_channels(node), out)
        for i in range(30):  # the item does not run meanwhile: its queue of 4 overflows
            w.send(b"%d" % i)
        item.execute(None)
        stats = item.stats().channel("fast.out")
        item.finish()
    assert stats.written == 4 and stats.overflow == 26 and stats.gaps == 1
    info = read_info(out)
    (ch,) = info.channels
    assert (ch.messages, ch.gaps, ch.overflow, ch.source_lost) == (4, 1, 26, 0)
    assert info.metadata[fmt.META_STATS]["fast.out:overflow"] == "26"


@pytest.mark.req("REQ_1012")
def test_a_gap_in_the_source_sequence_is_recorded_as_a_gap(tmp_path):
    out = tmp_path / "g.mcap"
    spec = ChannelDescriptor("link", Direction.INBOUND).channel_spec()
    with Node() as node:
        pub = node.publisher(spec)
        item = RecorderItem(node, list_channels(node), out)
        for seq in (1, 2, 5, 6):  # a gateway lost 3 and 4 on its link
            pub.send_copy(envelope.encode(b"x", codec_id=0, sequence=seq))
        item.execute(None)
        stats = item.stats().channel("link.in")
        item.finish()
    assert (stats.written, stats.source_lost, stats.overflow, stats.gaps) == (4, 2, 0, 1)
    with open(out, "rb") as f:
        gaps = [fmt.parse_gap(m.data) for _s, c, m in make_reader(f).iter_messages()
                if c.topic == fmt.GAP_TOPIC]
    assert gaps == [{"channel": "link.in", "cause": "source", "after_sequence": 2, "missing": 2}]


@pytest.mark.req("REQ_1010")
def test_recorder_refuses_nothing_to_record_and_non_envelope_channels(tmp_path):
    with Node() as node:
        with pytest.raises(RecordingError, match="nothing to record"):
            Recorder(tmp_path / "x.mcap", []).start()
        node.publisher(ChannelSpec("ints", BytesPayload(8)))
        with pytest.raises(RecordingError, match=r"no channel 'missing\.out'"):
            Recorder(tmp_path / "x.mcap", ["missing.out"]).start()
        with pytest.raises(RecordingError, match=r"not one of"):
            RecorderItem(node, list_channels(node), tmp_path / "y.mcap", compression="bz2")


@pytest.mark.req("REQ_1013")
def test_a_glob_picks_up_channels_that_appear_after_the_start(tmp_path):
    out = tmp_path / "late.mcap"
    with Node() as node, Recorder(out, ["*.out"], rescan_interval=0.05) as rec:
        assert rec.recorded == []
        early = ChannelWriter(node, ChannelDescriptor("late", Direction.OUTBOUND, codec="json",
                                                      buffer_size=32))
        wait_for(lambda: rec.recorded == ["late.out"], what="the new channel recorded")
        for i in range(5):
            early.send({"i": i})
        wait_for(lambda: rec.stats().written == 5, what="5 messages")
        second = ChannelWriter(node, ChannelDescriptor("later", Direction.OUTBOUND, buffer_size=32))
        wait_for(lambda: "later.out" in rec.recorded, what="the second channel recorded")
        second.send(b"x")
        wait_for(lambda: rec.stats().written == 6, what="6 messages")
    info = read_info(out)
    assert {c.topic: c.messages for c in info.channels} == {"late.out": 5, "later.out": 1}
    assert all(c.gaps == 0 for c in info.channels)


@pytest.mark.req("REQ_1014")
def test_splitting_by_size_gives_complete_files_in_order(tmp_path):
    out = tmp_path / "split.mcap"
    with Node() as node:
        w = ChannelWriter(node, ChannelDescriptor("s", Direction.OUTBOUND, max_payload=2048,
                                                  buffer_size=256))
        item = RecorderItem(node, list_channels(node), out, compression="none",
                            flush_interval=1e-6, split_bytes=10_000)  # flush at every run
        for batch in range(6):
            for i in range(5):
                w.send(bytes([batch * 5 + i]) * 1000)
            item.execute(None)
        item.finish()
        files = item.stats().files
    assert len(files) >= 3 and [f.name for f in files[:2]] == ["split_000.mcap", "split_001.mcap"]
    payloads = []
    for f in files:
        summary, messages, metadata, _header = _read(f)
        assert summary is not None and metadata[fmt.META_RECORDING]["part"] == str(files.index(f))
        payloads += [m.data[0] for t, m in messages if t == "s.out"]
    assert payloads == list(range(30))


@pytest.mark.req("REQ_1012")
def test_a_publisher_starting_after_the_recorder_owes_it_every_sample(tmp_path):
    out = tmp_path / "owed.mcap"
    with Node() as node:
        first = ChannelWriter(node, ChannelDescriptor("owed", Direction.OUTBOUND, buffer_size=4))
        item = RecorderItem(node, list_channels(node), out)
        for i in range(10):  # the first send comes after the recorder's subscriber exists
            first.send(b"%d" % i)
        item.execute(None)
        late = ChannelWriter(node, ChannelDescriptor("owed", Direction.OUTBOUND, buffer_size=4))
        for i in range(3):
            late.send(b"late %d" % i)
        item.execute(None)
        stats = item.stats().channel("owed.out")
        item.finish()
    # 10 sent, 4 kept by the queue: 6 overflowed; the second writer's 3 all arrived
    assert (stats.written, stats.overflow, stats.source_lost, stats.gaps) == (7, 6, 0, 1)


@pytest.mark.req("REQ_1013", "REQ_1018")
def test_an_item_in_a_host_takes_on_new_channels_from_its_own_runs(tmp_path):
    out = tmp_path / "hosted.mcap"
    with Node() as node:
        item = RecorderItem(node, [], out, patterns=["*.out"], rescan_interval=1e-6, rotate=True)
        assert item.path.name == "hosted_000.mcap"  # rotate: always numbered
        w = ChannelWriter(node, ChannelDescriptor("new", Direction.OUTBOUND, buffer_size=16))
        item.execute(None)  # no item can be added to a running host: the run rescans
        assert item.recorded == ["new.out"]
        for i in range(3):
            w.send(b"%d" % i)
        item.execute(None)
        item.finish()
        again = RecorderItem(node, list_channels(node), out, rotate=True)
        again.finish()
    assert item.stats().channel("new.out").written == 3
    assert again.path.name == "hosted_001.mcap"  # the next incarnation: the next file
    assert [c.messages for c in read_info(item.path).channels] == [3]


ATTRS_CODEC = "cattrs-json:taktora.transport.envelope.EnvelopeHeader"  # any attrs class


@pytest.mark.req("REQ_1017", "REQ_1010")
def test_the_system_file_names_the_attrs_class_of_a_cattrs_channel(tmp_path):
    system = tmp_path / "sys.toml"
    system.write_text(f'name = "typed"\n\n[[channels]]\nname = "hdr"\ndirection = "outbound"\n'
                      f'codec = "{ATTRS_CODEC}"\n\n[[hosts]]\nname = "app"\n\n[[hosts.items]]\n'
                      'name = "w"\nfactory = "app_items:make_writer"\ntrigger = { every_s = 1 }\n')
    out = tmp_path / "typed.mcap"
    with Node() as node:
        w = ChannelWriter(node, ChannelDescriptor("hdr", Direction.OUTBOUND, codec=ATTRS_CODEC,
                                                  buffer_size=8))
        item = RecorderItem(node, list_channels(node), out, config=system)
        w.send(envelope.EnvelopeHeader(codec_id=1, payload_len=2, sequence=3, timestamp_ns=4))
        item.execute(None)
        item.finish()
    summary, messages, metadata, _header = _read(out)
    (channel,) = [c for c in summary.channels.values() if c.topic == "hdr.out"]
    schema = summary.schemas[channel.schema_id]
    assert channel.message_encoding == "json" and channel.metadata[fmt.K_CODEC] == ATTRS_CODEC
    assert schema.encoding == "jsonschema" and schema.name == f"taktora.codec.{ATTRS_CODEC}"
    assert json.loads(schema.data)["taktora_class"] == "taktora.transport.envelope.EnvelopeHeader"
    assert json.loads(messages[0][1].data)["sequence"] == 3
    assert metadata[fmt.META_SYSTEM]["name"] == "typed"
