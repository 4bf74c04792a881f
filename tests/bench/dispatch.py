"""Dispatch latency of 64-byte samples: a hand-written iceoryx2 WaitSet loop against taktora.

Cases (in-process, publisher in a thread of this process; cross-process, a spawned publisher
process): raw_waitset_64B[_xproc] (WaitSet + subscriber by hand) and
taktora_dispatch_64B[_xproc] (the same through Executor + on_data). Latency = receive time -
the send timestamp carried in the payload. alloc_bytes_per_dispatch = bytes retained by the
dispatch path (tracemalloc, all files) over a steady-state window / dispatches.
"""

from __future__ import annotations

import array
import multiprocessing as mp
import struct
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
import iceoryx2 as iox
from taktora.actors import Executor, item, on_data
from taktora.transport import BytesPayload, ChannelSpec, Node

SIZE = 64
GAP_S = 0.0005


def _spec(name: str) -> ChannelSpec:
    return ChannelSpec(name, payload=BytesPayload(max_size=SIZE), buffer_size=16)


def publish(name: str, count: int, ready: Any, go: Any) -> None:
    """Send ``count`` samples with a monotonic timestamp, GAP_S apart (thread or process)."""
    node = Node()
    pub = node.publisher(_spec(name))
    buf = bytearray(SIZE)
    ready.set()
    go.wait()
    clock = time.monotonic_ns
    for _ in range(count):
        struct.pack_into("<q", buf, 0, clock())
        pub.send_copy(bytes(buf))
        time.sleep(GAP_S)
    time.sleep(0.1)
    node.close()


def _start_publisher(name: str, count: int, xproc: bool) -> tuple[Any, Any]:
    if xproc:
        ctx = mp.get_context("spawn")
        ready, go = ctx.Event(), ctx.Event()
        proc: Any = ctx.Process(target=publish, args=(name, count, ready, go))
    else:
        ready, go = threading.Event(), threading.Event()
        proc = threading.Thread(target=publish, args=(name, count, ready, go))
    proc.start()
    ready.wait(30)
    return proc, go


def raw_case(name: str, count: int, xproc: bool) -> dict[str, Any]:
    node = Node()
    sub = node.subscriber(_spec(name))
    ws = (iox.WaitSetBuilder.new().signal_handling_mode(iox.SignalHandlingMode.Disabled)
          .create(iox.ServiceType.Ipc))
    guard = ws.attach_notification(sub.listener)
    aid = iox.WaitSetAttachmentId.from_guard(guard)
    table = {aid: sub}
    lat = array.array("q", bytes(8 * (count + 64)))  # pre-allocated: recording retains nothing
    k = 0
    clock = time.monotonic_ns
    proc, go = _start_publisher(name, count, xproc)
    warm = count // 5
    mem0 = 0
    n0 = 0
    go.set()
    while k < count:
        ids, _ = ws.wait_and_process_with_timeout(iox.Duration.from_millis(2000))
        if not ids:
            break
        for i in ids:
            s = table[i]
            s.consume_wakeups()
            while (sample := s.receive()) is not None:
                with sample:
                    lat[k] = clock() - struct.unpack_from("<q", sample.payload, 0)[0]
                    k += 1
        if k >= warm and not mem0:
            tracemalloc.start()
            mem0 = tracemalloc.get_traced_memory()[0] or 1
            n0 = k
    grown = tracemalloc.get_traced_memory()[0] - mem0 if mem0 else 0
    tracemalloc.stop()
    proc.join()
    guard.delete()
    ws.delete()
    node.close()
    n = k - n0
    return _bench.summarize(f"raw_waitset_64B{'_xproc' if xproc else ''}",
                            (v / 1000 for v in lat[warm:k]),
                            alloc_bytes_per_dispatch=round(max(0, grown) / max(1, n), 3))


def taktora_case(name: str, count: int, xproc: bool) -> dict[str, Any]:
    node = Node()
    sub = node.subscriber(_spec(name))
    lat = array.array("q", bytes(8 * (count + 64)))
    pos = [0]
    clock = time.monotonic_ns
    ex = Executor("bench", signals=False)

    def on_sample(ctx: Any) -> None:
        while (sample := sub.receive()) is not None:
            with sample:
                lat[pos[0]] = clock() - struct.unpack_from("<q", sample.payload, 0)[0]
                pos[0] += 1
        if pos[0] >= count:
            ctx.stop()

    ex.add(item(on_sample, [on_data(sub)], name="sink"))
    proc, go = _start_publisher(name, count, xproc)
    warm = count // 5
    go.set()
    while pos[0] < warm:
        ex.run_once(timeout=2.0)
    n0 = pos[0]
    tracemalloc.start()
    mem0 = tracemalloc.get_traced_memory()[0]
    ex.run_for(count * GAP_S * 4 + 5)
    grown = tracemalloc.get_traced_memory()[0] - mem0
    tracemalloc.stop()
    proc.join()
    ex.close()
    node.close()
    n = pos[0] - n0
    return _bench.summarize(f"taktora_dispatch_64B{'_xproc' if xproc else ''}",
                            (v / 1000 for v in lat[warm:pos[0]]),
                            alloc_bytes_per_dispatch=round(max(0, grown) / max(1, n), 3))


def main() -> None:
    args = _bench.parse_args(__doc__ or "dispatch")
    _bench.private_prefix()
    count = 4000 if args.quick else 20000
    results = []
    for xproc in (False, True):
        tag = "x" if xproc else "i"
        results.append(raw_case(f"bench/raw_{tag}", count, xproc))
        results.append(taktora_case(f"bench/tk_{tag}", count, xproc))
    ratios = {
        "taktora_vs_raw_p50": _bench.ratio(results, "taktora_dispatch_64B", "raw_waitset_64B"),
        "taktora_vs_raw_p50_xproc": _bench.ratio(results, "taktora_dispatch_64B_xproc",
                                                 "raw_waitset_64B_xproc"),
    }
    _bench.write("dispatch", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
