"""Recording and replay throughput: the mcap writer alone against taktora's recorder, and the
player's timing.

Cases: mcap_raw_write_64B / _1MiB (mcap Writer, zstd, to a file: the floor),
taktora_record_64B / _1MiB (a publisher process -> iceoryx2 (BLOCK policy, so nothing is
dropped and the publisher runs at the recorder's pace) -> Recorder thread -> the same kind of
file), taktora_replay_64B (a 1 kHz recording replayed at rate 1.0; p50/p99 of each message's
send time against its deadline). Fields: msgs_per_s, mb_per_s, dropped, n; p50_us / p99_us
for replay. Targets: record >= 0.7x the raw writer, 0 dropped; replay p99 <= 1 ms.

The publisher sends envelopes encoded once (only the sequence is rewritten per send) through
the transport's Publisher, so that it is not what limits the pipeline: ChannelWriter.send
costs ~3.5 us per 64 B message here (encode, CRC, loan, send, notify), more than the raw
writer's ~2.3 us. ``publisher_msgs_per_s`` is what the publisher managed alone while the
recorder ran. Each throughput case runs REPEAT times and reports its best run (a shared,
noisy machine slows runs down, it never speeds one up); the record rate is timed from the
first recorded message to the last, so process start-up is not in it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
from mcap.writer import CompressionType, Writer
from taktora.connectors.model import ChannelDescriptor, Direction
from taktora.system.recording import Player, Recorder
from taktora.transport import Node, OverflowPolicy, envelope

MIB = 1 << 20
REPEAT = 3


def _descriptor(size: int) -> ChannelDescriptor:
    # a queue of ~1 ms of small samples: the recorder takes them in batches instead of being
    # woken for every one; 64 of the big ones (64 MiB of shared memory)
    return ChannelDescriptor("bench", Direction.OUTBOUND, codec="raw", max_payload=size,
                             buffer_size=1024 if size < 4096 else 64,
                             overflow=OverflowPolicy.BLOCK)


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = max(runs, key=lambda r: r["msgs_per_s"])
    return {**best, "runs_msgs_per_s": [r["msgs_per_s"] for r in runs],
            "dropped": sum(r["dropped"] for r in runs)}


def raw_write(case: str, size: int, n: int, tmp: Path) -> dict[str, Any]:
    data = os.urandom(size)  # incompressible, like the publisher's
    runs = []
    for _ in range(REPEAT):
        with open(tmp / f"{case}.mcap", "wb") as f:
            w = Writer(f, compression=CompressionType.ZSTD)
            w.start()
            ch = w.register_channel("bench.out", "taktora.raw", w.register_schema("s", "x", b""))
            t0, cpu0 = time.perf_counter(), time.thread_time()
            for i in range(n):
                now = time.time_ns()
                w.add_message(ch, now, data, now, i)
            w.finish()
            dt, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
        runs.append({"case": case, "n": n, "msgs_per_s": round(n / dt),
                     "mb_per_s": round(n * size / dt / 1e6, 1), "dropped": 0,
                     "cpu_us_per_msg": round(cpu / n * 1e6, 2)})
    return _best(runs)


def publish(size: int, n: int, warm: int, ready: Any, go: Any, rate: Any, started: Any) -> None:
    """Publisher process: ``warm`` then ``n`` raw envelopes of ``size`` B as fast as the
    recorder allows (encoded once; each send rewrites the sequence and copies the frame into
    a loan). The warm-up fills the queue once: both sides touch every shared-memory page
    before the clock starts."""
    with Node() as node:
        pub = node.publisher(_descriptor(size).channel_spec())
        frame = bytearray(envelope.encode(os.urandom(size), codec_id=0, sequence=1))
        pack_seq = struct.Struct("<Q").pack_into
        ready.set()
        go.wait()
        for seq in range(1, warm + 1):
            pack_seq(frame, envelope.SEQUENCE_OFFSET, seq)
            pub.send_copy(frame)
        started.value = t0 = time.monotonic()  # CLOCK_MONOTONIC: the same in every process
        for seq in range(warm + 1, warm + n + 1):
            pack_seq(frame, envelope.SEQUENCE_OFFSET, seq)
            pub.send_copy(frame)
        rate.value = n / (time.monotonic() - t0)
        time.sleep(0.2)  # let the last samples be read before the publisher goes


def _record_once(case: str, size: int, n: int, tmp: Path) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ready, go, rate, started = ctx.Event(), ctx.Event(), ctx.Value("d", 0.0), ctx.Value("d", 0.0)
    warm = _descriptor(size).buffer_size
    proc = ctx.Process(target=publish, args=(size, n, warm, ready, go, rate, started))
    proc.start()
    try:
        ready.wait(30)
        with Recorder(tmp / f"{case}.mcap", ["bench.out"]) as rec:
            (thread,) = [t for t in threading.enumerate() if t.name == "taktora-recorder"]
            assert thread.ident is not None
            clock = time.pthread_getcpuclockid(thread.ident)
            deadline = time.monotonic() + 120
            go.set()
            while started.value == 0.0 and time.monotonic() < deadline:  # warm-up running
                time.sleep(0.0002)
            cpu0 = time.clock_gettime(clock)
            while rec.stats().written < warm + n:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"recorded {rec.stats().written} of {warm + n}")
                time.sleep(0.0005)
            dt = time.monotonic() - started.value  # from the first send to the last record
            cpu = time.clock_gettime(clock) - cpu0
        stats = rec.stats().channel("bench.out")
    finally:
        proc.join(30)
    return {"case": case, "n": n, "msgs_per_s": round(n / dt),
            "mb_per_s": round(n * size / dt / 1e6, 1),
            "dropped": stats.overflow + stats.source_lost,
            "publisher_msgs_per_s": round(rate.value),
            "cpu_us_per_msg": round(cpu / n * 1e6, 2)}


def record(case: str, size: int, n: int, tmp: Path) -> dict[str, Any]:
    return _best([_record_once(case, size, n, tmp) for _ in range(REPEAT)])


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
    small, big = (10000, 100) if args.quick else (50000, 200)
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
                                       2000 if args.quick else 5000, tmp))
    ratios = {
        "record_64B_vs_raw": _bench.target(results, "taktora_record_64B", "mcap_raw_write_64B",
                                           ">=", 0.7, "msgs_per_s"),
        "record_1MiB_vs_raw": _bench.target(results, "taktora_record_1MiB",
                                            "mcap_raw_write_1MiB", ">=", 0.7, "msgs_per_s"),
        # CPU per message of the recorder thread against the raw writer's (load-independent):
        # what the recorder costs, whatever else the machine runs
        "record_64B_cpu_vs_raw": _bench.target(results, "taktora_record_64B",
                                               "mcap_raw_write_64B", "<=", 1.43,
                                               "cpu_us_per_msg"),
    }
    _bench.write("record", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
