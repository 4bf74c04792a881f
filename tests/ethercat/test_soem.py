"""Real SOEM (pysoem) against the software SubDevice in its own process, over a veth pair."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from taktora.connectors.ethercat.bus import Bus, BusConfig, ExpectedSubDevice, PdoAssignment
from taktora.connectors.ethercat.errors import BringUpError, SdoAbortError
from taktora.connectors.ethercat.sim import SimProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ethercat"
DIO, SERVO = str(EXAMPLES / "dio.toml"), str(EXAMPLES / "servo.toml")
ESI = str(EXAMPLES / "dio4_esi.xml")
pytestmark = [pytest.mark.root, pytest.mark.slow]


def open_bus(iface: str, **kw: object) -> Bus:
    kw.setdefault("receive_timeout_us", 20_000)  # busy shared cores: late is not lost here
    bus = Bus(BusConfig(iface=iface, **kw))  # type: ignore[arg-type]
    bus.open()
    return bus


@pytest.mark.req("REQ_0809", "REQ_0811", "REQ_0805")
def test_one_subdevice_to_op_with_cyclic_working_counter(pair):
    master, sim_end = pair
    with SimProcess(sim_end, [DIO]):
        bus = open_bus(master, expected=(ExpectedSubDevice(0x00000A5A, 0x00D10008, 0x00010000),))
        try:
            assert bus.bring_up() == 3
            sd = bus.subdevices[0]
            assert sd.name == "TK-DIO8"
            assert bytes(sd.eeprom_read(0x0008)) == struct.pack("<I", 0x00000A5A)  # SII through SOEM
            assert bytes(sd.eeprom_read(0x000A)) == struct.pack("<I", 0x00D10008)
            sd.output = b"\xa5"
            wkcs = [bus.cycle() for _ in range(50)]
            assert wkcs == [3] * 50
            assert bytes(sd.input) == b"\xa5"  # looped back by the device
            assert bus.states() == [(8, 0)]
        finally:
            bus.close()


@pytest.mark.req("REQ_0809", "REQ_0811", "REQ_0801", "REQ_0818")
def test_three_subdevices_to_op_and_servo_process_data(pair):
    master, sim_end = pair
    with SimProcess(sim_end, [DIO, SERVO, ESI]):
        bus = open_bus(master)
        try:
            assert bus.bring_up() == 9
            names = [sd.name for sd in bus.subdevices]
            assert names == ["TK-DIO8", "TK-SERVO1", "TK-DIO4-ESI"]
            assert len(bus.subdevices[2].input) == 3  # from the ESI file's TxPDO
            servo = bus.subdevices[1]
            assert len(servo.output) == 6 and len(servo.input) == 6
            servo.output = struct.pack("<Hi", 0x000F, 4242)
            for _ in range(3):
                assert bus.cycle() == 9
            assert struct.unpack("<Hi", bytes(servo.input)) == (0x0237, 4242)
        finally:
            bus.close()


@pytest.mark.req("REQ_0812", "REQ_0806")
def test_sdo_access_remapping_and_abort_as_project_error(pair):
    master, sim_end = pair
    with SimProcess(sim_end, [SERVO]):
        bus = open_bus(master, pdo=(PdoAssignment(0, rx=(0x1601,), tx=(0x1A01,)),))
        try:
            bus.bring_up()
            servo = bus.subdevices[0]
            assert len(servo.output) == 7 and len(servo.input) == 7  # remapped image
            assert bus.sdo_read(0, 0x1018, 2) == struct.pack("<I", 0x00D40201)
            assert bus.sdo_read(0, 0x1008, 0) == b"TK-SERVO1"
            bus.sdo_write(0, 0x6060, 0, b"\x06")
            assert bus.sdo_read(0, 0x6060, 0) == b"\x06"
            with pytest.raises(SdoAbortError) as err:
                bus.sdo_read(0, 0x5555, 0)
            assert err.value.abort_code == 0x06020000 and err.value.index == 0x5555
            with pytest.raises(SdoAbortError) as err:
                bus.sdo_write(0, 0x1C12, 0, b"\x00")  # only in PRE-OP
            assert err.value.abort_code == 0x08000022
        finally:
            bus.close()


@pytest.mark.req("REQ_0811", "REQ_0808", "REQ_0825")
def test_bring_up_errors_and_faults(pair):
    master, sim_end = pair
    with SimProcess(sim_end, [DIO], count=2) as sim:
        bus = open_bus(master, expected=(ExpectedSubDevice(0x00000A5A), ExpectedSubDevice(product_code=0x1)))
        try:
            with pytest.raises(BringUpError, match=r"SubDevice 1 \(TK-DIO8\) has product") as err:
                bus.bring_up()
            assert err.value.subdevice == 1
        finally:
            bus.close()
        bus = open_bus(master, pdo=(PdoAssignment(0, rx=(0x1A00,)),))
        try:
            with pytest.raises(BringUpError, match="refused the PDO assignment") as refused:
                bus.bring_up()  # a TxPDO in the RxPDO assignment: a BringUpError (REQ_0825)
            abort = refused.value.__cause__
            assert isinstance(abort, SdoAbortError) and abort.abort_code == 0x06090030
        finally:
            bus.close()
        bus = open_bus(master, pdo=(PdoAssignment(0, rx=(0x1600,)),))  # repair the assignment
        try:
            assert bus.bring_up() == 6
            sim.command(op="faults", muted=[1])
            assert bus.cycle() == 3  # SubDevice 1 stops answering: WKC falls
            sim.command(op="faults", muted=[])
            assert bus.cycle() == 6
            sim.command(op="safeop", position=0, code=0x001B)
            assert bus.states()[0] == (0x14, 0x001B)
            assert bus.cycle() == 4  # in SAFE-OP its outputs are not taken: WKC - 2
            sim.command(op="faults", link_down=True)
            assert bus.cycle() <= 0
            sim.command(op="faults", link_down=False, delay_ms=1)
            bus.master.state = 8
            bus.master.write_state()  # without acknowledge the error flag keeps it in SAFE-OP
            assert bus.states()[0] == (0x14, 0x001B)
            bus.subdevices[0].state = 0x18  # OP + acknowledge
            bus.subdevices[0].write_state()
            t = time.monotonic()
            assert bus.cycle() == 6
            assert time.monotonic() - t >= 0.0005
        finally:
            bus.close()


LONG = """
name = "TK-TEXT"
vendor_id = 0x00000A5A
product_code = 0x00D10099
[[objects]]
index = 0x2000
name = "Long text"
type = "VISIBLE_STRING"
access = "rw"
default = "{text}"
"""


@pytest.mark.req("REQ_0806", "REQ_0812")
def test_segmented_sdo_transfers_with_soem(pair, tmp_path):
    master, sim_end = pair
    text = "".join(chr(65 + i % 26) for i in range(300))
    desc = tmp_path / "text.toml"
    desc.write_text(LONG.format(text=text))
    with SimProcess(sim_end, [desc]):
        bus = open_bus(master)
        try:
            bus.master.config_init()
            assert bus.sdo_read(0, 0x2000, 0) == text.encode()  # normal + segmented upload
            new = bytes(range(32, 127)) * 3
            bus.sdo_write(0, 0x2000, 0, new)  # normal + segmented download
            assert bus.sdo_read(0, 0x2000, 0) == new
            with pytest.raises(SdoAbortError) as err:
                bus.sdo_write(0, 0x1018, 1, b"\x00\x00\x00\x00")
            assert err.value.abort_code == 0x06010002
        finally:
            bus.close()
