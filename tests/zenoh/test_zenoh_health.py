"""Peer-count health and reconnects with real processes: kill -9 of peers, a router going away
and coming back, nothing lost uncounted."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from taktora.actors.models.backoff import Backoff
from taktora.actors.models.health import HealthEvent
from taktora.connectors import ChannelReader, ChannelWriter, Direction, Dispatcher, HealthState
from taktora.connectors.zenoh import ZenohConfig, ZenohConnector, ZenohSession
from taktora.transport import Node
from zenoh_harness import PlainPeer, collect, endpoint, wait_until, zchan

BOUND_S = 5.0  # peer loss must show within this (measured: milliseconds after kill -9)
U, C, G, D = HealthState.UP, HealthState.CONNECTING, HealthState.DEGRADED, HealthState.DOWN


@pytest.mark.req("REQ_0610", "REQ_0611")
def test_peer_loss_degraded_down_then_up_with_every_frame_counted(iox_prefix: str) -> None:
    ep = endpoint()
    session = ZenohSession(ZenohConfig(listen=(ep,), min_peers=2), name="hz")
    events: list[HealthEvent] = []
    session.machine.subscribe(events.append)
    out = zchan("demo/unheard", Direction.OUTBOUND, "demo/unheard")
    disp = Dispatcher(iox_prefix, ZenohConnector(session), [out], name="gw-h").start()
    peers: list[PlainPeer] = []
    stop = threading.Event()
    written = 0

    def publish(node: Node) -> None:
        nonlocal written
        writer: ChannelWriter[Any] = ChannelWriter(node, out)
        while not stop.is_set():
            writer.send(b"x")
            written += 1
            time.sleep(0.002)

    try:
        with Node("app", prefix=iox_prefix) as node:
            peers = [PlainPeer(connect=ep)]  # one at a time: each must be seen on its own
            assert wait_until(lambda: session.health() is G)
            peers.append(PlainPeer(connect=ep))
            assert wait_until(lambda: session.health() is U)
            pump = threading.Thread(target=publish, args=(node,), name="pump")
            pump.start()
            try:
                peers[0].kill()
                assert wait_until(lambda: session.health() is G, BOUND_S)
                peers[1].kill()
                assert wait_until(lambda: session.health() is D, BOUND_S)
                time.sleep(0.2)  # publishing while Down: counted as link_down drops
                peers = [PlainPeer(connect=ep)]
                assert wait_until(lambda: session.health() is G)
                peers.append(PlainPeer(connect=ep))
                assert wait_until(lambda: session.health() is U)
                states = [e.state for e in events]
            finally:
                stop.set()
                pump.join()
            # every frame the app wrote is either forwarded or counted as dropped, by cause
            assert wait_until(lambda: disp.stats().outbound_forwarded
                              + sum(disp.stats().outbound_dropped.values()) == written)
            stats = disp.stats()
            assert stats.outbound_dropped.get("link_down", 0) > 0
            assert disp.connector.stats()["demo/unheard|dropped:link_down"] == \
                stats.outbound_dropped["link_down"]
    finally:
        for p in peers:
            p.stop()
        assert disp.stop().clean
    # first peer: Degraded, second: Up; kill one: Degraded, both: Down; Down leaves through
    # Connecting (ARCH_0012); one event per transition
    assert states == [G, U, G, D, C, G, U]


@pytest.mark.req("REQ_0604", "REQ_0612")
def test_client_mode_through_a_router_that_goes_away_and_comes_back(iox_prefix: str) -> None:
    ep = endpoint()
    router = PlainPeer(mode="router", listen=ep)
    cfg = ZenohConfig(mode="client", connect=(ep,), reopen_after_s=0.3,
                      extra={"connect/timeout_ms": "500"})
    session = ZenohSession(cfg, name="cz", reconnect=Backoff(initial_s=0.1, max_s=0.5))
    out = zchan("echo/in", Direction.OUTBOUND, "echo/in")
    back = zchan("echo/out", Direction.INBOUND, "echo/out")
    disp = Dispatcher(iox_prefix, ZenohConnector(session), [out, back], name="gw-c").start()
    try:
        with Node("app", prefix=iox_prefix) as node:
            writer: ChannelWriter[Any] = ChannelWriter(node, out)
            reader: ChannelReader[Any] = ChannelReader(node, back)
            assert wait_until(lambda: session.health() is U)

            def round_trip(tag: bytes) -> bool:
                writer.send(tag)
                return any(g.value == tag for g in collect(reader, 1, 0.3))

            assert wait_until(lambda: round_trip(b"one"))
            router.kill()
            assert wait_until(lambda: session.health() is D, BOUND_S)
            router.stop()
            router = PlainPeer(mode="router", listen=ep)
            assert wait_until(lambda: session.health() is U)
            assert wait_until(lambda: round_trip(b"two"))
            # the Reconnect control: the session is closed and opened again, data flows again
            before = session.stats()["reopens"]
            session.reconnect()
            assert wait_until(lambda: session.stats()["reopens"] == before + 1)
            assert wait_until(lambda: session.health() is U)
            assert wait_until(lambda: round_trip(b"three"))
    finally:
        router.stop()
        assert disp.stop().clean
