"""DBC signals through the CAN connector (cantools), both directions: the app writes and reads
decoded signals (dicts or attrs), a plain python-can + cantools program sees and sends frames."""

from __future__ import annotations

from pathlib import Path

import attrs
import can
import pytest
from canrig import Rig, collect, recv_all, vbus
from taktora.connectors import CodecError, CodecRegistry, Direction, default_registry
from taktora.connectors.can import (
    DBC_CODEC_ID,
    DbcCodec,
    dbc_descriptor,
    load_dbc,
    register_dbc,
    routing_of,
)

DBC = Path(__file__).with_name("vehicle.dbc")


@attrs.frozen
class EngineStatus:
    EngineSpeed: float
    CoolantTemp: float
    ThrottlePos: float


@pytest.mark.req("REQ_0709")
def test_dbc_signals_both_directions_classic_and_fd(iox_prefix: str) -> None:
    db = load_dbc(DBC)
    registry = CodecRegistry(tuple(default_registry.by_name(n) for n in default_registry.names()))
    register_dbc(registry, db, types={"EngineStatus": EngineStatus})
    descs = [dbc_descriptor(db, "DriveCommand", Direction.OUTBOUND, "can0"),
             dbc_descriptor(db, "EngineStatus", Direction.INBOUND, "can0"),
             dbc_descriptor(db, "BatteryCells", Direction.INBOUND, "can0")]
    cells = routing_of(descs[2])
    assert (cells.can_id, cells.extended, cells.fd) == (0x300, True, True)  # from VFrameFormat
    chan = f"vcan-{iox_prefix}"
    peer = can.Bus(interface="virtual", channel=chan)
    rig = Rig(iox_prefix, [vbus("can0", chan, fd=True)], descs, registry=registry)
    try:
        # app -> bus: the signals leave as the DBC's bytes, and a cantools peer decodes them
        rig.writers["can/can0/DriveCommand"].send({"TargetTorque": -12.5, "Mode": 2})
        (frame,) = recv_all(peer, 1)
        assert (frame.arbitration_id, frame.is_extended_id, frame.is_fd) == (0x200, True, False)
        assert db.decode_message(0x200, frame.data, decode_choices=False,
                                 force_extended_id=True) == {
            "TargetTorque": -12.5, "Mode": 2}
        # bus -> app: classic frame decoded into the attrs class, FD 64-byte frame into a dict
        es = db.get_message_by_name("EngineStatus")
        peer.send(can.Message(arbitration_id=0x100, is_extended_id=False,
                              data=es.encode({"EngineSpeed": 1500.25, "CoolantTemp": 90,
                                              "ThrottlePos": 12.5})))
        bc = db.get_message_by_name("BatteryCells")
        peer.send(can.Message(arbitration_id=0x300, is_extended_id=True, is_fd=True,
                              data=bc.encode({"PackVoltage": 400.5, "CellCount": 96,
                                              "MaxCellTemp": 35})))
        got = collect(rig.readers["can/can0/EngineStatus"], 1)
        assert [g.value for g in got] == [EngineStatus(1500.25, 90, 12.5)]
        assert got[0].header.codec_id == DBC_CODEC_ID
        (cells_got,) = collect(rig.readers["can/can0/BatteryCells"], 1)
        assert cells_got.value == {"PackVoltage": 400.5, "CellCount": 96, "MaxCellTemp": 35}
    finally:
        rig.close()
        peer.shutdown()
    # out-of-range signals are refused on the app side, before anything is sent
    with pytest.raises(CodecError, match="dbc:DriveCommand"):
        DbcCodec(db, "DriveCommand").encode({"TargetTorque": 1e9, "Mode": 0})
    with pytest.raises(CodecError, match="no message 'Nope'"):
        DbcCodec(db, "Nope")


SYSTEM = f'''
[[gateways]]
name = "g"
connector = "can"
[[gateways.settings.buses]]
name = "can0"
interface = "virtual"
channel = "tk-dbc"
dbc = "{DBC}"
[[gateways.channels]]
name = "engine"
direction = "inbound"
codec = "dbc:EngineStatus"
max_payload = 8
routing = {{ kind = "can", address = "can0", options = {{ can_id = 0x100 }} }}
[[gateways.channels]]
name = "drive"
direction = "outbound"
codec = "dbc:DriveCommand"
max_payload = 8
routing = {{ kind = "can", address = "can0", options = {{ can_id = 0x200, extended = true }} }}
'''


@pytest.mark.req("REQ_0709", "REQ_0443")
@pytest.mark.parametrize(("old", "new", "path", "reason"), [
    ("can_id = 0x100", "can_id = 0x101", "channels[0].routing", "the DBC says can_id=0x100"),
    ("extended = true", "extended = false", "channels[1].routing", "extended=True"),
    ("dbc:EngineStatus", "dbc:EngineState", "channels[0].routing", "no message 'EngineState'"),
    ("max_payload = 8", "max_payload = 4", "channels[0].routing", "below the message's 8"),
    ("vehicle.dbc", "missing.dbc", "settings.buses[0].dbc", "cannot load DBC"),
])
def test_a_bus_dbc_from_a_system_file_registers_its_codecs_and_checks_the_channels(
        old: str, new: str, path: str, reason: str) -> None:
    from taktora.system.config import loads
    from taktora.system.errors import ConfigError

    g = loads(SYSTEM).gateways[0]
    assert g.connector_settings().buses[0].dbc == str(DBC)
    for name in ("dbc:EngineStatus", "dbc:DriveCommand", "dbc:BatteryCells"):
        assert default_registry.by_name(name).codec_id == DBC_CODEC_ID  # the gateway stamps it
    assert old in SYSTEM
    with pytest.raises(ConfigError) as info:
        loads(SYSTEM.replace(old, new, 1))
    problems = dict(info.value.problems)  # type: ignore[attr-defined]
    assert f"gateways[0].{path}" in problems, problems
    assert reason in problems[f"gateways[0].{path}"], problems
