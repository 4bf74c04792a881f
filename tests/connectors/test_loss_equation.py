"""Nothing lost uncounted: written = delivered + drops, per channel, each drop counted once.

Real iceoryx2, real UDP gateways (ConnectorHost on an in-process Thespian system, as in
test_gateway.py): app ChannelWriter -> iceoryx2 -> gateway "left" -> UDP -> gateway "right"
-> iceoryx2 -> app ChannelReader (t/cmd), and back (t/state). Every case waits for the
counters to settle (polling), then asserts the loss equation exactly with
:func:`taktora.connectors.ledger.account`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from taktora.actors.control.messages import Ack, GetStats, Pause, Resume, StatsReply
from taktora.actors.control.supervision import SupervisorSpec
from taktora.actors.models.backoff import Backoff
from taktora.actors.models.health import HealthState
from taktora.connectors import (
    ChannelDescriptor,
    ChannelReader,
    ChannelWriter,
    ConnectorError,
    Direction,
    Dispatcher,
    OverflowPolicy,
    Routing,
)
from taktora.connectors.channel import ReaderStats, WriterStats
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.counters import flatten_stats
from taktora.connectors.gateway.host import ConnectorHost
from taktora.connectors.gateway.sink import InboundSink
from taktora.connectors.ledger import LossLedger, account
from taktora.connectors.model import FrozenMap
from taktora.connectors.udp import FaultInjector, UdpConnector
from taktora.connectors.udp.messages import InjectFault
from taktora.system.bootstrap import QUIET_LOGGING, start_system
from taktora.transport import CodecId, Node, envelope

from .helpers import WAIT_S, chan, collect, free_udp_port, wait_until

UDP = "taktora.connectors.udp:UdpConnector"
FAST = Backoff(initial_s=0.1, max_s=0.4, jitter=0.0)
U, D = HealthState.UP, HealthState.DOWN
CMD, STATE = "t/cmd", "t/state"




def configs() -> list[GatewayConfig]:
    """left sends t/cmd to right; right sends t/state to left."""
    p_cmd, p_state = free_udp_port(), free_udp_port()
    common: dict[str, Any] = {"reconnect": FAST, "health_poll_s": 0.05}
    return [
        GatewayConfig(name="left", connector=UDP, settings={"name": "udp-left"},
                      channels=(chan(CMD, Direction.OUTBOUND, p_cmd),
                                chan(STATE, Direction.INBOUND, p_state)), **common),
        GatewayConfig(name="right", connector=UDP, settings={"name": "udp-right"},
                      channels=(chan(CMD, Direction.INBOUND, p_cmd),
                                chan(STATE, Direction.OUTBOUND, p_state)), **common),
    ]


@attrs.define
class Path:
    """The application's ends of one channel: its writer, its reader, what the reader got."""

    name: str
    writer: ChannelWriter[Any]
    reader: ChannelReader[Any]
    got: list[Any] = attrs.field(factory=list)

    def send(self, n: int, tag: str = "") -> None:
        for i in range(n):
            self.writer.send({"i": i, "tag": tag})

    def drain(self) -> None:
        self.got.extend(r.value for r in self.reader.drain())


