"""The push-based connector surface: the sink counts what it cannot publish, a reconnect keeps
the iceoryx2 ports, inbound latency is not quantized by a poll period."""

from __future__ import annotations

import socket
import statistics
import threading
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
    ConnectorError,
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
            assert ctx.deliver("small", b"\xff")  # the reader's first sample: its baseline
            assert [g.value for g in collect(reader, 1)] == [b"\xff"]
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
            assert stats.inbound_forwarded == written + 1
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


class Chatty(Connector):
    """Reports its health from inside ``send`` (as CAN does after a bus-off recovery) and
    keeps a thread delivering that outlives ``close`` (a protocol thread that joins late)."""

    carries_envelope = False

    def __init__(self) -> None:
        self.ctx: ConnectorContext | None = None
        self.stop_thread = threading.Event()
        self.thread: threading.Thread | None = None

    def open(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        ctx.report(HealthState.UP, "chatty")

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        assert self.ctx is not None
        time.sleep(0.02)  # a slow send: a Reconnect arrives meanwhile and waits for it
        self.ctx.report(HealthState.UP, "still up")
        self.ctx.deliver("back", frame)

    def spam(self) -> None:
        ctx = self.ctx
        assert ctx is not None

        def run() -> None:
            while not self.stop_thread.is_set():
                ctx.deliver("back", b'"late"')
                time.sleep(0.001)

        self.thread = threading.Thread(target=run, name="chatty-spam")
        self.thread.start()


@pytest.mark.req("REQ_0521")
def test_an_ended_connection_cannot_publish_report_or_crash(iox_prefix: str) -> None:
    conn = Chatty()
    disp = Dispatcher(None, conn, [FORTH, BACK], name="ended").start()
    try:
        old = conn.ctx
        assert old is not None
        conn.spam()  # a protocol thread that keeps delivering through the old context
        disp.disconnect()
        assert old.revoked
        disp.connect()
        old.report(HealthState.DOWN, "stale")  # a report of the ended connection is ignored
        assert disp.link is HealthState.UP
        before = disp.stats().inbound_dropped.get("down", 0)
        assert wait_until(lambda: disp.stats().inbound_dropped.get("down", 0) > before)
        forwarded = disp.stats().inbound_forwarded
    finally:
        report = disp.close()
        time.sleep(0.05)  # the late thread delivers into the closed sink: counted, no abort
        conn.stop_thread.set()
        if conn.thread is not None:
            conn.thread.join(5)
    assert report.clean
    stats = disp.stats()  # the counters outlive close
    assert stats.inbound_forwarded == forwarded and stats.inbound_dropped["down"] > 0


@pytest.mark.req("REQ_0521")
def test_reports_from_inside_send_never_deadlock_the_in_process_system(admin_port: int) -> None:
    from taktora.actors.control.messages import Ack, Reconnect
    from taktora.connectors.gateway.config import GatewayConfig
    from taktora.connectors.gateway.host import ConnectorHost
    from taktora.system.bootstrap import QUIET_LOGGING, start_system

    config = GatewayConfig(name="chatty", connector=f"{__name__}:Chatty", channels=(FORTH, BACK))
    with start_system("inprocess", logging_config=QUIET_LOGGING) as handle:
        host = ConnectorHost(handle, [config]).start()
        try:
            with Node("app") as node:
                writer: ChannelWriter[Any] = ChannelWriter(node, FORTH)
                stop = threading.Event()

                def write() -> None:
                    i = 0
                    while not stop.is_set():
                        writer.send(i)
                        i += 1
                        time.sleep(0.002)

                t = threading.Thread(target=write, name="chatty-writer")
                t.start()
                try:
                    time.sleep(0.1)  # sends are under way
                    for _ in range(5):  # each disconnects while send() is reporting
                        assert isinstance(host.control("chatty", Reconnect()), Ack)
                finally:
                    stop.set()
                    t.join(5)
        finally:
            host.stop()


class Stuck(Connector):
    """A send that blocks until the connector is closed (a stalled protocol)."""

    carries_envelope = False

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.closed = threading.Event()

    def open(self, ctx: ConnectorContext) -> None:
        self.closed.clear()
        ctx.report(HealthState.UP, "open")

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        self.entered.set()
        if not self.closed.wait(30.0):
            raise AssertionError("never closed")
        raise ConnectorError("closed under the send")

    def close(self) -> None:
        self.closed.set()


@pytest.mark.req("REQ_0522")
def test_disconnect_is_bounded_while_a_send_is_stuck(iox_prefix: str) -> None:
    conn = Stuck()
    disp = Dispatcher(None, conn, [FORTH], name="stuck").start()
    try:
        with Node("app") as node:
            writer: ChannelWriter[Any] = ChannelWriter(node, FORTH)
            writer.send("blocks")
            assert conn.entered.wait(5.0)
            began = time.monotonic()
            disp.disconnect(timeout=0.3)
            assert time.monotonic() - began < 3.0  # not the 30 s the send would wait
            assert not disp.connected and conn.closed.is_set()
            # the stuck frame ends as one counted cause; what follows is counted down
            writer.send("after")
            assert wait_until(lambda: disp.stats().outbound_dropped == {"send_error": 1,
                                                                         "down": 1})
            assert disp.stats().outbound_forwarded == 0
    finally:
        assert disp.close(timeout=2.0).clean


@pytest.mark.req("REQ_0519")
def test_one_name_may_serve_both_directions_of_a_gateway(iox_prefix: str) -> None:
    both_out = ChannelDescriptor("echo", Direction.OUTBOUND, codec="json", buffer_size=64)
    both_in = ChannelDescriptor("echo", Direction.INBOUND, codec="json", buffer_size=64)

    class Mirror(Echo):
        def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
            assert self.ctx is not None
            self.ctx.deliver("echo", frame)

    disp = Dispatcher(None, Mirror(), [both_out, both_in], name="mirror").start()
    try:
        with Node("app") as node:
            reader: ChannelReader[Any] = ChannelReader(node, both_in)
            writer: ChannelWriter[Any] = ChannelWriter(node, both_out)
            for i in range(3):
                writer.send(i)
            assert [g.value for g in collect(reader, 3)] == [0, 1, 2]
            stats = disp.stats()
            assert stats.channels["echo.out"].forwarded == 3
            assert stats.channels["echo.in"].forwarded == 3
    finally:
        assert disp.close().clean
