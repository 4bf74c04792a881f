"""Nothing lost uncounted on the Zenoh connector (REQ_0617, REQ_0618): a gateway whose session
has no peer - or peers without a subscriber matching a key - counts every frame the app writes
on that key as dropped (``no_peer``) instead of forwarded; once a peer with a matching
subscriber joins, frames reach it; the health follows the peers, not the subscribers.

Real zenoh sessions in peer mode on loopback (a plain zenoh program in a spawned process), the
connector under a ConnectorHost gateway in a Thespian system. Measured before the fix: with 0
peers all 50 frames counted ``out.forwarded``, none received.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from taktora.actors.control.supervision import SupervisorSpec
from taktora.actors.models.backoff import Backoff
from taktora.connectors import ChannelWriter, Direction
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.host import ConnectorHost
from taktora.connectors.gateway.messages import GatewayStopped
from taktora.connectors.zenoh import ZenohConfig
from taktora.system.bootstrap import QUIET_LOGGING, start_system
from taktora.transport import Node
from zenoh_harness import PlainPeer, endpoint, wait_until, zchan

HEARD = "demo/to_plain"  # the plain peer subscribes to it
UNHEARD = "demo/unheard"  # nobody does
N = 50

#: The dispatcher's cause for a NoPeerError: ``no_peer`` once it reads ``NoPeerError.cause``,
#: ``link_down`` (its base class) until then; either way one cause per frame.
NO_PEER_CAUSES = ("no_peer", "link_down")


def dropped(stats: dict[str, Any]) -> dict[str, int]:
    """The gateway's outbound drops by cause (only causes that occurred)."""
    return {k.removeprefix("out.dropped."): int(v) for k, v in stats.items()
            if k.startswith("out.dropped.") and v}


def counted(stats: dict[str, Any]) -> int:
    """Frames the gateway accounted for: forwarded plus dropped by every cause."""
    return int(stats.get("out.forwarded", 0)) + sum(dropped(stats).values())


@pytest.mark.req("REQ_0617", "REQ_0618")
def test_no_peer_then_a_peer_joining_every_frame_delivered_or_counted(iox_prefix: str) -> None:
    ep = endpoint()
    heard = zchan(HEARD, Direction.OUTBOUND, HEARD)
    unheard = zchan(UNHEARD, Direction.OUTBOUND, UNHEARD)
    config = GatewayConfig(name="zgw", connector="taktora.connectors.zenoh:ZenohConnector",
                           settings=ZenohConfig(listen=(ep,)), channels=(heard, unheard),
                           health_poll_s=0.05, reconnect=Backoff(initial_s=0.1, jitter=0.0))
    peer: PlainPeer | None = None
    received: list[bytes] = []
    try:
        with start_system("inprocess", logging_config=QUIET_LOGGING) as handle:
            host = ConnectorHost(handle, [config], supervision=SupervisorSpec(intensity=3)).start()
            try:
                with Node("app", prefix=iox_prefix) as node:
                    writer: ChannelWriter[Any] = ChannelWriter(node, heard)
                    other: ChannelWriter[Any] = ChannelWriter(node, unheard)

                    def stats() -> dict[str, Any]:
                        return host.stats()["zgw"]

                    assert wait_until(lambda: stats().get("connects") == 1)
                    # 0 peers: nobody can receive a put - every frame counted, none forwarded
                    for i in range(N):
                        writer.send(f"a{i}".encode())
                    assert wait_until(lambda: counted(stats()) == N)
                    s = stats()
                    assert s["out.forwarded"] == 0
                    assert set(dropped(s)) <= set(NO_PEER_CAUSES)
                    assert s[f"connector.{HEARD}|dropped:no_peer"] == N
                    assert s[f"connector.{HEARD}|matching"] == 0
                    assert s["health"] == "connecting"  # no peer seen yet

                    # a peer with a matching subscriber joins while the app keeps writing:
                    # each frame racing the join is delivered or counted no_peer
                    stop = threading.Event()

                    def pump() -> None:
                        while not stop.is_set():
                            writer.send(f"b{writer.sequence}".encode())
                            time.sleep(0.001)  # pacing the writer, not waiting for anything

                    pumping = threading.Thread(target=pump, name="pump")
                    pumping.start()
                    try:
                        peer = PlainPeer(connect=ep)

                        def heard_b() -> bool:
                            assert peer is not None
                            received.extend(peer.got(1, 0.05))
                            return any(r.startswith(b"b") for r in received)

                        assert wait_until(heard_b, 30)
                    finally:
                        stop.set()
                        pumping.join()
                    assert wait_until(lambda: stats()["health"] == "up")
                    s = stats()
                    assert s[f"connector.{HEARD}|matching"] == 1
                    assert s[f"connector.{UNHEARD}|matching"] == 0
                    for i in range(N):
                        writer.send(f"c{i}".encode())
                        other.send(f"u{i}".encode())  # a key nobody subscribes to

                    def settled() -> bool:
                        assert peer is not None
                        received.extend(peer.got(N, 0.1))
                        s = stats()
                        return (len(received) + sum(dropped(s).values())
                                == writer.stats().sent + other.stats().sent)

                    assert wait_until(settled)
                    s = stats()
                    # exactly: written = delivered + counted drops, each drop with one cause
                    assert writer.stats().sent + other.stats().sent == \
                        len(received) + sum(dropped(s).values())
                    assert s["out.forwarded"] == len(received) == len(set(received))
                    assert s[f"connector.{HEARD}|out"] == len(received)
                    assert not [r for r in received if r.startswith(b"a")]
                    assert [r for r in received if r.startswith(b"c")] == \
                        [f"c{i}".encode() for i in range(N)]
                    assert set(dropped(s)) <= set(NO_PEER_CAUSES)
                    no_peer = (s[f"connector.{HEARD}|dropped:no_peer"]
                               + s[f"connector.{UNHEARD}|dropped:no_peer"])
                    assert sum(dropped(s).values()) == no_peer
                    assert s[f"connector.{UNHEARD}|dropped:no_peer"] == N
                    # no subscriber on a key is not a link fault: the gateway stays Up
                    assert s["health"] == "up"
            finally:
                reports = host.stop()
    finally:
        if peer is not None:
            peer.stop()
    assert all(isinstance(r, GatewayStopped) and r.clean for r in reports), reports
