"""Every listener of a running system stays on loopback unless an explicit opt-in asked for it
(spec/system.rst, REQ_0414 and REQ_0415).

While systems with each connector run, a sampler thread (tests/listening.py) lists every TCP
socket in LISTEN state and every bound UDP socket held by the system's processes: this
process, its descendants, the Thespian admin (the holder of the admin port) and its
descendants (logger, supervisors, health monitors, reconnect policies, gateways). A listener
that is not on loopback and that no opt-in of the test names fails the test. Each test also
checks that the sampler saw what it should (the admin, the gateways' own sockets), so an empty
result cannot pass by sampling the wrong processes.

A multiprocess system is started by a spawned *owner* process (:class:`Owner`), not by the
test process: Thespian forks its admin and actors from the process that starts the system, and
a process forked from one that has used zenoh before (the zenoh tests of this run) inherits a
dead zenoh runtime - a zenoh gateway forked from it hangs (measured, eclipse-zenoh 1.10). The
spawned owner never used zenoh, whatever ran before in this process.

Opt-ins, each named where it is used: python-can's ``udp_multicast`` interface binds
``0.0.0.0:PORT`` by its design (a bus config must name that interface: never a default; the
suite uses it only to reach another process without SocketCAN). EtherCAT needs no exemption:
its link is a raw AF_PACKET socket on the named interface, not an IP listener.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from listening import Listener, Sampler, SystemProcesses, packet_socket_inodes, socket_inodes
from taktora.actors.control.supervision import SupervisorSpec
from taktora.actors.models.backoff import Backoff
from taktora.actors.models.health import HealthState
from taktora.connectors import ChannelDescriptor, Direction, Routing
from taktora.connectors.can import can_routing
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.host import ConnectorHost
from taktora.connectors.gateway.messages import GatewayStopped
from taktora.system.bootstrap import QUIET_LOGGING, start_system

FAST = Backoff(initial_s=0.1, max_s=0.4, jitter=0.0)
UP_S = 45.0  # a multiprocess system of a dozen actors on 2 busy cores
GROUP = "239.74.163.3"  # the CAN test's multicast group (tests/can uses .2)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chan(name: str, direction: Direction, routing: Routing, codec: str = "raw") -> ChannelDescriptor:
    return ChannelDescriptor(name, direction, codec=codec, max_payload=64, buffer_size=64,
                             routing=routing)


def gateway(name: str, connector: str, settings: dict[str, Any],
            *channels: ChannelDescriptor) -> GatewayConfig:
    """A gateway as a system file's ``[[gateways]]`` table gives it (settings as a table)."""
    return GatewayConfig(name=name, connector=connector, settings=settings, channels=channels,
                         health_poll_s=0.05, reconnect=FAST)


def udp_gateways() -> tuple[list[GatewayConfig], set[int]]:
    """Two UDP gateways linked on loopback, and the ports their inbound sockets bind."""
    p_cmd, p_state = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)

    def udp(name: str, direction: Direction, port: int) -> ChannelDescriptor:
        return chan(name, direction, Routing("udp", f"127.0.0.1:{port}"), codec="json")

    return [
        gateway("udp-left", "udp", {}, udp("l/cmd", Direction.OUTBOUND, p_cmd),
                udp("l/state", Direction.INBOUND, p_state)),
        gateway("udp-right", "udp", {}, udp("l/cmd", Direction.INBOUND, p_cmd),
                udp("l/state", Direction.OUTBOUND, p_state)),
    ], {p_cmd, p_state}


def zenoh_gateways(router_port: int) -> list[GatewayConfig]:
    """A router (listening on a named loopback endpoint), a peer and a client connecting to it:
    the peer and the client name no ``listen``, as a bare system file would."""
    ep = f"tcp/127.0.0.1:{router_port}"

    def z(name: str, direction: Direction) -> ChannelDescriptor:
        return chan(name, direction, Routing("zenoh", "lst/data"))

    return [
        gateway("z-router", "zenoh", {"mode": "router", "listen": [ep]},
                z("zr/data", Direction.INBOUND)),
        gateway("z-peer", "zenoh", {"connect": [ep]}, z("zp/data", Direction.OUTBOUND)),
        gateway("z-client", "zenoh", {"mode": "client", "connect": [ep]},
                z("zc/data", Direction.INBOUND)),
    ]


def can_gateway(name: str, bus: dict[str, Any]) -> GatewayConfig:
    iface = bus["name"]
    return gateway(name, "can", {"buses": [bus]},
                   chan(f"{name}/tx", Direction.OUTBOUND, can_routing(iface, 0x10)),
                   chan(f"{name}/rx", Direction.INBOUND, can_routing(iface, 0x20)))


