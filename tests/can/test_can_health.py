"""Error frames: classification after linux/can/error.h, per-interface health, worst-of
aggregation, bus-off recovery through the reconnect policy. Error frames are injected by a
plain python-can bus on the same virtual channel, as a controller driver reports them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import can
import pytest
from canrig import Rig, collect, inp, out, recv_all, settle, vbus, wait_until
from taktora.connectors import Backoff, HealthState
from taktora.connectors.can import BusState, classify, error_frame_data, inject

BUS_OFF = 0x040
CRTL = 0x004
PROT = 0x008
CNT = 0x200


@pytest.fixture
def chan(iox_prefix: str) -> str:
    return f"vcan-{iox_prefix}"


@pytest.fixture
def peer(chan: str) -> Iterator[can.BusABC]:
    bus = can.Bus(interface="virtual", channel=chan)
    yield bus
    bus.shutdown()


def data_frame(can_id: int, data: bytes = b"\x01") -> can.Message:
    return can.Message(arbitration_id=can_id, is_extended_id=False, data=data)


@pytest.mark.req("REQ_0706")
def test_classifier_follows_the_socketcan_error_frame_layout() -> None:
    ef = classify(BUS_OFF, error_frame_data())
    assert (ef.classes, ef.state) == (("bus_off",), BusState.BUS_OFF)
    ef = classify(CRTL, error_frame_data(controller=0x08))
    assert (ef.classes, ef.details, ef.state) == (("controller",), ("controller.tx_warning",),
                                                  BusState.WARNING)
    ef = classify(CRTL, error_frame_data(controller=0x14))  # rx warning + rx passive
    assert ef.state is BusState.PASSIVE
    assert ef.details == ("controller.rx_warning", "controller.rx_passive")
    assert classify(CRTL, error_frame_data(controller=0x40)).state is BusState.ACTIVE
    ef = classify(CRTL, error_frame_data(controller=0x01))
    assert (ef.details, ef.state) == (("controller.rx_overflow",), None)
    ef = classify(PROT | 0x080, error_frame_data(protocol=0x02 | 0x80, location=0x08))
    assert (ef.classes, ef.details, ef.state) == (("protocol", "bus_error"),
                                                  ("protocol.form", "protocol.tx"), None)
    ef = classify(CNT, error_frame_data(tx_errors=130, rx_errors=3))
    assert (ef.state, ef.tx_errors, ef.rx_errors) == (BusState.PASSIVE, 130, 3)
    assert classify(CNT, error_frame_data(rx_errors=100)).state is BusState.WARNING
    assert classify(CNT, error_frame_data(rx_errors=10)).state is None
    # every class bit, CAN_ERR_FLAG tolerated, short data padded
    ef = classify(0x20000000 | 0x3FF, b"\x00")
    assert ef.classes == ("tx_timeout", "lost_arbitration", "controller", "protocol", "transceiver",
                          "no_ack", "bus_off", "bus_error", "restarted", "counters")
    assert ef.state is BusState.BUS_OFF and "protocol.unspecified" in ef.details


@pytest.mark.req("REQ_0706", "REQ_0707")
def test_error_frames_drive_exact_per_interface_health_and_never_reach_a_channel(
        iox_prefix: str, chan: str, peer: can.BusABC) -> None:
    # a reader of every standard id: an error frame with class bits 0x004 would match it
    rig = Rig(iox_prefix, [vbus("can0", chan, recovery_window_s=0.3)],
              [inp("all", "can0", 0, mask=0)])
    try:
        reader = rig.readers["all"]
        peer.send(data_frame(0x004, b"d1"))
        assert [g.value for g in collect(reader, 1)] == [b"d1"]
        assert wait_until(lambda: rig.conn.health() is HealthState.UP)
        inject(peer, CRTL, error_frame_data(controller=0x04))  # rx warning -> Degraded
        assert wait_until(lambda: rig.conn.health() is HealthState.DEGRADED)
        # no error frame for the recovery window -> Up
        assert wait_until(lambda: rig.conn.health() is HealthState.UP)
        inject(peer, CRTL, error_frame_data(controller=0x20))  # tx passive -> Degraded
        assert wait_until(lambda: rig.conn.health() is HealthState.DEGRADED)
        inject(peer, CRTL, error_frame_data(controller=0x40))  # back to error-active -> Up
        assert wait_until(lambda: rig.conn.health() is HealthState.UP)
        inject(peer, PROT, error_frame_data(protocol=0x04))  # stuff error: counted only
        inject(peer, CRTL, error_frame_data(controller=0x01))  # rx overflow: a drop
        inject(peer, CNT, error_frame_data(tx_errors=7, rx_errors=9))
        assert wait_until(lambda: rig.conn.stats()["can0.error_frames"] == 6)
        assert rig.conn.health() is HealthState.UP
        assert settle(reader, 0.1) == []  # not one error frame reached the channel
        assert rig.events.seq("can/can0") == [
            ("connecting", "up"), ("up", "degraded"), ("degraded", "up"), ("up", "degraded"),
            ("degraded", "up")]
        reasons = [e.reason for e in rig.events.items]
        assert reasons[1].startswith("error-warning") and reasons[3].startswith("error-passive")
        assert "no error frames for 0.3 s" in reasons[2]
        stats = rig.conn.stats()
        assert {k: v for k, v in stats.items() if k.startswith("can0.errors.")} == {
            "can0.errors.controller": 4, "can0.errors.controller.rx_warning": 1,
            "can0.errors.controller.tx_passive": 1, "can0.errors.controller.active": 1,
            "can0.errors.controller.rx_overflow": 1, "can0.errors.protocol": 1,
            "can0.errors.protocol.stuff": 1, "can0.errors.counters": 1}
        assert stats["can0.drops.controller_overflow"] == 1
        assert (stats["can0.tx_error_counter"], stats["can0.rx_error_counter"]) == (7, 9)
        assert stats["can0.frames_in"] == 1 and stats["can0.delivered"] == 1
    finally:
        rig.close()
    assert rig.events.seq()[-1] == ("up", "down")  # closing takes the interface down


@pytest.mark.req("REQ_0708")
def test_bus_off_closes_backs_off_reopens_with_the_filter_and_comes_back_up(
        iox_prefix: str, chan: str, peer: can.BusABC) -> None:
    backoff = Backoff(initial_s=0.4, jitter=0.0)
    rig = Rig(iox_prefix, [vbus("can0", chan)],
              [inp("rx", "can0", 0x300, mask=0x7F0), out("tx", "can0", 0x400)], reconnect=backoff)
    try:
        first = rig.conn.bus("can0")
        peer.send(data_frame(0x301))
        assert len(collect(rig.readers["rx"], 1)) == 1
        assert wait_until(lambda: rig.conn.health() is HealthState.UP)
        inject(peer, BUS_OFF, error_frame_data())
        assert wait_until(lambda: rig.conn.health() is HealthState.DOWN)
        assert rig.conn.bus("can0") is None  # the interface is closed
        rig.writers["tx"].send(b"down")  # refused as link down, counted
        assert wait_until(lambda: rig.disp.stats().outbound_dropped.get("link_down") == 1)
        assert wait_until(lambda: rig.conn.health() is HealthState.CONNECTING)
        reopened = rig.conn.bus("can0")
        assert reopened is not None and reopened is not first
        assert rig.conn.filters("can0") == [{"can_id": 0x300, "can_mask": 0x7F0, "extended": False}]
        peer.send(data_frame(0x500))  # outside the re-applied filter: counted, never arrives
        peer.send(data_frame(0x30A, b"back"))
        assert [g.value for g in collect(rig.readers["rx"], 1)] == [b"back"]
        assert wait_until(lambda: rig.conn.health() is HealthState.UP)
        rig.writers["tx"].send(b"after")
        assert [bytes(m.data) for m in recv_all(peer, 1)] == [b"after"]
        assert rig.events.seq("can/can0") == [
            ("connecting", "up"), ("up", "down"), ("down", "connecting"), ("connecting", "up")]
        down, connecting = rig.events.items[1], rig.events.items[2]
        assert down.reason.startswith("bus-off") and "backoff" in connecting.reason
        # one interface: every transition changes the aggregate and is pushed, naming it
        assert rig.reports.states() == ["connecting", "up", "down", "connecting", "up"]
        assert all("interface 'can0'" in reason for _, reason in rig.reports.items)
        assert "bus-off" in rig.reports.items[2][1]
        assert connecting.timestamp_ns - down.timestamp_ns >= 0.4e9 * 0.95  # the policy's delay
        stats = rig.conn.stats()
        assert stats["can0.reopens"] == 1 and stats["can0.errors.bus_off"] == 1
        assert stats["can0.filtered"] == 1
        assert stats["can0.drops.link_down"] == 1
    finally:
        rig.close()


@pytest.mark.req("REQ_0707")
def test_health_aggregates_interfaces_worst_of_with_one_event_per_transition(
        iox_prefix: str) -> None:
    chans = [f"vcan-{iox_prefix}-{i}" for i in range(2)]
    peers = [can.Bus(interface="virtual", channel=c) for c in chans]
    backoff = Backoff(initial_s=30.0, jitter=0.0)  # stays down in this test
    rig = Rig(iox_prefix, [vbus("a", chans[0]), vbus("b", chans[1])],
              [inp("a/in", "a", 0x1), inp("b/in", "b", 0x1)], reconnect=backoff)
    try:
        assert rig.conn.health() is HealthState.CONNECTING
        peers[0].send(data_frame(0x1))
        assert wait_until(lambda: rig.conn.interface_health()["a"] is HealthState.UP)
        assert rig.conn.health() is HealthState.CONNECTING  # b still connecting
        peers[1].send(data_frame(0x1))
        assert wait_until(lambda: rig.conn.health() is HealthState.UP)
        inject(peers[1], BUS_OFF, error_frame_data())
        assert wait_until(lambda: rig.conn.interface_health()["b"] is HealthState.DOWN)
        assert rig.conn.health() is HealthState.DEGRADED  # one Down while another is Up
        inject(peers[0], BUS_OFF, error_frame_data())
        assert wait_until(lambda: rig.conn.health() is HealthState.DOWN)  # all Down
        time.sleep(0.1)
        assert rig.events.seq("can/a") == [("connecting", "up"), ("up", "down")]
        assert rig.events.seq("can/b") == [("connecting", "up"), ("up", "down")]
        assert len(rig.events.items) == 4
        # only changes of the aggregate are pushed, each naming the interface that made it
        assert rig.reports.states() == ["connecting", "up", "degraded", "down"]
        reasons = [reason for _, reason in rig.reports.items]
        assert reasons[0] == "interface 'a' connecting, interface 'b' connecting"
        assert reasons[1].startswith("interface 'b' up: first frame received"), reasons
        assert reasons[2].startswith("interface 'b' down: bus-off"), reasons
        assert reasons[3].startswith("interface 'a' down: bus-off"), reasons
        assert rig.disp.link is HealthState.DOWN
    finally:
        rig.close()
        for p in peers:
            p.shutdown()
    # closing: interfaces already Down emit nothing more, and closing is not reported
    assert len(rig.events.items) == 4
    assert len(rig.reports.items) == 4


@pytest.mark.req("REQ_0708")
def test_reconnect_request_reopens_at_once_and_reapplies_the_bus_filter(
        iox_prefix: str, chan: str, peer: can.BusABC) -> None:
    rig = Rig(iox_prefix, [vbus("can0", chan, quiet_up_s=0.1, filter_mode="bus")],
              [inp("rx", "can0", 0x1)])
    try:
        assert wait_until(lambda: rig.conn.health() is HealthState.UP)  # quiet bus: Up anyway
        first = rig.conn.bus("can0")
        rig.conn.reconnect("can0")
        assert wait_until(lambda: rig.conn.bus("can0") not in (None, first))
        reopened = rig.conn.bus("can0")
        assert reopened is not None
        assert reopened.filters == [{"can_id": 0x1, "can_mask": 0x7FF, "extended": False}]
        assert wait_until(lambda: rig.conn.health() is HealthState.UP)
        assert rig.events.seq() == [("connecting", "up"), ("up", "down"), ("down", "connecting"),
                                    ("connecting", "up")]
        assert rig.events.items[1].reason == "reconnect requested"
    finally:
        rig.close()
