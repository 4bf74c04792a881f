"""The AL watch: a SubDevice that leaves OP is seen every cycle, whether or not its ESC counts
output writes outside OP, and its inputs are never published as valid data meanwhile."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Sequence

import pytest
from polling import WAIT_S, wait_until
from taktora.actors.models.health import HealthState
from taktora.connectors.context import Frame
from taktora.connectors.ethercat.connector import EthercatConnector
from taktora.connectors.ethercat.sim import SimProcess
from taktora.connectors.ethercat.sim.commands import APWR, ETHERTYPE, LRW
from taktora.connectors.ethercat.sim.line import Line
from taktora.connectors.ethercat.sim.registers import REG_ALCTL, SAFEOP
from taktora.connectors.model import ChannelDescriptor, Direction, Routing

from .contexts import TakingContext
from .frames import frame, logical, run
from .test_connector import DIO, chan, options

pytestmark = [pytest.mark.root, pytest.mark.slow]
U, D, C = HealthState.UP, HealthState.DOWN, HealthState.CONNECTING
STRANGER = bytes.fromhex("020000000a5a")  # another MainDevice's (locally administered) MAC


class OrderedContext(TakingContext):
    """Records deliveries and health reports in one list, in the order they happened."""

    def __init__(self, channels: Sequence[ChannelDescriptor]) -> None:
        super().__init__(channels)
        self.log: list[tuple[str, object, object]] = []
        self._order = threading.Lock()

    def deliver(self, channel: str | Routing, frame: Frame) -> bool:
        with self._order:
            self.log.append(("deliver", channel, bytes(frame)))
        return super().deliver(channel, frame)

    def report(self, state: HealthState, reason: str = "") -> None:
        with self._order:
            self.log.append(("report", state, reason))
        super().report(state, reason)


def al_control_from_the_wire(iface: str, position: int, state: int) -> None:
    """Write AL control of SubDevice ``position`` with an APWR sent by a stranger on the wire
    (a datagram index SOEM never uses, so its answer is ignored by the MainDevice)."""
    f = frame((APWR, (-position) & 0xFFFF, REG_ALCTL, struct.pack("<H", state)))
    f[6:12] = STRANGER
    f[17] = 0xEE  # datagram index
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE)) as sock:
        sock.bind((iface, ETHERTYPE))
        sock.send(bytes(f))


@pytest.mark.req("REQ_0823")
def test_simulator_counts_output_writes_outside_op_on_request():
    from taktora.connectors.ethercat.sim.device import builtin_dio

    for counts, wkc in ((False, 1), (True, 3)):
        line = Line.of([builtin_dio()], count_outputs_outside_op=counts)
        esc = line.escs[0]
        esc.mem[0x0810:0x0818] = struct.pack("<HHBBBB", 0x1100, 1, 0x64, 0, 1, 0)  # SM2: outputs
        esc.mem[0x0818:0x0820] = struct.pack("<HHBBBB", 0x1180, 1, 0x20, 0, 1, 0)  # SM3: inputs
        esc._load_sms()
        esc.mem[0x0600:0x0610] = struct.pack("<IHBBHBBB", 0x10000, 1, 0, 7, 0x1100, 0, 2, 1)
        esc.mem[0x0610:0x0620] = struct.pack("<IHBBHBBB", 0x10000, 1, 0, 7, 0x1180, 0, 1, 1)
        esc._load_fmmus()
        struct.pack_into("<H", esc.mem, 0x0130, SAFEOP)
        assert run(line, logical(LRW, 0x10000, b"\x5a"))[0][3] == wkc  # read 1 (+ write 2)


@pytest.mark.req("REQ_0823", "REQ_0814")
@pytest.mark.parametrize("counts", [False, True], ids=["outputs-not-counted", "outputs-counted"])
def test_a_subdevice_put_in_safeop_from_the_wire_is_seen_and_its_inputs_not_published(pair, counts):
    master, sim_end = pair
    do, di = chan("do", Direction.OUTBOUND, 1, 0, 8), chan("di", Direction.INBOUND, 1, 0, 8)
    with SimProcess(sim_end, [DIO], count=2, count_outputs_outside_op=counts) as sim:
        conn = EthercatConnector("ec", options(master))
        conn.open(ctx := OrderedContext([do, di]))
        try:
            assert ctx.next(WAIT_S) == ("di", b"\x00")
            ctx.write("do", b"\x3c")  # looped back by the DIO
            assert ctx.next(WAIT_S) == ("di", b"\x3c")
            wkc_errors = conn.stats()["wkc_errors"]
            # from the wire: SubDevice 1 goes OP -> SAFE-OP (no error flag); its outputs drop
            # to the safe value, so its looped-back inputs read 0x00 while it is in SAFE-OP
            al_control_from_the_wire(master, 1, SAFEOP)
            assert wait_until(lambda: any(e[:2] == ("report", D) for e in ctx.log))
            assert wait_until(lambda: conn.health() is U)  # re-brought up to OP
            # the inputs it had in SAFE-OP (0x00) were not published before the Down: the
            # current value is delivered again only after the bus is back in OP
            first_down = next(i for i, e in enumerate(ctx.log) if e[:2] == ("report", D))
            assert "SubDevice 1 left OP: state 0x04 (SAFE-OP)" in str(ctx.log[first_down][2])
            before = [e for e in ctx.log[:first_down] if e[0] == "deliver"]
            assert before == [("deliver", "di", b"\x00"), ("deliver", "di", b"\x3c")], ctx.log
            after = ctx.log[first_down:]
            up_again = next(i for i, e in enumerate(after) if e[:2] == ("report", U))
            assert not [e for e in after[:up_again] if e[0] == "deliver"], ctx.log
            assert wait_until(lambda: ("deliver", "di", b"\x00") in ctx.log[first_down:]), ctx.log
            assert conn.stats()["left_op"] >= 1
            if counts:  # the working counter did not tell: the AL watch did
                assert conn.stats()["wkc_errors"] == wkc_errors
            assert sim.command(op="query")["states"] == [8, 8]
            stats = conn.cycle_stats()
            assert stats["al_read_p50_us"] > 0
        finally:
            conn.close()


@pytest.mark.req("REQ_0823")
def test_al_control_command_and_the_option_through_the_control_stream(pair):
    master, sim_end = pair
    with SimProcess(sim_end, [DIO]) as sim:
        conn = EthercatConnector("ec", options(master))
        conn.open(OrderedContext([]))
        try:
            assert sim.command(op="options", count_outputs_outside_op=True) == {"ok": True}
            reply = sim.command(op="al_control", position=0, state=SAFEOP)
            assert reply == {"ok": True, "state": SAFEOP, "code": 0}
            assert wait_until(lambda: conn.health() is D)
            assert wait_until(lambda: conn.health() is U)
            assert sim.command(op="al_control", position=0)["ok"] is False  # no state: an error
        finally:
            conn.close()