@attrs.define
class Rig:
    """Two UDP gateways under a ConnectorHost and the application's two paths."""

    host: ConnectorHost
    cmd: Path
    state: Path

    def stats(self, gateway: str) -> dict[str, Any]:
        reply = self.host.control(gateway, GetStats())
        assert isinstance(reply, StatsReply), reply
        return dict(reply.stats)

    def ledger(self, path: Path) -> LossLedger:
        path.drain()
        return account(path.name, writer=path.writer.stats(),
                       gateways=[self.stats("left"), self.stats("right")],
                       reader=path.reader.stats())

    def wait_health(self, gateway: str, state: HealthState, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats(gateway)["health"] == state.value:
                return
            time.sleep(0.02)
        pytest.fail(f"{gateway} did not become {state.value}")


def settled(rig: Rig, path: Path, want: Callable[[LossLedger], bool] = lambda _: True,
            timeout: float = WAIT_S) -> LossLedger:
    """Poll the ledger of ``path`` until it holds and ``want`` accepts it (the counters are
    bumped on the gateways' threads after the hand-over); the last one if it never does."""
    deadline = time.monotonic() + timeout
    led = rig.ledger(path)
    while not (led.holds and want(led)) and time.monotonic() < deadline:
        time.sleep(0.01)
        led = rig.ledger(path)
    return led


def keys(rig: Rig, gateway: str, prefix: str) -> dict[str, int]:
    return {k[len(prefix):]: v for k, v in rig.stats(gateway).items() if k.startswith(prefix)}


@contextlib.contextmanager
def open_paths(node: Node, cfg: list[GatewayConfig]) -> Iterator[tuple[Path, Path]]:
    cmd_out, state_in = cfg[0].channels
    cmd_in, state_out = cfg[1].channels
    yield (Path(CMD, ChannelWriter(node, cmd_out), ChannelReader(node, cmd_in)),
           Path(STATE, ChannelWriter(node, state_out), ChannelReader(node, state_in)))


@contextlib.contextmanager
def open_rig(admin_port: int, node: Node, cfg: list[GatewayConfig], cmd: Path,
             state: Path) -> Iterator[Rig]:
    with start_system("inprocess", logging_config=QUIET_LOGGING) as handle:
        host = ConnectorHost(handle, cfg, supervision=SupervisorSpec(intensity=5)).start()
        rig = Rig(host, cmd, state)
        try:
            for name in ("left", "right"):
                rig.wait_health(name, U)
            yield rig
        finally:
            host.stop()


@pytest.fixture
def rig(admin_port: int, iox_prefix: str) -> Iterator[Rig]:
    cfg = configs()
    with Node("loss-app", prefix=iox_prefix) as node, open_paths(node, cfg) as (cmd, state), \
            open_rig(admin_port, node, cfg, cmd, state) as r:
        yield r


def warm_up(rig: Rig) -> None:
    """One frame each way, so every port is connected before a case starts."""
    rig.cmd.send(1, "warm")
    rig.state.send(1, "warm")
    assert len(collect(rig.cmd.reader, 1)) == 1 and len(collect(rig.state.reader, 1)) == 1


# ---- through two real UDP gateways -------------------------------------------------------
@pytest.mark.req("REQ_1101", "REQ_1110", "REQ_1112", "REQ_1118")
def test_paused_frames_are_counted_once_in_both_directions(rig: Rig) -> None:
    warm_up(rig)
    assert isinstance(rig.host.control("left", Pause()), Ack)
    rig.cmd.send(5, "paused")  # dropped by left before the link (outbound)
    rig.state.send(5, "paused")  # crossed the link, dropped by left's sink (inbound)
    led = settled(rig, rig.cmd, lambda x: x.drops.get("gateway.out.paused") == 5)
    assert led.holds, str(led)
    led = settled(rig, rig.state, lambda x: x.drops.get("gateway.in.paused") == 5)
    assert led.holds, str(led)
    assert isinstance(rig.host.control("left", Resume()), Ack)
    rig.cmd.send(3, "after")
    rig.state.send(3, "after")
    cmd = settled(rig, rig.cmd, lambda x: x.delivered == 4)
    state = settled(rig, rig.state, lambda x: x.delivered == 4)
    assert (cmd.written, cmd.delivered, dict(cmd.drops)) == (9, 4, {"gateway.out.paused": 5})
    assert (state.written, state.delivered, dict(state.drops)) == (
        9, 4, {"gateway.in.paused": 5}), str(state)
    assert cmd.holds and state.holds
    assert str(cmd) == "t/cmd: written 9 = delivered 4 + gateway.out.paused 5"
    # no second count anywhere: no link gap at the far gateway, no gap at the readers
    assert keys(rig, "right", "ch.t/cmd.in.")["lost"] == 0
    assert keys(rig, "left", "ch.t/state.in.")["lost"] == 0
    assert rig.cmd.reader.stats().lost == rig.state.reader.stats().lost == 0


@pytest.mark.req("REQ_1101", "REQ_1109", "REQ_1112", "REQ_1118")
def test_link_down_drops_are_counted_by_the_side_that_saw_them(rig: Rig) -> None:
    warm_up(rig)
    assert isinstance(rig.host.control("left", InjectFault(link="down")), Ack)
    rig.wait_health("left", D)
    rig.cmd.send(6, "down")  # left cannot send: link_down, or down while reconnecting
    led = settled(rig, rig.cmd, lambda x: x.dropped == 6)
    assert led.holds and set(led.drops) <= {"gateway.out.link_down", "gateway.out.down"}, str(led)
    assert isinstance(rig.host.control("left", InjectFault(link="up")), Ack)
    rig.wait_health("left", U)
    rig.cmd.send(2, "up")
    led = settled(rig, rig.cmd, lambda x: x.delivered == 3)
    assert led.holds and led.dropped == 6 and "link.lost" not in led.drops, str(led)
    # frames that vanish on the link: counted once, by the receiving gateway, as link.lost
    before = led
    assert isinstance(rig.host.control("left", InjectFault(drop_every=3)), Ack)
    rig.cmd.send(9, "lossy")
    assert wait_until(lambda: rig.stats("left")["ch.t/cmd.out.forwarded"] == 3 + 9)
    assert isinstance(rig.host.control("left", InjectFault(clear=True)), Ack)
    rig.cmd.send(1, "clean")  # shows the gap a dropped last frame would leave
    led = settled(rig, rig.cmd, lambda x: x.delivered == before.delivered + 7)
    assert led.holds, str(led)
    assert dict(led.drops) == {**before.drops, "link.lost": 3}
    assert rig.stats("right")["ch.t/cmd.in.gaps"] == 3
    assert rig.cmd.reader.stats().lost == 0


@pytest.mark.req("REQ_1101", "REQ_1111", "REQ_1118")
def test_corrupted_frames_are_counted_once_as_malformed(rig: Rig) -> None:
    assert isinstance(rig.host.control("left", InjectFault(corrupt_every=4)), Ack)
    rig.cmd.send(12, "corrupt")
    led = settled(rig, rig.cmd, lambda x: x.delivered == 9)
    assert wait_until(lambda: rig.stats("left")["ch.t/cmd.out.forwarded"] == 12)
    assert isinstance(rig.host.control("left", InjectFault(clear=True)), Ack)
    rig.cmd.send(2, "clean")  # closes the sequence gap the last corrupted frame left
    led = settled(rig, rig.cmd, lambda x: x.delivered == 11)
    assert (led.written, led.delivered, dict(led.drops)) == (
        14, 11, {"gateway.in.malformed": 3}), str(led)
    right = rig.stats("right")
    assert right["ch.t/cmd.in.lost"] == right["ch.t/cmd.in.gaps"] == 0
    assert right["in.malformed.crc"] == 3 and right["in.lost"] == 0


@pytest.mark.req("REQ_1101", "REQ_1104", "REQ_1118")
def test_a_slow_reader_under_drop_oldest_counts_what_it_lost(rig: Rig) -> None:
    warm_up(rig)
    # 200 frames reach the reader's queue (64 deep) before it reads: paced in batches the
    # gateways keep up with, so the losses are the reader's own (whatever else drops is
    # counted too: the equation holds either way)
    for batch in range(10):
        rig.cmd.send(20, f"burst{batch}")
        assert wait_until(lambda: account(CMD, writer=rig.cmd.writer.stats(), gateways=[
            rig.stats("left"), rig.stats("right")]).holds)
    published = rig.stats("right")["ch.t/cmd.in.forwarded"] - 1  # of the burst
    led = settled(rig, rig.cmd)
    assert led.holds, str(led)
    assert published > 64 and led.delivered == 1 + 64
    assert led.drops["reader.lost"] == published - 64, str(led)
    assert rig.cmd.reader.stats().gaps == 1


@pytest.mark.req("REQ_1102", "REQ_1105", "REQ_1118")
def test_frames_written_while_no_gateway_runs_are_counted_at_the_writer(
        admin_port: int, iox_prefix: str) -> None:
    cfg = configs()
    with Node("loss-app", prefix=iox_prefix) as node, open_paths(node, cfg) as (cmd, state):
        cmd.send(10, "nobody")  # no gateway yet: nothing subscribes to t/cmd.out
        assert cmd.writer.stats().no_subscriber == 10
        with open_rig(admin_port, node, cfg, cmd, state) as rig:
            cmd.send(5, "up")
            led = settled(rig, cmd, lambda x: x.delivered == 5)
            assert (led.written, led.delivered, dict(led.drops)) == (
                15, 5, {"writer.no_subscriber": 10}), str(led)
            assert str(led) == "t/cmd: written 15 = delivered 5 + writer.no_subscriber 10"


# ---- the writer and the reader on one shared-memory hop ---------------------------------
def desc(name: str = "loss", direction: Direction = Direction.INBOUND, **kw: Any) -> ChannelDescriptor:
    return ChannelDescriptor(name, direction, codec="json", max_payload=128, **kw)


@pytest.fixture
def node() -> Iterator[Node]:
    with Node("loss") as n:
        yield n


def hop(writer: ChannelWriter[Any], reader: ChannelReader[Any], name: str = "loss") -> LossLedger:
    return account(name, writer=writer.stats(), reader=reader.stats())


@pytest.mark.parametrize("writer_first", [False, True])
@pytest.mark.req("REQ_1105", "REQ_1101")
def test_a_reader_subscribed_before_the_first_send_counts_its_overflow(
        node: Node, writer_first: bool) -> None:
    d = desc(buffer_size=16, overflow=OverflowPolicy.DROP_OLDEST)
    writer: ChannelWriter[Any] = ChannelWriter(node, d) if writer_first else None  # type: ignore[assignment]
    reader: ChannelReader[Any] = ChannelReader(node, d)
    writer = writer or ChannelWriter(node, d)
    for i in range(100):  # nothing read yet: the queue keeps the last 16
        writer.send(i)
    assert [g.value for g in reader.drain()] == list(range(84, 100))
    led = hop(writer, reader)
    assert (led.holds, dict(led.drops)) == (True, {"reader.lost": 84}), str(led)
    assert str(led) == "loss: written 100 = delivered 16 + reader.lost 84"


@pytest.mark.req("REQ_1106", "REQ_1102")
def test_a_late_joining_reader_starts_at_its_first_sample_without_phantom_losses(
        node: Node) -> None:
    d = desc(buffer_size=16)
    writer: ChannelWriter[Any] = ChannelWriter(node, d)
    for i in range(5):
        writer.send(i)  # nobody subscribes yet
    reader: ChannelReader[Any] = ChannelReader(node, d)
    for i in range(5, 8):
        writer.send(i)
    assert [g.value for g in reader.drain()] == [5, 6, 7]
    assert (reader.stats().lost, reader.stats().gaps) == (0, 0)
    led = hop(writer, reader)
    assert (led.holds, dict(led.drops)) == (True, {"writer.no_subscriber": 5}), str(led)


@pytest.mark.req("REQ_1102", "REQ_1103", "REQ_1117")
def test_the_writer_counts_no_subscriber_and_refused_as_separate_causes(node: Node) -> None:
    d = desc(buffer_size=4, overflow=OverflowPolicy.DROP_NEWEST)
    writer: ChannelWriter[Any] = ChannelWriter(node, d)
    for i in range(3):
        writer.send(i)
    assert (writer.stats().no_subscriber, writer.stats().refused) == (3, 0)
    reader: ChannelReader[Any] = ChannelReader(node, d)
    for i in range(3, 13):  # 3..6 fit the queue of 4, 7..12 are refused
        writer.send(i)
    assert [g.value for g in reader.drain()] == [3, 4, 5, 6]
    writer.send(13)  # the next sample shows the reader the gap the refusals left
    assert [g.value for g in reader.drain()] == [13]
    stats = writer.stats()
    assert (stats.sent, stats.no_subscriber, stats.refused, stats.undelivered) == (14, 3, 6, 9)
    assert (reader.stats().gaps, reader.stats().lost) == (1, 6)
    led = hop(writer, reader)  # refused is the reader's lost, counted once
    assert (led.holds, dict(led.drops)) == (
        True, {"writer.no_subscriber": 3, "reader.lost": 6}), str(led)


@pytest.mark.req("REQ_1107")
def test_a_malformed_envelope_at_the_reader_is_counted_once(node: Node) -> None:
    d = desc()
    reader: ChannelReader[Any] = ChannelReader(node, d)
    pub = node.publisher(d.channel_spec())
    pub.send_copy(envelope.encode(b'"a"', codec_id=CodecId.JSON, sequence=1))
    pub.send_copy(b"TKEV\x01")  # envelope sequence 2, unreadable
    pub.send_copy(envelope.encode(b'"c"', codec_id=CodecId.JSON, sequence=3))
    assert [g.value for g in reader.drain()] == ["a", "c"]
    stats = reader.stats()
    assert (stats.received, stats.delivered, stats.malformed_total) == (3, 2, 1)
    assert (stats.lost, stats.gaps) == (0, 0)  # not again as a gap
    led = account("loss", writer=WriterStats(sent=3, encode_errors=0, refused=0,
                                             overflow=d.overflow), reader=stats)
    assert (led.holds, dict(led.drops)) == (True, {"reader.malformed": 1}), str(led)


# ---- the inbound sink ----------------------------------------------------------------------
def frame(seq: int, value: str = "v", *, corr: int = 0, corrupt: bool = False) -> bytes:
    data = bytearray(envelope.encode(f'"{value}"'.encode(), codec_id=CodecId.JSON,
                                     sequence=seq, correlation_id=corr, with_crc=True))
    if corrupt:
        data[-1] ^= 0x01
    return bytes(data)


@pytest.mark.req("REQ_1108", "REQ_1109", "REQ_1110", "REQ_1111", "REQ_1115", "REQ_1119")
def test_the_sink_renumbers_and_counts_each_link_loss_once(node: Node) -> None:
    d = desc("tel")
    reader: ChannelReader[Any] = ChannelReader(node, d)
    sink = InboundSink("gw", node, [d], carries_envelope=True)
    counts = lambda: sink.counts.per_channel()["tel.in"]  # noqa: E731
    origin = frame(10, "a", corr=7)
    assert sink.deliver("tel", origin)
    assert not sink.deliver("tel", frame(11, "b", corrupt=True))  # malformed: CRC
    assert sink.deliver("tel", frame(12, "c"))  # closes 11's gap: not lost again
    assert (counts().gaps, counts().lost) == (0, 0)
    assert sink.deliver("tel", frame(15, "f"))  # 13, 14 vanished on the link
    assert (counts().gaps, counts().lost) == (1, 2)
    sink.paused = True
    assert not sink.deliver("tel", frame(16)) and not sink.deliver("tel", frame(17))
    assert not sink.deliver("tel", b"junk")  # paused, its sequence unreadable
    sink.paused = False
    assert sink.deliver("tel", frame(19, "s"))  # 16, 17 paused and 18 unreadable: counted
    assert sink.deliver("tel", frame(1, "r"))  # the sender restarted: followed
    assert not sink.deliver("nope", frame(2))
    got = list(reader.drain())
    assert [g.value for g in got] == ["a", "c", "f", "s", "r"]
    # the sink's own sequence on the shm hop; the rest of the header as it came
    assert [g.header.sequence for g in got] == [1, 2, 3, 4, 5]
    head, _ = envelope.decode(origin)
    assert (got[0].header.correlation_id, got[0].header.timestamp_ns) == (7, head.timestamp_ns)
    assert got[0].header.crc32 == head.crc32 and got[0].header.flags == head.flags
    c = counts()
    assert (c.forwarded, dict(c.dropped), c.gaps, c.lost) == (
        5, {"malformed": 1, "paused": 3}, 1, 2)
    assert reader.stats().lost == 0 and reader.stats().malformed_total == 0
    # a drop no channel can be named for is in the gateway-wide totals only
    assert sink.counts.snapshot() == (5, {"malformed": 1, "paused": 3, "unknown_channel": 1})
    assert sink.gaps() == (1, 2)
    sink.close()
    assert not sink.deliver("tel", frame(2))
    assert counts().dropped["down"] == 1 and counts().lost == 2  # 2 follows 1: no gap


# ---- the dispatcher: per-channel counters, link sequence, flat keys -----------------------
@pytest.mark.req("REQ_1112", "REQ_1113", "REQ_1114", "REQ_1101")
def test_dispatchers_count_per_channel_and_flatten_per_channel_keys(iox_prefix: str) -> None:
    prefix_b = f"{iox_prefix}b_"
    conn_b = UdpConnector("udp-b")
    # the readers' queues hold all 14 frames: only the outbound queue (4) may overflow here
    ins = [desc(n, routing=Routing("udp", "127.0.0.1:0"), buffer_size=32) for n in ("a", "b")]
    disp_b = Dispatcher(prefix_b, conn_b, ins, name="gw-b").start()
    conn_a = UdpConnector("udp-a", faults=FaultInjector(seed=1))
    outs = [desc(n, Direction.OUTBOUND, buffer_size=4,
                 routing=Routing("udp", "{}:{}".format(*conn_b.local_address(n))))
            for n in ("a", "b")]
    disp_a = Dispatcher(iox_prefix, conn_a, outs, name="gw-a").start()
    try:
        with Node("app-a", prefix=iox_prefix) as na, Node("app-b", prefix=prefix_b) as nb:
            ra: ChannelReader[Any] = ChannelReader(nb, ins[0])
            rb: ChannelReader[Any] = ChannelReader(nb, ins[1])
            wa: ChannelWriter[Any] = ChannelWriter(na, outs[0])
            wb: ChannelWriter[Any] = ChannelWriter(na, outs[1])
            disp_a.pause(inbound=False)
            wa.send("p1")
            wa.send("p2")
            assert wait_until(lambda: flatten_stats(disp_a.stats()).get(
                "ch.a.out.dropped.paused") == 2)
            disp_a.resume()
            conn_a.faults.delay(30)  # a slow link: a's queue of 4 overflows behind it
            for i in range(12):
                wa.send(i)
            wb.send("b")
            assert wait_until(lambda: len(collect(rb, 1, 0.2)) == 1 or rb.stats().delivered == 1)
            conn_a.faults.clear()
            wa.send("last")

            def ledger() -> LossLedger:
                list(ra.drain())
                return account("a", writer=wa.stats(), reader=ra.stats(), gateways=[
                    flatten_stats(disp_a.stats()), flatten_stats(disp_b.stats())])

            assert wait_until(lambda: ledger().holds and ra.stats().delivered > 0)
            led = ledger()
            assert led.holds, str(led)
            flat_a, flat_b = flatten_stats(disp_a.stats()), flatten_stats(disp_b.stats())
            over = flat_a["ch.a.out.dropped.overflow"]
            assert over > 0 and flat_a["out.dropped.overflow"] == over
            assert dict(led.drops) == {"gateway.out.paused": 2, "gateway.out.overflow": over}
            assert flat_a["ch.a.out.forwarded"] == 13 - over and flat_a["ch.b.out.forwarded"] == 1
            # the gateway-wide keys are the sums over the channels, exactly as before
            assert flat_a["out.forwarded"] == flat_a["ch.a.out.forwarded"] + 1
            assert flat_a["out.dropped.paused"] == 2
            assert flat_b["ch.a.in.forwarded"] == flat_a["ch.a.out.forwarded"]
            # the far side saw no link gap: drops before the link never reach its sequence
            assert (flat_b["ch.a.in.gaps"], flat_b["ch.a.in.lost"]) == (0, 0)
            assert (flat_b["ch.b.in.forwarded"], flat_b["in.forwarded"]) == (
                1, flat_b["ch.a.in.forwarded"] + 1)
            assert disp_a.stats().channels["a.out"].direction == "out"
            assert disp_b.stats().channels["b.in"].direction == "in"
    finally:
        reports = [disp_a.stop(), disp_b.stop()]
    assert all(r.clean for r in reports)


# ---- the ledger itself -----------------------------------------------------------------------
@pytest.mark.req("REQ_1116")
def test_the_ledger_is_a_validated_frozen_value_with_a_one_line_str() -> None:
    led = LossLedger("tel", 500, 480, {"gateway.in.paused": 15, "reader.lost": 5, "x.y": 0})
    assert led.holds and led.unaccounted == 0 and led.dropped == 20
    assert str(led) == "tel: written 500 = delivered 480 + gateway.in.paused 15 + reader.lost 5"
    short = LossLedger("tel", 500, 470, {"reader.lost": 5})
    assert not short.holds and short.unaccounted == 25
    assert str(short) == "tel: written 500 = delivered 470 + reader.lost 5 (unaccounted 25)"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        led.written = 1  # type: ignore[misc]
    for bad in ({"written": -1}, {"delivered": 1.5}, {"drops": {"reader.lost": -2}},
                {"channel": ""}):
        args: dict[str, Any] = {"channel": "tel", "written": 1, "delivered": 1, "drops": {},
                                **bad}
        with pytest.raises(ConnectorError, match="LossLedger"):
            LossLedger(**args)


@pytest.mark.req("REQ_1117")
def test_account_takes_every_drop_from_exactly_one_place() -> None:
    writer = WriterStats(sent=100, encode_errors=3, refused=7, overflow=OverflowPolicy.DROP_NEWEST,
                         no_subscriber=4)
    reader = ReaderStats(received=80, delivered=78, lost=7, gaps=2,
                         malformed=FrozenMap({"crc": 1, "short": 0}), decode_errors=1,
                         overflow=OverflowPolicy.DROP_NEWEST)
    out = {"out.forwarded": 999, "out.dropped.paused": 999, "ch.tel.out.forwarded": 90,
           "ch.tel.out.dropped.paused": 5, "ch.tel.out.dropped.overflow": 1,
           "ch.other.out.dropped.paused": 50}
    inb = {"in.lost": 999, "ch.tel.in.forwarded": 87, "ch.tel.in.dropped.malformed": 1,
           "ch.tel.in.gaps": 1, "ch.tel.in.lost": 2, "in.malformed.crc": 1}
    led = account("tel", writer=writer, gateways=[out, inb], reader=reader)
    assert dict(led.drops) == {
        "writer.no_subscriber": 4, "gateway.out.paused": 5, "gateway.out.overflow": 1,
        "link.lost": 2, "gateway.in.malformed": 1, "reader.lost": 7, "reader.malformed": 1,
        "reader.decode_error": 1}  # refused (7) is the reader's lost; breakdowns are no terms
    assert (led.written, led.delivered, led.holds) == (100, 78, True)
    # partial paths: from the inbound gateway on, and up to the outbound gateway
    inbound_only = account("tel", gateways=[out, inb], reader=reader)
    assert (inbound_only.written, inbound_only.holds) == (87 + 1 + 2, True)
    assert "gateway.out.paused" not in inbound_only.drops
    outbound_only = account("tel", writer=writer, gateways=[out])
    assert (outbound_only.delivered, outbound_only.holds) == (90, True)
    with pytest.raises(ConnectorError, match="no writer"):
        account("tel", gateways=[out], reader=reader)
    with pytest.raises(ConnectorError, match="no reader"):
        account("tel", writer=writer)
