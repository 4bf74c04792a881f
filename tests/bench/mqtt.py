"""MQTT round trip and throughput through one mosquitto: plain paho against taktora's MQTT gateway.

A mosquitto (``set_tcp_nodelay true``, no persistence) is started on a free loopback port for the run. Process
B (spawned, plain paho only) echoes ``bench/ping`` on ``bench/pong`` with the same QoS and, on
command, publishes a burst on ``bench/tput``. Process A measures:

- ``paho_raw_rtt_qos0`` / ``paho_raw_rtt_qos1``: a paho client publishes 64 B on bench/ping and
  waits for the echo on bench/pong (``p50_us`` / ``p99_us``: full round trip, two broker hops).
- ``taktora_mqtt_rtt_qos0`` / ``taktora_mqtt_rtt_qos1``: the app writes a ChannelWriter, the
  dispatcher forwards through MqttConnector, B echoes, the connector delivers the echo into
  iceoryx2 from paho's thread and the app's ChannelReader gets it (same far side: the
  difference is taktora's side only).
- ``paho_raw_throughput_qos0`` / ``taktora_mqtt_throughput_qos0``: B publishes a burst of N
  64 B messages at QoS 0; A receives with a paho ``on_message`` counter or with a
  ChannelReader behind the connector. ``msgs_per_s`` = received / (last - first arrival),
  ``lost`` = N - received.

Each pair (raw, taktora) runs ROUNDS times, alternating, so that load drifting on a shared
machine hits both alike: latencies are the samples of every round together (the first 10 %
of each round dropped as warm-up), ``msgs_per_s`` the median of the rounds (``rounds_msgs_per_s``
lists them).

Run: ``.venv/bin/python tests/bench/mqtt.py [--quick] --json OUT`` (needs mosquitto).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mqtt"))
import _bench
import paho.mqtt.client as mqtt
from mqtt_harness import Broker
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

WAIT_S = 20.0
ROUNDS = 3


def _client(port: int, cid: str = "") -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=MQTTProtocolVersion.MQTTv5)
    c.on_socket_open = lambda cl, u, s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.connect("127.0.0.1", port)
    return c


def far_side(port: int, commands: Any, ready: Any) -> None:
    """Process B: echo ping -> pong (same QoS); on ("burst", n) publish n messages on tput."""
    c = _client(port, "bench-far")
    c.on_message = lambda cl, u, m: cl.publish("bench/pong", m.payload, m.qos)
    c.on_subscribe = lambda *a: ready.set()
    c.loop_start()
    c.subscribe([("bench/ping", 1)])
    while True:
        cmd = commands.get()
        if cmd == "stop":
            break
        _, n = cmd
        payload = bytes(64)
        for _ in range(n):
            c.publish("bench/tput", payload, 0)
            while len(c._out_packet) > 1000:  # keep paho's queue bounded
                time.sleep(0.0005)
    c.disconnect()
    c.loop_stop()


def raw_rtt(port: int, qos: int, count: int) -> dict[str, Any]:
    got: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    subscribed = threading.Event()
    c = _client(port)
    c.on_message = lambda cl, u, m: got.put(m.payload)
    c.on_subscribe = lambda *a: subscribed.set()
    c.loop_start()
    c.subscribe([("bench/pong", qos)])
    subscribed.wait(WAIT_S)
    payload = bytes(64)
    lat, lost = [], 0
    for _ in range(count):
        t0 = time.perf_counter()
        c.publish("bench/ping", payload, qos)
        try:
            got.get(timeout=5.0)
        except queue.Empty:
            lost += 1
            continue
        lat.append((time.perf_counter() - t0) * 1e6)
    c.disconnect()
    c.loop_stop()
    return {"lat": lat[count // 10:], "lost": lost}


def _taktora(port: int, channels: list[Any]) -> tuple[Any, Any, Any]:
    from taktora.connectors import Dispatcher, HealthState
    from taktora.connectors.mqtt import MqttConnector, MqttSettings
    from taktora.transport import Node

    conn = MqttConnector(MqttSettings(port=port, max_queue=10000, max_inflight=1000), name="bench")
    disp = Dispatcher(None, conn, channels, name="bench-gw", poll_s=0.05).start()
    deadline = time.monotonic() + WAIT_S
    while conn.health() is not HealthState.UP and time.monotonic() < deadline:
        time.sleep(0.01)
    return disp, Node("bench-app"), conn


def _chan(name: str, direction: Any, topic: str, qos: int, buffer_size: int = 4) -> Any:
    from taktora.connectors import ChannelDescriptor, Routing

    return ChannelDescriptor(name, direction, max_payload=64, buffer_size=buffer_size, crc=False,
                             routing=Routing("mqtt", topic, options={"qos": qos}))


def taktora_rtt(port: int, qos: int, count: int) -> dict[str, Any]:
    from taktora.connectors import ChannelReader, ChannelWriter, Direction

    out = _chan("bench/ping", Direction.OUTBOUND, "bench/ping", qos)
    back = _chan("bench/pong", Direction.INBOUND, "bench/pong", qos)
    disp, node, _ = _taktora(port, [out, back])
    writer: Any = ChannelWriter(node, out)
    reader: Any = ChannelReader(node, back)
    payload = bytes(64)
    while True:  # the first echo proves both routes
        writer.send(payload)
        if reader.recv(0.1) is not None:
            break
    while reader.recv(0.1) is not None:
        pass
    lat, lost = [], 0
    for _ in range(count):
        t0 = time.perf_counter()
        writer.send(payload)
        if reader.recv(5.0) is None:
            lost += 1
            continue
        lat.append((time.perf_counter() - t0) * 1e6)
    stats = disp.stats()
    node.close()
    disp.stop()
    return {"lat": lat[count // 10:], "lost": lost,
            "dropped": sum(stats.outbound_dropped.values()) + sum(stats.inbound_dropped.values())}


def rtt_pair(port: int, qos: int, count: int) -> list[dict[str, Any]]:
    """Raw and taktora round trips, ROUNDS times alternating; one summary row each."""
    runs: dict[str, list[dict[str, Any]]] = {"paho_raw": [], "taktora_mqtt": []}
    for _ in range(ROUNDS):
        runs["paho_raw"].append(raw_rtt(port, qos, count))
        runs["taktora_mqtt"].append(taktora_rtt(port, qos, count))
    rows = []
    for name, got in runs.items():
        extra = {"dropped": sum(g["dropped"] for g in got)} if name == "taktora_mqtt" else {}
        rows.append(_bench.summarize(f"{name}_rtt_qos{qos}", [x for g in got for x in g["lat"]],
                                     size=64, lost=sum(g["lost"] for g in got), rounds=ROUNDS,
                                     **extra))
    return rows


def throughput_pair(port: int, n: int, commands: Any) -> list[dict[str, Any]]:
    """Raw and taktora bursts, ROUNDS times alternating; per side the median round."""
    runs: dict[str, list[dict[str, Any]]] = {"paho_raw": [], "taktora_mqtt": []}
    for _ in range(ROUNDS):
        runs["paho_raw"].append(raw_throughput(port, n, commands))
        runs["taktora_mqtt"].append(taktora_throughput(port, n, commands))
    rows = []
    for got in runs.values():
        rates = sorted(g["msgs_per_s"] or 0.0 for g in got)
        row = dict(got[0])
        row.update(n=sum(g["n"] for g in got), sent=sum(g["sent"] for g in got),
                   lost=sum(g["lost"] for g in got), msgs_per_s=rates[len(rates) // 2],
                   rounds=ROUNDS, rounds_msgs_per_s=[g["msgs_per_s"] for g in got])
        if "connector_in" in row:
            row["connector_in"] = sum(g["connector_in"] for g in got)
        rows.append(row)
    return rows


def raw_throughput(port: int, n: int, commands: Any) -> dict[str, Any]:
    times: list[float] = []
    subscribed = threading.Event()
    c = _client(port)
    c.on_message = lambda cl, u, m: times.append(time.perf_counter())
    c.on_subscribe = lambda *a: subscribed.set()
    c.loop_start()
    c.subscribe([("bench/tput", 0)])
    subscribed.wait(WAIT_S)
    commands.put(("burst", n))
    _settle(lambda: len(times), n)
    c.disconnect()
    c.loop_stop()
    return _tput_row("paho_raw_throughput_qos0", times, n)


def taktora_throughput(port: int, n: int, commands: Any) -> dict[str, Any]:
    from taktora.connectors import ChannelReader, Direction

    inn = _chan("bench/tput", Direction.INBOUND, "bench/tput", 0, buffer_size=4096)
    disp, node, conn = _taktora(port, [inn])
    reader: Any = ChannelReader(node, inn)
    times: list[float] = []
    commands.put(("burst", n))
    deadline = time.monotonic() + WAIT_S
    quiet = 0.0
    while len(times) < n and time.monotonic() < deadline:
        if reader.recv(0.05) is not None:
            times.append(time.perf_counter())
            quiet = 0.0
        elif times:
            quiet += 0.05
            if quiet > 1.5:
                break
    row = _tput_row("taktora_mqtt_throughput_qos0", times, n)
    row["connector_in"] = conn.stats().get("bench/tput|in", 0)
    node.close()
    disp.stop()
    return row


def _settle(count: Any, n: int) -> None:
    deadline = time.monotonic() + WAIT_S
    last, since = -1, time.monotonic()
    while count() < n and time.monotonic() < deadline:
        if count() != last:
            last, since = count(), time.monotonic()
        elif time.monotonic() - since > 1.5:
            return
        time.sleep(0.01)


def _tput_row(case: str, times: list[float], n: int) -> dict[str, Any]:
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {"case": case, "n": len(times), "sent": n, "lost": n - len(times),
            "msgs_per_s": round((len(times) - 1) / span, 1) if span else None}


def _rows(got: Any) -> list[dict[str, Any]]:
    """A pair's rows, or the one error row run_case made of its failure."""
    return got if isinstance(got, list) else [got]


