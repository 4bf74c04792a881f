"""The MQTT connector under the generic Gateway actor (ConnectorHost, in-process actor system):
data both ways with a plain paho client, per topic stats through GetStats, and kill -9 of the
broker: Down -> Connecting -> Up under the gateway's ReconnectPolicy, with the QoS 1 messages
published while the gateway was away delivered by its persistent session."""

from __future__ import annotations

import time
from typing import Any

import pytest
from mqtt_harness import Broker, PahoPeer, mchan
from polling import collect, settle, wait_until
from taktora.actors.control.messages import GetStats, StatsReply
from taktora.actors.control.supervision import SupervisorSpec
from taktora.actors.models.backoff import Backoff
from taktora.actors.models.health import HealthState
from taktora.connectors import ChannelReader, ChannelWriter, Direction
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.host import ConnectorHost
from taktora.connectors.gateway.messages import GatewayStopped
from taktora.connectors.mqtt import MqttSettings
from taktora.system.bootstrap import QUIET_LOGGING, start_system
from taktora.transport import Node

C, U, D = HealthState.CONNECTING, HealthState.UP, HealthState.DOWN


def wait_event(host: ConnectorHost, state: HealthState, seen: list[str],
               timeout: float = 10.0) -> None:
    """Wait for gateway ``mq``'s HealthEvent into ``state``; every state seen goes to ``seen``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        e = host.next_event(0.2)
        if e is None or e.source != "mq":
            continue
        seen.append(e.state.value)
        if e.state is state:
            return
    raise AssertionError(f"gateway mq never went {state.value}; states: {seen}")


@pytest.mark.req("REQ_0904", "REQ_0905", "REQ_0910")
def test_mqtt_gateway_data_both_ways_and_recovery_after_kill_9(broker: Broker,
                                                               iox_prefix: str) -> None:
    out = mchan("plant/cmd", Direction.OUTBOUND, "plant/cmd", qos=1)
    inn = mchan("plant/state", Direction.INBOUND, "plant/+/state", qos=1)
    settings = MqttSettings(port=broker.port, client_id="gw-mq", clean_start=False,
                            session_expiry_s=600, keepalive_s=2)
    config = GatewayConfig(name="mq", connector="mqtt", settings=settings, channels=(out, inn),
                           health_poll_s=0.05,
                           reconnect=Backoff(initial_s=0.5, max_s=1.0, jitter=0.0))
    peer = PahoPeer(broker.port, ("plant/cmd", 1))
    seen: list[str] = []
    try:
        with start_system("inprocess", logging_config=QUIET_LOGGING) as handle:
            host = ConnectorHost(handle, [config], supervision=SupervisorSpec(intensity=5)).start()
            try:
                wait_event(host, U, seen)
                with Node("app", prefix=iox_prefix) as node:
                    writer: ChannelWriter[Any] = ChannelWriter(node, out)
                    reader: ChannelReader[Any] = ChannelReader(node, inn)
                    assert wait_until(lambda: (writer.send(b"a"), peer.collect(1, 0.2))[1] != [])
                    for i in range(3):
                        peer.publish(f"plant/m{i}/state", f"s{i}".encode(), qos=1)
                    assert [g.value for g in collect(reader, 3)] == [b"s0", b"s1", b"s2"]
                    reply = host.control("mq", GetStats())
                    assert isinstance(reply, StatsReply)
                    assert reply.stats["connector.plant/+/state|in"] == 3
                    assert reply.stats["connector.plant/cmd|out"] >= 1
                    # kill -9: Down; restart at once and publish while the gateway is away
                    peer.stop()
                    broker.kill()
                    wait_event(host, D, seen)
                    broker.start()
                    peer = PahoPeer(broker.port, ("plant/cmd", 1))
                    for i in range(20):
                        peer.publish("plant/away/state", f"w{i}".encode(), qos=1)
                    wait_event(host, U, seen)
                    got = [g.value for g in collect(reader, 20)]
                    got += [g.value for g in settle(reader)]
                    # QoS 1 is at least once: a message whose PUBACK the killed broker had not
                    # saved comes again; nothing published while away is lost or reordered
                    away = [m for m in got if m.startswith(b"w")]
                    assert away == [f"w{i}".encode() for i in range(20)], got
                    assert set(got) - set(away) <= {b"s0", b"s1", b"s2"}, got
                    assert wait_until(lambda: (writer.send(b"b"), peer.collect(1, 0.2))[1] != [])
            finally:
                reports = host.stop()
    finally:
        peer.stop()
    assert seen[-3:] == [D.value, C.value, U.value], seen
    assert all(isinstance(r, GatewayStopped) and r.clean for r in reports), reports
