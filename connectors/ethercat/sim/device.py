"""Device descriptions of the software SubDevice: a small TOML file turned into frozen attrs classes.

A description names the identity (vendor id, product code, revision, serial), the CoE object
dictionary (objects with typed sub-entries), the RxPDOs (outputs, master to device) and TxPDOs
(inputs, device to master) with their default assignment, the mailbox and process-data
SyncManager addresses and an optional behaviour (``loopback`` pairs of objects, ``cia402``).
Everything here is pure data (reading a file, TOML or a vendor's ESI XML, is :mod:`.loader`);
building one runs on the caller's thread and raises
:class:`~taktora.connectors.errors.DescriptorError` naming the offending field.

Example (``examples/ethercat/dio.toml``)::

    name = "TK-DIO8"
    vendor_id = 0x00000A5A
    product_code = 0x00D10008
    [[objects]]
    index = 0x7000
    name = "Digital outputs"
    entries = [{ subindex = 1, name = "DO 0", type = "BOOL", access = "rw" }]
    [[rxpdo]]
    index = 0x1600
    entries = [{ index = 0x7000, subindex = 1, bits = 1 }]
"""

from __future__ import annotations

from typing import Any

import attrs
from taktora.connectors.errors import DescriptorError
from taktora.transport.validators import Checks

#: CoE data types: name -> (ETG data type code, bit size; 0 = variable length).
DTYPES: dict[str, tuple[int, int]] = {
    "BOOL": (0x0001, 1), "INT8": (0x0002, 8), "INT16": (0x0003, 16), "INT32": (0x0004, 32),
    "UINT8": (0x0005, 8), "UINT16": (0x0006, 16), "UINT32": (0x0007, 32), "REAL32": (0x0008, 32),
    "VISIBLE_STRING": (0x0009, 0), "INT64": (0x0015, 64), "UINT64": (0x001B, 64),
    "BIT2": (0x0031, 2), "BIT3": (0x0032, 3), "BIT4": (0x0033, 4), "BIT8": (0x0037, 8),
}
SIGNED = frozenset({"INT8", "INT16", "INT32", "INT64"})
ACCESS = frozenset({"ro", "rw", "wo"})
BEHAVIOURS = frozenset({"cia402"})


_v = Checks(DescriptorError)
_u8 = _v.integer(ge=0, le=0xFF)
_u16 = _v.integer(ge=0, le=0xFFFF)
_u32 = _v.integer(ge=0, le=0xFFFFFFFF)


@attrs.frozen
class Entry:
    """One sub-entry of an object: subindex, name, CoE type, access, default value."""

    subindex: int = attrs.field(validator=_u8)
    name: str
    dtype: str = attrs.field(validator=_v.one_of(sorted(DTYPES)))
    access: str = attrs.field(default="ro", validator=_v.one_of(sorted(ACCESS)))
    default: int | float | str = 0

    @property
    def bits(self) -> int:
        """Size in bits (strings: 8 per character of the default)."""
        size = DTYPES[self.dtype][1]
        return size if size else 8 * max(1, len(str(self.default)))


@attrs.frozen
class ObjectDesc:
    """A CoE object: a variable (one entry, subindex 0) or a record (entries 1..n; subindex 0,
    the highest subindex, is added by the dictionary)."""

    index: int = attrs.field(validator=_u16)
    name: str
    entries: tuple[Entry, ...]
    record: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.entries:
            raise _v.problem(self, "entries", f"object 0x{self.index:04X} has none")
        subs = [e.subindex for e in self.entries]
        if len(set(subs)) != len(subs):
            raise _v.problem(self, "entries", f"object 0x{self.index:04X} has a duplicate subindex")
        if self.record and 0 in subs:
            raise _v.problem(self, "entries", f"object 0x{self.index:04X} is a record: its entries "
                                              "start at subindex 1")


@attrs.frozen
class PdoEntry:
    """One mapped entry: object index/subindex (index 0 = padding) and its bit length."""

    index: int = attrs.field(validator=_u16)
    subindex: int = attrs.field(validator=_u8)
    bits: int = attrs.field(validator=_u8)

    @property
    def word(self) -> int:
        """The 32-bit mapping value (index << 16 | subindex << 8 | bits)."""
        return (self.index << 16) | (self.subindex << 8) | self.bits


@attrs.frozen
class Pdo:
    """An RxPDO (0x1600..0x17FF) or TxPDO (0x1A00..0x1BFF) with its entries."""

    index: int = attrs.field(validator=_u16)
    name: str
    entries: tuple[PdoEntry, ...]
    assigned: bool = True


