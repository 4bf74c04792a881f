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
- ``floor_can``: the taktora case's processes and threads written by hand with raw iceoryx2
  (``_floor``) and python-can, no taktora code: the application process (a sender thread
  publishing into iceoryx2, a receiver woken by its WaitSet) and, in this process, a bridge
  thread (WaitSet on the tx channel -> ``Bus.send`` on ``a``) and ``b``'s receive thread
  (``Bus.recv`` -> iceoryx2 publish + notify: python-can's own thread pushes, no queue).

Fields: frames_per_s (received frames / wall time from first send to last receive),
cpu_us_per_frame (CPU time of every process involved / frames), p50_us / p99_us (one-way
latency, send -> application receive), n.
"""

from __future__ import annotations

import array
import ctypes
import multiprocessing as mp
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
import _floor

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


FLOOR_TX, FLOOR_RX = "floor/can/tx.out", "floor/can/rx.in"


def floor_app(count: int, ready: Any, go: Any, results: Any) -> None:
    """Spawned application of ``floor_can``: raw iceoryx2 only (prefix from the environment)."""
    ports: list[Any] = [_floor.node("floor-can-app")]
    pub = _floor.Pub(ports[0], FLOOR_TX, 8)
    sub = _floor.Sub(ports[0], FLOOR_RX)
    waiter = _floor.Waiter([sub])
    ports += [pub, sub, waiter]
    window = threading.Semaphore(WINDOW)
    clock = time.monotonic_ns
    pack = struct.Struct("<q").pack
    lat = array.array("q", bytes(8 * count))
    ready.set()
    go.wait()

    def send_all() -> None:
        send = pub.send
        for _ in range(count):
            window.acquire()
            send(pack(clock()))

    cpu0, t0 = time.process_time(), time.monotonic()
    thread = threading.Thread(target=send_all)
    thread.start()
    n = 0
    while n < count:
        got = _floor.recv(sub, waiter, 2.0)
        if got is None:
            break
        lat[n] = clock() - struct.unpack_from("<q", got, 0)[0]
        n += 1
        window.release()
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    if n < count:
        for _ in range(count):
            window.release()
    thread.join()
    results.put((n, wall, cpu, lat[:n].tobytes()))
    _floor.close_all(ports)


def floor_case(count: int) -> dict[str, Any]:
    chan = f"bench-floor-{time.monotonic_ns()}"
    bus_a = can.Bus(interface="virtual", channel=chan)
    bus_b = can.Bus(interface="virtual", channel=chan)
    stop = _floor.Stop()
    node = _floor.node("floor-can-gw")
    sub = _floor.Sub(node, FLOOR_TX)
    pub = _floor.Pub(node, FLOOR_RX, 8)
    counts = {"sent": 0, "received": 0, "other_ids": 0}

    def outbound() -> None:  # iceoryx2 -> CAN, woken by the channel's listener
        waiter = _floor.Waiter([sub], stop)
        send, message, string_at = bus_a.send, can.Message, ctypes.string_at
        try:
            while not stop.is_set:
                waiter.wait(0.2)
                while (s := sub.take()) is not None:
                    send(message(arbitration_id=CAN_ID, is_extended_id=False,
                                 data=string_at(s.payload_ptr, s.header.number_of_elements)))
                    del s
                    counts["sent"] += 1
        finally:
            waiter.close()

    def inbound() -> None:  # CAN -> iceoryx2 on b's receive thread
        recv, send = bus_b.recv, pub.send
        while not stop.is_set:
            msg = recv(0.2)
            if msg is None:
                continue
            if msg.arbitration_id != CAN_ID:
                counts["other_ids"] += 1
                continue
            send(bytes(msg.data))
            counts["received"] += 1

    threads = [threading.Thread(target=outbound, name="floor-can-out"),
               threading.Thread(target=inbound, name="floor-can-b-rx")]
    for t in threads:
        t.start()
    ctx = mp.get_context("spawn")
    ready, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=floor_app, args=(count, ready, go, results))
    try:
        proc.start()
        if not ready.wait(60):
            raise RuntimeError("floor_can: application process did not start")
        time.sleep(0.2)
        cpu0 = time.process_time()
        go.set()
        n, wall, app_cpu, lat_bytes = results.get(timeout=600)
        gw_cpu = time.process_time() - cpu0
        proc.join(10)
    finally:
        if proc.is_alive():
            proc.kill()
        stop.set()
        for t in threads:
            t.join(5)
        _floor.close_all([node, sub, pub])
        stop.close()
        bus_a.shutdown()
        bus_b.shutdown()
    lat = array.array("q")
    lat.frombytes(lat_bytes)
    return _bench.summarize("floor_can", (v / 1000 for v in lat),
                            frames_per_s=round(n / wall),
                            cpu_us_per_frame=round((app_cpu + gw_cpu) * 1e6 / max(1, n), 2),
                            gateway_cpu_us_per_frame=round(gw_cpu * 1e6 / max(1, n), 2),
                            app_cpu_us_per_frame=round(app_cpu * 1e6 / max(1, n), 2),
                            lost=count - n)


def main() -> None:
    args = _bench.parse_args(__doc__ or "can")
    prefix = _bench.private_prefix("tkbcan")
    count = 20_000 if args.quick else 50_000
    results = [_bench.run_case("python_can_raw", raw_case, count),
               _bench.run_case("floor_can", floor_case, count),
               _bench.run_case("taktora_can_gateway", gateway_case, prefix, count)]
    ratios = {
        "gateway_vs_floor_cpu_us_per_frame": _bench.target(
            results, "taktora_can_gateway", "floor_can", "<=", 1.3, "cpu_us_per_frame"),
        "gateway_vs_floor_frames_per_s": _bench.target(
            results, "taktora_can_gateway", "floor_can", ">=", 0.8, "frames_per_s"),
        "gateway_vs_raw_frames_per_s_target": _bench.target(
            results, "taktora_can_gateway", "python_can_raw", ">=", 0.5, "frames_per_s"),
        "floor_vs_raw_frames_per_s": _bench.ratio(results, "floor_can", "python_can_raw",
                                                  "frames_per_s"),
        "floor_vs_raw_cpu_us_per_frame": _bench.ratio(results, "floor_can", "python_can_raw",
                                                      "cpu_us_per_frame"),
        "gateway_vs_raw_frames_per_s": _bench.ratio(results, "taktora_can_gateway",
                                                    "python_can_raw", "frames_per_s"),
        "gateway_vs_raw_cpu_us_per_frame": _bench.ratio(results, "taktora_can_gateway",
                                                        "python_can_raw", "cpu_us_per_frame"),
        "gateway_vs_raw_p50": _bench.ratio(results, "taktora_can_gateway", "python_can_raw"),
    }
    _bench.write("can", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
