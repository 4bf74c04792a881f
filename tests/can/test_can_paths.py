"""CAN send and receive paths on python-can's in-process ``virtual`` interface: a plain
python-can program on the same channel is the far side (no taktora on it)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import can
import pytest
from canrig import WAIT_S, Rig, collect, inp, out, recv_all, settle, vbus, wait_until
from taktora.connectors import ChannelDescriptor, ConnectorError, DescriptorError, HealthState
from taktora.connectors.can import (
    CAN_EFF_MASK,
    CanBusConfig,
    CanConnector,
    CanRouting,
    FilterEntry,
    can_routing,
    compile_filters,
    subsumes,
)
from taktora.connectors.context import Frame
from taktora.connectors.model import Routing
from taktora.connectors.testing import RecordingContext


@pytest.fixture
def chan(iox_prefix: str) -> str:
    return f"vcan-{iox_prefix}"


@pytest.fixture
def peer(chan: str) -> Iterator[can.BusABC]:
    bus = can.Bus(interface="virtual", channel=chan)
    yield bus
    bus.shutdown()


@pytest.mark.req("REQ_0701")
def test_bus_config_and_routing_validate_and_name_the_field() -> None:
    cfg = CanBusConfig(name="can0", interface="socketcan", channel="can0", bitrate=500_000,
                       data_bitrate=2_000_000, fd=True)
    assert cfg.bus_kwargs() == {"interface": "socketcan", "channel": "can0", "fd": True,
                                "bitrate": 500_000, "data_bitrate": 2_000_000}
    with pytest.raises(ConnectorError, match=r"CanBusConfig.bitrate=12"):
        CanBusConfig(name="can0", interface="socketcan", channel="can0", bitrate=12)
    with pytest.raises(ConnectorError, match=r"data_bitrate.*needs fd=True"):
        CanBusConfig(name="can0", interface="socketcan", channel="can0", data_bitrate=2_000_000)
    with pytest.raises(ConnectorError, match=r"CanBusConfig.filter_mode='kernel'"):
        CanBusConfig(name="can0", interface="virtual", channel="x", filter_mode="kernel")
    with pytest.raises(ConnectorError, match=r"CanRouting.can_id='0x800'.*11 bits"):
        can_routing("can0", 0x800)
    with pytest.raises(ConnectorError, match=r"CanRouting.brs=True.*needs fd=True"):
        can_routing("can0", 0x10, brs=True)
    r = can_routing("can0", 0x18FF0001, extended=True, fd=True, brs=True)
    assert CanRouting.from_routing(r).mask == CAN_EFF_MASK
    with pytest.raises(ConnectorError, match=r"channel 'x': unknown CAN routing options \['bogus'\]"):
        CanRouting.from_routing(r.__class__("can", "can0", {"can_id": 1, "bogus": 1}), "x")
    with pytest.raises(ConnectorError, match="interface names"):
        CanConnector([cfg, cfg])
    with pytest.raises(DescriptorError):
        out("bad name!", "can0", 1)


@pytest.mark.req("REQ_0705")
def test_filter_compilation_is_the_minimal_exact_union() -> None:
    routes = [CanRouting.from_routing(can_routing("i", can_id, mask=mask, extended=ext))
              for can_id, mask, ext in [(0x100, 0x7FF, False), (0x100, 0x7F0, False),
                                        (0x100, 0x7FF, False), (0x200, 0x7FF, False),
                                        (0x100, 0x1FFFFFFF, True), (0x18FF0000, 0x1FFF0000, True)]]
    got = compile_filters(routes)
    # 0x100/0x7FF is inside 0x100/0x7F0; the duplicate goes; formats never merge
    assert got == [FilterEntry(0x100, 0x7F0, False), FilterEntry(0x200, 0x7FF, False),
                   FilterEntry(0x100, 0x1FFFFFFF, True), FilterEntry(0x18FF0000, 0x1FFF0000, True)]
    assert subsumes(FilterEntry(0x100, 0x7F0, False), FilterEntry(0x10F, 0x7FF, False))
    assert not subsumes(FilterEntry(0x100, 0x7F0, False), FilterEntry(0x110, 0x7FF, False))
    assert not subsumes(FilterEntry(0x100, 0x7F0, False), FilterEntry(0x100, 0x7F0, True))
    # exactness: the compiled union accepts exactly what some routing accepts
    for can_id in range(0x0F0, 0x220):
        for ext in (False, True):
            want = any(r.matches(can_id, ext) for r in routes)
            assert any(e.accepts(can_id, ext) for e in got) == want


@pytest.mark.req("REQ_0702")
def test_send_path_builds_frames_from_routing_without_reencoding(iox_prefix: str, chan: str,
                                                                 peer: can.BusABC) -> None:
    descs = [out("cmd/std", "can0", 0x123), out("cmd/ext", "can0", 0x18DAF110, extended=True)]
    rig = Rig(iox_prefix, [vbus("can0", chan)], descs)
    try:
        assert rig.conn.health() is HealthState.CONNECTING
        payloads = [bytes(range(n)) for n in range(9)]
        for p in payloads:
            rig.writers["cmd/std"].send(p)
        rig.writers["cmd/ext"].send(b"\xde\xad\xbe\xef")
        got = recv_all(peer, 10)
        assert [(m.arbitration_id, m.is_extended_id, m.is_fd, bytes(m.data)) for m in got] == [
            *((0x123, False, False, p) for p in payloads), (0x18DAF110, True, False, b"\xde\xad\xbe\xef")]
        assert not any(m.is_error_frame for m in got)
        assert wait_until(lambda: rig.conn.stats()["can0.frames_out"] == 10)
        assert rig.conn.interface_health() == {"can0": HealthState.UP}
        assert rig.events.seq("can/can0") == [("connecting", "up")]
        # a payload a classic frame cannot carry is refused and counted, nothing reaches the bus
        rig.writers["cmd/std"].send(bytes(9))
        assert wait_until(lambda: rig.disp.stats().outbound_dropped.get("send_error") == 1)
        assert rig.conn.stats()["can0.send_errors.length"] == 1
        assert recv_all(peer, 1, timeout=0.2) == []
    finally:
        rig.close()


@pytest.mark.req("REQ_0703")
def test_fd_frames_of_64_bytes_with_brs_and_esi_both_ways(iox_prefix: str, chan: str) -> None:
    peer = can.Bus(interface="virtual", channel=chan)
    descs = [out("fd/out", "can0", 0x1ABCDE, extended=True, fd=True, brs=True, esi=True),
             out("fd/plain", "can0", 0x50, fd=True),
             inp("fd/in", "can0", 0x51)]
    rig = Rig(iox_prefix, [vbus("can0", chan, fd=True)], descs)
    try:
        big = bytes((i * 7) & 0xFF for i in range(64))
        rig.writers["fd/out"].send(big)
        rig.writers["fd/plain"].send(bytes(12))
        rig.writers["fd/plain"].send(bytes(13))  # not a CAN FD length: refused
        got = recv_all(peer, 2)
        assert [(m.arbitration_id, m.is_extended_id, m.is_fd, m.bitrate_switch,
                 m.error_state_indicator, bytes(m.data)) for m in got] == [
            (0x1ABCDE, True, True, True, True, big), (0x50, False, True, False, False, bytes(12))]
        assert wait_until(lambda: rig.conn.stats().get("can0.send_errors.length") == 1)
        peer.send(can.Message(arbitration_id=0x51, is_extended_id=False, is_fd=True,
                              bitrate_switch=True, data=big))
        assert [g.value for g in collect(rig.readers["fd/in"], 1)] == [big]
    finally:
        rig.close()
        peer.shutdown()
    with pytest.raises(ConnectorError, match="not opened with fd=True"):
        CanConnector([vbus("can0", chan)]).open(RecordingContext([out("fd/out", "can0", 1, fd=True)]))


@pytest.mark.req("REQ_0704", "REQ_0705")
def test_receive_path_filters_and_demultiplexes_to_every_matching_reader(
        iox_prefix: str, chan: str, peer: can.BusABC) -> None:
    descs = [inp("rx/exact", "can0", 0x101), inp("rx/range", "can0", 0x100, mask=0x7F0),
             inp("rx/ext", "can0", 0x101, extended=True), inp("rx/exact2", "can0", 0x101)]
    rig = Rig(iox_prefix, [vbus("can0", chan)], descs)
    try:
        assert rig.conn.filter_mode("can0") == "connector"  # virtual filters in software only
        assert rig.conn.filters("can0") == [
            {"can_id": 0x100, "can_mask": 0x7F0, "extended": False},
            {"can_id": 0x101, "can_mask": CAN_EFF_MASK, "extended": True}]
        sent = [(0x101, False, b"a"), (0x10F, False, b"b"), (0x110, False, b"c"),
                (0x101, True, b"d"), (0x7FF, False, b"e"), (0x100, True, b"f"), (0x105, False, b"g")]
        for can_id, ext, data in sent:
            peer.send(can.Message(arbitration_id=can_id, is_extended_id=ext, data=data))
        assert [g.value for g in collect(rig.readers["rx/exact"], 1)] == [b"a"]
        assert [g.value for g in collect(rig.readers["rx/exact2"], 1)] == [b"a"]
        assert [g.value for g in collect(rig.readers["rx/range"], 3)] == [b"a", b"b", b"g"]
        assert [g.value for g in collect(rig.readers["rx/ext"], 1)] == [b"d"]
        for r in rig.readers.values():
            assert settle(r, 0.05) == []
        stats = rig.conn.stats()
        assert stats["can0.frames_in"] == 7
        assert stats["can0.filtered"] == 3  # 0x110, 0x7FF, extended 0x100
        assert stats["can0.delivered"] == 6
        assert stats.get("can0.unmatched", 0) == 0
        # each envelope is fresh per channel: sequences from 1, gap-free
        assert rig.disp.stats().inbound_forwarded == 6
    finally:
        rig.close()


class ThreadsContext(RecordingContext):
    """A RecordingContext that also notes which threads deliver."""

    def __init__(self, channels: list[ChannelDescriptor]) -> None:
        super().__init__(channels)
        self.threads: set[str] = set()

    def deliver(self, channel: str | Routing, frame: Frame) -> bool:
        self.threads.add(threading.current_thread().name)
        return super().deliver(channel, frame)


@pytest.mark.req("REQ_0704", "REQ_0707")
def test_the_receive_thread_pushes_frames_and_health_into_the_context(
        chan: str, peer: can.BusABC) -> None:
    # no dispatcher, no iceoryx2: the connector pushes from the interface's own thread
    descs = [inp("rx/a", "can0", 0x10), inp("rx/any", "can0", 0x10, mask=0x7F0),
             out("tx", "can0", 0x20)]
    conn = CanConnector([vbus("can0", chan)])
    assert not conn.pulls()  # the framework runs no reader thread for it
    ctx = ThreadsContext(descs)
    conn.open(ctx)
    try:
        assert ctx.reports == [(HealthState.CONNECTING, "interface 'can0' connecting")]
        peer.send(can.Message(arbitration_id=0x11, is_extended_id=False, data=b"x"))
        peer.send(can.Message(arbitration_id=0x10, is_extended_id=False, data=b"y"))
        got = [ctx.next(WAIT_S) for _ in range(3)]
        assert got == [("rx/any", b"x"), ("rx/a", b"y"), ("rx/any", b"y")]
        assert ctx.next(0.05) is None
        assert ctx.threads == {"can-rx-can0"}
        assert conn.stats()["can0.delivered"] == 3
        assert wait_until(lambda: ctx.state is HealthState.UP)
        assert ctx.reports[1] == (HealthState.UP, "interface 'can0' up: first frame received")
        conn.send(descs[2], memoryview(b"out"))
        assert [bytes(m.data) for m in recv_all(peer, 1)] == [b"out"]
    finally:
        conn.close()
    assert len(ctx.reports) == 2  # closing is the owner's doing: not reported
    assert conn.health() is HealthState.DOWN


@pytest.mark.req("REQ_0705")
def test_filter_mode_bus_hands_the_compiled_filter_to_set_filters(iox_prefix: str, chan: str,
                                                                  peer: can.BusABC) -> None:
    descs = [inp("rx/a", "can0", 0x200, mask=0x7F0)]
    rig = Rig(iox_prefix, [vbus("can0", chan, filter_mode="bus")], descs)
    try:
        bus = rig.conn.bus("can0")
        assert bus is not None and rig.conn.filter_mode("can0") == "bus"
        assert bus.filters == [{"can_id": 0x200, "can_mask": 0x7F0, "extended": False}]
        for can_id in (0x201, 0x300, 0x20A):
            peer.send(can.Message(arbitration_id=can_id, is_extended_id=False, data=b"x"))
        assert len(collect(rig.readers["rx/a"], 2)) == 2
        assert settle(rig.readers["rx/a"], 0.1) == []
        # the bus dropped 0x300 before the connector saw it: nothing counted as filtered
        stats = rig.conn.stats()
        assert stats["can0.frames_in"] == 2 and stats.get("can0.filtered", 0) == 0
    finally:
        rig.close()


@pytest.mark.req("REQ_0701", "REQ_0704")
def test_several_interfaces_in_one_connector(iox_prefix: str) -> None:
    chans = [f"vcan-{iox_prefix}-{i}" for i in range(2)]
    peers = [can.Bus(interface="virtual", channel=c) for c in chans]
    descs = [out("a/out", "a", 0x10), out("b/out", "b", 0x10), inp("a/in", "a", 0x20),
             inp("b/in", "b", 0x20)]
    rig = Rig(iox_prefix, [vbus("a", chans[0]), vbus("b", chans[1])], descs)
    try:
        rig.writers["a/out"].send(b"A")
        rig.writers["b/out"].send(b"B")
        assert [bytes(m.data) for m in recv_all(peers[0], 1)] == [b"A"]
        assert [bytes(m.data) for m in recv_all(peers[1], 1)] == [b"B"]
        peers[0].send(can.Message(arbitration_id=0x20, is_extended_id=False, data=b"1"))
        peers[1].send(can.Message(arbitration_id=0x20, is_extended_id=False, data=b"2"))
        assert [g.value for g in collect(rig.readers["a/in"], 1)] == [b"1"]
        assert [g.value for g in collect(rig.readers["b/in"], 1)] == [b"2"]
        assert settle(rig.readers["a/in"], 0.05) == [] and settle(rig.readers["b/in"], 0.05) == []
        stats = rig.conn.stats()
        assert (stats["a.frames_out"], stats["b.frames_out"], stats["a.frames_in"],
                stats["b.frames_in"], stats["frames_in"], stats["frames_out"]) == (1, 1, 1, 1, 2, 2)
        assert rig.conn.health() is HealthState.UP
    finally:
        rig.close()
        for p in peers:
            p.shutdown()
    with pytest.raises(ConnectorError, match="routing names interface 'zz'"):
        CanConnector([vbus("a", "x")]).open(RecordingContext([out("z", "zz", 1)]))


@pytest.mark.req("REQ_0710")
def test_pause_resume_through_the_dispatcher_and_stats(iox_prefix: str, chan: str,
                                                       peer: can.BusABC) -> None:
    descs = [out("o", "can0", 0x10), inp("i", "can0", 0x20)]
    rig = Rig(iox_prefix, [vbus("can0", chan)], descs)
    try:
        rig.disp.pause()
        rig.writers["o"].send(b"p")
        peer.send(can.Message(arbitration_id=0x20, is_extended_id=False, data=b"q"))
        assert wait_until(lambda: rig.disp.stats().outbound_dropped.get("paused") == 1
                          and rig.disp.stats().inbound_dropped.get("paused") == 1)
        assert recv_all(peer, 1, timeout=0.2) == []
        rig.disp.resume()
        rig.writers["o"].send(b"r")
        peer.send(can.Message(arbitration_id=0x20, is_extended_id=False, data=b"s"))
        assert [bytes(m.data) for m in recv_all(peer, 1)] == [b"r"]
        assert [g.value for g in collect(rig.readers["i"], 1)] == [b"s"]
        stats = rig.conn.stats()
        assert stats["can0.frames_out"] == 1 and stats["can0.frames_in"] == 2
        assert stats["drops"] == 0 and stats["error_frames"] == 0
    finally:
        rig.close()
