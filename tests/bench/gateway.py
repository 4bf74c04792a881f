"""Round trips of 64-byte messages: plain UDP sockets, taktora channels, and taktora gateways.

Every case is a ping-pong between the measuring thread and an echo thread of this process
(one message in flight), so the cases compare directly:

- ``udp_raw_64B``: socket.sendto -> loopback -> echo thread recvfrom/sendto -> recv;
- ``channel_raw_64B``: ChannelWriter -> iceoryx2 -> echo thread's ChannelReader -> its
  ChannelWriter -> iceoryx2 -> ChannelReader (raw codec, envelope, CRC; no gateway);
- ``gateway_udp_64B``: app ChannelWriter -> iceoryx2 -> gateway ``left`` (dispatcher
  outbound thread) -> UDP -> gateway ``right`` (inbound thread) -> iceoryx2 -> echo thread ->
  iceoryx2 -> ``right`` outbound -> UDP -> ``left`` inbound -> iceoryx2 -> app. The gateways are
  real Gateway actors under a ConnectorHost on the in-process actor system base, so every
  thread involved is in this process.

Fields: ``p50_us`` / ``p99_us`` round-trip latency, ``msgs_per_s`` round trips per second of
wall time, ``cpu_us_per_msg`` process CPU time (all threads) per round trip, ``n``.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
from taktora.actors.models.backoff import Backoff
from taktora.connectors import ChannelDescriptor, ChannelReader, ChannelWriter, Direction, Routing
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.host import ConnectorHost
from taktora.system.bootstrap import QUIET_LOGGING, start_system
from taktora.transport import Node

SIZE = 64
WARMUP = 50
TIMEOUT_S = 5.0


def measure(case: str, n: int, roundtrip: Callable[[bytes], None]) -> dict[str, Any]:
    payload = bytes(range(SIZE))
    for _ in range(WARMUP):
        roundtrip(payload)
    lat: list[float] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        t = time.perf_counter_ns()
        roundtrip(payload)
        lat.append((time.perf_counter_ns() - t) / 1000)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return _bench.summarize(case, lat, msgs_per_s=round(n / wall, 1),
                            cpu_us_per_msg=round(cpu / n * 1e6, 1))


# ---- plain UDP ---------------------------------------------------------------------------------
def udp_raw(n: int) -> dict[str, Any]:
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    echo.settimeout(0.2)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(TIMEOUT_S)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = echo.recvfrom(2048)
            except TimeoutError:
                continue
            echo.sendto(data, addr)

    t = threading.Thread(target=serve, name="udp-echo", daemon=True)
    t.start()
    target = echo.getsockname()

    def rt(payload: bytes) -> None:
        client.sendto(payload, target)
        client.recv(2048)

    try:
        return measure("udp_raw_64B", n, rt)
    finally:
        stop.set()
        t.join(2)
        echo.close()
        client.close()


# ---- channels (with or without gateways) -------------------------------------------------------
def desc(name: str, direction: Direction, port: int = 0) -> ChannelDescriptor:
    return ChannelDescriptor(name, direction, codec="raw", max_payload=SIZE, buffer_size=16,
                             routing=Routing("udp", f"127.0.0.1:{port}"))


def channel_roundtrip(case: str, n: int, out_ping: ChannelDescriptor, in_ping: ChannelDescriptor,
                      out_pong: ChannelDescriptor, in_pong: ChannelDescriptor) -> dict[str, Any]:
    """App writes ping (out), echo reads ping (in) and writes pong (out), app reads pong (in)."""
    stop = threading.Event()
    ready = threading.Event()

    def serve() -> None:
        with Node("bench-echo") as node:
            reader: ChannelReader[bytes] = ChannelReader(node, in_ping)
            writer: ChannelWriter[bytes] = ChannelWriter(node, out_pong)
            ready.set()
            while not stop.is_set():
                got = reader.recv(0.2)
                if got is not None:
                    writer.send(got.value)

    t = threading.Thread(target=serve, name="channel-echo", daemon=True)
    t.start()
    ready.wait(10)
    try:
        with Node("bench-app") as node:
            writer: ChannelWriter[bytes] = ChannelWriter(node, out_ping)
            reader: ChannelReader[bytes] = ChannelReader(node, in_pong)
            time.sleep(0.3)  # every port connected

            def rt(payload: bytes) -> None:
                writer.send(payload)
                if reader.recv(TIMEOUT_S) is None:
                    raise TimeoutError(f"{case}: no echo within {TIMEOUT_S} s")

            return measure(case, n, rt)
    finally:
        stop.set()
        t.join(2)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def channel_raw(n: int) -> dict[str, Any]:
    # INBOUND and OUTBOUND descriptors of one name open different services: use the direction
    # the gateway would publish (".in") for both ends, so no gateway is involved.
    ping, pong = desc("bench/ping", Direction.INBOUND), desc("bench/pong", Direction.INBOUND)
    return channel_roundtrip("channel_raw_64B", n, ping, ping, pong, pong)


def gateway_udp(n: int) -> dict[str, Any]:
    p_ping, p_pong = free_udp_port(), free_udp_port()
    fast = Backoff(initial_s=0.1, max_s=1.0)
    left = GatewayConfig(name="left", connector="taktora.connectors.udp:UdpConnector",
                         channels=(desc("gw/ping", Direction.OUTBOUND, p_ping),
                                   desc("gw/pong", Direction.INBOUND, p_pong)), reconnect=fast)
    right = GatewayConfig(name="right", connector="taktora.connectors.udp:UdpConnector",
                          channels=(desc("gw/ping", Direction.INBOUND, p_ping),
                                    desc("gw/pong", Direction.OUTBOUND, p_pong)), reconnect=fast)
    with start_system("inprocess", logging_config=QUIET_LOGGING) as handle:
        host = ConnectorHost(handle, [left, right]).start()
        try:
            return channel_roundtrip("gateway_udp_64B", n, left.channels[0], right.channels[0],
                                     right.channels[1], left.channels[1])
        finally:
            host.stop()


def main() -> None:
    args = _bench.parse_args(__doc__.splitlines()[0] if __doc__ else "gateway")
    _bench.private_prefix("tkbgw")
    n = 500 if args.quick else 5000
    results = [udp_raw(n), channel_raw(n), gateway_udp(n)]
    ratios = {
        "gateway_udp/udp_raw p50": _bench.ratio(results, "gateway_udp_64B", "udp_raw_64B"),
        "gateway_udp/channel_raw p50": _bench.ratio(results, "gateway_udp_64B", "channel_raw_64B"),
        "channel_raw/udp_raw p50": _bench.ratio(results, "channel_raw_64B", "udp_raw_64B"),
        "gateway_udp/udp_raw cpu": _bench.ratio(results, "gateway_udp_64B", "udp_raw_64B",
                                                "cpu_us_per_msg"),
    }
    _bench.write("gateway", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
