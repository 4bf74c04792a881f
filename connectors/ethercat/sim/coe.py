"""The software SubDevice's CoE object dictionary, process-image mapping and SDO server.

Runs on the simulator process's only thread (no locking). The dictionary holds every value as
little-endian bytes; PDO mapping objects (0x16xx/0x1Axx) and the SyncManager PDO assignment
(0x1C12/0x1C13) are ordinary writable objects (in PRE-OP only), and the process image layout
is compiled from them when the SubDevice enters SAFE-OP, so a remapping really changes the
image. SDO errors are :class:`SdoAbort` with the ETG abort code; the mailbox layer turns them
into abort frames.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import attrs
from taktora.connectors.ethercat.sim.device import DTYPES, SIGNED, DeviceDescription, Entry

# ETG.1000.6 SDO abort codes used here
ABORT_TOGGLE = 0x05030000
ABORT_COMMAND = 0x05040001
ABORT_UNSUPPORTED_ACCESS = 0x06010000
ABORT_WRITE_ONLY = 0x06010001
ABORT_READ_ONLY = 0x06010002
ABORT_NO_OBJECT = 0x06020000
ABORT_NOT_MAPPABLE = 0x06040041
ABORT_PDO_LENGTH = 0x06040042
ABORT_TYPE_LENGTH = 0x06070010
ABORT_NO_SUBINDEX = 0x06090011
ABORT_VALUE_RANGE = 0x06090030
ABORT_STATE = 0x08000022

RX_MAP, TX_MAP, RX_ASSIGN, TX_ASSIGN = 0x1600, 0x1A00, 0x1C12, 0x1C13
MAX_PDO_BITS = 8 * 64  # per SyncManager


class SdoAbort(Exception):  # noqa: N818 - the ETG name
    """An SDO request the dictionary refuses; ``code`` is the ETG abort code."""

    def __init__(self, code: int, index: int, subindex: int) -> None:
        super().__init__(f"SDO abort 0x{code:08X} at 0x{index:04X}:{subindex}")
        self.code = code
        self.index = index
        self.subindex = subindex


@attrs.define
class Var:
    """One addressable value (index, subindex)."""

    dtype: str
    access: str
    data: bytearray
    mappable: bool = False

    @property
    def bits(self) -> int:
        size = DTYPES[self.dtype][1]
        return size if size else 8 * len(self.data)


def encode(dtype: str, value: int | float | str) -> bytearray:
    """The little-endian bytes of ``value`` as CoE type ``dtype``."""
    if dtype == "VISIBLE_STRING":
        return bytearray(str(value).encode())
    if dtype == "REAL32":
        return bytearray(struct.pack("<f", float(value)))
    nbytes = max(1, (DTYPES[dtype][1] + 7) // 8)
    return bytearray(int(value).to_bytes(nbytes, "little", signed=dtype in SIGNED))


@attrs.frozen
class Slot:
    """One entry of a compiled process image: bit offset, bit length, value (None = padding)."""

    offset: int
    bits: int
    var: Var | None


class ObjectDictionary:
    """Objects of one SubDevice: the standard communication area plus the description's."""

    def __init__(self, desc: DeviceDescription, state: Callable[[], int]) -> None:
        """``state`` returns the current AL state (1 INIT, 2 PRE-OP, 4 SAFE-OP, 8 OP)."""
        self.desc = desc
        self.state = state
        self.vars: dict[tuple[int, int], Var] = {}
        self.generation = 0  # bumped on every value change made through this class
        self.sub0: dict[int, int] = {}  # record index -> max subindex for fixed records
        self._add(0x1000, 0, "UINT32", "ro", desc.device_type)
        self._add(0x1008, 0, "VISIBLE_STRING", "ro", desc.name)
        self._add(0x1009, 0, "VISIBLE_STRING", "ro", "1.0")
        self._add(0x100A, 0, "VISIBLE_STRING", "ro", "taktora-sim")
        self._record(0x1018, [("UINT32", desc.vendor_id), ("UINT32", desc.product_code),
                              ("UINT32", desc.revision), ("UINT32", desc.serial)])
        for obj in desc.objects:
            for e in obj.entries:
                self._add_entry(obj.index, e)
            if obj.record:
                self.sub0[obj.index] = max(e.subindex for e in obj.entries)
                self._add(obj.index, 0, "UINT8", "ro", self.sub0[obj.index])
        for pdo in (*desc.rxpdos, *desc.txpdos):
            self._add(pdo.index, 0, "UINT8", "rw", len(pdo.entries))
            for i in range(1, 9):
                word = pdo.entries[i - 1].word if i <= len(pdo.entries) else 0
                self._add(pdo.index, i, "UINT32", "rw", word)
        self._record(0x1C00, [("UINT8", 1), ("UINT8", 2), ("UINT8", 3), ("UINT8", 4)])
        for idx, pdos in ((RX_ASSIGN, desc.rxpdos), (TX_ASSIGN, desc.txpdos)):
            chosen = [p.index for p in pdos if p.assigned]
            self._add(idx, 0, "UINT8", "rw", len(chosen))
            for i in range(1, 9):
                self._add(idx, i, "UINT16", "rw", chosen[i - 1] if i <= len(chosen) else 0)

    def _add(self, index: int, sub: int, dtype: str, access: str, value: int | float | str,
             mappable: bool = False) -> None:
        self.vars[(index, sub)] = Var(dtype, access, encode(dtype, value), mappable)

    def _add_entry(self, index: int, e: Entry) -> None:
        self._add(index, e.subindex, e.dtype, e.access, e.default, mappable=True)

    def _record(self, index: int, items: list[tuple[str, int]]) -> None:
        self._add(index, 0, "UINT8", "ro", len(items))
        self.sub0[index] = len(items)
        for i, (dtype, value) in enumerate(items, 1):
            self._add(index, i, dtype, "ro", value)

    # ---- SDO access -------------------------------------------------------------------------------
    def _lookup(self, index: int, sub: int) -> Var:
        var = self.vars.get((index, sub))
        if var is None:
            if not any(k[0] == index for k in self.vars):
                raise SdoAbort(ABORT_NO_OBJECT, index, sub)
            raise SdoAbort(ABORT_NO_SUBINDEX, index, sub)
        return var

    def read(self, index: int, sub: int) -> bytes:
        """SDO upload: the value's bytes (raises SdoAbort)."""
        var = self._lookup(index, sub)
        if var.access == "wo":
            raise SdoAbort(ABORT_WRITE_ONLY, index, sub)
        return bytes(var.data)

    def write(self, index: int, sub: int, data: bytes) -> None:
        """SDO download (raises SdoAbort with the ETG code; nothing changes on an abort)."""
        var = self._lookup(index, sub)
        is_config = RX_MAP <= index <= 0x17FF or TX_MAP <= index <= 0x1BFF or index in (RX_ASSIGN,
                                                                                        TX_ASSIGN)
        if var.access == "ro":
            raise SdoAbort(ABORT_READ_ONLY, index, sub)
        self.generation += 1
        if var.dtype == "VISIBLE_STRING":
            var.data[:] = data
            return
        if len(data) != len(var.data):
            raise SdoAbort(ABORT_TYPE_LENGTH, index, sub)
        if is_config:
            if self.state() != 2:
                raise SdoAbort(ABORT_STATE, index, sub)
            current_n = self.vars[(index, 0)].data[0]
            if sub != 0 and current_n != 0:
                raise SdoAbort(ABORT_UNSUPPORTED_ACCESS, index, sub)  # set subindex 0 to 0 first
            if sub == 0:
                self._check_config(index, data[0])
        var.data[:] = data

    def _check_config(self, index: int, n: int) -> None:
        if n > 8:
            raise SdoAbort(ABORT_VALUE_RANGE, index, 0)
        if index in (RX_ASSIGN, TX_ASSIGN):
            lo = RX_MAP if index == RX_ASSIGN else TX_MAP
            total = 0
            for i in range(1, n + 1):
                pdo = int.from_bytes(self.vars[(index, i)].data, "little")
                if not lo <= pdo <= lo + 0x1FF or (pdo, 0) not in self.vars:
                    raise SdoAbort(ABORT_VALUE_RANGE, index, i)
                total += self._pdo_bits(pdo)
            if total > MAX_PDO_BITS:
                raise SdoAbort(ABORT_PDO_LENGTH, index, 0)
            return
        bits = 0
        for i in range(1, n + 1):
            word = int.from_bytes(self.vars[(index, i)].data, "little")
            oi, os_, ob = word >> 16, (word >> 8) & 0xFF, word & 0xFF
            bits += ob
            if oi == 0:
                continue
            target = self.vars.get((oi, os_))
            if target is None or not target.mappable or target.bits != ob:
                raise SdoAbort(ABORT_NOT_MAPPABLE, index, i)
            want = "ro" if index >= TX_MAP else "rw"
            if want == "rw" and target.access == "ro":
                raise SdoAbort(ABORT_NOT_MAPPABLE, index, i)
        if bits > MAX_PDO_BITS:
            raise SdoAbort(ABORT_PDO_LENGTH, index, 0)

    def _pdo_bits(self, pdo: int) -> int:
        n = self.vars[(pdo, 0)].data[0]
        return sum(int.from_bytes(self.vars[(pdo, i)].data, "little") & 0xFF for i in range(1, n + 1))

    # ---- process image ----------------------------------------------------------------------------
    def layout(self, assign: int) -> tuple[list[Slot], int]:
        """The image of 0x1C12 (outputs) or 0x1C13 (inputs) as assigned now: slots and bit size."""
        slots: list[Slot] = []
        offset = 0
        for i in range(1, self.vars[(assign, 0)].data[0] + 1):
            pdo = int.from_bytes(self.vars[(assign, i)].data, "little")
            for j in range(1, self.vars[(pdo, 0)].data[0] + 1):
                word = int.from_bytes(self.vars[(pdo, j)].data, "little")
                oi, os_, ob = word >> 16, (word >> 8) & 0xFF, word & 0xFF
                slots.append(Slot(offset, ob, self.vars.get((oi, os_)) if oi else None))
                offset += ob
        return slots, offset

    def value(self, index: int, sub: int = 0) -> int:
        """A value as an integer (signed types sign-extended); for behaviours and tests."""
        var = self.vars[(index, sub)]
        return int.from_bytes(var.data, "little", signed=var.dtype in SIGNED)

    def set_value(self, index: int, sub: int, value: int) -> None:
        """Set a value from the device side (inputs); ignores access rights."""
        var = self.vars[(index, sub)]
        var.data[:] = encode(var.dtype, value)
        self.generation += 1


def pack_image(slots: list[Slot], nbytes: int) -> bytes:
    """Values -> image bytes."""
    img = 0
    for s in slots:
        if s.var is not None:
            img |= (int.from_bytes(s.var.data, "little") & ((1 << s.bits) - 1)) << s.offset
    return img.to_bytes(nbytes, "little")


def unpack_image(slots: list[Slot], data: bytes | bytearray | memoryview) -> None:
    """Image bytes -> values."""
    img = int.from_bytes(data, "little")
    for s in slots:
        if s.var is not None:
            value = (img >> s.offset) & ((1 << s.bits) - 1)
            s.var.data[:] = value.to_bytes(len(s.var.data), "little")
