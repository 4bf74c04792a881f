"""The EtherCAT connector under the generic Gateway actor (in-process actor system) against the
software SubDevice: data both ways, stats, and the SAFE-OP fallback -> Down -> reconnect -> Up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from taktora.actors.control.messages import Ack, Pause, Resume
from taktora.actors.control.supervision import SupervisorSpec
from taktora.actors.models.backoff import Backoff
from taktora.actors.models.health import HealthState
from taktora.connectors import ChannelReader, ChannelWriter
from taktora.connectors.ethercat import BusConfig, EthercatOptions
from taktora.connectors.ethercat.sim import SimProcess
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.host import ConnectorHost
from taktora.connectors.gateway.messages import GatewayStopped
from taktora.connectors.model import Direction
from taktora.system.bootstrap import QUIET_LOGGING, start_system
from taktora.transport import Node

from .test_connector import chan, until, wait_until

DIO = str(Path(__file__).resolve().parents[2] / "examples" / "ethercat" / "dio.toml")
pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.mark.req("REQ_0819", "REQ_0814", "REQ_0822")
def test_ethercat_connector_under_the_gateway_actor(pair, iox_prefix):
    master, sim_end = pair
    do, di = chan("plc_do", Direction.OUTBOUND, 0, 0, 8), chan("plc_di", Direction.INBOUND, 0, 0, 8)
    options = EthercatOptions(bus=BusConfig(iface=master, receive_timeout_us=20_000), cycle_s=0.002,
                              reconnect_s=0.2)
    config = GatewayConfig(name="ec-gw", connector="taktora.connectors.ethercat:EthercatConnector",
                           settings=options, channels=(do, di),
                           health_poll_s=0.05, reconnect=Backoff(initial_s=0.1, jitter=0.0))
    with SimProcess(sim_end, [DIO]) as sim, \
            start_system("inprocess", logging_config=QUIET_LOGGING) as handle, \
            Node("app", prefix=iox_prefix) as node:
        host = ConnectorHost(handle, [config], supervision=SupervisorSpec(intensity=3)).start()
        try:
            events: list[Any] = []

            def seen(state: HealthState) -> bool:
                events.extend(host.drain_events())
                return any(e.state is state for e in events)

            assert wait_until(lambda: seen(HealthState.UP))
            writer: ChannelWriter[Any] = ChannelWriter(node, do)
            reader: ChannelReader[Any] = ChannelReader(node, di)
            try:
                writer.send(b"\x3c")
                assert until(reader, b"\x3c")
                def output() -> int:  # the DIO's 8 output bits (0x7000:1..8), as the device sees them
                    bits = (sim.command(op="read", position=0, index=0x7000, sub=i + 1)["value"]
                            for i in range(8))
                    return sum(int(b) << i for i, b in enumerate(bits))

                assert wait_until(lambda: output() == 0x3C)
                assert isinstance(host.control("ec-gw", Pause()), Ack)
                assert wait_until(lambda: output() == 0)  # safe value while paused
                assert isinstance(host.control("ec-gw", Resume()), Ack)
                # the inputs changed (to the safe outputs' 0) while paused: after Resume the
                # app gets the current value, not the stale 0x3C
                assert until(reader, b"\x00")
                time.sleep(0.05)  # several cycles: no automatic restart of the actuators ...
                assert output() == 0
                writer.send(b"\x5a")  # ... until the app commands a value again
                assert wait_until(lambda: output() == 0x5A)
                assert until(reader, b"\x5a")
                stats = host.stats()["ec-gw"]
                assert stats["connector.cycles"] > 0 and stats["connector.wkc_errors"] == 0
                events.clear()
                sim.command(op="safeop", position=0, code=0x001B)
                assert wait_until(lambda: seen(HealthState.DOWN))
                events.clear()
                assert wait_until(lambda: seen(HealthState.UP))
                assert [e.state for e in events][-2:] == [HealthState.CONNECTING, HealthState.UP]
                writer.send(b"\x81")  # data flows again after the re-bring-up
                assert until(reader, b"\x81")
                assert sim.command(op="query")["states"] == [8]
            finally:
                writer.close()
                reader.close()
        finally:
            reports = host.stop()
    assert all(isinstance(r, GatewayStopped) and r.clean for r in reports), reports
