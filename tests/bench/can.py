"""CAN throughput, CPU and latency: python-can alone against the taktora CAN gateway path.

Both cases run on python-can's ``virtual`` interface (in-process; this machine has no vcan)
with 8-byte classic frames carrying the send time (CLOCK_MONOTONIC, valid across processes),
and a flow-control window of ``WINDOW`` frames in flight (no queue ever overflows, so nothing
is lost and every frame is timed).

- ``python_can_raw``: a sender thread and a receiver (main thread) on two Bus objects of one
  virtual channel, python-can only.
- ``taktora_can_gateway``: an application process (spawned; a ChannelWriter thread and a
  ChannelReader) -> iceoryx2 -> Dispatcher + CanConnector in this process (interface ``a``
  sends, interface ``b`` on the same virtual channel receives and demultiplexes) -> iceoryx2
  -> the application's reader.

Fields: frames_per_s (received frames / wall time from first send to last receive),
cpu_us_per_frame (CPU time of every process involved / frames), p50_us / p99_us (one-way
latency, send -> application receive), n.
"""

from __future__ import annotations

import array
import multiprocessing as mp
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench

# this file is called can.py: drop its folder from the path so that ``import can`` is python-can
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE]
import can  # noqa: E402
from taktora.connectors import (  # noqa: E402
    ChannelDescriptor,
    ChannelReader,
    ChannelWriter,
    Direction,
    Dispatcher,
)
from taktora.connectors.can import CanBusConfig, CanConnector, can_routing  # noqa: E402
from taktora.transport import Node  # noqa: E402

WINDOW = 64
CAN_ID = 0x123
OUT = ChannelDescriptor("bench/can/tx", Direction.OUTBOUND, max_payload=8, buffer_size=256,
                        crc=False, routing=can_routing("a", CAN_ID))
IN = ChannelDescriptor("bench/can/rx", Direction.INBOUND, max_payload=8, buffer_size=256,
                       crc=False, routing=can_routing("b", CAN_ID))


def raw_case(count: int) -> dict[str, Any]:
    chan = f"bench-raw-{time.monotonic_ns()}"
    tx = can.Bus(interface="virtual", channel=chan)
    rx = can.Bus(interface="virtual", channel=chan)
    window = threading.Semaphore(WINDOW)
    clock = time.monotonic_ns
    lat = array.array("q", bytes(8 * count))

    def sender() -> None:
        buf = bytearray(8)
        for _ in range(count):
            window.acquire()
            struct.pack_into("<q", buf, 0, clock())
            tx.send(can.Message(arbitration_id=CAN_ID, is_extended_id=False, data=buf))

    cpu0, t0 = time.process_time(), time.monotonic()
    thread = threading.Thread(target=sender)
    thread.start()
    n = 0
    while n < count:
        msg = rx.recv(2.0)
        if msg is None:
            break
        lat[n] = clock() - struct.unpack_from("<q", msg.data, 0)[0]
        n += 1
        window.release()
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    thread.join()
    tx.shutdown()
    rx.shutdown()
    return _bench.summarize("python_can_raw", (v / 1000 for v in lat[:n]),
                            frames_per_s=round(n / wall), cpu_us_per_frame=round(cpu * 1e6 / n, 2))


def app(prefix: str, count: int, ready: Any, go: Any, results: Any) -> None:
    """Spawned application: writes ``count`` timestamped frames, reads them back."""
    node = Node("bench-can-app", prefix=prefix)
    writer: ChannelWriter[Any] = ChannelWriter(node, OUT)
    reader: ChannelReader[Any] = ChannelReader(node, IN)
    window = threading.Semaphore(WINDOW)
    clock = time.monotonic_ns
    lat = array.array("q", bytes(8 * count))
    ready.set()
    go.wait()

    def send_all() -> None:
        buf = bytearray(8)
        for _ in range(count):
            window.acquire()
            struct.pack_into("<q", buf, 0, clock())
            writer.send(buf)

    cpu0, t0 = time.process_time(), time.monotonic()
    thread = threading.Thread(target=send_all)
    thread.start()
    n = 0
    while n < count:
        got = reader.recv(2.0)
        if got is None:
            break
        lat[n] = clock() - struct.unpack_from("<q", got.value, 0)[0]
        n += 1
        window.release()
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    if n < count:  # unblock the writer so that it ends
        for _ in range(count):
            window.release()
    thread.join()
    results.put((n, wall, cpu, lat[:n].tobytes(), reader.stats().lost))
    node.close()


def gateway_case(prefix: str, count: int) -> dict[str, Any]:
    chan = f"bench-gw-{time.monotonic_ns()}"
    conn = CanConnector([CanBusConfig(name="a", interface="virtual", channel=chan),
                         CanBusConfig(name="b", interface="virtual", channel=chan)], name="bench")
    disp = Dispatcher(prefix, conn, [OUT, IN], name="bench-can-gw", poll_s=0.05).start()
    ctx = mp.get_context("spawn")
    ready, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=app, args=(prefix, count, ready, go, results))
    proc.start()
    ready.wait(60)
    time.sleep(0.2)
    cpu0 = time.process_time()
    go.set()
    n, wall, app_cpu, lat_bytes, lost = results.get(timeout=600)
    gw_cpu = time.process_time() - cpu0
    proc.join()
    stats = conn.stats()
    disp.stop()
    lat = array.array("q")
    lat.frombytes(lat_bytes)
    return _bench.summarize("taktora_can_gateway", (v / 1000 for v in lat),
                            frames_per_s=round(n / wall),
                            cpu_us_per_frame=round((app_cpu + gw_cpu) * 1e6 / max(1, n), 2),
                            gateway_cpu_us_per_frame=round(gw_cpu * 1e6 / max(1, n), 2),
                            app_cpu_us_per_frame=round(app_cpu * 1e6 / max(1, n), 2),
                            lost=lost + count - n, connector_drops=stats["drops"])


def main() -> None:
    args = _bench.parse_args(__doc__ or "can")
    prefix = _bench.private_prefix("tkbcan")
    count = 5_000 if args.quick else 50_000
    results = [raw_case(count), gateway_case(prefix, count)]
    ratios = {
        "gateway_vs_raw_frames_per_s": _bench.ratio(results, "taktora_can_gateway",
                                                    "python_can_raw", "frames_per_s"),
        "gateway_vs_raw_cpu_us_per_frame": _bench.ratio(results, "taktora_can_gateway",
                                                        "python_can_raw", "cpu_us_per_frame"),
        "gateway_vs_raw_p50": _bench.ratio(results, "taktora_can_gateway", "python_can_raw"),
    }
    _bench.write("can", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
