"""SII EEPROM image of the software SubDevice, generated from its description (ETG.2010 layout).

Words 0x00-0x07 ESC configuration with its CRC-8 (polynomial 0x07, initial 0xFF over bytes
0..13, stored in word 7's low byte), 0x08-0x0F identity, 0x18-0x1C standard mailbox and
protocols, 0x3E size, 0x3F version, categories from word 0x40: STRINGS (10), GENERAL (30),
FMMU (40), SyncManager (41), TxPDO (50), RxPDO (51), end 0xFFFF. STRINGS string 1 is the
device name (SOEM takes it from there). Pure functions; no thread concerns.
"""

from __future__ import annotations

import struct

from taktora.connectors.ethercat.sim.coe import ObjectDictionary
from taktora.connectors.ethercat.sim.device import DTYPES, DeviceDescription, Pdo

CAT_STRINGS, CAT_GENERAL, CAT_FMMU, CAT_SM, CAT_TXPDO, CAT_RXPDO, CAT_END = 10, 30, 40, 41, 50, 51, 0xFFFF
SII_BYTES = 2048  # 16 Kbit
MBX_COE = 0x0004
# SyncManager control bytes: mailbox write / read, buffered write (outputs) / read (inputs)
SM_CTRL = (0x26, 0x22, 0x64, 0x20)


def crc8(data: bytes) -> int:
    """The ESC configuration area checksum (CRC-8, polynomial x^8+x^2+x+1, initial 0xFF)."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _category(kind: int, data: bytes) -> bytes:
    if len(data) % 2:
        data += b"\x00"
    return struct.pack("<HH", kind, len(data) // 2) + data


class _Strings:
    def __init__(self) -> None:
        self.items: list[bytes] = []

    def add(self, text: str) -> int:
        raw = text.encode()[:255]
        if raw in self.items:
            return self.items.index(raw) + 1
        self.items.append(raw)
        return len(self.items)

    def encode(self) -> bytes:
        return bytes([len(self.items)]) + b"".join(bytes([len(s)]) + s for s in self.items)


def _pdo_category(pdo: Pdo, sm: int, strings: _Strings, od: ObjectDictionary) -> bytes:
    out = struct.pack("<HBBBBH", pdo.index, len(pdo.entries), sm, 0, strings.add(pdo.name or
                                                                               f"PDO {pdo.index:04X}"), 0)
    for e in pdo.entries:
        var = od.vars.get((e.index, e.subindex))
        dtype = DTYPES[var.dtype][0] if var is not None else 0
        out += struct.pack("<HBBBBH", e.index, e.subindex, 0, dtype, e.bits, 0)
    return out


def build_sii(desc: DeviceDescription, od: ObjectDictionary) -> bytes:
    """The EEPROM image (SII_BYTES bytes, 0xFF-filled after the end category)."""
    head = bytearray(128)
    struct.pack_into("<HHHHH", head, 0, 0x0005, 0, 0, 0, 0)
    head[14] = crc8(bytes(head[:14]))
    struct.pack_into("<IIII", head, 0x08 * 2, desc.vendor_id, desc.product_code, desc.revision,
                     desc.serial)
    if desc.mailbox:
        struct.pack_into("<HHHHH", head, 0x18 * 2, desc.mbx_out[0], desc.mbx_out[1], desc.mbx_in[0],
                         desc.mbx_in[1], MBX_COE)
    struct.pack_into("<HH", head, 0x3E * 2, SII_BYTES * 8 // 1024 - 1, 1)
    strings = _Strings()
    name_idx = strings.add(desc.name)
    group_idx = strings.add(desc.group)
    coe_details = 0x0D if desc.mailbox else 0  # SDO, PDO assign, PDO configuration
    general = struct.pack("<BBBBBBBBBBBBhBBHH12s", group_idx, 0, name_idx, name_idx, 0, coe_details,
                          0, 0, 0, 0, 0, 0, 0, group_idx, 0, 0x0001, 0, b"")
    fmmu = bytes([1, 2])
    out_len = (od.layout(0x1C12)[1] + 7) // 8
    in_len = (od.layout(0x1C13)[1] + 7) // 8
    mbx_out = desc.mbx_out if desc.mailbox else (desc.mbx_out[0], 0)
    mbx_in = desc.mbx_in if desc.mailbox else (desc.mbx_in[0], 0)
    sms = b"".join(struct.pack("<HHBBBB", start, length, ctrl, 0, 1 if length else 0, kind)
                   for (start, length), ctrl, kind in zip(
                       (mbx_out, mbx_in, (desc.sm2_start, out_len), (desc.sm3_start, in_len)),
                       SM_CTRL, (1, 2, 3, 4), strict=True))
    tx = b"".join(_pdo_category(p, 3, strings, od) for p in desc.txpdos)
    rx = b"".join(_pdo_category(p, 2, strings, od) for p in desc.rxpdos)
    body = (_category(CAT_STRINGS, strings.encode()) + _category(CAT_GENERAL, general)
            + _category(CAT_FMMU, fmmu) + _category(CAT_SM, sms))
    if tx:
        body += _category(CAT_TXPDO, tx)
    if rx:
        body += _category(CAT_RXPDO, rx)
    image = bytes(head) + body + struct.pack("<H", CAT_END)
    if len(image) > SII_BYTES:
        raise ValueError(f"SII image of {desc.name!r} is {len(image)} bytes, more than {SII_BYTES}")
    return image + b"\xff" * (SII_BYTES - len(image))


def categories(image: bytes) -> dict[int, bytes]:
    """Parse the category list from word 0x40 (for tests and tools): type -> data."""
    found: dict[int, bytes] = {}
    pos = 0x80
    while pos + 4 <= len(image):
        kind, words = struct.unpack_from("<HH", image, pos)
        if kind == CAT_END:
            break
        found[kind] = image[pos + 4: pos + 4 + 2 * words]
        pos += 4 + 2 * words
    return found
