"""Device descriptions from a vendor's ESI file (EtherCAT Slave Information XML, ETG.2000).

A subset that is enough to emulate a product's process data and identity: vendor id, the
device's product code, revision and name, its SyncManagers (mailbox and process data start
addresses), mailbox CoE support, RxPDOs/TxPDOs with their entries (a PDO with an ``Sm``
attribute is assigned by default) and the objects those entries map (RxPDO objects writable,
TxPDO objects read-only; values start at 0), plus the simple-typed objects of
``Profile/Dictionary/Objects`` (with their default data). Behaviours are not part of an ESI
file: the inputs keep their values unless a tool sets them. Pure function on the caller's
thread; errors are :class:`~taktora.connectors.errors.DescriptorError`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import attrs
from taktora.connectors.errors import DescriptorError
from taktora.connectors.ethercat.sim.device import DeviceDescription, from_dict

#: ESI (IEC 61131) type names -> CoE type names used by the descriptions
TYPES = {"BOOL": "BOOL", "BIT": "BOOL", "BIT1": "BOOL", "BIT2": "BIT2", "BIT3": "BIT3", "BIT4": "BIT4",
         "BIT8": "BIT8", "SINT": "INT8", "INT": "INT16", "DINT": "INT32", "LINT": "INT64", "USINT": "UINT8",
         "BYTE": "UINT8", "UINT": "UINT16", "WORD": "UINT16", "UDINT": "UINT32", "DWORD": "UINT32",
         "ULINT": "UINT64", "REAL": "REAL32"}


def esi_int(text: str | None, field: str) -> int:
    """An ESI number: ``#x1A00`` (hex) or decimal."""
    if text is None:
        raise DescriptorError(f"ESI {field}: missing")
    t = text.strip()
    try:
        return int(t[2:], 16) if t.lower().startswith("#x") else int(t, 0)
    except ValueError:
        raise DescriptorError(f"ESI {field}={text!r}: not a number") from None


def _text(el: ET.Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(path)
    return found.text if found is not None else None


def _pdos(dev: ET.Element, tag: str, access: str, objects: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    pdos = []
    for pdo in dev.findall(tag):
        entries = []
        for e in pdo.findall("Entry"):
            index = esi_int(_text(e, "Index"), f"{tag}.Entry.Index")
            bits = esi_int(_text(e, "BitLen"), f"{tag}.Entry.BitLen")
            sub = esi_int(_text(e, "SubIndex") or "0", f"{tag}.Entry.SubIndex") if index else 0
            entries.append({"index": index, "subindex": sub, "bits": bits})
            if not index:
                continue
            raw_type = (_text(e, "DataType") or "").upper()
            dtype = TYPES.get(raw_type) or ("BOOL" if bits == 1 else f"UINT{bits}" if bits in (8, 16, 32, 64)
                                            else None)
            if dtype is None:
                raise DescriptorError(f"ESI {tag} 0x{index:04X}:{sub}: data type {raw_type!r} not supported")
            obj = objects.setdefault(index, {"index": index, "name": _text(e, "Name") or f"0x{index:04X}",
                                             "subs": {}})
            obj["subs"][sub] = {"subindex": sub, "name": _text(e, "Name") or f"{sub}", "type": dtype,
                                "access": access}
        pdos.append({"index": esi_int(_text(pdo, "Index"), f"{tag}.Index"), "name": _text(pdo, "Name") or "",
                     "entries": entries, "assigned": pdo.get("Sm") is not None})
    return pdos


def from_esi(path: str | Path, device: int = 0) -> DeviceDescription:
    """The description of device number ``device`` (0-based) in the ESI file ``path``."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise DescriptorError(f"ESI {path}: {exc}") from None
    vendor = esi_int(_text(root, "Vendor/Id"), "Vendor.Id")
    devices = root.findall("Descriptions/Devices/Device")
    if not 0 <= device < len(devices):
        raise DescriptorError(f"ESI {path}: device {device} requested, the file has {len(devices)}")
    dev = devices[device]
    kind = dev.find("Type")
    if kind is None:
        raise DescriptorError(f"ESI {path}: Device.Type missing")
    objects: dict[int, dict[str, Any]] = {}
    rx = _pdos(dev, "RxPdo", "rw", objects)
    tx = _pdos(dev, "TxPdo", "ro", objects)
    for obj in dev.findall("Profile/Dictionary/Objects/Object"):
        index = esi_int(_text(obj, "Index"), "Object.Index")
        dtype = TYPES.get((_text(obj, "Type") or "").upper())
        if dtype is None or index in objects or index < 0x2000:  # standard objects are built in
            continue
        access = (_text(obj, "Flags/Access") or "ro").strip().lower()
        default = _text(obj, "Info/DefaultData")
        value = int.from_bytes(bytes.fromhex(default), "little") if default else 0
        objects[index] = {"index": index, "name": _text(obj, "Name") or f"0x{index:04X}", "type": dtype,
                          "access": access if access in ("ro", "rw", "wo") else "ro", "default": value}
    sms = {(sm.text or "").strip(): esi_int(sm.get("StartAddress"), "Sm.StartAddress")
           for sm in dev.findall("Sm") if sm.get("StartAddress")}
    sizes = {(sm.text or "").strip(): esi_int(sm.get("DefaultSize") or "128", "Sm.DefaultSize")
             for sm in dev.findall("Sm")}
    data: dict[str, Any] = {
        "name": (kind.text or "").strip() or "ESI device", "vendor_id": vendor,
        "product_code": esi_int(kind.get("ProductCode"), "Type.ProductCode"),
        "revision": esi_int(kind.get("RevisionNo") or "1", "Type.RevisionNo"),
        "mailbox": dev.find("Mailbox/CoE") is not None,
        "objects": [_object(o) for o in objects.values()], "rxpdo": rx, "txpdo": tx,
    }
    desc = from_dict(data)
    return attrs.evolve(desc, mbx_out=(sms.get("MBoxOut", 0x1000), sizes.get("MBoxOut", 128)),
                        mbx_in=(sms.get("MBoxIn", 0x1080), sizes.get("MBoxIn", 128)),
                        sm2_start=sms.get("Outputs", 0x1100), sm3_start=sms.get("Inputs", 0x1180))


def _object(o: dict[str, Any]) -> dict[str, Any]:
    if "subs" not in o:
        return o
    subs = o["subs"]
    if list(subs) == [0]:
        s = subs[0]
        return {"index": o["index"], "name": o["name"], "type": s["type"], "access": s["access"]}
    entries = sorted(subs.values(), key=lambda s: s["subindex"])
    return {"index": o["index"], "name": o["name"], "entries": entries}