def wait_up(host: ConnectorHost, names: Iterable[str], timeout: float = UP_S) -> None:
    """Read the host's health events until every gateway in ``names`` has reported Up."""
    waiting = set(names)
    seen: list[tuple[str, str, str]] = []
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        e = host.next_event(0.2)
        if e is not None:
            seen.append((e.source, e.state.value, e.reason))
            if e.state is HealthState.UP:
                waiting.discard(e.source)
    assert not waiting, f"never Up: {sorted(waiting)}; events: {seen}"


def gateway_pids(host: ConnectorHost) -> dict[str, int]:
    return {name: int(s["pid"]) for name, s in host.stats().items()}


def own_system(admin_port: int, gateways: Sequence[GatewayConfig], commands: Any,
               results: Any) -> None:
    """Spawned owner: start a multiprocess system with ``gateways``, report ("up", pids) once
    every gateway is Up, stop it on any command, report ("stopped", clean, reports)."""
    try:
        with start_system("multiprocess", admin_port=admin_port,
                          logging_config=QUIET_LOGGING) as handle:
            host = ConnectorHost(handle, gateways, supervision=SupervisorSpec(intensity=5)).start()
            try:
                wait_up(host, [g.name for g in gateways])
                results.put(("up", gateway_pids(host)))
                commands.get()
            finally:
                reports = host.stop()
        results.put(("stopped", stopped_cleanly(reports), repr(reports)))
    except BaseException as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}"))


class Owner:
    """The spawned process owning a multiprocess system (see the module doc). ``up`` waits for
    every gateway Up and returns their PIDs; ``stop`` stops the system (idempotent) and returns
    whether every gateway stopped cleanly."""

    ctx = multiprocessing.get_context("spawn")

    def __init__(self, admin_port: int, gateways: Sequence[GatewayConfig]) -> None:
        self.commands = self.ctx.SimpleQueue()  # a SimpleQueue: no feeder thread in the test
        self.results: Any = self.ctx.Queue()
        self.proc = self.ctx.Process(target=own_system, name="system-owner", daemon=True,
                                     args=(admin_port, list(gateways), self.commands,
                                           self.results))
        self.proc.start()
        self.clean: bool | None = None

    def expect(self, kind: str, timeout: float) -> tuple[Any, ...]:
        try:
            item = self.results.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the system owner sent no {kind!r} within {timeout} s") from None
        assert item[0] == kind, f"the system owner sent {item!r}, not {kind!r}"
        return tuple(item)

    def up(self) -> dict[str, int]:
        return dict(self.expect("up", UP_S + 40.0)[1])

    def stop(self) -> bool:
        if self.clean is None and self.proc.is_alive():
            self.commands.put("stop")
            _, self.clean, reports = self.expect("stopped", 120.0)
            assert self.clean, reports
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(10)
        self.results.close()
        self.results.join_thread()
        self.commands.close()
        return bool(self.clean)


def held_by(listeners: Iterable[Listener], pid: int) -> set[tuple[str, str, int]]:
    return {(li.proto, li.address, li.port) for li in listeners if li.pid == pid}


def stopped_cleanly(reports: list[Any]) -> bool:
    return all(isinstance(r, GatewayStopped) and r.clean for r in reports)


@pytest.mark.slow
@pytest.mark.req("REQ_0414")
def test_a_multiprocess_system_with_udp_zenoh_and_can_gateways_listens_on_loopback_only(
        admin_port: int, iox_prefix: str) -> None:
    udp, udp_ports = udp_gateways()
    router_port = free_port()
    gateways = [*udp, *zenoh_gateways(router_port),
                can_gateway("can-v", {"name": "v", "interface": "virtual",
                                      "channel": f"tkl-{iox_prefix}", "quiet_up_s": 0.1})]
    processes = SystemProcesses(admin_port)
    with Sampler(processes) as sampler:
        owner = Owner(admin_port, gateways)
        try:
            pids = owner.up()
            running = sampler.sample()
            assert set(pids.values()) <= processes(), "a gateway escaped the sampled set"
        finally:
            owner.stop()
    assert sampler.samples >= 3
    problems = sampler.beyond_loopback()  # no opt-in in this system: nothing is exempt
    assert not problems, "listeners beyond loopback:\n" + "\n".join(problems)
    # the sampler saw the system, not an empty set: the admin, and each gateway's own sockets
    # (every actor process also holds its Thespian listener on 127.0.0.1)
    assert any(li.proto == "tcp" and li.port == admin_port for li in running)
    udp_bound = {p for g in ("udp-left", "udp-right") for proto, _, p in held_by(running, pids[g])
                 if proto == "udp"}
    assert udp_ports <= udp_bound, (udp_ports, udp_bound)
    assert ("tcp", "127.0.0.1", router_port) in held_by(running, pids["z-router"])
    peer_tcp = {li for li in running if li.pid == pids["z-peer"] and li.proto == "tcp"}
    assert len(peer_tcp) >= 2  # the actor's listener + the peer's default (a free loopback port)
    assert not [li for li in running if li.pid == pids["can-v"] and li.proto == "udp"]


