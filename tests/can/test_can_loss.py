"""Nothing lost uncounted on the CAN connector across a bus-off (REQ_0712): the app keeps
writing while the interface goes bus-off, the gateway drops the link and reconnects, and the
controller restarts; every frame is delivered to the bus or counted by one cause (``down``
while the gateway is disconnected, ``link_down`` while the interface is closed or has not yet
shown that its controller restarted).

Real python-can buses (``virtual``: the connector's and a plain peer's on one channel, the
peer injecting the error frames a SocketCAN driver would report), the connector under a
ConnectorHost gateway in a Thespian system.

Measured before the fix: the ledger balanced on virtual buses (e.g. 103 written = 9 on the bus
+ 89 ``down`` + 5 ``link_down``), but after the gateway's reconnect the reopened interface went
Up at the first frame *sent*, so frames written before the controller restarted counted as
forwarded - frames a SocketCAN bus-off controller accepts and drops, i.e. the frames users saw
vanish on hardware (a virtual bus has no controller and delivers them).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import can
import pytest
from canrig import out, vbus, wait_until
from taktora.actors.control.supervision import SupervisorSpec
from taktora.actors.models.backoff import Backoff
from taktora.connectors import ChannelWriter
from taktora.connectors.can import CanSettings, error_frame_data, inject
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.host import ConnectorHost
from taktora.connectors.gateway.messages import GatewayStopped
from taktora.system.bootstrap import QUIET_LOGGING, start_system
from taktora.transport import Node

BUS_OFF = 0x040
RESTARTED = 0x100  # CAN_ERR_RESTARTED: SocketCAN reports the controller's restart
K = 20
CMD_ID = 0x181


def dropped(stats: dict[str, Any]) -> dict[str, int]:
    """The gateway's outbound drops by cause (only causes that occurred)."""
    return {k.removeprefix("out.dropped."): int(v) for k, v in stats.items()
            if k.startswith("out.dropped.") and v}


class Peer:
    """The plain python-can bus on the connector's channel: injects error frames, collects
    the frames the connector puts on the bus (on the test's thread only)."""

    def __init__(self, channel: str) -> None:
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.got: list[bytes] = []

    def drain(self) -> int:
        while (msg := self.bus.recv(0)) is not None:
            if msg.arbitration_id == CMD_ID and not msg.is_error_frame:
                self.got.append(bytes(msg.data))
        return len(self.got)


@pytest.mark.req("REQ_0712")
def test_bus_off_while_the_app_writes_every_frame_delivered_or_counted(iox_prefix: str) -> None:
    peer = Peer(f"vcan-{iox_prefix}")
    cmd = out("veh/cmd", "can0", CMD_ID)
    # recovery_window_s: no timed way back Up in this test, only the restart report
    settings = CanSettings(buses=(vbus("can0", f"vcan-{iox_prefix}", recovery_window_s=60.0),),
                           reconnect=Backoff(initial_s=0.1, jitter=0.0))
    config = GatewayConfig(name="can-gw", connector="taktora.connectors.can:CanConnector",
                           settings=settings, channels=(cmd,), health_poll_s=0.05,
                           reconnect=Backoff(initial_s=0.1, jitter=0.0))
    try:
        with start_system("inprocess", logging_config=QUIET_LOGGING) as handle, \
                Node("app", prefix=iox_prefix) as node:
            host = ConnectorHost(handle, [config], supervision=SupervisorSpec(intensity=3)).start()
            try:
                writer: ChannelWriter[Any] = ChannelWriter(node, cmd)

                def stats() -> dict[str, Any]:
                    return host.stats()["can-gw"]

                def ledger() -> bool:
                    s = stats()
                    return peer.drain() + sum(dropped(s).values()) == writer.stats().sent

                assert wait_until(lambda: stats().get("connects") == 1)
                writer.send(b"first")  # the first frame sent brings the interface Up
                assert wait_until(lambda: peer.drain() == 1 and stats()["health"] == "up")

                # bus-off while the app writes: the gateway loses the link and reconnects
                stop = threading.Event()

                def pump() -> None:
                    while not stop.is_set():
                        writer.send(writer.sequence.to_bytes(4, "little"))
                        time.sleep(0.001)  # pacing the writer, not waiting for anything

                pumping = threading.Thread(target=pump, name="pump")
                pumping.start()
                try:
                    assert wait_until(lambda: peer.drain() > 5)
                    inject(peer.bus, BUS_OFF, error_frame_data())
                    assert wait_until(lambda: stats()["link_losses"] == 1)
                    assert wait_until(lambda: stats()["connects"] == 2)
                finally:
                    stop.set()
                    pumping.join()
                assert wait_until(ledger)
                # reconnected, the controller not yet restarted: frames are refused, counted
                s = stats()
                assert s["health"] == "connecting", s
                forwarded, link_down = s["out.forwarded"], s.get("out.dropped.link_down", 0)
                for i in range(K):
                    writer.send(b"held%d" % i)
                assert wait_until(lambda: stats().get("out.dropped.link_down", 0)
                                  == link_down + K)
                s = stats()
                assert s["out.forwarded"] == forwarded and s["health"] == "connecting"
                # the driver reports the restart: Up, and frames reach the bus again
                inject(peer.bus, RESTARTED, error_frame_data())
                assert wait_until(lambda: stats()["health"] == "up")
                for i in range(K):
                    writer.send(b"after%d" % i)
                assert wait_until(ledger)
                s = stats()
                # exactly: written = delivered + counted drops, one cause each
                assert writer.stats().sent == len(peer.got) + sum(dropped(s).values())
                assert s["out.forwarded"] == len(peer.got) == s["connector.frames_out"]
                assert set(dropped(s)) <= {"down", "link_down"}, s
                assert s["connector.can0.drops.link_down"] == s.get("out.dropped.link_down", 0)
                assert peer.got[-K:] == [b"after%d" % i for i in range(K)]
                assert not [g for g in peer.got if g.startswith(b"held")]
            finally:
                reports = host.stop()
        assert all(isinstance(r, GatewayStopped) and r.clean for r in reports), reports
    finally:
        peer.bus.shutdown()
