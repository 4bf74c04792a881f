"""Unit tests of the software SubDevice: frames fed straight to the frame processor."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from taktora.connectors.errors import DescriptorError
from taktora.connectors.ethercat.bits import copy_bits
from taktora.connectors.ethercat.sim import builtin_dio, from_dict, load_description
from taktora.connectors.ethercat.sim.coe import SdoAbort
from taktora.connectors.ethercat.sim.commands import (
    APRD,
    APRW,
    APWR,
    ARMW,
    BRD,
    BWR,
    FPRD,
    FPRW,
    FPWR,
    LRD,
    LRW,
    LWR,
    NOP,
)
from taktora.connectors.ethercat.sim.line import Line
from taktora.connectors.ethercat.sim.registers import DL_STATUS_LAST, DL_STATUS_MIDDLE
from taktora.connectors.ethercat.sim.server import Simulator
from taktora.connectors.ethercat.sim.sii import (
    CAT_FMMU,
    CAT_GENERAL,
    CAT_RXPDO,
    CAT_SM,
    CAT_STRINGS,
    CAT_TXPDO,
    categories,
    crc8,
)

from .frames import frame, logical, one, results, run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ethercat"
pytestmark = pytest.mark.req("REQ_0801")


def line_of(n: int = 1, desc=None) -> Line:
    return Line.of([desc or builtin_dio()] * n)


def address(line: Line) -> None:
    """Give SubDevice i station address 0x1001 + i (as SOEM does)."""
    for i in range(len(line.escs)):
        assert one(line, APWR, (-i) & 0xFFFF, 0x0010, struct.pack("<H", 0x1001 + i))[1] == 1


def fpwr(line: Line, station: int, ado: int, data: bytes) -> int:
    return one(line, FPWR, station, ado, data)[1]


def fprd(line: Line, station: int, ado: int, n: int) -> bytes:
    data, wkc = one(line, FPRD, station, ado, bytes(n))
    assert wkc == 1
    return data


def mailbox_sms(line: Line, station: int = 0x1001) -> None:
    sm = (struct.pack("<HHBBBB", 0x1000, 128, 0x26, 0, 1, 0)
          + struct.pack("<HHBBBB", 0x1080, 128, 0x22, 0, 1, 0))
    assert fpwr(line, station, 0x0800, sm) == 1


def al(line: Line, station: int, req: int) -> tuple[int, int]:
    fpwr(line, station, 0x0120, struct.pack("<H", req))
    status, _, code = struct.unpack("<HHH", fprd(line, station, 0x0130, 6))
    return status, code


# ---- datagrams, addressing, working counter -----------------------------------------------------------
def test_auto_increment_addresses_the_right_subdevice_and_counts_up():
    line = line_of(3)
    adp, _, _, wkc = run(line, (APWR, 0xFFFF, 0x0010, struct.pack("<H", 0x1234)))[0]
    assert wkc == 1 and adp == (0xFFFF + 3) & 0xFFFF
    assert [e.station for e in line.escs] == [0, 0x1234, 0]
    data, wkc = one(line, APRD, 0xFFFF, 0x0010, bytes(2))
    assert wkc == 1 and data == struct.pack("<H", 0x1234)
    assert one(line, APRD, 0xFFFC, 0x0010, bytes(2))[1] == 0  # nobody at position 4


def test_working_counter_read_write_readwrite_and_nop():
    line = line_of(1)
    address(line)
    assert one(line, FPRD, 0x1001, 0x0000, bytes(1))[1] == 1
    assert one(line, FPWR, 0x1001, 0x1200, b"\x11\x22")[1] == 1
    data, wkc = one(line, FPRW, 0x1001, 0x1200, b"\x33\x44")
    assert wkc == 3 and data == b"\x11\x22"  # old value read, new one written
    assert fprd(line, 0x1001, 0x1200, 2) == b"\x33\x44"
    assert one(line, FPRD, 0x1002, 0x0000, bytes(1))[1] == 0  # wrong station
    assert one(line, NOP, 0, 0, bytes(4))[1] == 0
    data, wkc = one(line, APRW, 0, 0x1200, b"\x55\x66")
    assert wkc == 3 and data == b"\x33\x44"


def test_broadcast_read_ors_data_and_counts_every_subdevice():
    line = line_of(3)
    address(line)
    for i, esc in enumerate(line.escs):
        esc.mem[0x1300] = 1 << i
    data, wkc = one(line, BRD, 0, 0x1300, b"\x00")
    assert wkc == 3 and data == b"\x07"
    assert one(line, BWR, 0, 0x1301, b"\xAA")[1] == 3
    assert all(e.mem[0x1301] == 0xAA for e in line.escs)


def test_armw_first_reads_the_others_write():
    line = line_of(3)
    address(line)
    line.escs[0].mem[0x1400:0x1404] = b"\x01\x02\x03\x04"
    data, wkc = one(line, ARMW, 0, 0x1400, bytes(4))
    assert wkc == 3 and data == b"\x01\x02\x03\x04"
    assert all(e.mem[0x1400:0x1404] == b"\x01\x02\x03\x04" for e in line.escs)


def test_several_datagrams_in_one_frame_and_topology():
    line = line_of(3)
    address(line)
    out = run(line, (FPRD, 0x1001, 0x0110, bytes(2)), (FPRD, 0x1002, 0x0110, bytes(2)),
              (FPRD, 0x1003, 0x0110, bytes(2)), (BRD, 0, 0x0000, bytes(1)))
    assert [struct.unpack("<H", r[2])[0] for r in out[:3]] == [DL_STATUS_MIDDLE, DL_STATUS_MIDDLE,
                                                                DL_STATUS_LAST]
    assert [r[3] for r in out] == [1, 1, 1, 3]


def test_malformed_frames_are_dropped_and_counted():
    line = line_of(1)
    f = frame((FPRD, 0, 0, bytes(4)))
    assert not line.process(f[:20])
    bad = bytearray(f)
    bad[14:16] = struct.pack("<H", 0x7FF | 0x1000)  # length beyond the frame
    assert not line.process(bad)
    assert line.malformed == 2
    assert not line.process(bytearray(b"\x00" * 12 + b"\x08\x00" + b"\x00" * 50))  # not EtherCAT


# ---- registers --------------------------------------------------------------------------------
@pytest.mark.req("REQ_0802")
def test_read_only_registers_are_protected():
    line = line_of(1)
    address(line)
    before = fprd(line, 0x1001, 0x0000, 16)
    assert fpwr(line, 0x1001, 0x0000, b"\xff" * 16) == 1  # counted, but ignored
    assert fprd(line, 0x1001, 0x0000, 16) == before
    assert fpwr(line, 0x1001, 0x0130, b"\x08\x00") == 1
    assert fprd(line, 0x1001, 0x0130, 2) == b"\x01\x00"  # AL status still INIT
    fpwr(line, 0x1001, 0x0800, struct.pack("<HHBBBB", 0x1000, 128, 0x26, 0xFF, 1, 0xFF))
    sm0 = fprd(line, 0x1001, 0x0800, 8)
    assert sm0[5] == 0 and sm0[7] == 0  # status and PDI control stay
    assert sm0[:5] == struct.pack("<HHB", 0x1000, 128, 0x26)


# ---- AL state machine -------------------------------------------------------------------------
@pytest.mark.req("REQ_0803")
def test_al_transitions_follow_etg_rules():
    line = line_of(1)
    address(line)
    assert al(line, 0x1001, 4) == (0x11, 0x0011)  # INIT -> SAFE-OP: invalid requested state change
    assert al(line, 0x1001, 2) == (0x11, 0x0011)  # error not acknowledged: ignored
    assert al(line, 0x1001, 0x12) == (0x11, 0x0016)  # acknowledged, but no mailbox SMs
    mailbox_sms(line)
    assert al(line, 0x1001, 0x12) == (0x02, 0)
    assert al(line, 0x1001, 8) == (0x12, 0x0011)  # PRE-OP -> OP
    assert al(line, 0x1001, 0x17) == (0x12, 0x0012)  # unknown state
    assert al(line, 0x1001, 0x13) == (0x12, 0x0013)  # BOOT not supported
    assert al(line, 0x1001, 0x14) == (0x12, 0x001D)  # SAFE-OP without output SM
    sm2 = struct.pack("<HHBBBB", 0x1100, 1, 0x64, 0, 1, 0)
    fpwr(line, 0x1001, 0x0810, sm2)
    assert al(line, 0x1001, 0x14) == (0x12, 0x001E)  # no input SM
    fpwr(line, 0x1001, 0x0818, struct.pack("<HHBBBB", 0x1180, 2, 0x20, 0, 1, 0))
    assert al(line, 0x1001, 0x14) == (0x12, 0x001E)  # wrong input length
    fpwr(line, 0x1001, 0x0818, struct.pack("<HHBBBB", 0x1180, 1, 0x24, 0, 1, 0))
    assert al(line, 0x1001, 0x14) == (0x12, 0x0017)  # input SM in the write direction
    fpwr(line, 0x1001, 0x0818, struct.pack("<HHBBBB", 0x1180, 1, 0x20, 0, 1, 0))
    assert al(line, 0x1001, 0x14) == (0x04, 0)
    assert al(line, 0x1001, 8) == (0x08, 0)
    line.escs[0].fault_safeop(0x001B)
    assert al(line, 0x1001, 8) == (0x14, 0x001B)  # stays in SAFE-OP until acknowledged
    assert al(line, 0x1001, 0x18) == (0x08, 0)
    assert al(line, 0x1001, 1) == (0x01, 0)


# ---- FMMU / process data ----------------------------------------------------------------------
def fmmu(n: int, laddr: int, length: int, lsb: int, leb: int, paddr: int, psb: int, kind: int) -> bytes:
    return struct.pack("<IHBBHBBB3x", laddr, length, lsb, leb, paddr, psb, kind, 1)


@pytest.mark.req("REQ_0804")
def test_fmmu_bit_granular_mapping_keeps_neighbouring_bits():
    line = line_of(1)
    address(line)
    esc = line.escs[0]
    esc.mem[0x1200] = 0b1000_0001
    # logical bits 3..5 of 0x00010010 -> physical 0x1200 bits 2..4 (write)
    fpwr(line, 0x1001, 0x0600, fmmu(0, 0x00010010, 1, 3, 5, 0x1200, 2, 2))
    data, wkc = run(line, logical(LWR, 0x00010010, b"\xff"))[0][2:]
    assert wkc == 1 and esc.mem[0x1200] == 0b1001_1101
    # a read FMMU: physical 0x1201 bits 0..9 -> logical 0x00020000 bit 4 .. 0x00020001 bit 5
    esc.mem[0x1201:0x1203] = (0b10_1100_1011).to_bytes(2, "little")
    fpwr(line, 0x1001, 0x0610, fmmu(1, 0x00020000, 2, 4, 5, 0x1201, 0, 1))
    data, wkc = run(line, logical(LRD, 0x00020000, b"\x0f\xc0"))[0][2:]
    assert wkc == 1
    assert int.from_bytes(data, "little") == (0b10_1100_1011 << 4) | 0x000F | 0xC000
    # LRW over both: +1 read, +2 write; LRD of the write area and LWR of the read area count 0
    fpwr(line, 0x1001, 0x0600, fmmu(0, 0x00020002, 1, 0, 7, 0x1210, 0, 2))
    _, wkc = run(line, logical(LRW, 0x00020000, b"\x00\x00\x5a"))[0][2:]
    assert wkc == 3 and esc.mem[0x1210] == 0x5A
    assert run(line, logical(LRD, 0x00020002, b"\x00"))[0][3] == 0
    assert run(line, logical(LWR, 0x00020000, b"\x00"))[0][3] == 0
    assert run(line, logical(LRW, 0x00030000, b"\x00"))[0][3] == 0  # unmapped


@given(src=st.binary(min_size=4, max_size=4), dst=st.binary(min_size=4, max_size=4),
       sbit=st.integers(0, 15), dbit=st.integers(0, 15), n=st.integers(1, 16))
@pytest.mark.req("REQ_0804")
def test_copy_bits_changes_exactly_the_target_bits(src, dst, sbit, dbit, n):
    out = bytearray(dst)
    copy_bits(src, sbit, out, dbit, n)
    s, d, o = (int.from_bytes(x, "little") for x in (src, dst, out))
    mask = ((1 << n) - 1) << dbit
    assert o & ~mask == d & ~mask
    assert (o >> dbit) & ((1 << n) - 1) == (s >> sbit) & ((1 << n) - 1)


# ---- SII --------------------------------------------------------------------------------------
def sii_read(line: Line, station: int, word: int) -> bytes:
    assert fpwr(line, station, 0x0502, struct.pack("<HI", 0x0100, word)) == 1
    status = struct.unpack("<H", fprd(line, station, 0x0502, 2))[0]
    assert status == 0x0040  # 8-byte reads, not busy, no error
    return fprd(line, station, 0x0508, 8)


@pytest.mark.req("REQ_0805")
def test_sii_image_layout_through_the_eeprom_interface():
    desc = load_description(EXAMPLES / "servo.toml")
    line = line_of(1, desc)
    address(line)
    image = b"".join(sii_read(line, 0x1001, w) for w in range(0, 1024, 4))
    assert image == bytes(line.escs[0].sii)
    assert image[14] == crc8(image[:14])
    assert crc8(bytes.fromhex("0500000000000000000000000000")) == image[14]
    assert struct.unpack_from("<IIII", image, 0x10) == (desc.vendor_id, desc.product_code, desc.revision,
                                                         desc.serial)
    assert struct.unpack_from("<HHHHH", image, 0x30) == (0x1000, 128, 0x1080, 128, 0x0004)
    cats = categories(image)
    assert set(cats) == {CAT_STRINGS, CAT_GENERAL, CAT_FMMU, CAT_SM, CAT_TXPDO, CAT_RXPDO}
    strings = cats[CAT_STRINGS]
    assert strings[1:2 + strings[1]] == bytes([len(desc.name)]) + desc.name.encode()  # string 1
    general = cats[CAT_GENERAL]
    assert len(general) == 32 and general[3] == 1 and general[5] & 0x01  # name index, SDO enabled
    assert cats[CAT_FMMU][:2] == b"\x01\x02"
    sms = [struct.unpack_from("<HHBBBB", cats[CAT_SM], 8 * i) for i in range(4)]
    assert sms == [(0x1000, 128, 0x26, 0, 1, 1), (0x1080, 128, 0x22, 0, 1, 2),
                   (0x1100, 6, 0x64, 0, 1, 3), (0x1180, 6, 0x20, 0, 1, 4)]
    rx = cats[CAT_RXPDO]
    index, n, sm = struct.unpack_from("<HBB", rx, 0)
    assert (index, n, sm) == (0x1600, 2, 2)
    assert struct.unpack_from("<HBBBBH", rx, 8) == (0x6040, 0, 0, 0x0006, 16, 0)
    assert struct.unpack_from("<HBB", cats[CAT_TXPDO], 0) == (0x1A00, 2, 3)
    assert sii_read(line, 0x1001, 5000) == b"\xff" * 8  # beyond the image


# ---- mailbox / CoE ----------------------------------------------------------------------------
def to_preop(line: Line, station: int = 0x1001) -> None:
    mailbox_sms(line, station)
    assert al(line, station, 0x12) == (0x02, 0)


def sdo(line: Line, body: bytes, station: int = 0x1001, sm1_len: int = 128) -> bytes:
    req = struct.pack("<HHBB", len(body), 0, 0, 0x13) + body
    assert fpwr(line, station, 0x1000, req.ljust(128, b"\x00")) == 1
    reply, wkc = one(line, FPRD, station, 0x1080, bytes(sm1_len))
    assert wkc == 1
    length = struct.unpack_from("<H", reply, 0)[0]
    return reply[6:6 + length]


def upload(line: Line, index: int, sub: int) -> bytes:
    r = sdo(line, struct.pack("<HBHB4x", 2 << 12, 0x40, index, sub))
    assert r[1] >> 4 == 3, r.hex()  # SDO response
    if r[2] & 0x02:
        return r[6:6 + 4 - ((r[2] >> 2) & 3)]
    size = struct.unpack_from("<I", r, 6)[0]
    data = bytearray(r[10:])
    toggle = 0
    while len(data) < size:
        s = sdo(line, struct.pack("<HB7x", 2 << 12, 0x60 | toggle))
        n = len(s) - 3
        if s[2] & 1 and n == 7:
            n -= (s[2] >> 1) & 7
        assert s[2] & 0x10 == toggle
        data += s[3:3 + n]
        toggle ^= 0x10
    return bytes(data[:size])


def download(line: Line, index: int, sub: int, value: bytes) -> bytes:
    if len(value) <= 4:
        cmd = 0x23 | ((4 - len(value)) << 2)
        return sdo(line, struct.pack("<HBHB", 2 << 12, cmd, index, sub) + value.ljust(4, b"\x00"))
    return sdo(line, struct.pack("<HBHBI", 2 << 12, 0x21, index, sub, len(value)) + value)


def abort_code(reply: bytes) -> int:
    assert reply[1] >> 4 == 2 and reply[2] == 0x80  # CoE service 2, abort
    return int(struct.unpack_from("<I", reply, 6)[0])


@pytest.mark.req("REQ_0806")
def test_sdo_expedited_normal_segmented_and_aborts():
    desc = from_dict({
        "name": "long", "vendor_id": 1, "product_code": 2,
        "objects": [{"index": 0x2000, "name": "text", "type": "VISIBLE_STRING", "access": "rw",
                     "default": "x" * 300},
                    {"index": 0x2001, "name": "word", "type": "UINT16", "access": "rw", "default": 7}],
    })
    line = line_of(1, desc)
    address(line)
    to_preop(line)
    assert upload(line, 0x1018, 1) == struct.pack("<I", 1)
    assert upload(line, 0x1008, 0) == b"long"
    assert upload(line, 0x1000, 0) == bytes(4)
    assert upload(line, 0x2000, 0) == b"x" * 300  # normal + segmented upload
    assert download(line, 0x2001, 0, b"\x34\x12")[2] == 0x60
    assert upload(line, 0x2001, 0) == b"\x34\x12"
    text = bytes(range(65, 91)) * 3
    assert download(line, 0x2000, 0, text)[2] == 0x60  # normal download
    assert upload(line, 0x2000, 0) == text
    # segmented download: initiate with part of the data, then segments
    seg_value = b"abcdefghijklmnop"
    r = sdo(line, struct.pack("<HBHBI", 2 << 12, 0x21, 0x2000, 0, len(seg_value)) + seg_value[:5])
    assert r[2] == 0x60
    r = sdo(line, struct.pack("<HB", 2 << 12, 0x00) + seg_value[5:12])
    assert r[2] == 0x20
    rest = seg_value[12:]
    r = sdo(line, struct.pack("<HB", 2 << 12, 0x10 | ((7 - len(rest)) << 1) | 1) + rest.ljust(7, b"\x00"))
    assert r[2] == 0x30
    assert upload(line, 0x2000, 0) == seg_value
    # aborts
    assert abort_code(sdo(line, struct.pack("<HBHB4x", 2 << 12, 0x40, 0x5555, 0))) == 0x06020000
    assert abort_code(sdo(line, struct.pack("<HBHB4x", 2 << 12, 0x40, 0x1018, 9))) == 0x06090011
    assert abort_code(download(line, 0x1018, 1, b"\x00\x00\x00\x00")) == 0x06010002
    assert abort_code(download(line, 0x2001, 0, b"\x01")) == 0x06070010
    assert abort_code(sdo(line, struct.pack("<HBHB4x", 2 << 12, 0xE0, 0x2001, 0))) == 0x05040001


@pytest.mark.req("REQ_0806")
def test_mailbox_full_and_empty_gate_access():
    line = line_of(1)
    address(line)
    to_preop(line)
    assert one(line, FPRD, 0x1001, 0x1080, bytes(128))[1] == 0  # nothing to read: refused
    req = struct.pack("<HHBBHBHB4x", 10, 0, 0, 0x13, 2 << 12, 0x40, 0x1018, 1).ljust(128, b"\x00")
    assert fpwr(line, 0x1001, 0x1000, req) == 1
    assert fpwr(line, 0x1001, 0x1000, req) == 1  # the request was consumed at once
    # the second reply waits behind the first
    assert one(line, FPRD, 0x1001, 0x1080, bytes(128))[1] == 1
    assert one(line, FPRD, 0x1001, 0x1080, bytes(128))[1] == 1
    assert one(line, FPRD, 0x1001, 0x1080, bytes(128))[1] == 0
    assert fprd(line, 0x1001, 0x080D, 1)[0] & 0x08 == 0  # SM1 status: empty


@pytest.mark.req("REQ_0806", "REQ_0807")
def test_pdo_assignment_changes_the_process_image():
    desc = load_description(EXAMPLES / "servo.toml")
    line = line_of(1, desc)
    address(line)
    to_preop(line)
    esc = line.escs[0]
    assert esc.od.layout(0x1C12)[1] == 48
    assert abort_code(download(line, 0x1C12, 1, struct.pack("<H", 0x1601))) == 0x06010000  # sub 0 first
    assert download(line, 0x1C12, 0, b"\x00")[2] == 0x60
    assert download(line, 0x1C12, 1, struct.pack("<H", 0x1601))[2] == 0x60
    assert abort_code(download(line, 0x1C12, 0, b"\x09")) == 0x06090030
    assert download(line, 0x1C12, 0, b"\x01")[2] == 0x60
    assert esc.od.layout(0x1C12)[1] == 56
    assert upload(line, 0x1601, 3) == struct.pack("<I", 0x60600008)
    # a mapping entry that is not mappable is refused
    assert download(line, 0x1A01, 0, b"\x00")[2] == 0x60
    assert download(line, 0x1A01, 1, struct.pack("<I", 0x10180120))[2] == 0x60
    assert abort_code(download(line, 0x1A01, 0, b"\x01")) == 0x06040041
    fpwr(line, 0x1001, 0x0810, struct.pack("<HHBBBB", 0x1100, 7, 0x64, 0, 1, 0)
         + struct.pack("<HHBBBB", 0x1180, 6, 0x20, 0, 1, 0))
    assert al(line, 0x1001, 4) == (0x04, 0)
    assert abort_code(download(line, 0x1C12, 0, b"\x00")) == 0x08000022  # not in SAFE-OP
    assert upload(line, 0x1C12, 0) == b"\x01"  # reading stays allowed


@pytest.mark.req("REQ_0807", "REQ_0804")
def test_servo_cia402_through_process_data():
    desc = load_description(EXAMPLES / "servo.toml")
    line = line_of(1, desc)
    address(line)
    to_preop(line)
    fpwr(line, 0x1001, 0x0810, struct.pack("<HHBBBB", 0x1100, 6, 0x64, 0, 1, 0)
         + struct.pack("<HHBBBB", 0x1180, 6, 0x20, 0, 1, 0))
    fpwr(line, 0x1001, 0x0600, fmmu(0, 0, 6, 0, 7, 0x1100, 0, 2) + fmmu(1, 6, 6, 0, 7, 0x1180, 0, 1))
    assert al(line, 0x1001, 4) == (0x04, 0)
    assert al(line, 0x1001, 8) == (0x08, 0)
    out = struct.pack("<Hi", 0x0F, -12345)
    run(line, logical(LRW, 0, out + bytes(6)))
    _, _, data, wkc = run(line, logical(LRW, 0, out + bytes(6)))[0]
    assert wkc == 3
    assert struct.unpack("<Hi", data[6:]) == (0x0237, -12345)
    assert al(line, 0x1001, 4) == (0x04, 0)  # leaving OP: outputs to zero
    assert line.escs[0].od.value(0x6040) == 0


@pytest.mark.req("REQ_0807")
def test_description_errors_name_the_field():
    with pytest.raises(DescriptorError, match="vendor_id"):
        from_dict({"name": "x", "vendor_id": -1, "product_code": 1})
    with pytest.raises(DescriptorError, match="product_code"):
        from_dict({"name": "x", "vendor_id": 1})
    with pytest.raises(DescriptorError, match="maps unknown 0x7000:1"):
        from_dict({"name": "x", "vendor_id": 1, "product_code": 1,
                   "rxpdo": [{"index": 0x1600, "entries": [{"index": 0x7000, "subindex": 1, "bits": 1}]}]})
    with pytest.raises(DescriptorError, match="dtype"):
        from_dict({"name": "x", "vendor_id": 1, "product_code": 1,
                   "objects": [{"index": 0x2000, "name": "a", "type": "FLOAT99"}]})
    with pytest.raises(SdoAbort):
        builtin_dio() and line_of(1).escs[0].od.read(0x9999, 0)


# ---- faults and DC ----------------------------------------------------------------------------
@pytest.mark.req("REQ_0808")
def test_fault_injection_in_the_frame_path():
    sim = Simulator(line_of(3))
    f = frame((BRD, 0, 0, bytes(1)))
    assert sim.handle_frame(f) and results(f)[0][3] == 3
    sim.command({"op": "faults", "muted": [1]})
    f = frame((BRD, 0, 0, bytes(1)))
    assert sim.handle_frame(f) and results(f)[0][3] == 2  # stops answering: WKC falls
    sim.command({"op": "faults", "muted": [], "drop_every": 2})
    answered = [sim.handle_frame(frame((BRD, 0, 0, bytes(1)))) for _ in range(4)]
    assert answered == [True, False, True, False]
    sim.command({"op": "faults", "drop_every": 0, "link_down": True})
    assert not sim.handle_frame(frame((BRD, 0, 0, bytes(1))))
    sim.command({"op": "faults", "link_down": False})
    sim.command({"op": "safeop", "position": 2, "code": 0x001A})
    q = sim.command({"op": "query"})
    assert q["states"][2] == 1 and q["codes"][2] == 0x001A  # was INIT: stays, error code set
    assert line_of(1).escs[0].state == 1
    assert q["counters"]["dropped"] == 2 and q["counters"]["link_down"] == 1
    assert sim.command({"op": "nonsense"})["ok"] is False


@pytest.mark.req("REQ_0815")
def test_dc_latch_system_time_offset_and_drift():
    line = Line.of([builtin_dio()] * 2, drift_ppm=[100.0, -100.0])
    address(line)
    assert struct.unpack("<H", fprd(line, 0x1001, 0x0008, 2))[0] & 0x0004  # DC supported
    assert one(line, BWR, 0, 0x0900, bytes(4))[1] == 2  # latch receive times
    t0 = struct.unpack("<Q", fprd(line, 0x1001, 0x0918, 8))[0]
    assert t0 > 0
    fpwr(line, 0x1002, 0x0920, struct.pack("<Q", 10**12))
    sys2 = struct.unpack("<Q", fprd(line, 0x1002, 0x0910, 8))[0]
    assert sys2 >= 10**12
    fpwr(line, 0x1002, 0x0928, struct.pack("<I", 250))
    assert struct.unpack("<I", fprd(line, 0x1002, 0x0928, 4))[0] == 250
    a, b = (e.local_time() for e in line.escs)
    assert a != b


@pytest.mark.req("REQ_0818")
def test_esi_file_as_device_description(tmp_path):
    desc = load_description(EXAMPLES / "dio4_esi.xml")
    identity = (desc.name, desc.vendor_id, desc.product_code, desc.revision)
    assert identity == ("TK-DIO4-ESI", 0x0A5A, 0x00D10004, 0x00010000)
    assert desc.mailbox and desc.mbx_out == (0x1000, 128) and desc.sm3_start == 0x1180
    line = line_of(1, desc)
    esc = line.escs[0]
    assert esc.od.layout(0x1C12)[1] == 8 and esc.od.layout(0x1C13)[1] == 24  # padding included
    assert esc.od.value(0x8000) == 10  # dictionary default data
    assert esc.od.vars[(0x7000, 1)].access == "rw" and esc.od.vars[(0x6010, 1)].access == "ro"
    cats = categories(bytes(esc.sii))
    assert struct.unpack_from("<HBB", cats[CAT_TXPDO], 0) == (0x1A00, 6, 3)
    bad = tmp_path / "bad.xml"
    bad.write_text("<EtherCATInfo><Vendor><Id>#xZZ</Id></Vendor></EtherCATInfo>")
    with pytest.raises(DescriptorError, match=r"Vendor\.Id"):
        load_description(bad)
    with pytest.raises(DescriptorError, match="device 3 requested"):
        load_description(f"{EXAMPLES / 'dio4_esi.xml'}#3")


@pytest.mark.req("REQ_0805")
def test_sii_word_write_through_the_eeprom_interface():
    line = line_of(1)
    address(line)
    assert fpwr(line, 0x1001, 0x0508, b"\x34\x12") == 1
    assert fpwr(line, 0x1001, 0x0502, struct.pack("<HI", 0x0201, 0x0004)) == 1  # write word 4 (alias)
    assert sii_read(line, 0x1001, 0x0004)[:2] == b"\x34\x12"
    assert fpwr(line, 0x1001, 0x0502, struct.pack("<HI", 0x0201, 0x9999)) == 1  # beyond: ignored
    assert len(line.escs[0].sii) == 2048
