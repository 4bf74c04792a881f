"""The push-based connector surface: the sink counts what it cannot publish, a reconnect keeps
the iceoryx2 ports, inbound latency is not quantized by a poll period."""

from __future__ import annotations

import socket
import statistics
import time
from typing import Any

import pytest
from polling import collect, wait_until
from taktora.actors.models.health import HealthState
from taktora.connectors import (
    ChannelDescriptor,
    ChannelReader,
    ChannelWriter,
    Connector,
    ConnectorContext,
    Direction,
    Frame,
    Routing,
)
from taktora.connectors.gateway.dispatcher import Dispatcher
from taktora.connectors.udp import UdpConnector
from taktora.transport import Node


class Echo(Connector):
    """Pushes every sent payload back on ``back`` from the sending thread."""

    carries_envelope = False

    def __init__(self) -> None:
        self.ctx: ConnectorContext | None = None

    def open(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        ctx.report(HealthState.UP, "echoing")

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        assert self.ctx is not None
        self.ctx.deliver("back", frame)


FORTH = ChannelDescriptor("forth", Direction.OUTBOUND, codec="json", buffer_size=64)
BACK = ChannelDescriptor("back", Direction.INBOUND, codec="json", buffer_size=64)


@pytest.mark.req("REQ_0518")
def test_a_reconnect_keeps_the_ports(iox_prefix: str) -> None:
    conn = Echo()
    disp = Dispatcher(None, conn, [FORTH, BACK], name="keep").open_ports()
    try:
        with Node("app") as node:
            reader: ChannelReader[Any] = ChannelReader(node, BACK)
            writer: ChannelWriter[Any] = ChannelWriter(node, FORTH)
            disp.connect()
            for i in range(3):
                writer.send(i)
            first = collect(reader, 3)
            disp.disconnect()
            assert disp.link is HealthState.DOWN and not disp.connected
            writer.send("while down")  # counted, not lost silently
            assert wait_until(lambda: disp.stats().outbound_dropped.get("down") == 1)
            disp.connect()
            for i in range(3, 6):
                writer.send(i)
            second = collect(reader, 3)
        got = first + second
        assert [g.value for g in got] == list(range(6))
        # the same publisher across the reconnect: its sequence goes on, the reader saw no gap
        assert [g.header.sequence for g in got] == [1, 2, 3, 4, 5, 6]
        assert reader.stats().lost == 0 and reader.stats().gaps == 0
    finally:
        assert disp.close().clean


@pytest.mark.req("REQ_0519")
def test_the_sink_counts_every_frame_it_cannot_publish_and_the_reader_counts_overflow(
        iox_prefix: str) -> None:
    small = ChannelDescriptor("small", Direction.INBOUND, codec="raw", buffer_size=4,
                              max_payload=16)
    conn = Echo()
    disp = Dispatcher(None, conn, [small], name="sink").start()
    try:
        with Node("app") as node:
            reader: ChannelReader[Any] = ChannelReader(node, small)
            ctx = conn.ctx
            assert ctx is not None
            written = 20
            assert all(ctx.deliver("small", bytes([i])) for i in range(written))
            assert not ctx.deliver("small", b"x" * 17)  # larger than the channel allows
            assert not ctx.deliver("nowhere", b"x")
            disp.pause()
            assert not ctx.deliver("small", b"p")
            disp.resume()
            values = [g.value for g in reader]
            stats = disp.stats()
            # written = delivered + dropped: the sink's drops by cause, the reader's overflow
            assert stats.inbound_dropped == {"too_large": 1, "unknown_channel": 1, "paused": 1}
            assert stats.inbound_forwarded == written
            assert len(values) + reader.stats().lost == written
            assert values == [bytes([i]) for i in range(written - len(values), written)]
    finally:
        disp.stop()


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.req("REQ_0520")
def test_inbound_latency_is_not_quantized_by_the_poll_period(iox_prefix: str) -> None:
    port = _udp_port()
    out = ChannelDescriptor("q", Direction.OUTBOUND, codec="json",
                            routing=Routing("udp", f"127.0.0.1:{port}"))
    inn = ChannelDescriptor("q", Direction.INBOUND, codec="json",
                            routing=Routing("udp", f"127.0.0.1:{port}"))
    poll_s = 0.5
    receiver = Dispatcher(None, UdpConnector("rx"), [inn], name="lat-rx", poll_s=poll_s).start()
    sender = Dispatcher(None, UdpConnector("tx"), [out], name="lat-tx", poll_s=poll_s).start()
    try:
        with Node("app") as node:
            reader: ChannelReader[Any] = ChannelReader(node, inn)
            writer: ChannelWriter[Any] = ChannelWriter(node, out)
            took = []
            for i in range(20):
                began = time.monotonic()
                writer.send(i)
                assert [g.value for g in collect(reader, 1)] == [i]
                took.append(time.monotonic() - began)
        # a poll-quantized path would wait up to poll_s per frame (median ~poll_s / 2)
        assert statistics.median(took) < poll_s / 5, took
    finally:
        sender.stop()
        receiver.stop()