@attrs.frozen
class DeviceDescription:
    """Everything the software SubDevice needs to look like one product."""

    name: str
    vendor_id: int = attrs.field(validator=_u32)
    product_code: int = attrs.field(validator=_u32)
    revision: int = attrs.field(default=1, validator=_u32)
    serial: int = attrs.field(default=0, validator=_u32)
    device_type: int = attrs.field(default=0, validator=_u32)
    objects: tuple[ObjectDesc, ...] = ()
    rxpdos: tuple[Pdo, ...] = ()
    txpdos: tuple[Pdo, ...] = ()
    mailbox: bool = True
    mbx_out: tuple[int, int] = (0x1000, 128)
    mbx_in: tuple[int, int] = (0x1080, 128)
    sm2_start: int = attrs.field(default=0x1100, validator=_u16)
    sm3_start: int = attrs.field(default=0x1180, validator=_u16)
    loopback: tuple[tuple[int, int], ...] = ()
    behaviour: tuple[str, ...] = ()
    group: str = "taktora sim"

    def __attrs_post_init__(self) -> None:
        if not self.name or len(self.name) > 60:
            raise _v.fail(self, "name", "1..60 characters", self.name)
        for b in self.behaviour:
            if b not in BEHAVIOURS:
                raise _v.problem(self, "behaviour", f"{b!r} is not one of {sorted(BEHAVIOURS)}")
        known = {(o.index, e.subindex): e for o in self.objects for e in o.entries}
        for field, pdos, lo, hi in (("rxpdos", self.rxpdos, 0x1600, 0x17FF),
                                    ("txpdos", self.txpdos, 0x1A00, 0x1BFF)):
            for pdo in pdos:
                if not lo <= pdo.index <= hi:
                    raise _v.problem(self, field, f"PDO 0x{pdo.index:04X} is outside "
                                                  f"0x{lo:04X}..0x{hi:04X}")
                for pe in pdo.entries:
                    if pe.index == 0:
                        continue
                    entry = known.get((pe.index, pe.subindex))
                    if entry is None:
                        raise _v.problem(self, field, f"PDO 0x{pdo.index:04X} maps unknown "
                                                      f"0x{pe.index:04X}:{pe.subindex}")
                    if entry.bits != pe.bits:
                        raise _v.problem(self, field, f"PDO 0x{pdo.index:04X} maps "
                                                      f"0x{pe.index:04X}:{pe.subindex} with {pe.bits} "
                                                      f"bits, the object has {entry.bits}")

    def object(self, index: int) -> ObjectDesc | None:
        """The described object ``index`` or None."""
        return next((o for o in self.objects if o.index == index), None)


def _int(raw: Any, field: str) -> int:
    if isinstance(raw, str):
        try:
            return int(raw, 0)
        except ValueError:
            raise DescriptorError(f"{field}={raw!r}: not an integer") from None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise DescriptorError(f"{field}={raw!r}: not an integer")
    return raw


def _entries(raw: list[dict[str, Any]], where: str) -> tuple[PdoEntry, ...]:
    return tuple(PdoEntry(_int(e.get("index"), f"{where}.index"), _int(e.get("subindex", 0),
                                                                         f"{where}.subindex"),
                          _int(e.get("bits"), f"{where}.bits")) for e in raw)


def from_dict(data: dict[str, Any]) -> DeviceDescription:
    """Build a description from parsed TOML (hex strings or integers for numbers)."""
    try:
        objects = []
        for o in data.get("objects", []):
            idx = _int(o["index"], "objects.index")
            if "entries" in o:
                entries = tuple(Entry(_int(e["subindex"], "entries.subindex"), e["name"], e["type"],
                                      e.get("access", "ro"), e.get("default", 0)) for e in o["entries"])
                objects.append(ObjectDesc(idx, o["name"], entries, record=True))
            else:
                objects.append(ObjectDesc(idx, o["name"], (Entry(0, o["name"], o["type"],
                                                                 o.get("access", "ro"),
                                                                 o.get("default", 0)),)))
        rx = tuple(Pdo(_int(p["index"], "rxpdo.index"), p.get("name", ""), _entries(p["entries"], "rxpdo"),
                       bool(p.get("assigned", True))) for p in data.get("rxpdo", []))
        tx = tuple(Pdo(_int(p["index"], "txpdo.index"), p.get("name", ""), _entries(p["entries"], "txpdo"),
                       bool(p.get("assigned", True))) for p in data.get("txpdo", []))
        loop = tuple((_int(lb["from"], "loopback.from"), _int(lb["to"], "loopback.to"))
                     for lb in data.get("loopback", []))
        return DeviceDescription(
            name=data["name"], vendor_id=_int(data["vendor_id"], "vendor_id"),
            product_code=_int(data["product_code"], "product_code"),
            revision=_int(data.get("revision", 1), "revision"), serial=_int(data.get("serial", 0), "serial"),
            device_type=_int(data.get("device_type", 0), "device_type"), objects=tuple(objects),
            rxpdos=rx, txpdos=tx, mailbox=bool(data.get("mailbox", True)), loopback=loop,
            behaviour=tuple(data.get("behaviour", ())), group=data.get("group", "taktora sim"))
    except KeyError as exc:
        raise DescriptorError(f"device description: missing field {exc.args[0]!r}") from None


def _bits(prefix: str, index: int, n: int, access: str) -> list[dict[str, Any]]:
    return [{"subindex": i + 1, "name": f"{prefix} {i}", "type": "BOOL", "access": access}
            for i in range(n)]


def builtin_dio() -> DeviceDescription:
    """The built-in digital I/O terminal (8 outputs looped back to 8 inputs), used when no
    description file is given."""
    return from_dict({
        "name": "TK-DIO8", "vendor_id": 0x00000A5A, "product_code": 0x00D10008, "revision": 0x00010000,
        "device_type": 0x00001389,
        "objects": [
            {"index": 0x7000, "name": "Digital outputs", "entries": _bits("DO", 0x7000, 8, "rw")},
            {"index": 0x6000, "name": "Digital inputs", "entries": _bits("DI", 0x6000, 8, "ro")},
        ],
        "rxpdo": [{"index": 0x1600, "name": "DO", "entries": [
            {"index": 0x7000, "subindex": i + 1, "bits": 1} for i in range(8)]}],
        "txpdo": [{"index": 0x1A00, "name": "DI", "entries": [
            {"index": 0x6000, "subindex": i + 1, "bits": 1} for i in range(8)]}],
        "loopback": [{"from": 0x7000, "to": 0x6000}],
    })
