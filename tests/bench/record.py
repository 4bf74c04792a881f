"""Recording and replay throughput: the mcap writer alone against taktora's recorder, and the
player's timing.

Cases: mcap_raw_write_64B / _1MiB (mcap Writer, zstd, to a file: the floor),
taktora_record_64B / _1MiB (a publisher process -> iceoryx2 (BLOCK policy, so nothing is
dropped and the publisher runs at the recorder's pace) -> Recorder thread -> the same kind of
file), taktora_replay_64B (a 1 kHz recording replayed at rate 1.0; p50/p99 of each message's
send time against its deadline). Fields: msgs_per_s, mb_per_s, dropped, n; p50_us / p99_us
for replay. Targets: record >= 0.7x the raw writer, 0 dropped; replay p99 <= 1 ms.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
from mcap.writer import CompressionType, Writer
from taktora.connectors.channel import ChannelWriter
from taktora.connectors.model import ChannelDescriptor, Direction
from taktora.system.recording import Player, Recorder
from taktora.transport import Node, OverflowPolicy

MIB = 1 << 20


def _descriptor(size: int) -> ChannelDescriptor:
    return ChannelDescriptor("bench", Direction.OUTBOUND, codec="raw", max_payload=size,
                             buffer_size=64, overflow=OverflowPolicy.BLOCK)


def raw_write(case: str, size: int, n: int, tmp: Path) -> dict[str, Any]:
    data = os.urandom(size)  # incompressible, like the publisher's
    path = tmp / f"{case}.mcap"
    with open(path, "wb") as f:
        w = Writer(f, compression=CompressionType.ZSTD)
        w.start()
        ch = w.register_channel("bench.out", "taktora.raw", w.register_schema("s", "x", b""))
        t0 = time.perf_counter()
        for i in range(n):
            now = time.time_ns()
            w.add_message(ch, now, data, now, i)
        w.finish()
        dt = time.perf_counter() - t0
    return {"case": case, "n": n, "msgs_per_s": round(n / dt), "mb_per_s": round(n * size / dt / 1e6, 1),
            "dropped": 0}


def publish(size: int, n: int, ready: Any, go: Any) -> None:
    """Publisher process: ``n`` raw envelopes of ``size`` B as fast as the recorder allows."""
    with Node() as node:
        w = ChannelWriter(node, _descriptor(size))
        data = os.urandom(size)
        ready.set()
        go.wait()
        for _ in range(n):
            w.send(data)
        time.sleep(0.2)  # let the last samples be read before the publisher goes


def record(case: str, size: int, n: int, tmp: Path) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=publish, args=(size, n, ready, go))
    proc.start()
    try:
        ready.wait(30)
        with Recorder(tmp / f"{case}.mcap", ["bench.out"]) as rec:
            t0 = time.perf_counter()
            go.set()
            while rec.stats().written < n:
                if time.perf_counter() - t0 > 120:
                    raise TimeoutError(f"recorded {rec.stats().written} of {n}")
                time.sleep(0.001)
            dt = time.perf_counter() - t0
        stats = rec.stats().channel("bench.out")
    finally:
        proc.join(30)
    return {"case": case, "n": n, "msgs_per_s": round(n / dt), "mb_per_s": round(n * size / dt / 1e6, 1),
            "dropped": stats.overflow + stats.source_lost}


def replay(case: str, n: int, tmp: Path) -> dict[str, Any]:
    path = tmp / f"{case}.mcap"
    with open(path, "wb") as f:  # a 1 kHz recording of 64 B samples, written directly
        w = Writer(f)
        w.start(profile="taktora")
        ch = w.register_channel("replay.out", "taktora.raw", w.register_schema("s", "x", b""),
                                {"taktora.codec_id": "0"})
        base = time.time_ns()
        for i in range(n):
            w.add_message(ch, base + i * 1_000_000, bytes(64), base + i * 1_000_000, i)
        w.finish()
    with Player(path, rate=1.0) as player:
        player.open()
        report = player.run()
    return _bench.summarize(case, (x / 1e3 for x in report.lateness_ns), dropped=0,
                            msgs_per_s=round(n / (n / 1000.0)))


def main() -> None:
    args = _bench.parse_args(__doc__ or "")
    _bench.private_prefix()
    small, big = (2000, 30) if args.quick else (20000, 200)
    results = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        results.append(_bench.run_case("mcap_raw_write_64B", raw_write, "mcap_raw_write_64B", 64,
                                       small, tmp))
        results.append(_bench.run_case("mcap_raw_write_1MiB", raw_write, "mcap_raw_write_1MiB",
                                       MIB, big, tmp))
        results.append(_bench.run_case("taktora_record_64B", record, "taktora_record_64B", 64,
                                       small, tmp))
        results.append(_bench.run_case("taktora_record_1MiB", record, "taktora_record_1MiB", MIB,
                                       big, tmp))
        results.append(_bench.run_case("taktora_replay_64B", replay, "taktora_replay_64B",
                                       small // 4, tmp))
    ratios = {
        "record_64B_vs_raw": _bench.target(results, "taktora_record_64B", "mcap_raw_write_64B",
                                           ">=", 0.7, "msgs_per_s"),
        "record_1MiB_vs_raw": _bench.target(results, "taktora_record_1MiB",
                                            "mcap_raw_write_1MiB", ">=", 0.7, "msgs_per_s"),
    }
    _bench.write("record", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
