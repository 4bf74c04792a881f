"""Inbound bursts: ``ctx.deliver_many`` publishes a batch with one wake-up of the readers, and
the UDP connector hands a burst of queued datagrams over as one batch."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from polling import collect, wait_until
from taktora.actors.models.health import HealthState
from taktora.connectors import (
    ChannelDescriptor,
    ChannelReader,
    Connector,
    ConnectorContext,
    Direction,
    Frame,
    Routing,
)
from taktora.connectors.gateway.dispatcher import Dispatcher
from taktora.connectors.udp import UdpConnector
from taktora.transport import Node, envelope

IN = ChannelDescriptor("in", Direction.INBOUND, codec="json", buffer_size=64)


class Burst(Connector):
    """Delivers what the test hands it, as one batch."""

    carries_envelope = False

    def open(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        ctx.report(HealthState.UP, "ready")

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        raise AssertionError("no outbound channel")


@pytest.mark.req("REQ_0551")
def test_deliver_many_publishes_in_order_and_wakes_readers_once(iox_prefix: str) -> None:
    conn = Burst()
    disp = Dispatcher(None, conn, [IN], name="burst").start()
    try:
        with Node("app") as node:
            reader: ChannelReader[Any] = ChannelReader(node, IN)
            frames = [b'{"i":%d}' % i for i in range(10)] + [b"not json"]
            assert conn.ctx.deliver_many("in", frames) == 11  # published; the reader rejects one
            assert reader.consume_wakeups() == 1  # one notification for the batch
            got = list(reader.drain())
            assert [g.value for g in got] == [{"i": i} for i in range(10)]
            assert [g.header.sequence for g in got] == list(range(1, 11))
            assert reader.stats().decode_errors == 1
            assert conn.ctx.deliver_many("nowhere", frames[:3]) == 0
            stats = disp.stats()
            assert stats.inbound_forwarded == 11
            assert dict(stats.inbound_dropped) == {"unknown_channel": 3}
            disp.disconnect()  # a revoked context counts a late batch as 'down'
            assert conn.ctx.deliver_many("in", frames[:4]) == 0
            assert dict(disp.stats().inbound_dropped) == {"unknown_channel": 3, "down": 4}
    finally:
        assert disp.close().clean


@pytest.mark.req("REQ_0551")
def test_a_udp_burst_arrives_whole_and_counted(iox_prefix: str) -> None:
    d = ChannelDescriptor("rx", Direction.INBOUND, codec="raw", max_payload=64, buffer_size=256,
                          routing=Routing("udp", "127.0.0.1:0"))
    conn = UdpConnector("burst")
    disp = Dispatcher(None, conn, [d], name="udp-burst").start()
    try:
        with Node("app") as node, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            reader: ChannelReader[Any] = ChannelReader(node, d)
            target = conn.local_address("rx")
            for i in range(200):  # faster than one wake-up each: bursts
                tx.sendto(envelope.encode(b"%d" % i, codec_id=0, sequence=i + 1,
                                          with_crc=True), target)
            got = collect(reader, 200)
            assert [g.value for g in got] == [b"%d" % i for i in range(200)]
            assert wait_until(lambda: disp.stats().inbound_forwarded == 200)
            assert conn.stats()["received"] == 200
            assert (disp.stats().inbound_gaps, disp.stats().inbound_lost) == (0, 0)
    finally:
        assert disp.close().clean


@pytest.mark.req("REQ_0551")
def test_a_burst_during_a_link_cut_is_discarded_frame_by_frame(iox_prefix: str) -> None:
    d = ChannelDescriptor("cut", Direction.INBOUND, codec="raw", max_payload=64, buffer_size=256,
                          routing=Routing("udp", "127.0.0.1:0"))
    conn = UdpConnector("cut")
    disp = Dispatcher(None, conn, [d], name="udp-cut").start()
    try:
        with Node("app") as node, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            reader: ChannelReader[Any] = ChannelReader(node, d)
            target = conn.local_address("cut")
            conn.faults.link_down()
            for i in range(100):
                tx.sendto(envelope.encode(b"%d" % i, codec_id=0, sequence=i + 1), target)
            assert wait_until(lambda: conn.stats().get("link_down_rx") == 100)
            conn.faults.link_up()
            tx.sendto(envelope.encode(b"after", codec_id=0, sequence=101), target)
            assert [g.value for g in collect(reader, 1)] == [b"after"]
            assert disp.stats().inbound_forwarded == 1
    finally:
        assert disp.close().clean
