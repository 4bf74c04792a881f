"""The zenoh connector driven by the generic Gateway actor (ConnectorHost, in-process actor
system): data both ways with a plain zenoh program, per key expression stats through
GetStats, and the gateway's reconnect when the peer is killed and comes back."""

from __future__ import annotations

import time
from typing import Any

import pytest
from taktora.actors.control.messages import GetStats, StatsReply
from taktora.actors.control.supervision import SupervisorSpec
from taktora.actors.models.backoff import Backoff
from taktora.actors.models.health import HealthState
from taktora.connectors import ChannelReader, ChannelWriter, Direction
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.host import ConnectorHost
from taktora.connectors.gateway.messages import GatewayStopped
from taktora.connectors.zenoh import ZenohConfig
from taktora.system.bootstrap import QUIET_LOGGING, start_system
from taktora.transport import Node
from zenoh_harness import PlainPeer, collect, endpoint, wait_until, zchan

U, D = HealthState.UP, HealthState.DOWN


def wait_event(host: ConnectorHost, state: HealthState, timeout: float = 20.0) -> list[Any]:
    """Wait for the gateway's HealthEvent into ``state``; return the events seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        e = host.next_event(0.2)
        if e is None:
            continue
        seen.append((e.source, e.state.value, e.reason))
        if e.source == "zgw" and e.state is state:
            return seen
    raise AssertionError(f"gateway zgw never went {state.value}; events: {seen}")


@pytest.mark.req("REQ_0615")
def test_zenoh_connector_under_the_gateway_actor(iox_prefix: str) -> None:
    ep = endpoint()
    out = zchan("demo/to_plain", Direction.OUTBOUND, "demo/to_plain")
    inn = zchan("demo/from_plain", Direction.INBOUND, "demo/from_plain")
    config = GatewayConfig(name="zgw", connector="taktora.connectors.zenoh:ZenohConnector",
                           settings=ZenohConfig(listen=(ep,)),
                           channels=(out, inn), health_poll_s=0.05,
                           reconnect=Backoff(initial_s=0.1, max_s=0.4, jitter=0.0))
    peer = PlainPeer(connect=ep)
    try:
        with start_system("inprocess", logging_config=QUIET_LOGGING) as handle:
            host = ConnectorHost(handle, [config], supervision=SupervisorSpec(intensity=5)).start()
            try:
                wait_event(host, U)
                with Node("app", prefix=iox_prefix) as node:
                    writer: ChannelWriter[Any] = ChannelWriter(node, out)
                    reader: ChannelReader[Any] = ChannelReader(node, inn)
                    assert wait_until(lambda: (writer.send(b"a"), peer.got(1, 0.2))[1] != [])
                    peer.send("publish", "demo/from_plain", [b"p1", b"p2"])
                    assert [g.value for g in collect(reader, 2)] == [b"p1", b"p2"]
                    reply = host.control("zgw", GetStats())
                    assert isinstance(reply, StatsReply)
                    assert reply.stats["connector.demo/from_plain|in"] == 2
                    assert reply.stats["connector.demo/to_plain|out"] >= 1
                    # kill -9 the peer: the connector goes Down, the gateway reconnects
                    peer.kill()
                    wait_event(host, D)
                    peer.stop()
                    peer = PlainPeer(connect=ep)
                    assert wait_until(lambda: (writer.send(b"b"), peer.got(1, 0.2))[1] != [], 20)
            finally:
                reports = host.stop()
    finally:
        peer.stop()
    assert all(isinstance(r, GatewayStopped) and r.clean for r in reports), reports


@pytest.mark.req("REQ_0460")
def test_a_zenoh_session_opened_before_a_multiprocess_system_does_not_hang_its_gateway(
        iox_prefix: str, admin_port: int) -> None:
    """Forked from a process with a live zenoh session, a zenoh gateway's session hung; the
    system now spawns its actor processes when zenoh is loaded."""
    import zenoh
    from taktora.system import start_method

    assert start_method.resolve("auto") == "spawn"
    ep = endpoint()
    out = zchan("demo/to_plain", Direction.OUTBOUND, "demo/to_plain")
    config = GatewayConfig(name="zgw", connector="zenoh", settings=ZenohConfig(listen=(ep,)),
                           channels=(out,), health_poll_s=0.05)
    # this process's own session, open across the start (loopback only, no scouting)
    mine = zenoh.open(zenoh.Config.from_json5(
        '{"listen": {"endpoints": ["tcp/127.0.0.1:0"]}, "scouting": {"multicast": '
        '{"enabled": false}, "gossip": {"enabled": false}}}'))
    peer = PlainPeer(connect=ep)
    try:
        with start_system("multiprocess", admin_port=admin_port,
                          logging_config=QUIET_LOGGING) as handle:
            host = ConnectorHost(handle, [config]).start()
            try:
                wait_event(host, U)
                with Node("app", prefix=iox_prefix) as node:
                    writer: ChannelWriter[Any] = ChannelWriter(node, out)
                    assert wait_until(lambda: (writer.send(b"a"), peer.got(1, 0.2))[1] != [], 20)
            finally:
                host.stop()
    finally:
        peer.stop()
        mine.close()
