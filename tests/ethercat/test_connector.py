"""The EtherCAT connector end to end: iceoryx2 channels <-> dispatcher <-> pysoem <-> software
SubDevice (own process) over a veth pair, and the connector alone on a RecordingContext (what
its cycle delivers and reports)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from polling import WAIT_S, collect, wait_until  # noqa: F401 - re-exported
from taktora.actors.models.health import HealthEvent, HealthState
from taktora.connectors import ChannelDescriptor, ChannelReader, ChannelWriter
from taktora.connectors.errors import ConnectorError
from taktora.connectors.ethercat.bus import BusConfig
from taktora.connectors.ethercat.connector import EthercatConnector
from taktora.connectors.ethercat.errors import EthercatError, SdoAbortError
from taktora.connectors.ethercat.settings import EthercatOptions
from taktora.connectors.ethercat.sim import SimProcess, veth
from taktora.connectors.gateway.dispatcher import Dispatcher
from taktora.connectors.model import Direction, Routing
from taktora.connectors.testing import RecordingContext
from taktora.transport import Node

from .contexts import TakingContext

TIMEOUT_US = 20_000

DIO = str(Path(__file__).resolve().parents[2] / "examples" / "ethercat" / "dio.toml")
pytestmark = [pytest.mark.root, pytest.mark.slow]
U, G, D, C = HealthState.UP, HealthState.DEGRADED, HealthState.DOWN, HealthState.CONNECTING


def until(reader: ChannelReader[Any], value: bytes) -> bool:
    """Read values until ``value`` arrives (False after WAIT_S)."""
    deadline = time.monotonic() + WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        got = reader.recv(min(left, 0.2))
        if got is not None and bytes(got.value) == value:
            return True
    return False


def chan(name: str, direction: Direction, sub: int, offset: int, length: int) -> ChannelDescriptor:
    return ChannelDescriptor(name=name, direction=direction, codec="raw", max_payload=8,
                             routing=Routing(kind="ethercat", options={
                                 "subdevice": sub, "bit_offset": offset, "bit_length": length}))


class ThreadRecordingContext(TakingContext):
    """A TakingContext that also notes which threads delivered."""

    def __init__(self, channels: Sequence[ChannelDescriptor]) -> None:
        super().__init__(channels)
        self.threads: set[str] = set()

    def deliver(self, channel: str | Routing, frame: bytes | bytearray | memoryview) -> bool:
        self.threads.add(threading.current_thread().name)
        return super().deliver(channel, frame)


def states(ctx: RecordingContext) -> list[HealthState]:
    return [state for state, _ in ctx.reports]


def options(iface: str) -> EthercatOptions:
    # a generous receive timeout: a frame late on busy shared cores is not a lost frame here
    return EthercatOptions(bus=BusConfig(iface=iface, receive_timeout_us=TIMEOUT_US), cycle_s=0.002,
                           degraded_after=3, down_after_s=0.1,
                           reconnect_s=0.2)


@pytest.mark.req("REQ_0813")
def test_bit_routing_round_trip_through_iceoryx2(pair, iox_prefix):
    master, sim_end = pair
    low, high = chan("do_low", Direction.OUTBOUND, 1, 0, 3), chan("do_high", Direction.OUTBOUND, 1, 3, 5)
    di_all, di_mid = chan("di_all", Direction.INBOUND, 1, 0, 8), chan("di_mid", Direction.INBOUND, 1, 2, 4)
    with SimProcess(sim_end, [DIO], count=2):
        conn = EthercatConnector("ec", options(master))
        disp = Dispatcher(iox_prefix, conn, [low, high, di_all, di_mid], name="ec-gw").start()
        try:
            assert conn.health() is U and disp.link is U  # pushed to the dispatcher in open
            # the cycle publishes: the dispatcher runs no reader thread for this connector
            assert not conn.pulls() and "ec-gw-in" not in {t.name for t in threading.enumerate()}
            with Node("app", prefix=iox_prefix) as node:
                w_low: ChannelWriter[Any] = ChannelWriter(node, low)
                w_high: ChannelWriter[Any] = ChannelWriter(node, high)
                r_all: ChannelReader[Any] = ChannelReader(node, di_all)
                r_mid: ChannelReader[Any] = ChannelReader(node, di_mid)
                try:
                    w_low.send(b"\x05")  # bits 0..2 = 101
                    assert until(r_all, b"\x05")
                    w_high.send(b"\x14")  # bits 3..7 = 10100 -> 0xA5 with the low bits kept
                    assert until(r_all, b"\xa5")
                    assert until(r_mid, bytes([(0xA5 >> 2) & 0x0F]))
                    w_low.send(b"\x02")  # only the low bits change
                    assert until(r_all, b"\xa2")
                    conn.set_safe_outputs(True)
                    assert until(r_all, b"\x00")
                finally:
                    for port in (w_low, w_high, r_all, r_mid):
                        port.close()
        finally:
            assert disp.stop().clean
        assert conn.stats()["wkc_errors"] == 0


@pytest.mark.req("REQ_0814")
def test_health_sequences_under_faults(pair):
    master, sim_end = pair
    with SimProcess(sim_end, [DIO], count=2) as sim:
        conn = EthercatConnector("ec", options(master))
        events: list[HealthEvent] = []
        conn.machine.subscribe(events.append)
        conn.open(ctx := RecordingContext([]))
        try:
            assert conn.health() is U
            sim.command(op="faults", muted=[1])  # SubDevice 1 stops answering
            assert wait_until(lambda: conn.health() is D)
            sim.command(op="faults", muted=[])
            assert wait_until(lambda: conn.health() is U)
            seq = [e.state for e in events]
            assert seq[:3] == [U, G, D], seq
            assert seq[-2:] == [C, U] and set(seq[3:-1]) <= {C, D}
            events.clear()
            sim.command(op="safeop", position=0, code=0x001B)
            assert wait_until(lambda: conn.health() is D)
            assert "SubDevice 0 left OP" in events[0].reason and "0x001B" in events[0].reason
            assert wait_until(lambda: conn.health() is U)
            assert [e.state for e in events] == [D, C, U]
            assert sim.command(op="query")["states"] == [8, 8]
        finally:
            conn.close()
        assert sim.command(op="query")["states"] == [1, 1]  # left OP for INIT on close
        assert events[-1].state is D and events[-1].reason == "closed"
        assert ctx.reports[-1] == (D, "closed")
        assert states(ctx) == [*seq, D, C, U, D]  # every transition pushed, in order
        events.clear()
        conn.open(again := RecordingContext([]))  # reopen (a gateway's reconnect)
        try:
            assert [e.state for e in events] == [C, U]
            assert states(again) == [C, U]  # only the new context hears this connection
        finally:
            conn.close()
        assert states(ctx)[-1] is D and states(again) == [C, U, D]


@pytest.mark.req("REQ_0813")
def test_routing_errors_name_the_channel(pair):
    master, sim_end = pair
    with pytest.raises(ConnectorError, match="routing kind 'udp'"):
        udp = Routing(kind="udp", address="a:1")
        EthercatConnector("ec", options(master)).open(ctx := RecordingContext([ChannelDescriptor(
            name="x", direction=Direction.OUTBOUND, codec="raw", routing=udp)]))
    assert ctx.reports == []  # refused before the bus was touched
    with pytest.raises(ConnectorError, match="cannot take its outputs"):  # no ctx.drain
        EthercatConnector("ec", options(master)).open(
            ctx := RecordingContext([chan("do", Direction.OUTBOUND, 0, 0, 8)]))
    assert ctx.reports == []
    with SimProcess(sim_end, [DIO]):
        conn = EthercatConnector("ec", options(master))
        with pytest.raises(ConnectorError, match=r"'far' routes bits 6\.\.9 of SubDevice 0"):
            conn.open(ctx := TakingContext([chan("far", Direction.OUTBOUND, 0, 6, 4)]))
        assert states(ctx) == [D] and "outside the process image" in ctx.reports[0][1]
        conn.close()


@pytest.mark.req("REQ_0816")
def test_sdo_state_and_stats_on_the_live_bus(pair):
    master, sim_end = pair
    servo = str(Path(DIO).with_name("servo.toml"))
    with SimProcess(sim_end, [DIO, servo]):
        conn = EthercatConnector("ec", options(master))
        conn.open(RecordingContext([]))
        try:
            assert conn.read_sdo(1, 0x1018, 2) == bytes.fromhex("0102d400")
            conn.write_sdo(1, 0x6060, 0, b"\x07")
            assert conn.read_sdo(1, 0x6060, 0) == b"\x07"
            with pytest.raises(SdoAbortError) as err:
                conn.write_sdo(1, 0x6041, 0, b"\x00\x00")
            assert err.value.abort_code == 0x06010002  # read-only object
            assert conn.get_state() == [(8, 0), (8, 0)]
            assert wait_until(lambda: conn.stats()["cycles"] > 20)
            stats = conn.cycle_stats()
            assert stats["cycle_p50_us"] > 0 and stats["wkc_errors"] == 0
            assert conn.health() is U
        finally:
            conn.close()
        with pytest.raises(EthercatError, match="not open"):
            conn.get_state()


@pytest.mark.req("REQ_0814")
def test_gateway_survives_link_down_and_up(pair):
    master, sim_end = pair
    with SimProcess(sim_end, [DIO]):
        conn = EthercatConnector("ec", options(master))
        events: list[HealthEvent] = []
        conn.machine.subscribe(events.append)
        conn.open(RecordingContext([]))
        try:
            assert wait_until(lambda: conn.health() is U)
            down_at = len(events)  # judge each fault window on its own: a late frame on busy
            veth.link(master, False)  # cores before the fault may blip Up -> Degraded -> Up
            assert wait_until(lambda: conn.health() is D)
            up_at = len(events)
            veth.link(master, True)
            assert wait_until(lambda: conn.health() is U)
            seq = [e.state for e in events]
            falling = seq[down_at:up_at]
            assert falling[-1] is D and set(falling) <= {G, D} and falling.count(D) == 1, seq
            rising = seq[up_at:]  # a reconnect racing the link may fail once: C -> D -> C -> U
            assert rising[-2:] == [C, U] and set(rising) <= {C, D, U}, seq
            assert conn.stats()["lost_frames"] >= 3
        finally:
            conn.close()


@pytest.mark.req("REQ_0817", "REQ_0815")
def test_distributed_clock_offsets_converge(pair):
    master, sim_end = pair
    with SimProcess(sim_end, [DIO], count=3, drift_ppm=50) as sim:  # +50, -100, +150 ppm
        bus = BusConfig(iface=master, distributed_clocks=True, receive_timeout_us=TIMEOUT_US)
        opts = EthercatOptions(bus=bus, cycle_s=0.001)
        conn = EthercatConnector("ec", opts)
        conn.open(RecordingContext([]))
        try:
            dc = sim.command(op="query")["dc"]
            assert all(d["offset"] for d in dc)  # offsets written at bring-up
            time.sleep(1.0)  # free running they would drift apart by up to 250 us by now
            late = [d["deviation_ns"] for d in sim.command(op="query")["dc"]]
            assert all(abs(v) < 20_000 for v in late), late
            assert conn.call(lambda bus: bus.dc_time) > 0
            drift = conn.dc_deviation_ns()  # what the bus itself reports, per SubDevice
            assert drift[0] == 0, drift  # the reference clock
            assert len(drift) == 3 and all(v is not None and abs(v) < 20_000 for v in drift), drift
        finally:
            conn.close()


@pytest.mark.req("REQ_0813", "REQ_0520")
def test_the_cycle_delivers_changed_inputs_itself(pair):
    master, sim_end = pair
    do, di = chan("do", Direction.OUTBOUND, 0, 0, 8), chan("di", Direction.INBOUND, 0, 0, 8)
    di_hi = chan("di_hi", Direction.INBOUND, 0, 4, 4)
    with SimProcess(sim_end, [DIO]):
        conn = EthercatConnector("ec", options(master))
        conn.open(ctx := ThreadRecordingContext([do, di, di_hi]))
        try:
            assert states(ctx) == [U]  # reported before open returned
            first = {ctx.next(WAIT_S), ctx.next(WAIT_S)}  # the initial inputs, once per channel
            assert first == {("di", b"\x00"), ("di_hi", b"\x00")}, first
            ctx.write("do", b"\x05")  # looped back by the DIO; only the low nibble moves
            assert ctx.next(WAIT_S) == ("di", b"\x05")
            ctx.write("do", b"\x35")  # now the high nibble moves as well
            assert {ctx.next(WAIT_S), ctx.next(WAIT_S)} == {("di", b"\x35"), ("di_hi", b"\x03")}
            time.sleep(0.05)  # ~25 cycles with unchanged inputs: nothing more is delivered
            assert ctx.next(0.0) is None
            assert ctx.threads == {"ec-cycle"}  # published on the cycle thread itself
            assert conn.stats()["received"] == 5
            with pytest.raises(ConnectorError, match="taken by the cycle"):
                conn.send(do, b"\x01")  # the framework never calls it: outputs are drained
            conn.set_safe_outputs(True)  # zeros on the outputs, looped back to the inputs
            assert {ctx.next(WAIT_S), ctx.next(WAIT_S)} == {("di", b"\x00"), ("di_hi", b"\x00")}
            ctx.write("do", b"\xff")  # not written while the outputs are safe: counted
            assert wait_until(lambda: conn.stats()["discarded_safe"] == 1)
            assert ctx.next(0.05) is None
            assert conn.stats()["sent"] == ctx.taken == 3 and ctx.refused == 0
        finally:
            conn.close()


@pytest.mark.req("REQ_0827")
def test_the_cycle_thread_takes_its_affinity_and_fifo_priority(pair):
    import os

    from taktora.actors.executor.thread_attrs import ThreadAttrs

    master, sim_end = pair
    cpu = sorted(os.sched_getaffinity(0))[-1]
    opts = attrs.evolve(options(master), cycle_thread=ThreadAttrs(
        cpus=[cpu], fifo_priority=10, best_effort=True))
    with SimProcess(sim_end, [DIO]):
        conn = EthercatConnector("ec", opts)
        ctx = RecordingContext([chan("di", Direction.INBOUND, 0, 0, 8)])
        conn.open(ctx)
        try:
            assert wait_until(lambda: states(ctx)[-1] is HealthState.UP)
            tid = conn._thread.native_id  # the cycle thread (its executor applies them first)
            assert wait_until(lambda: os.sched_getaffinity(tid) == {cpu})
            if os.geteuid() == 0:  # root: SCHED_FIFO granted
                assert wait_until(lambda: os.sched_getscheduler(tid) == os.SCHED_FIFO)
        finally:
            conn.close()
    refused = attrs.evolve(options(master), cycle_thread=ThreadAttrs(cpus=[4095]))
    with SimProcess(sim_end, [DIO]):
        conn = EthercatConnector("ec", refused)
        ctx = RecordingContext([chan("di", Direction.INBOUND, 0, 0, 8)])
        conn.open(ctx)
        try:
            assert wait_until(lambda: any("cycle thread attributes refused" in r
                                          for _, r in ctx.reports))
        finally:
            conn.close()
