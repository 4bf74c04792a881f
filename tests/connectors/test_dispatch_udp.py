"""Send and receive paths end to end: app -> iceoryx2 -> dispatcher -> UDP -> dispatcher ->
iceoryx2 -> app on loopback, with pause/resume, fault injection and bounded stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from taktora.connectors import (
    ChannelDescriptor,
    ChannelReader,
    ChannelWriter,
    Connector,
    ConnectorContext,
    ConnectorError,
    Direction,
    Dispatcher,
    Frame,
    HealthState,
    Inbound,
    Routing,
)
from taktora.connectors.testing import RecordingContext
from taktora.connectors.udp import FaultInjector, UdpConnector
from taktora.transport import CodecId, Node

from .helpers import collect, settle, wait_until


@attrs.define
class Link:
    """Two sides on one loopback: A's app writes ``cmd`` which B's app reads."""

    node_a: Node
    node_b: Node
    conn_a: UdpConnector
    conn_b: UdpConnector
    disp_a: Dispatcher
    disp_b: Dispatcher
    writer: ChannelWriter[Any]
    reader: ChannelReader[Any]

    def send(self, *values: Any) -> None:
        for v in values:
            self.writer.send(v)


def cmd(direction: Direction, address: str) -> ChannelDescriptor:
    return ChannelDescriptor("robot/cmd", direction, codec="json", max_payload=256,
                             buffer_size=64, routing=Routing("udp", address))


@pytest.fixture
def link(iox_prefix: str) -> Iterator[Link]:
    prefix_b = f"{iox_prefix}b_"  # the far side: another "host" with its own iceoryx2 prefix
    conn_b = UdpConnector("udp-b")
    in_b = cmd(Direction.INBOUND, "127.0.0.1:0")
    disp_b = Dispatcher(prefix_b, conn_b, [in_b], name="gw-b").start()
    conn_a = UdpConnector("udp-a", faults=FaultInjector(seed=7))
    host, port = conn_b.local_address("robot/cmd")
    disp_a = Dispatcher(iox_prefix, conn_a, [cmd(Direction.OUTBOUND, f"{host}:{port}")],
                        name="gw-a").start()
    with Node("app-a", prefix=iox_prefix) as node_a, Node("app-b", prefix=prefix_b) as node_b:
        reader: ChannelReader[Any] = ChannelReader(node_b, in_b)
        writer: ChannelWriter[Any] = ChannelWriter(node_a, cmd(Direction.OUTBOUND, "x:1"))
        try:
            yield Link(node_a, node_b, conn_a, conn_b, disp_a, disp_b, writer, reader)
        finally:
            reports = [disp_a.stop(), disp_b.stop()]
    assert all(r.clean for r in reports)


@pytest.mark.req("REQ_0511", "REQ_0512", "REQ_0515")
def test_send_path_end_to_end_over_udp(link: Link) -> None:
    assert link.conn_a.health() is HealthState.UP
    link.send(*({"n": i} for i in range(10)))
    got = collect(link.reader, 10)
    assert [g.value for g in got] == [{"n": i} for i in range(10)]
    # the envelope travelled: the writer's sequence and codec id reach the far app unchanged
    assert [g.header.sequence for g in got] == list(range(1, 11))
    assert {g.header.codec_id for g in got} == {CodecId.JSON}
    # counters are bumped after the hand-over, on the dispatcher threads: wait for them
    assert wait_until(lambda: link.disp_a.stats().outbound_forwarded == 10)
    assert wait_until(lambda: link.disp_b.stats().inbound_forwarded == 10)
    assert link.disp_b.stats().inbound_lost == 0
    assert wait_until(lambda: link.conn_a.stats()["sent"] == 10)
    assert link.conn_b.stats()["received"] == 10
    assert link.reader.stats().lost == 0


@pytest.mark.req("REQ_0513")
def test_paused_directions_drop_and_count_then_resume(link: Link) -> None:
    link.send("before")
    assert [g.value for g in collect(link.reader, 1)] == ["before"]
    link.disp_a.pause(inbound=False)
    assert link.disp_a.stats().outbound_paused and link.disp_a.paused
    link.send("p1", "p2", "p3")
    assert wait_until(lambda: link.disp_a.stats().outbound_dropped.get("paused") == 3)
    link.disp_a.resume()
    link.send("after")
    assert [g.value for g in collect(link.reader, 1)] == ["after"]
    # counted once, where they were dropped: no gap on the link, none at the far reader
    assert link.reader.stats().lost == 0 and link.disp_b.stats().inbound_lost == 0
    link.disp_b.pause(outbound=False)
    link.send("in-paused")
    assert wait_until(lambda: link.disp_b.stats().inbound_dropped.get("paused") == 1)
    link.disp_b.resume()
    link.send("last")
    assert [g.value for g in collect(link.reader, 1)] == ["last"]
    assert settle(link.reader, 0.05) == []
    assert link.reader.stats().lost == 0 and link.disp_b.stats().inbound_lost == 0


@pytest.mark.req("REQ_0516")
def test_drop_fault_is_counted_and_seen_as_exact_gaps(link: Link) -> None:
    link.conn_a.faults.drop(every=4)
    link.send(*range(1, 22))  # 4, 8, 12, 16, 20 vanish on the link
    got = collect(link.reader, 16)
    assert [g.value for g in got] == [i for i in range(1, 22) if i % 4]
    assert settle(link.reader, 0.05) == []
    assert link.conn_a.stats()["fault_drop"] == 5
    # link losses are counted once, by the far gateway; its readers see its own sequence
    assert (link.disp_b.stats().inbound_gaps, link.disp_b.stats().inbound_lost) == (5, 5)
    assert (link.reader.stats().gaps, link.reader.stats().lost) == (0, 0)
    assert [g.header.sequence for g in got] == list(range(1, 17))


@pytest.mark.req("REQ_0516")
def test_corrupt_fault_is_caught_by_the_far_side_crc(link: Link) -> None:
    link.conn_a.faults.corrupt(every=5)
    link.send(*range(1, 12))  # 5 and 10 get a flipped payload byte
    got = collect(link.reader, 9)
    assert [g.value for g in got] == [i for i in range(1, 12) if i % 5]
    assert link.conn_a.stats()["fault_corrupt"] == 2
    stats_b = link.disp_b.stats()
    assert dict(stats_b.inbound_malformed) == {"crc": 2}
    assert stats_b.inbound_dropped == {"malformed": 2}
    # counted once, as malformed: not again as a gap by the gateway or the reader
    assert stats_b.inbound_lost == 0
    assert link.reader.stats().lost == 0 and link.reader.stats().malformed_total == 0


@pytest.mark.req("REQ_0516")
def test_delay_fault_holds_frames_and_keeps_their_order(link: Link) -> None:
    link.conn_a.faults.delay(20)
    link.send("a", "b", "c")
    assert [g.value for g in collect(link.reader, 3)] == ["a", "b", "c"]
    assert link.conn_a.stats()["fault_delay"] == 3
    link.conn_a.faults.clear()
    link.send("d")
    assert [g.value for g in collect(link.reader, 1)] == ["d"]
    assert link.conn_a.stats()["fault_delay"] == 3


@pytest.mark.req("REQ_0516", "REQ_0515")
def test_link_down_fails_sends_reports_down_and_recovers(link: Link) -> None:
    link.send("up")
    assert [g.value for g in collect(link.reader, 1)] == ["up"]
    link.conn_a.faults.link_down()
    assert link.conn_a.health() is HealthState.DOWN
    link.send("x1", "x2", "x3", "x4")
    assert wait_until(lambda: link.disp_a.stats().outbound_dropped.get("link_down") == 4)
    assert link.conn_a.stats()["link_down"] == 4
    link.conn_a.faults.link_up()
    assert link.conn_a.health() is HealthState.UP
    link.send("again")
    assert [g.value for g in collect(link.reader, 1)] == ["again"]
    assert link.reader.stats().lost == 0 and link.disp_b.stats().inbound_lost == 0
    # the far side's link down discards what arrives
    link.conn_b.faults.link_down()
    link.send("lost")
    assert wait_until(lambda: link.conn_b.stats().get("link_down_rx") == 1)
    link.conn_b.faults.link_up()
    link.send("final")
    assert [g.value for g in collect(link.reader, 1)] == ["final"]
    assert link.disp_b.stats().inbound_lost == 1  # discarded on arrival: lost on the link


@pytest.mark.req("REQ_0515")
def test_udp_connector_health_and_routing_checks() -> None:
    conn = UdpConnector()
    assert conn.health() is HealthState.CONNECTING
    bad_kind = ChannelDescriptor("c", Direction.INBOUND, routing=Routing("can", "1:2"))
    with pytest.raises(ConnectorError, match="channel 'c': routing kind 'can'"):
        conn.open(RecordingContext([bad_kind]))
    bad_addr = ChannelDescriptor("c", Direction.INBOUND, routing=Routing("udp", "nohost"))
    with pytest.raises(ConnectorError, match="must be 'HOST:PORT'"):
        conn.open(RecordingContext([bad_addr]))
    ok = ChannelDescriptor("c", Direction.INBOUND, routing=Routing("udp", "127.0.0.1:0"))
    conn.open(ctx := RecordingContext([ok]))
    try:
        assert conn.health() is HealthState.UP and ctx.reports[-1][0] is HealthState.UP
        assert conn.local_address("c")[1] > 0
        port = conn.local_address("c")[1]
        taken = ChannelDescriptor("d", Direction.INBOUND, routing=Routing("udp", f"127.0.0.1:{port}"))
        other = UdpConnector("other")
        with pytest.raises(ConnectorError, match="cannot bind channel 'd'"):
            other.open(RecordingContext([taken]))
    finally:
        conn.close()
    assert conn.health() is HealthState.DOWN


# --- a payload-only back-end: the whole protocol in a few lines ----------------------------------
class Loopback(Connector):
    """Sends of ``req`` come back as ``rep`` (payload only: the dispatcher wraps envelopes).
    The whole protocol: two methods, pushing into the context from the sending thread."""

    name = "loopback"
    carries_envelope = False

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.ctx: ConnectorContext | None = None

    def open(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        self.opened = [d.name for d in ctx.channels]
        ctx.report(HealthState.UP, "looped")

    def close(self) -> None:
        self.opened = []

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        assert self.ctx is not None
        self.ctx.deliver("rep", frame)


@pytest.mark.req("REQ_0510", "REQ_0511", "REQ_0512")
def test_a_payload_only_connector_needs_two_methods(iox_prefix: str) -> None:
    req = ChannelDescriptor("req", Direction.OUTBOUND, codec="json")
    rep = ChannelDescriptor("rep", Direction.INBOUND, codec="json")
    conn = Loopback()
    disp = Dispatcher(None, conn, [req, rep], name="loop").start()
    try:
        assert conn.opened == ["req", "rep"] and conn.health() is HealthState.UP
        with Node("app") as node:
            reader: ChannelReader[Any] = ChannelReader(node, rep)
            writer: ChannelWriter[Any] = ChannelWriter(node, req)
            for i in range(3):
                writer.send({"i": i})
            got = collect(reader, 3)
            assert conn.ctx is not None
            assert not conn.ctx.deliver("nobody", b"x")
            assert conn.ctx.deliver(rep.routing, b'"by routing"')
            got += collect(reader, 1)
        assert [g.value for g in got] == [{"i": 0}, {"i": 1}, {"i": 2}, "by routing"]
        # fresh envelopes: the gateway's own per-channel sequence, the descriptor's codec id
        assert [g.header.sequence for g in got] == [1, 2, 3, 4]
        assert {g.header.codec_id for g in got} == {CodecId.JSON}
        assert wait_until(lambda: disp.stats().inbound_dropped == {"unknown_channel": 1})
        assert conn.stats() == {} and disp.stats().running
    finally:
        report = disp.stop()
    assert report.clean and set(report.stopped) == {"loop-out"}  # a pusher needs no reader
    assert conn.opened == [] and not disp.stats().running
    with pytest.raises(ConnectorError, match="unique"):
        Dispatcher(None, conn, [req, req])


class Stuck(Loopback):
    """A pull back-end whose poll ignores its timeout until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def poll(self, timeout: float) -> Inbound | None:
        self.release.wait(30)
        return None


@pytest.mark.req("REQ_0514")
def test_stop_is_bounded_and_reports_what_did_not_stop(iox_prefix: str) -> None:
    conn = Stuck()
    disp = Dispatcher(None, conn, [ChannelDescriptor("rep", Direction.INBOUND)],
                      name="stuck").start()
    report = disp.stop(timeout=0.2)
    assert report.not_stopped == ("stuck-in",) and not report.clean
    assert report.elapsed_s < 30  # bounded by the timeout, not by the stuck thread
    conn.release.set()
    assert wait_until(lambda: disp.stop(timeout=1.0).clean)