def main() -> None:
    args = _bench.parse_args(__doc__ or "")
    _bench.private_prefix()
    count = 300 if args.quick else 3000  # per round
    burst = 5000 if args.quick else 50000  # per round
    with tempfile.TemporaryDirectory() as root:
        broker = Broker(Path(root), persistence=False).start()
        ctx = mp.get_context("spawn")
        commands, ready = ctx.Queue(), ctx.Event()
        far = ctx.Process(target=far_side, args=(broker.port, commands, ready), daemon=True)
        far.start()
        try:
            ready.wait(WAIT_S)
            results: list[dict[str, Any]] = []
            for qos in (0, 1):
                results += _rows(_bench.run_case(f"rtt_qos{qos}", rtt_pair, broker.port, qos,
                                                 count))
            results += _rows(_bench.run_case("throughput_qos0", throughput_pair, broker.port,
                                             burst, commands))
        finally:
            commands.put("stop")
            far.join(10)
            if far.is_alive():
                far.kill()
            broker.kill()
    ratios = {
        "rtt_qos0": _bench.target(results, "taktora_mqtt_rtt_qos0", "paho_raw_rtt_qos0", "<=", 1.2),
        "rtt_qos1": _bench.target(results, "taktora_mqtt_rtt_qos1", "paho_raw_rtt_qos1", "<=", 1.2),
        "throughput_qos0": _bench.target(results, "taktora_mqtt_throughput_qos0",
                                         "paho_raw_throughput_qos0", ">=", 0.8, "msgs_per_s"),
    }
    _bench.write("mqtt", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
