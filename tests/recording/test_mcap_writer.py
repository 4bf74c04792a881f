"""The recorder's own MCAP writer, read back by the mcap package: indexed, streamed, summary."""

from __future__ import annotations

import os

import pytest
from mcap.reader import make_reader
from mcap.stream_reader import StreamReader
from taktora.system.recording.mcap_writer import ChunkWriter


@pytest.mark.req("REQ_1010", "REQ_1011")
@pytest.mark.parametrize("compression", ["zstd", "lz4", ""])
def test_files_of_the_chunk_writer_read_back_with_the_mcap_package(tmp_path, compression):
    path = tmp_path / "w.mcap"
    big = os.urandom(3000)  # larger than a chunk: written straight from its buffer
    rows = []
    with open(path, "wb") as f:
        w = ChunkWriter(f, chunk_size=2048, compression=compression)
        w.start("taktora", "test")
        sid = w.register_schema("s", "jsonschema", b"{}")
        a = w.register_channel("a", "json", sid, {"k": "v"})
        b = w.register_channel("b", "taktora.raw", 0)
        w.add_metadata("first", {"x": "1"})
        t = 1_000_000
        for i in range(40):
            ch, data = (b, memoryview(big)) if i % 7 == 3 else (a, b'{"i": %d}' % i)
            t += 10 if i != 20 else -5  # log time going back a little stays in order on read
            w.add_message(ch, t, data, t + 1, i)
            rows.append((ch, t, bytes(data), i))
            if i == 25:
                w.flush()
        w.add_metadata("last", {"y": "2"})
        w.finish()
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        got = [(c.id, m.log_time, m.data, m.sequence) for _s, c, m in reader.iter_messages(
            log_time_order=False)]
        metadata = {m.name: m.metadata for m in reader.iter_metadata()}
        assert reader.get_header().profile == "taktora"
    assert got == rows
    stats = summary.statistics
    assert stats.message_count == 40 and stats.channel_count == 2 and stats.schema_count == 1
    assert stats.message_start_time == min(r[1] for r in rows)
    assert stats.message_end_time == max(r[1] for r in rows)
    assert dict(stats.channel_message_counts) == {a: 34, b: 6}
    assert {c.compression for c in summary.chunk_indexes} == {compression}
    assert summary.channels[a].metadata == {"k": "v"} and metadata == {"first": {"x": "1"},
                                                                       "last": {"y": "2"}}
    with open(path, "rb") as f:  # the streaming reader (recovery's) checks every chunk's CRC
        records = list(StreamReader(f, skip_magic=False, validate_crcs=True).records)
    assert sum(type(r).__name__ == "Message" for r in records) == 40
