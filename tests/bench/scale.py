"""Scale: a UDP gateway round trip with 1 and with 256 channels on each gateway, and the
start-up time and memory of systems of 1, 16 and 64 gateways.

- ``gateway_udp_64B_ch1`` / ``gateway_udp_64B_ch256``: the round trip of ``gateway.py``'s
  ``gateway_udp_64B`` (app -> iceoryx2 -> gateway L -> UDP -> gateway R -> iceoryx2 -> echo
  and back). In ``ch1`` each gateway serves only the ping and pong channels (one per
  direction); in ``ch256`` each serves 256 channels: ping, pong and 254 idle ones (127
  outbound, 127 inbound UDP channels: 127 idle links each way). Only the channel that woke
  should be touched, so the p50 ratio should stay <= 1.2. Both pairs run at once on one
  in-process actor system (a ConnectorHost of four gateways), measured interleaved in rounds.
- ``startup_gw1`` / ``startup_gw16`` / ``startup_gw64``: in a fresh process each (so memory
  is not shared between sizes): ``startup_s`` from ``start_system("inprocess")`` until every
  gateway reported Up (each with one outbound and one inbound UDP channel), ``rss_mb`` the
  process's resident memory then, ``rss_base_mb`` before the system started (interpreter and
  imports). The ratios give the growth per gateway between 1 and 64.

Run: ``.venv/bin/python tests/bench/scale.py [--quick] --json OUT``.
"""

from __future__ import annotations

import multiprocessing as mp
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
import gateway as gw
from taktora.actors.models.backoff import Backoff
from taktora.actors.models.health import HealthState
from taktora.connectors import Direction
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.host import ConnectorHost
from taktora.system.bootstrap import QUIET_LOGGING, start_system

CHANNELS = 256
SIZES = (1, 16, 64)
FAST = Backoff(initial_s=0.1, max_s=1.0)


