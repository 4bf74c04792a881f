"""Every bring-up failure is a BringUpError naming what was wrong (REQ_0811, REQ_0825): a
refused PDO assignment, a PDO assignment for a SubDevice without a mailbox, an SII whose ESC
reports a checksum error (warned about, or refused when the config says so)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from taktora.connectors.ethercat.bus import Bus, BusConfig, PdoAssignment
from taktora.connectors.ethercat.errors import BringUpError, SdoAbortError
from taktora.connectors.ethercat.sim import SimProcess
from taktora.connectors.ethercat.sim.device import builtin_dio
from taktora.connectors.ethercat.sim.esc import Esc
from taktora.connectors.ethercat.sim.registers import REG_EEPCTL
from taktora.connectors.ethercat.sim.sii import crc8

DIO = Path(__file__).resolve().parents[2] / "examples" / "ethercat" / "dio.toml"


def open_bus(iface: str, **kw: object) -> Bus:
    bus = Bus(BusConfig(iface=iface, receive_timeout_us=20_000, **kw))  # type: ignore[arg-type]
    bus.open()
    return bus


@pytest.mark.req("REQ_0825")
def test_the_simulated_esc_reports_an_sii_checksum_error_in_eeprom_status():
    esc = Esc(builtin_dio())
    assert esc.mem[REG_EEPCTL + 1] & 0x08 == 0 and crc8(bytes(esc.sii[:14])) == esc.sii[14]
    esc.corrupt_sii_checksum()
    assert int.from_bytes(esc.mem[REG_EEPCTL:REG_EEPCTL + 2], "little") == 0x0840
    assert crc8(bytes(esc.sii[:14])) != esc.sii[14]


@pytest.mark.root
@pytest.mark.req("REQ_0825", "REQ_0811")
def test_refused_and_impossible_pdo_assignments_are_bring_up_errors(pair, tmp_path):
    master, sim_end = pair
    fixed = tmp_path / "fixed.toml"  # the DIO without a mailbox: fixed PDOs, no CoE
    fixed.write_text("mailbox = false\n" + DIO.read_text())
    with SimProcess(sim_end, [str(DIO), str(fixed)]):
        bus = open_bus(master, pdo=(PdoAssignment(0, rx=(0x1A00,)),))  # a TxPDO as an RxPDO
        try:
            with pytest.raises(BringUpError) as err:
                bus.bring_up()
            assert "SubDevice 0 (TK-DIO8) refused the PDO assignment 0x1C12 = [0x1A00]" in str(err.value)
            assert err.value.subdevice == 0 and isinstance(err.value.__cause__, SdoAbortError)
        finally:
            bus.close()
        bus = open_bus(master, pdo=(PdoAssignment(1, rx=(0x1600,)),))
        try:
            with pytest.raises(BringUpError, match=r"SubDevice 1 \(TK-DIO8\), which has no CoE "
                                                   r"mailbox .*remove PdoAssignment\(subdevice=1\)") as err:
                bus.bring_up()
            assert err.value.subdevice == 1
        finally:
            bus.close()
        bus = open_bus(master, pdo=(PdoAssignment(0, rx=(0x1600,)),))  # repaired, none for 1
        try:
            assert bus.bring_up() == 6
        finally:
            bus.close()


@pytest.mark.root
@pytest.mark.req("REQ_0825")
def test_an_sii_checksum_error_is_warned_about_or_refused(pair, caplog):
    master, sim_end = pair
    with SimProcess(sim_end, [str(DIO)], count=2) as sim:
        assert sim.command(op="sii_checksum_error", position=1) == {"ok": True}
        bus = open_bus(master)
        try:
            with caplog.at_level(logging.WARNING, logger="taktora.connectors.ethercat.bus"):
                assert bus.bring_up() == 6
            assert len(bus.warnings) == 1 and "SubDevice 1 (TK-DIO8) reports an SII checksum error " \
                                               "(EEPROM status 0x0840)" in bus.warnings[0]
            assert bus.warnings[0] in caplog.text
        finally:
            bus.close()
        bus = open_bus(master, refuse_sii_checksum_error=True)
        try:
            with pytest.raises(BringUpError, match=r"SubDevice 1 .* SII checksum error.*refused") as err:
                bus.bring_up()
            assert err.value.subdevice == 1
        finally:
            bus.close()
