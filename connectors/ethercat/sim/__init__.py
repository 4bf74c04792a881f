"""taktora.connectors.ethercat.sim: the software EtherCAT SubDevice.

A product feature: ``taktora ethercat sim --iface IF`` runs SubDevices that a real MainDevice
(SOEM through pysoem, or hardware-facing code) drives over a network interface, before any
hardware exists. See :mod:`.esc` (the ESC model: memory, AL state machine, FMMUs, DC),
:mod:`.registers` (its register map), :mod:`.mailbox` (SM0/SM1 and the CoE SDO server),
:mod:`.line` (frames through a line of ESCs), :mod:`.commands` (datagram commands),
:mod:`.coe` (object dictionary), :mod:`.sii` (EEPROM image), :mod:`.device` (descriptions),
:mod:`.loader` and :mod:`.esi` (description files), :mod:`.server` (the process and its fault
injection) and :mod:`.veth`.
"""

from taktora.connectors.ethercat.sim.coe import ObjectDictionary, SdoAbort
from taktora.connectors.ethercat.sim.device import (
    DeviceDescription,
    Entry,
    ObjectDesc,
    Pdo,
    PdoEntry,
    builtin_dio,
    from_dict,
)
from taktora.connectors.ethercat.sim.esc import Esc
from taktora.connectors.ethercat.sim.line import Line
from taktora.connectors.ethercat.sim.loader import load_description
from taktora.connectors.ethercat.sim.server import Faults, SimProcess, Simulator, serve
from taktora.connectors.ethercat.sim.sii import build_sii, categories, crc8

__all__ = [
    "DeviceDescription", "Entry", "Esc", "Faults", "Line", "ObjectDesc", "ObjectDictionary", "Pdo",
    "PdoEntry", "SdoAbort", "SimProcess", "Simulator", "build_sii", "builtin_dio", "categories", "crc8",
    "from_dict", "load_description", "serve",
]