def _ports_outside_ephemeral(count: int, start: int = 20000) -> list[int]:
    """``count`` free UDP ports below the kernel's ephemeral range, so that the sockets the
    gateways bind to port 0 for their outbound channels cannot take one of them."""
    lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    found: list[int] = []
    port = start
    while len(found) < count:
        if port >= lo:
            raise RuntimeError(f"not {count} free UDP ports in {start}..{lo}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
                found.append(port)
            except OSError:
                pass
        port += 1
    return found


_next_port = [20000]


def pair(tag: str, channels: int) -> tuple[GatewayConfig, GatewayConfig]:
    """Gateways ``{tag}-left`` / ``{tag}-right`` with ping, pong and ``channels - 2`` idle
    channels each: ``(channels - 2) / 2`` idle links each way (left's idle outbound channel i
    sends to right's idle inbound channel i and back; nothing is ever sent on them)."""
    idle = (channels - 2) // 2
    ports = _ports_outside_ephemeral(2 + 2 * idle, _next_port[0])
    _next_port[0] = ports[-1] + 1
    p_ping, p_pong = ports[0], ports[1]
    to_right, to_left = ports[2:2 + idle], ports[2 + idle:]
    left = [gw.desc(f"{tag}/ping", Direction.OUTBOUND, p_ping),
            gw.desc(f"{tag}/pong", Direction.INBOUND, p_pong)]
    right = [gw.desc(f"{tag}/ping", Direction.INBOUND, p_ping),
             gw.desc(f"{tag}/pong", Direction.OUTBOUND, p_pong)]
    for i, (pr, pl) in enumerate(zip(to_right, to_left, strict=True)):
        left += [gw.desc(f"{tag}/idle-lr-{i}", Direction.OUTBOUND, pr),
                 gw.desc(f"{tag}/idle-rl-{i}", Direction.INBOUND, pl)]
        right += [gw.desc(f"{tag}/idle-lr-{i}", Direction.INBOUND, pr),
                  gw.desc(f"{tag}/idle-rl-{i}", Direction.OUTBOUND, pl)]
    return (GatewayConfig(name=f"{tag}-left", connector="udp", channels=tuple(left), reconnect=FAST),
            GatewayConfig(name=f"{tag}-right", connector="udp", channels=tuple(right),
                          reconnect=FAST))


def _wait_up(host: ConnectorHost, names: set[str], timeout: float = 60.0) -> None:
    up: set[str] = set()
    deadline = time.monotonic() + timeout
    while up < names and time.monotonic() < deadline:
        e = host.next_event(0.5)
        if e is not None and e.state is HealthState.UP:
            up.add(e.source)
        elif e is not None and e.state is HealthState.DOWN:
            print(f"{e.source} Down: {e.reason}", file=sys.stderr, flush=True)
    if up < names:
        raise RuntimeError(f"gateways not Up within {timeout} s: {sorted(names - up)}")


def channels_case(n: int) -> list[dict[str, Any]]:
    pairs = {"gateway_udp_64B_ch1": pair("sc1", 2),
             "gateway_udp_64B_ch256": pair("sc256", CHANNELS)}
    configs = [g for p in pairs.values() for g in p]
    rows: list[dict[str, Any]] = []
    with start_system("inprocess", logging_config=QUIET_LOGGING) as handle:
        t0 = time.monotonic()
        host = ConnectorHost(handle, configs).start(timeout=120)
        _wait_up(host, {g.name for g in configs})
        print(f"4 gateways ({2 + 2 * CHANNELS} channels) up in {time.monotonic() - t0:.1f} s",
              file=sys.stderr, flush=True)
        try:
            makers = {case: (lambda lr=lr: gw.channel_link(lr[0].channels[0], lr[1].channels[0],
                                                           lr[1].channels[1], lr[0].channels[1]))
                      for case, lr in pairs.items()}
            rows = gw.measure(makers, n)
        finally:
            host.stop()
    for r in rows:
        r["channels_per_gateway"] = 2 if r["case"].endswith("ch1") else CHANNELS
    return rows


def startup_main(count: int, results: Any) -> None:
    """Spawned: start a system of ``count`` gateways, wait until all are Up, report."""
    try:
        configs = []
        for i in range(count):
            p_in, p_out = gw.free_udp_port(), gw.free_udp_port()
            configs.append(GatewayConfig(
                name=f"g{i}", connector="udp", reconnect=FAST, channels=(
                    gw.desc(f"st/g{i}/out", Direction.OUTBOUND, p_out),
                    gw.desc(f"st/g{i}/in", Direction.INBOUND, p_in))))
        base = _bench.rss_mb()
        t0 = time.perf_counter()
        with start_system("inprocess", logging_config=QUIET_LOGGING) as handle:
            host = ConnectorHost(handle, configs).start(timeout=300)
            try:
                up: set[str] = set()
                deadline = time.monotonic() + 300
                while len(up) < count and time.monotonic() < deadline:
                    e = host.next_event(0.5)
                    if e is not None and e.state is HealthState.UP:
                        up.add(e.source)
                elapsed = time.perf_counter() - t0
                rss = _bench.rss_mb()
            finally:
                host.stop()
        results.put({"startup_s": round(elapsed, 3), "rss_mb": rss, "rss_base_mb": base,
                     "up": len(up), "gateways": count})
    except Exception as exc:
        results.put({"error": f"{type(exc).__name__}: {exc}"[:300]})


def startup_case(count: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=startup_main, args=(count, results))
    proc.start()
    try:
        got = results.get(timeout=600)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if "error" in got:
        raise RuntimeError(got["error"])
    if got["up"] != count:
        raise RuntimeError(f"only {got['up']} of {count} gateways reported Up")
    return {"case": f"startup_gw{count}", **got}


def main() -> None:
    args = _bench.parse_args(__doc__ or "scale")
    _bench.private_prefix("tkbscale")
    n = 500 if args.quick else 5000
    try:
        results = channels_case(n)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        results = [{"case": "gateway_udp_64B_ch*", "error": f"{type(exc).__name__}: {exc}"[:300]}]
    results += [_bench.run_case(f"startup_gw{k}", startup_case, k) for k in SIZES]
    by = {r["case"]: r for r in results}
    lo, hi = by.get(f"startup_gw{SIZES[0]}", {}), by.get(f"startup_gw{SIZES[-1]}", {})
    extra = SIZES[-1] - SIZES[0]
    ratios: dict[str, Any] = {
        "ch256/ch1 p50": _bench.target(results, "gateway_udp_64B_ch256", "gateway_udp_64B_ch1",
                                       "<=", 1.2),
        "ch256/ch1 cpu": _bench.ratio(results, "gateway_udp_64B_ch256", "gateway_udp_64B_ch1",
                                      "cpu_us_per_msg"),
    }
    if "startup_s" in lo and "startup_s" in hi:
        ratios["startup_s per extra gateway"] = round((hi["startup_s"] - lo["startup_s"]) / extra, 4)
        ratios["rss_mb per extra gateway"] = round((hi["rss_mb"] - lo["rss_mb"]) / extra, 3)
    _bench.write("scale", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
