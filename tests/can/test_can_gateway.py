"""The CAN connector driven by the generic Gateway actor (in-process actor system): data both
ways to a plain python-can bus, stats through GetStats, Pause/Resume through the gateway."""

from __future__ import annotations

import can
import pytest
from canrig import collect, inp, out, recv_all, vbus, wait_until
from taktora.actors.control.messages import Ack, Pause, Resume
from taktora.actors.control.supervision import SupervisorSpec
from taktora.actors.models.backoff import Backoff
from taktora.actors.models.health import HealthState
from taktora.connectors import ChannelReader, ChannelWriter
from taktora.connectors.can import CanSettings
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.host import ConnectorHost
from taktora.connectors.gateway.messages import GatewayStopped
from taktora.system.bootstrap import QUIET_LOGGING, start_system
from taktora.transport import Node


@pytest.mark.req("REQ_0702", "REQ_0704", "REQ_0710")
def test_can_connector_under_the_gateway_actor(iox_prefix: str) -> None:
    chan = f"vcan-{iox_prefix}"
    peer = can.Bus(interface="virtual", channel=chan)
    cmd, state = out("veh/cmd", "can0", 0x181), inp("veh/state", "can0", 0x201)
    config = GatewayConfig(name="can-gw", connector="taktora.connectors.can:CanConnector",
                           settings=CanSettings(buses=(vbus("can0", chan),)),
                           channels=(cmd, state), health_poll_s=0.05,
                           reconnect=Backoff(initial_s=0.1, jitter=0.0))
    try:
        with start_system("inprocess", logging_config=QUIET_LOGGING) as handle, \
                Node("app", prefix=iox_prefix) as node:
            host = ConnectorHost(handle, [config], supervision=SupervisorSpec(intensity=3)).start()
            try:
                writer = ChannelWriter(node, cmd)
                reader = ChannelReader(node, state)
                # ARCH_0062: an interface is Connecting until its first read or send succeeds
                seen: list[HealthState] = []
                assert wait_until(lambda: seen.extend(e.state for e in host.drain_events())
                                  or HealthState.CONNECTING in seen)
                peer.send(can.Message(arbitration_id=0x201, is_extended_id=False, data=b"hi"))
                assert wait_until(lambda: seen.extend(e.state for e in host.drain_events())
                                  or HealthState.UP in seen)
                assert [g.value for g in collect(reader, 1)] == [b"hi"]
                writer.send(b"\x01\x02")
                assert [bytes(m.data) for m in recv_all(peer, 1)] == [b"\x01\x02"]
                peer.send(can.Message(arbitration_id=0x201, is_extended_id=False, data=b"ok"))
                assert [g.value for g in collect(reader, 1)] == [b"ok"]
                assert isinstance(host.control("can-gw", Pause()), Ack)
                writer.send(b"p")
                assert recv_all(peer, 1, timeout=0.3) == []
                assert isinstance(host.control("can-gw", Resume()), Ack)
                stats = host.stats()["can-gw"]
                assert stats["connector.can0.frames_out"] == 1
                assert stats["connector.can0.frames_in"] == 2
                assert stats["out.dropped.paused"] == 1
            finally:
                reports = host.stop()
        assert all(isinstance(r, GatewayStopped) and r.clean for r in reports), reports
    finally:
        peer.shutdown()