def _multicast_route() -> str | None:
    if shutil.which("ip") is None:
        return "the 'ip' tool is missing (cannot check the multicast route)"
    res = subprocess.run(["ip", "route", "get", GROUP], capture_output=True, text=True,
                         check=False, timeout=10)
    if res.returncode != 0:
        return f"no route to {GROUP}: run 'ip route add 239.0.0.0/8 dev lo' ({res.stderr.strip()})"
    return None


@pytest.mark.req("REQ_0415")
def test_can_listens_beyond_loopback_only_on_the_udp_multicast_it_was_told(iox_prefix: str) -> None:
    why = _multicast_route()
    if why:
        pytest.skip(why)
    port = free_port(socket.SOCK_DGRAM)
    gateways = [can_gateway("can-v", {"name": "v", "interface": "virtual",
                                      "channel": f"tkl-{iox_prefix}", "quiet_up_s": 0.1}),
                can_gateway("can-mc", {"name": "mc", "interface": "udp_multicast",
                                       "channel": GROUP, "options": {"port": port},
                                       "quiet_up_s": 0.1})]

    def udp_multicast_opt_in(li: Listener) -> bool:
        # python-can's udp_multicast binds 0.0.0.0:PORT by design; the bus config above names
        # that interface and port explicitly (test-only; no default opens it)
        return li.proto == "udp" and li.address == "0.0.0.0" and li.port == port

    with Sampler(SystemProcesses()) as sampler:
        with start_system("inprocess", logging_config=QUIET_LOGGING) as handle:
            host = ConnectorHost(handle, gateways).start()
            try:
                wait_up(host, ["can-v", "can-mc"])
                running = sampler.sample()
            finally:
                reports = host.stop()
    assert stopped_cleanly(reports), reports
    problems = sampler.beyond_loopback(udp_multicast_opt_in)
    assert not problems, "listeners beyond loopback:\n" + "\n".join(problems)
    # the exemption is the udp_multicast bus and nothing else (the virtual bus has no socket)
    assert {(li.proto, li.address, li.port) for li in running if not li.loopback} == {
        ("udp", "0.0.0.0", port)}


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.req("REQ_0415")
def test_an_ethercat_gateway_holds_raw_packet_sockets_and_no_ip_listener(
        admin_port: int, iox_prefix: str) -> None:
    from taktora.connectors.ethercat.sim import veth

    reason = veth.available()
    if reason:
        pytest.skip(f"EtherCAT needs a veth pair: {reason}")
    pytest.importorskip("pysoem", reason="pysoem (extra 'ethercat') is not installed")
    from taktora.connectors.ethercat.sim import SimProcess

    name = f"tkl{os.getpid() % 100000}"
    veth.down(name)  # a leftover of a crashed run
    master, sim_end = veth.up(name)

    def ec(ch: str, direction: Direction) -> ChannelDescriptor:
        return chan(ch, direction, Routing("ethercat", options={
            "subdevice": 0, "bit_offset": 0, "bit_length": 8}))

    config = gateway("ec", "ethercat", {"bus": {"iface": master, "receive_timeout_us": 20_000},
                                        "cycle_s": 0.002, "reconnect_s": 0.2},
                     ec("ec/do", Direction.OUTBOUND), ec("ec/di", Direction.INBOUND))
    try:
        with SimProcess(sim_end), Sampler(SystemProcesses(admin_port)) as sampler:
            owner = Owner(admin_port, [config])
            try:
                pid = owner.up()["ec"]
                running = sampler.sample()
                raw = socket_inodes(pid) & packet_socket_inodes()
            finally:
                owner.stop()
    finally:
        veth.down(name)
    problems = sampler.beyond_loopback()
    assert not problems, "listeners beyond loopback:\n" + "\n".join(problems)
    assert raw, "the EtherCAT gateway holds no AF_PACKET socket (did it drive the bus?)"
    # its only IP listener is its actor's Thespian socket, on loopback
    assert {(proto, addr) for proto, addr, _ in held_by(running, pid)} == {("tcp", "127.0.0.1")}
