"""Zenoh round trip and throughput: plain eclipse-zenoh against taktora's zenoh gateway.

Process B (spawned, plain zenoh only) listens on a loopback endpoint: it echoes ``bench/ping``
on ``bench/pong`` and counts ``bench/tput``. Process A measures:

- ``zenoh_raw_64B`` / ``zenoh_raw_1MiB``: a zenoh publisher puts on bench/ping and a FIFO
  subscriber of bench/pong waits for the echo; latency = round trip / 2.
- ``taktora_zenoh_64B`` / ``taktora_zenoh_1MiB``: the app (a thread of A) writes a
  ChannelWriter, the dispatcher (threads of A) forwards through ZenohConnector, B echoes, the
  dispatcher wraps the echo and the app's ChannelReader gets it; latency = round trip / 2.
  The far side is the same plain echo, so the difference is taktora's side only (two
  iceoryx2 hops and two dispatcher threads per round trip).
- ``floor_zenoh_64B`` / ``floor_zenoh_1MiB``: the taktora cases' topology written by hand with
  raw iceoryx2 (``_floor``) and raw zenoh, no taktora code: the app (main thread of A)
  publishes into iceoryx2, a bridge thread woken by its WaitSet puts the bytes on bench/ping,
  B echoes, and A's zenoh subscriber callback publishes the echo straight into iceoryx2 (the
  push design of the rebuilt gateway: no inbound thread, no queue), where the app's WaitSet
  wakes; latency = round trip / 2.
- ``zenoh_raw_throughput_64B`` / ``taktora_zenoh_throughput_64B``: A sends N messages as fast as
  it can (congestion control BLOCK); B's msgs_per_s = delivered / (last - first arrival).
  The taktora app keeps at most WINDOW frames ahead of the dispatcher (a DROP_NEWEST channel of
  2048: nothing is refused). The BLOCK overflow policy cannot be used here: a blocked
  ``send`` holds the GIL inside iceoryx2, so a dispatcher in the same process never drains it
  (a deadlock, observed). ``taktora_zenoh_throughput_64B_xapp`` (extra) runs the app in its own
  process with the BLOCK policy, the gateway in this one - the usual deployment.

Fan-out of 1 MiB to 4 local consumer processes (a producer session in A listening on its own
endpoint puts a message stamped with CLOCK_MONOTONIC, waits until all 4 consumers have it,
then sends the next; ``p50_us`` / ``p99_us`` are the **last** consumer's latency per message,
``cpu_us_per_msg`` the CPU of every process of the case together):

- ``zenoh_fanout_1MiB_x4`` (peer design): 4 consumer processes, each with its own zenoh
  session connected to the producer and a callback subscriber taking the payload as bytes
  (``ZBytes.to_bytes()``: zenoh-python 1.x exports no buffer, so that copy is the only way
  to read it);
- ``taktora_fanout_1MiB_x4``: one gateway process (ConnectorHost, connector "zenoh", one
  INBOUND channel) connected to the producer, and 4 consumer processes each with a zero-copy
  ChannelReader (``RawCodec(copy=False)``: a read-only view of the shared memory, no copy per
  consumer) on that channel (iceoryx2 shared memory, one zenoh transfer).

Each consumer stamps its latency when it has the payload and writes it (12 bytes) into one
pipe from its own thread; no ``multiprocessing.Queue`` feeder thread per consumer competes
with the wake-ups being measured.

Every process of the benchmark runs with fixed glibc malloc thresholds (:func:`steady_malloc`;
``ratios.steady_malloc`` says whether they were applied): without them 1 MiB cases are
bimodal, depending on which case ran before in the same process.

Run: ``.venv/bin/python tests/bench/zenoh.py [--quick] --json OUT``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

# this file is named zenoh.py: keep its directory off sys.path while eclipse-zenoh is imported
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
import zenoh  # noqa: E402

sys.path.append(str(_HERE))
import _bench  # noqa: E402
import _floor  # noqa: E402

ONE_MIB = 1 << 20
WINDOW = 1024  # taktora throughput: most frames in flight between the app and the dispatcher


def _config(listen: str | None = None, connect: str | None = None) -> zenoh.Config:
    cfg = zenoh.Config()
    cfg.insert_json5("mode", '"peer"')
    cfg.insert_json5("scouting/multicast/enabled", "false")
    cfg.insert_json5("transport/shared_memory/enabled", "false")  # as the gateway's
    if listen:
        cfg.insert_json5("listen/endpoints", json.dumps([listen]))
    if connect:
        cfg.insert_json5("connect/endpoints", json.dumps([connect]))
    return cfg


def far_side(listen: str, commands: Any, results: Any) -> None:
    """Process B: plain zenoh echo and counter."""
    session = zenoh.open(_config(listen=listen))
    pong = session.declare_publisher("bench/pong", congestion_control=zenoh.CongestionControl.BLOCK,
                                     express=True)
    state = {"n": 0, "first": 0.0, "last": 0.0}

    def count(_s: zenoh.Sample) -> None:
        now = time.perf_counter()
        if state["n"] == 0:
            state["first"] = now
        state["n"] += 1
        state["last"] = now

    subs = [session.declare_subscriber("bench/ping", zenoh.handlers.Callback(
                lambda s: pong.put(s.payload.to_bytes()), indirect=False)),
            session.declare_subscriber("bench/tput", zenoh.handlers.Callback(count, indirect=False))]
    results.put("ready")
    while True:
        cmd = commands.get()
        if cmd == "stop":
            break
        if cmd == "reset":
            state.update(n=0, first=0.0, last=0.0)
            results.put("reset")
        elif cmd == "report":
            results.put((state["n"], state["last"] - state["first"]))
    for s in subs:
        s.undeclare()
    session.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark set-up timed out")
        time.sleep(0.01)


def raw_latency(ep: str, size: int, count: int, case: str) -> dict[str, Any]:
    session = zenoh.open(_config(connect=ep))
    pub = session.declare_publisher("bench/ping", congestion_control=zenoh.CongestionControl.BLOCK,
                                    express=True)
    sub = session.declare_subscriber("bench/pong", zenoh.handlers.FifoChannel(64))
    payload = bytes(size)
    _wait(lambda: len(list(session.info.peers_zid())) > 0)
    while True:  # until routes exist both ways
        pub.put(payload)
        time.sleep(0.05)
        if sub.try_recv() is not None:
            break
    while sub.try_recv() is not None:
        pass
    lat = []
    for _ in range(count):
        t0 = time.perf_counter()
        pub.put(payload)
        sub.recv()
        lat.append((time.perf_counter() - t0) * 1e6 / 2)
    sub.undeclare()
    pub.undeclare()
    session.close()
    return _bench.summarize(case, lat[count // 10:], size=size)


def floor_latency(ep: str, size: int, count: int, case: str) -> dict[str, Any]:
    """Raw iceoryx2 + raw zenoh, the taktora case's hops and threads (see the module doc)."""
    import ctypes
    import threading

    base = f"floor/z{size}"
    session = zenoh.open(_config(connect=ep))
    zpub = session.declare_publisher("bench/ping", congestion_control=zenoh.CongestionControl.BLOCK,
                                     express=True)
    stop = _floor.Stop()
    ready = threading.Event()
    ports: list[Any] = [_floor.node("floor-zenoh-app")]
    gw: list[Any] = [_floor.node("floor-zenoh-gw")]
    inbound = _floor.Pub(gw[0], f"{base}/pong.in", size, buffer=4)
    gw.append(inbound)

    def bridge_out() -> None:  # iceoryx2 -> zenoh (the gateway's outbound thread)
        sub = _floor.Sub(gw[0], f"{base}/ping.out", buffer=4)
        waiter = _floor.Waiter([sub], stop)
        put, string_at = zpub.put, ctypes.string_at
        ready.set()
        try:
            while not stop.is_set:
                waiter.wait(0.2)
                while (s := sub.take()) is not None:
                    put(string_at(s.payload_ptr, s.header.number_of_elements))
                    del s
        finally:
            waiter.close()
            sub.close()

    send_in = inbound.send
    zsub = session.declare_subscriber("bench/pong", zenoh.handlers.Callback(
        lambda s: send_in(s.payload.to_bytes()), indirect=False))
    thread = threading.Thread(target=bridge_out, name="floor-zenoh-out", daemon=True)
    thread.start()
    try:
        ready.wait(10)
        pub = _floor.Pub(ports[0], f"{base}/ping.out", size, buffer=4)
        sub = _floor.Sub(ports[0], f"{base}/pong.in", buffer=4)
        waiter = _floor.Waiter([sub])
        ports += [pub, sub, waiter]
        _wait(lambda: len(list(session.info.peers_zid())) > 0)
        payload = bytes(size)
        while True:  # until routes exist both ways
            pub.send(payload)
            if _floor.recv(sub, waiter, 0.05) is not None:
                break
        while _floor.recv(sub, waiter, 0.1) is not None:
            pass
        lat = []
        lost = 0
        for _ in range(count):
            t0 = time.perf_counter()
            pub.send(payload)
            if _floor.recv(sub, waiter, 5.0) is None:
                lost += 1
                continue
            lat.append((time.perf_counter() - t0) * 1e6 / 2)
    finally:
        stop.set()
        thread.join(5)
        zsub.undeclare()
        zpub.undeclare()
        session.close()
        _floor.close_all(ports)
        _floor.close_all(gw)
        stop.close()
    return _bench.summarize(case, lat[count // 10:], size=size, lost=lost)


def _taktora(ep: str, size: int, tput: bool = False) -> tuple[Any, Any, Any, Any, Any]:
    from taktora.connectors import (
        ChannelDescriptor,
        ChannelReader,
        ChannelWriter,
        Congestion,
        Direction,
        Dispatcher,
        HealthState,
        OverflowPolicy,
        QoS,
        Routing,
    )
    from taktora.connectors.zenoh import ZenohConfig, ZenohConnector
    from taktora.transport import Node

    qos = QoS(congestion=Congestion.BLOCK, express=not tput)  # as the raw cases
    key = "bench/tput" if tput else "bench/ping"
    out = ChannelDescriptor(key, Direction.OUTBOUND, max_payload=max(size, 64),
                            buffer_size=2048 if tput else 4, qos=qos, crc=False,
                            overflow=OverflowPolicy.DROP_NEWEST if tput else OverflowPolicy.DROP_OLDEST,
                            routing=Routing("zenoh", key))
    back = ChannelDescriptor("bench/pong", Direction.INBOUND, max_payload=max(size, 64),
                             buffer_size=4, crc=False, routing=Routing("zenoh", "bench/pong"))
    conn = ZenohConnector(ZenohConfig(connect=(ep,)))
    disp = Dispatcher(None, conn, [out] if tput else [out, back], name="bench-gw",
                      poll_s=0.05).start()
    node = Node("bench-app")
    writer: Any = ChannelWriter(node, out)
    reader: Any = None if tput else ChannelReader(node, back)
    _wait(lambda: conn.health() is HealthState.UP)
    return disp, node, writer, reader, conn


def taktora_latency(ep: str, size: int, count: int, case: str) -> dict[str, Any]:
    disp, node, writer, reader, _ = _taktora(ep, size)
    payload = bytes(size)
    while True:
        writer.send(payload)
        if reader.recv(0.05) is not None:
            break
    while reader.recv(0.1) is not None:
        pass
    lat = []
    lost = 0
    for _ in range(count):
        t0 = time.perf_counter()
        writer.send(payload)
        got = reader.recv(5.0)
        if got is None:
            lost += 1
            continue
        lat.append((time.perf_counter() - t0) * 1e6 / 2)
    stats = disp.stats()
    node.close()
    disp.stop()
    return _bench.summarize(case, lat[count // 10:], size=size, lost=lost,
                            dropped=sum(stats.outbound_dropped.values())
                            + sum(stats.inbound_dropped.values()))


def _reset(commands: Any, results: Any) -> None:
    """Zero B's counter and wait until B did: a frame that arrived before the reset would
    otherwise be wiped from the count (seen as one frame lost)."""
    commands.put("reset")
    if results.get(timeout=10) != "reset":
        raise RuntimeError("far side did not confirm the reset")


def _report(commands: Any, results: Any, expect: int) -> tuple[int, float]:
    last = (-1, 0.0)
    same = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        commands.put("report")
        got = tuple(results.get(timeout=10))
        if got[0] >= expect:
            return got  # type: ignore[return-value]
        same = same + 1 if got == last else 0
        if same >= 5:  # nothing more for 1.5 s: the rest is lost
            return got  # type: ignore[return-value]
        last = got
        time.sleep(0.3)
    return last


def raw_throughput(ep: str, count: int, commands: Any, results: Any) -> dict[str, Any]:
    session = zenoh.open(_config(connect=ep))
    pub = session.declare_publisher("bench/tput", congestion_control=zenoh.CongestionControl.BLOCK)
    _wait(lambda: len(list(session.info.peers_zid())) > 0)
    time.sleep(0.3)
    payload = bytes(64)
    _reset(commands, results)
    t0 = time.perf_counter()
    for _ in range(count):
        pub.put(payload)
    send_s = time.perf_counter() - t0
    n, span = _report(commands, results, count)
    pub.undeclare()
    session.close()
    return {"case": "zenoh_raw_throughput_64B", "n": n, "sent": count,
            "msgs_per_s": round(n / span, 1) if span else None,
            "send_msgs_per_s": round(count / send_s, 1)}


def taktora_throughput(ep: str, count: int, commands: Any, results: Any) -> dict[str, Any]:
    disp, node, writer, _, _ = _taktora(ep, 64, tput=True)
    time.sleep(0.3)
    payload = bytes(64)
    _reset(commands, results)
    t0 = time.perf_counter()
    forwarded = 0
    for i in range(count):
        if i - forwarded >= WINDOW // 2 and not i % 64:  # app-level flow control (see doc)
            while i - (forwarded := disp.stats().outbound_forwarded) >= WINDOW:
                time.sleep(0.0001)
        writer.send(payload)
    send_s = time.perf_counter() - t0
    n, span = _report(commands, results, count)
    stats = disp.stats()
    node.close()
    disp.stop()
    return {"case": "taktora_zenoh_throughput_64B", "n": n, "sent": count,
            "msgs_per_s": round(n / span, 1) if span else None,
            "send_msgs_per_s": round(count / send_s, 1),
            "dropped": sum(stats.outbound_dropped.values()) + writer.stats().undelivered,
            "forwarded": stats.outbound_forwarded}


def app_writer(count: int, go: Any, done: Any) -> None:
    """Spawned app process for the _xapp case: writes ``count`` frames (BLOCK: back-pressure
    from the gateway process's dispatcher; no GIL is shared, so BLOCK works here)."""
    from taktora.connectors import ChannelWriter
    from taktora.transport import Node

    node = Node("bench-app-x")
    writer: Any = ChannelWriter(node, _tput_descriptor(block=True))
    go.wait(30)
    payload = bytes(64)
    for _ in range(count):
        writer.send(payload)
    done.set()
    time.sleep(0.5)
    node.close()


def _tput_descriptor(block: bool) -> Any:
    from taktora.connectors import (
        ChannelDescriptor,
        Congestion,
        Direction,
        OverflowPolicy,
        QoS,
        Routing,
    )

    return ChannelDescriptor("bench/tput", Direction.OUTBOUND, max_payload=64, buffer_size=2048,
                             qos=QoS(congestion=Congestion.BLOCK), crc=False,
                             overflow=OverflowPolicy.BLOCK if block else OverflowPolicy.DROP_NEWEST,
                             routing=Routing("zenoh", "bench/tput"))


def taktora_throughput_xapp(ep: str, count: int, commands: Any, results: Any) -> dict[str, Any]:
    """The app in its own process, the gateway (dispatcher + connector) in this one."""
    from taktora.connectors import Dispatcher, HealthState
    from taktora.connectors.zenoh import ZenohConfig, ZenohConnector

    conn = ZenohConnector(ZenohConfig(connect=(ep,)))
    disp = Dispatcher(None, conn, [_tput_descriptor(block=True)], name="bench-gw-x").start()
    _wait(lambda: conn.health() is HealthState.UP)
    ctx = mp.get_context("spawn")
    go, done = ctx.Event(), ctx.Event()
    app = ctx.Process(target=app_writer, args=(count, go, done))
    app.start()
    time.sleep(1.0)
    _reset(commands, results)
    go.set()
    n, span = _report(commands, results, count)
    app.join(30)
    stats = disp.stats()
    disp.stop()
    return {"case": "taktora_zenoh_throughput_64B_xapp", "n": n, "sent": count,
            "msgs_per_s": round(n / span, 1) if span else None,
            "dropped": sum(stats.outbound_dropped.values()), "forwarded": stats.outbound_forwarded}


# ---- fan-out ---------------------------------------------------------------------------------
FANOUT = 4
FAN_KEY = "bench/fan"
_ACK = struct.Struct("<iq")  # consumer index, latency in ns


def _fan_descriptor() -> Any:
    from taktora.connectors import ChannelDescriptor, Direction, Routing

    return ChannelDescriptor(FAN_KEY, Direction.INBOUND, max_payload=ONE_MIB, buffer_size=4,
                             crc=False, routing=Routing("zenoh", FAN_KEY))


def zenoh_consumer(ep: str, idx: int, acks: Any, ready: Any, stop: Any) -> None:
    """Spawned: a plain zenoh consumer (own session, callback subscriber)."""
    session = zenoh.open(_config(connect=ep))
    clock = time.monotonic_ns

    def on_sample(sample: zenoh.Sample) -> None:
        data = sample.payload.to_bytes()
        acks.send_bytes(_ACK.pack(idx, clock() - int.from_bytes(data[:8], "little")))

    sub = session.declare_subscriber(FAN_KEY, zenoh.handlers.Callback(on_sample, indirect=False))
    ready.set()
    stop.wait()
    sub.undeclare()
    session.close()


def taktora_consumer(idx: int, acks: Any, ready: Any, stop: Any) -> None:
    """Spawned: a zero-copy ChannelReader (``RawCodec(copy=False)``: the value is a read-only
    view of the shared memory, valid while held) on the gateway's inbound channel - what a
    consumer of 1 MiB frames would use; it drops the view before it waits again."""
    from taktora.connectors import ChannelReader
    from taktora.connectors.codecs import RawCodec
    from taktora.transport import Node

    clock = time.monotonic_ns
    with Node(f"bench-fan-{idx}") as node:
        reader: Any = ChannelReader(node, _fan_descriptor(), RawCodec(copy=False))
        ready.set()
        while not stop.is_set():
            got = reader.recv(0.2)
            if got is not None:
                now = clock()
                stamp = int.from_bytes(got.value[:8], "little")
                del got  # the sample goes back to the gateway's publisher
                acks.send_bytes(_ACK.pack(idx, now - stamp))


def fan_gateway(ep: str, ready: Any, stop: Any, errors: Any) -> None:
    """Spawned: one zenoh gateway (in-process actor system) publishing FAN_KEY into iceoryx2."""
    from taktora.actors.models.health import HealthState
    from taktora.connectors.gateway.config import GatewayConfig
    from taktora.connectors.gateway.host import ConnectorHost
    from taktora.system.bootstrap import QUIET_LOGGING, start_system

    try:
        config = GatewayConfig(name="fan", connector="zenoh", settings={"connect": [ep]},
                               channels=(_fan_descriptor(),))
        with start_system("inprocess", logging_config=QUIET_LOGGING) as handle:
            host = ConnectorHost(handle, [config]).start()
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    e = host.next_event(0.5)
                    if e is not None and e.state is HealthState.UP:
                        break
                else:
                    raise RuntimeError("fan-out gateway not Up within 30 s")
                ready.set()
                stop.wait()
            finally:
                host.stop()
    except Exception as exc:
        errors.put(f"{type(exc).__name__}: {exc}"[:300])
        ready.set()


def fanout(case: str, count: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ep = f"tcp/127.0.0.1:{_free_port()}"
    session = zenoh.open(_config(listen=ep))
    pub = session.declare_publisher(FAN_KEY, congestion_control=zenoh.CongestionControl.BLOCK,
                                    express=True)
    # acks: one pipe that every consumer writes 12 bytes into from its own thread (atomic
    # below PIPE_BUF): no feeder thread per consumer competing with the consumers' wake-ups
    ack_in, acks = ctx.Pipe(duplex=False)
    stop, errors = ctx.Event(), ctx.Queue()
    procs: list[Any] = []
    readies: list[Any] = []
    if case.startswith("taktora"):
        readies.append(ctx.Event())
        procs.append(ctx.Process(target=fan_gateway, args=(ep, readies[-1], stop, errors)))
    for i in range(FANOUT):
        readies.append(ctx.Event())
        args = (i, acks, readies[-1], stop)
        procs.append(ctx.Process(target=taktora_consumer, args=args) if case.startswith("taktora")
                     else ctx.Process(target=zenoh_consumer, args=(ep, *args)))
    payload = bytearray(ONE_MIB)
    clock = time.monotonic_ns

    def one(timeout: float) -> list[int]:
        payload[:8] = clock().to_bytes(8, "little")
        pub.put(bytes(payload))
        got: dict[int, int] = {}
        end = time.monotonic() + timeout
        while len(got) < FANOUT and (left := end - time.monotonic()) > 0:
            if not ack_in.poll(left):
                break
            idx, lat = _ACK.unpack(ack_in.recv_bytes())
            got[idx] = lat
        return list(got.values())

    try:
        for p in procs:
            p.start()
        for r in readies:
            if not r.wait(60):
                raise RuntimeError(f"{case}: a process did not start")
        if not errors.empty():
            raise RuntimeError(errors.get())
        deadline = time.monotonic() + 30
        while len(one(0.5)) < FANOUT:  # until every consumer is reached
            if time.monotonic() > deadline:
                raise RuntimeError(f"{case}: not every consumer receives")
        while ack_in.poll(0.2):  # forget late acks of the warm-up
            ack_in.recv_bytes()
        pids = [p.pid for p in procs]
        cpu0 = time.process_time() + _bench.cpu_s(pids)
        last: list[float] = []
        incomplete = 0
        for _ in range(count):
            lats = one(5.0)
            if len(lats) < FANOUT:
                incomplete += 1
                continue
            last.append(max(lats) / 1000)
            time.sleep(0.0005)
        cpu = time.process_time() + _bench.cpu_s(pids) - cpu0
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
        pub.undeclare()
        session.close()
    return _bench.summarize(case, last, consumers=FANOUT, incomplete=incomplete,
                            cpu_us_per_msg=round(cpu / max(1, count) * 1e6, 1))


# glibc's malloc: 1 MiB blocks stay on the heap, never trimmed back to the kernel
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


def steady_malloc() -> bool:
    """Fix glibc's malloc thresholds in this process and (through the environment, read by
    glibc at start-up) in every process it spawns. With the defaults the threshold adapts at
    run time: 1 MiB payloads (``bytes(payload)``, ``to_bytes()``, zenoh's buffers) are
    sometimes mapped fresh for every message (measured: 480 page faults and ~750 us more CPU
    per message in the producer, p50 x2-3, for whichever case comes after another in the
    same process) and sometimes not (0-30). Applied to every case alike; False where there is
    no glibc (nothing changed)."""
    import ctypes
    import os

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    os.environ.update(_MALLOC_ENV)
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, 64 << 20) and mallopt(m_trim_threshold, 256 << 20))


def main() -> None:
    args = _bench.parse_args(__doc__ or "zenoh")
    _bench.private_prefix()
    steady = steady_malloc()
    small, big, tput = (500, 60, 20000) if args.quick else (5000, 400, 200000)
    ep = f"tcp/127.0.0.1:{_free_port()}"
    ctx = mp.get_context("spawn")
    commands, results = ctx.Queue(), ctx.Queue()
    far = ctx.Process(target=far_side, args=(ep, commands, results), daemon=True)
    far.start()
    assert results.get(timeout=30) == "ready"
    rows: list[dict[str, Any]] = []
    cases = [
        ("zenoh_raw_64B", lambda: raw_latency(ep, 64, small, "zenoh_raw_64B")),
        ("floor_zenoh_64B", lambda: floor_latency(ep, 64, small, "floor_zenoh_64B")),
        ("taktora_zenoh_64B", lambda: taktora_latency(ep, 64, small, "taktora_zenoh_64B")),
        ("zenoh_raw_1MiB", lambda: raw_latency(ep, ONE_MIB, big, "zenoh_raw_1MiB")),
        ("floor_zenoh_1MiB", lambda: floor_latency(ep, ONE_MIB, big, "floor_zenoh_1MiB")),
        ("taktora_zenoh_1MiB", lambda: taktora_latency(ep, ONE_MIB, big, "taktora_zenoh_1MiB")),
        ("zenoh_raw_throughput_64B", lambda: raw_throughput(ep, tput, commands, results)),
        ("taktora_zenoh_throughput_64B", lambda: taktora_throughput(ep, tput, commands, results)),
        ("taktora_zenoh_throughput_64B_xapp",
         lambda: taktora_throughput_xapp(ep, tput, commands, results)),
        ("zenoh_fanout_1MiB_x4", lambda: fanout("zenoh_fanout_1MiB_x4", big)),
        ("taktora_fanout_1MiB_x4", lambda: fanout("taktora_fanout_1MiB_x4", big)),
    ]
    try:
        for name, case in cases:
            rows.append(_bench.run_case(name, case))
    finally:
        commands.put("stop")
        far.join(10)
        if far.is_alive():
            far.kill()
            far.join()
    ratios = {
        "taktora_vs_floor_p50_64B": _bench.target(rows, "taktora_zenoh_64B", "floor_zenoh_64B",
                                                  "<=", 1.25),
        "taktora_vs_floor_p50_1MiB": _bench.target(rows, "taktora_zenoh_1MiB", "floor_zenoh_1MiB",
                                                   "<=", 1.25),
        "floor_vs_raw_p50_64B": _bench.ratio(rows, "floor_zenoh_64B", "zenoh_raw_64B"),
        "floor_vs_raw_p50_1MiB": _bench.ratio(rows, "floor_zenoh_1MiB", "zenoh_raw_1MiB"),
        "taktora_vs_raw_p50_64B": _bench.ratio(rows, "taktora_zenoh_64B", "zenoh_raw_64B"),
        "taktora_vs_raw_p50_1MiB": _bench.ratio(rows, "taktora_zenoh_1MiB", "zenoh_raw_1MiB"),
        "taktora_vs_raw_throughput_64B": _bench.ratio(
            rows, "taktora_zenoh_throughput_64B", "zenoh_raw_throughput_64B", "msgs_per_s"),
        "taktora_xapp_vs_raw_throughput_64B": _bench.ratio(
            rows, "taktora_zenoh_throughput_64B_xapp", "zenoh_raw_throughput_64B", "msgs_per_s"),
        "taktora_vs_zenoh_fanout_p50": _bench.target(rows, "taktora_fanout_1MiB_x4",
                                                     "zenoh_fanout_1MiB_x4", "<=", 0.5),
        "taktora_vs_zenoh_fanout_cpu": _bench.ratio(rows, "taktora_fanout_1MiB_x4",
                                                    "zenoh_fanout_1MiB_x4", "cpu_us_per_msg"),
        "taktora_vs_raw_throughput_64B_target": _bench.target(
            rows, "taktora_zenoh_throughput_64B", "zenoh_raw_throughput_64B", ">=", 0.8,
            "msgs_per_s"),
    }
    ratios["steady_malloc"] = steady
    _bench.write("zenoh", rows, args.json_out, ratios)


if __name__ == "__main__":
    main()
