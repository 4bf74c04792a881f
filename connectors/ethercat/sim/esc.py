"""The EtherCAT SubController (ESC) model of the software SubDevice, and a line of them.

:class:`Esc` is one SubDevice: 64 KiB of memory (registers below 0x1000, process RAM above),
write protection of read-only registers, AL control/status/status code with the ETG state
machine, SyncManagers (mailbox SMs gate access by their full/empty flag), FMMUs with
bit-granular logical mapping, the SII EEPROM interface and a CoE SDO server on SM0/SM1.
:class:`Line` is several ESCs in a row processing one EtherCAT frame the way the frame travels
through real hardware: every SubDevice processes every datagram in order, auto-increment
addresses count up at each SubDevice, and working counters add +1 per read, +1 per write
(+2 for a write of a read-write command, so +3 for both), broadcast reads OR their data.

Everything runs on the simulator process's single thread; nothing blocks here. Malformed
frames are dropped and counted (:attr:`Line.malformed`), never raised.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import deque

import attrs
from taktora.connectors.ethercat.sim.coe import (
    ABORT_COMMAND,
    ABORT_UNSUPPORTED_ACCESS,
    RX_ASSIGN,
    TX_ASSIGN,
    ObjectDictionary,
    SdoAbort,
    Slot,
    pack_image,
    unpack_image,
)
from taktora.connectors.ethercat.sim.device import DeviceDescription
from taktora.connectors.ethercat.sim.sii import build_sii

log = logging.getLogger(__name__)

ETHERTYPE = 0x88A4
(NOP, APRD, APWR, APRW, FPRD, FPWR, FPRW, BRD, BWR, BRW, LRD, LWR, LRW, ARMW, FRMW) = range(15)
READS = frozenset({APRD, APRW, FPRD, FPRW, BRD, BRW, LRD, LRW})
WRITES = frozenset({APWR, APRW, FPWR, FPRW, BWR, BRW, LWR, LRW})
AUTO = frozenset({APRD, APWR, APRW, ARMW})
CONFIGURED = frozenset({FPRD, FPWR, FPRW, FRMW})
BROADCAST = frozenset({BRD, BWR, BRW})
LOGICAL = frozenset({LRD, LWR, LRW})

# registers
REG_STADR, REG_ALIAS, REG_DLCTL, REG_DLSTAT = 0x0010, 0x0012, 0x0100, 0x0110
REG_ALCTL, REG_ALSTAT, REG_ALCODE, REG_PDICTL = 0x0120, 0x0130, 0x0134, 0x0140
REG_EEPCTL, REG_EEPADR, REG_EEPDAT = 0x0502, 0x0504, 0x0508
REG_FMMU, REG_SM = 0x0600, 0x0800
REG_DC_RECV0, REG_DC_SYSTIME, REG_DC_RECV_PU = 0x0900, 0x0910, 0x0918
REG_DC_OFFSET, REG_DC_DELAY = 0x0920, 0x0928

# AL states and status codes (ETG.1000.6)
INIT, PREOP, BOOT, SAFEOP, OP = 1, 2, 3, 4, 8
AL_ERROR = 0x10
AL_INVALID_CHANGE, AL_UNKNOWN_STATE, AL_NO_BOOT = 0x0011, 0x0012, 0x0013
AL_INVALID_MBX, AL_INVALID_SM, AL_SM_WATCHDOG = 0x0016, 0x0017, 0x001B
AL_INVALID_OUTPUTS, AL_INVALID_INPUTS = 0x001D, 0x001E
ALLOWED = {(1, 1), (1, 2), (2, 1), (2, 2), (2, 4), (4, 1), (4, 2), (4, 4), (4, 8),
           (8, 1), (8, 2), (8, 4), (8, 8)}

DL_STATUS_LAST, DL_STATUS_MIDDLE = 0x5613, 0x5A13
EEP_STATUS = 0x0040  # 8-byte reads supported, never busy, no error
MBX_QUEUE = 8  # responses waiting while SM1 is still full; beyond that the oldest is dropped


def _writable_mask() -> bytes:
    mask = bytearray(0x1000)

    def allow(lo: int, hi: int) -> None:
        mask[lo:hi + 1] = b"\xff" * (hi + 1 - lo)

    for lo, hi in ((0x0010, 0x0011), (0x0100, 0x0103), (0x0108, 0x0109), (0x0120, 0x0121),
                   (0x0200, 0x0201), (0x0300, 0x0313), (0x0400, 0x0401), (0x0410, 0x0421),
                   (0x0500, 0x0501), (0x0502, 0x0503), (0x0504, 0x050F), (0x0600, 0x06FF),
                   (0x0800, 0x087F), (0x0900, 0x0903), (0x0910, 0x0917), (0x0920, 0x092F),
                   (0x0930, 0x0935), (0x0980, 0x0981), (0x0990, 0x0997), (0x09A0, 0x09A7)):
        allow(lo, hi)
    for sm in range(16):  # status and PDI control bytes of each SyncManager are read-only for ECAT
        mask[REG_SM + 8 * sm + 5] = 0
        mask[REG_SM + 8 * sm + 7] = 0
    return bytes(mask)


WRITABLE = _writable_mask()


@attrs.frozen
class Fmmu:
    """An active FMMU: logical bit range [lbit, lend), physical start bit, type (1 read, 2 write)."""

    lbit: int
    lend: int
    pbit: int
    kind: int


@attrs.frozen
class Sm:
    """An enabled SyncManager."""

    index: int
    start: int
    length: int
    control: int

    @property
    def mailbox(self) -> bool:
        return self.control & 0x03 == 0x02

    @property
    def ecat_writes(self) -> bool:
        return self.control & 0x0C == 0x04


def copy_bits(src: bytes | bytearray | memoryview, sbit: int, dst: bytearray | memoryview, dbit: int,
              nbits: int) -> None:
    """Copy ``nbits`` bits from ``src`` at bit ``sbit`` into ``dst`` at bit ``dbit``; the other
    bits of ``dst`` stay as they are (LSB-first bit order, as on the wire)."""
    if not (sbit | dbit | nbits) & 7:
        s, d, n = sbit >> 3, dbit >> 3, nbits >> 3
        dst[d:d + n] = src[s:s + n]
        return
    raw = int.from_bytes(src[sbit >> 3:(sbit + nbits + 7) >> 3], "little")
    value = (raw >> (sbit & 7)) & ((1 << nbits) - 1)
    d0, d1 = dbit >> 3, (dbit + nbits + 7) >> 3
    shift = dbit & 7
    cur = int.from_bytes(dst[d0:d1], "little")
    cur = (cur & ~(((1 << nbits) - 1) << shift)) | (value << shift)
    dst[d0:d1] = cur.to_bytes(d1 - d0, "little")


class Esc:
    """One software SubDevice (see the module docstring)."""

    def __init__(self, desc: DeviceDescription, *, last: bool = True, drift_ppm: float = 0.0) -> None:
        self.desc = desc
        self.mem = bytearray(0x10000)
        self.od = ObjectDictionary(desc, lambda: self.mem[REG_ALSTAT] & 0x0F)
        self.sii = bytearray(build_sii(desc, self.od))
        self.muted = False
        self.drift_ppm = drift_ppm
        self._t0 = time.monotonic_ns()
        self.frame_ns = 0  # arrival time of the frame being processed (0: none)
        self.mem[0x0000] = 0x11  # type (ET1100-like)
        self.mem[0x0001] = 0x02
        self.mem[0x0004] = 8  # FMMUs
        self.mem[0x0005] = 8  # SyncManagers
        self.mem[0x0006] = 60  # process RAM in KiB
        self.mem[0x0007] = 0x0F  # ports 0 and 1 MII
        struct.pack_into("<H", self.mem, 0x0008, 0x000C)  # DC supported, 64-bit
        struct.pack_into("<H", self.mem, REG_DLSTAT, DL_STATUS_LAST if last else DL_STATUS_MIDDLE)
        struct.pack_into("<H", self.mem, REG_ALSTAT, INIT)
        struct.pack_into("<H", self.mem, REG_PDICTL, 0x0005)
        struct.pack_into("<H", self.mem, REG_EEPCTL, EEP_STATUS)
        self.fmmus: list[Fmmu] = []
        self.sms: list[Sm] = []
        self.out_slots: list[Slot] = []
        self.in_slots: list[Slot] = []
        self.out_bytes = 0
        self.in_bytes = 0
        self.mbx_queue: deque[bytes] = deque()
        self.mbx_dropped = 0
        self._mbx_counter = 0
        self._seg: tuple[str, int, int, bytearray, int] | None = None  # kind, index, sub, data, size
        self._taken: bytes | None = None
        self._packed_gen = -1
        self._loop_pairs = [(var, self.od.vars[(dst, sub)]) for src, dst in desc.loopback
                            for (idx, sub), var in self.od.vars.items()
                            if idx == src and sub and (dst, sub) in self.od.vars]

    # ---- state ------------------------------------------------------------------------------------
    @property
    def state(self) -> int:
        """The AL state (low nibble of AL status)."""
        return self.mem[REG_ALSTAT] & 0x0F

    @property
    def al_status(self) -> int:
        return int(struct.unpack_from("<H", self.mem, REG_ALSTAT)[0])

    @property
    def al_code(self) -> int:
        return int(struct.unpack_from("<H", self.mem, REG_ALCODE)[0])

    @property
    def station(self) -> int:
        return int(struct.unpack_from("<H", self.mem, REG_STADR)[0])

    def _set_al(self, state: int, code: int | None) -> None:
        """Enter ``state``; ``code`` None keeps the error flag/code, 0 clears, else sets it."""
        old = self.al_status
        error = old & AL_ERROR
        if code is not None:
            error = AL_ERROR if code else 0
            struct.pack_into("<H", self.mem, REG_ALCODE, code)
        if state != old & 0x0F:
            self._on_leave(old & 0x0F, state)
        struct.pack_into("<H", self.mem, REG_ALSTAT, state | error)

    def _on_leave(self, old: int, new: int) -> None:
        if old == OP:  # outputs to their safe value (zero)
            self._taken = None
            for s in self.out_slots:
                if s.var is not None:
                    s.var.data[:] = bytes(len(s.var.data))
            self._behave()
        if new == INIT:
            self._seg = None
            self.mbx_queue.clear()
            for sm in self.sms:
                self.mem[REG_SM + 8 * sm.index + 5] &= ~0x08 & 0xFF

    def fault_safeop(self, code: int = AL_SM_WATCHDOG) -> None:
        """Fault injection: fall back to SAFE-OP (from OP) with the error flag and ``code``."""
        self._set_al(min(self.state, SAFEOP), code)

    def al_request(self, ctrl: int) -> None:
        """Handle a write of AL control (ETG state machine)."""
        req, ack = ctrl & 0x0F, ctrl & AL_ERROR
        cur, err = self.state, self.al_status & AL_ERROR
        if err and not ack and req >= cur:
            return  # the error must be acknowledged before going up (or staying)
        if ack:
            self._set_al(cur, 0)
        if req not in (INIT, PREOP, BOOT, SAFEOP, OP):
            self._set_al(cur, AL_UNKNOWN_STATE)
            return
        if req == BOOT:
            self._set_al(cur, AL_NO_BOOT)
            return
        if (cur, req) not in ALLOWED:
            self._set_al(cur, AL_INVALID_CHANGE)
            return
        if cur == INIT and req >= PREOP and not self._mailbox_ok():
            self._set_al(cur, AL_INVALID_MBX)
            return
        if cur == PREOP and req == SAFEOP:
            code = self._compile_image()
            if code:
                self._set_al(cur, code)
                return
        self._set_al(req, None)

    def _mailbox_ok(self) -> bool:
        if not self.desc.mailbox:
            return True
        sms = {sm.index: sm for sm in self.sms}
        out, inp = sms.get(0), sms.get(1)
        return (out is not None and inp is not None and (out.start, out.length) == self.desc.mbx_out
                and (inp.start, inp.length) == self.desc.mbx_in and out.mailbox and out.ecat_writes
                and inp.mailbox and not inp.ecat_writes)

    def _compile_image(self) -> int:
        self.out_slots, obits = self.od.layout(RX_ASSIGN)
        self.in_slots, ibits = self.od.layout(TX_ASSIGN)
        self.out_bytes, self.in_bytes = (obits + 7) // 8, (ibits + 7) // 8
        sms = {sm.index: sm for sm in self.sms}
        for idx, size, start, writes, code in ((2, self.out_bytes, self.desc.sm2_start, True,
                                                AL_INVALID_OUTPUTS),
                                               (3, self.in_bytes, self.desc.sm3_start, False,
                                                AL_INVALID_INPUTS)):
            sm = sms.get(idx)
            if size == 0:
                if sm is not None and sm.length:
                    return code
                continue
            if sm is None or sm.length != size or sm.start != start:
                return code
            if sm.mailbox or sm.ecat_writes != writes:
                return AL_INVALID_SM
        self._taken = None
        self._refresh_inputs(force=True)
        return 0

    # ---- process data -----------------------------------------------------------------------------
    def _refresh_inputs(self, force: bool = False) -> None:
        """Pack the input objects into the input SyncManager area (only when a value changed)."""
        if self.in_bytes and (force or self.od.generation != self._packed_gen):
            start = self.desc.sm3_start
            self.mem[start:start + self.in_bytes] = pack_image(self.in_slots, self.in_bytes)
            self._packed_gen = self.od.generation

    def _take_outputs(self) -> None:
        """Unpack the output area into the objects in OP (only when the bytes changed)."""
        if self.out_bytes and self.state == OP:
            start = self.desc.sm2_start
            raw = bytes(self.mem[start:start + self.out_bytes])
            if raw == self._taken:
                return
            self._taken = raw
            unpack_image(self.out_slots, raw)
            self._behave()

    def _behave(self) -> None:
        od = self.od
        od.generation += 1
        for src, dst in self._loop_pairs:
            dst.data[:] = src.data
        if "cia402" in self.desc.behaviour:
            cw = od.value(0x6040)
            low = cw & 0x8F
            sw = {0x06: 0x0231, 0x07: 0x0233, 0x0F: 0x0237}.get(low & 0x0F if not cw & 0x80 else -1, 0x0250)
            od.set_value(0x6041, 0, sw)
            if sw == 0x0237:
                od.set_value(0x6064, 0, od.value(0x607A))
            if (0x6061, 0) in od.vars and (0x6060, 0) in od.vars:
                od.set_value(0x6061, 0, od.value(0x6060))

    # ---- memory access ----------------------------------------------------------------------------
    def _sm_gate(self, ado: int, n: int, write: bool) -> bool:
        """Mailbox SyncManager access rule: False if the access is refused (no WKC)."""
        for sm in self.sms:
            if sm.mailbox and ado < sm.start + sm.length and sm.start < ado + n:
                full = self.mem[REG_SM + 8 * sm.index + 5] & 0x08
                if write and (not sm.ecat_writes or full):
                    return False
                if not write and (sm.ecat_writes or not full):
                    return False
        return True

    def read(self, ado: int, n: int) -> bytes | None:
        """ECAT read of ``n`` bytes at ``ado``; None if refused."""
        if ado + n > 0x10000 or not self._sm_gate(ado, n, False):
            return None
        if ado < REG_DC_SYSTIME + 8 and ado + n > REG_DC_SYSTIME:
            struct.pack_into("<Q", self.mem, REG_DC_SYSTIME, self.system_time())
        data = bytes(self.mem[ado:ado + n])
        for sm in self.sms:  # reading the last byte of the in-mailbox empties it
            if sm.mailbox and not sm.ecat_writes and ado <= sm.start + sm.length - 1 < ado + n:
                self.mem[REG_SM + 8 * sm.index + 5] &= ~0x08 & 0xFF
                if self.mbx_queue:
                    self._post(self.mbx_queue.popleft())
        return data

    def write(self, ado: int, data: bytes | memoryview) -> bool:
        """ECAT write at ``ado``; False if refused."""
        n = len(data)
        if ado + n > 0x10000 or not self._sm_gate(ado, n, True):
            return False
        end = ado + n
        if ado >= 0x1000:
            self.mem[ado:end] = data
        else:
            for i in range(n):
                a = ado + i
                if a >= 0x1000 or WRITABLE[a]:
                    self.mem[a] = data[i]
            if ado < REG_SM + 0x80 and end > REG_SM:
                self._load_sms()
            if ado < REG_FMMU + 0x100 and end > REG_FMMU:
                self._load_fmmus()
            if ado <= REG_ALCTL + 1 and end > REG_ALCTL:
                self.al_request(struct.unpack_from("<H", self.mem, REG_ALCTL)[0])
            if ado <= REG_EEPCTL + 1 and end > REG_EEPCTL:
                self._eeprom_command()
            if ado < REG_DC_RECV0 + 4 and end > REG_DC_RECV0:
                self.latch_receive_time()
            if ado < REG_DC_SYSTIME + 8 and end > REG_DC_SYSTIME:
                self._dc_systime_write(data, ado)
        for sm in self.sms:  # writing the last byte of the out-mailbox fills it
            if sm.mailbox and sm.ecat_writes and ado <= sm.start + sm.length - 1 < end:
                self._mailbox_request(bytes(self.mem[sm.start:sm.start + sm.length]))
        return True

    def _load_sms(self) -> None:
        self.sms = []
        for i in range(8):
            start, length, ctrl, _status, act = struct.unpack_from("<HHBBB", self.mem, REG_SM + 8 * i)
            if act & 0x01 and length:
                self.sms.append(Sm(i, start, length, ctrl))
            else:
                self.mem[REG_SM + 8 * i + 5] &= ~0x08 & 0xFF

    def _load_fmmus(self) -> None:
        self.fmmus = []
        for i in range(8):
            lstart, length, lsb, leb, pstart, psb, kind, act = struct.unpack_from(
                "<IHBBHBBB", self.mem, REG_FMMU + 16 * i)
            if act & 0x01 and length and kind & 0x03:
                lbit = lstart * 8 + lsb
                self.fmmus.append(Fmmu(lbit, (lstart + length - 1) * 8 + leb + 1, pstart * 8 + psb, kind))

    def logical(self, cmd: int, frame: bytearray, data_at: int, dlen: int, laddr: int) -> int:
        """LRD/LWR/LRW through the FMMUs; returns the working-counter increment."""
        lo_bit, hi_bit = laddr * 8, (laddr + dlen) * 8
        wrote = read = False
        reads: list[tuple[int, int, int]] = []
        data = memoryview(frame)[data_at:data_at + dlen]
        for fm in self.fmmus:
            lo, hi = max(fm.lbit, lo_bit), min(fm.lend, hi_bit)
            if lo >= hi:
                continue
            if fm.kind & 2 and cmd != LRD and not self._outputs_blocked(fm.pbit + lo - fm.lbit, hi - lo):
                copy_bits(data, lo - lo_bit, self.mem, fm.pbit + lo - fm.lbit, hi - lo)
                wrote = True
            if fm.kind & 1 and cmd != LWR:
                reads.append((lo, hi, fm.pbit + lo - fm.lbit))
        if wrote:
            self._take_outputs()
        if reads:
            if self.state >= SAFEOP:
                self._refresh_inputs()
            for lo, hi, pbit in reads:
                copy_bits(self.mem, pbit, data, lo - lo_bit, hi - lo)
            read = True
        data.release()
        return (1 if read else 0) + (2 if wrote and cmd == LRW else 1 if wrote else 0)

    def _outputs_blocked(self, pbit: int, nbits: int) -> bool:
        """Outside OP the application keeps the output SyncManager (SM2) disabled, so writes
        into it are neither taken nor counted: a SubDevice that fell back to SAFE-OP lowers the
        working counter by 2, as on real hardware."""
        if self.state == OP:
            return False
        lo, hi = pbit >> 3, (pbit + nbits + 7) >> 3
        return any(sm.index == 2 and sm.start < hi and lo < sm.start + sm.length for sm in self.sms)

    # ---- SII --------------------------------------------------------------------------------------
    def _eeprom_command(self) -> None:
        ctrl = struct.unpack_from("<H", self.mem, REG_EEPCTL)[0]
        command = ctrl & 0x0700
        addr = struct.unpack_from("<I", self.mem, REG_EEPADR)[0]
        if command == 0x0100:
            raw = bytes(self.sii[2 * addr:2 * addr + 8])
            self.mem[REG_EEPDAT:REG_EEPDAT + 8] = raw + b"\xff" * (8 - len(raw))
        elif command == 0x0200 and 2 * addr + 2 <= len(self.sii):
            self.sii[2 * addr:2 * addr + 2] = self.mem[REG_EEPDAT:REG_EEPDAT + 2]
        struct.pack_into("<H", self.mem, REG_EEPCTL, EEP_STATUS)

    # ---- distributed clocks -----------------------------------------------------------------------
    def local_time(self, now_ns: int | None = None) -> int:
        """This SubDevice's free-running local clock in ns (drifting by ``drift_ppm``) at
        ``now_ns`` (monotonic; default: the current frame's arrival, else now). A frame takes
        no time to pass the line: real ESCs forward it within nanoseconds."""
        if now_ns is None:
            now_ns = self.frame_ns or time.monotonic_ns()
        return int((now_ns - self._t0) * (1.0 + self.drift_ppm * 1e-6))

    def system_time(self, now_ns: int | None = None) -> int:
        """Local time plus the system time offset register (0x0920)."""
        offset: int = struct.unpack_from("<Q", self.mem, REG_DC_OFFSET)[0]
        return (self.local_time(now_ns) + offset) & 0xFFFFFFFFFFFFFFFF

    def latch_receive_time(self) -> None:
        """A write to 0x0900 latches the port-0 receive time and the processing unit time."""
        t = self.local_time()
        struct.pack_into("<I", self.mem, REG_DC_RECV0, t & 0xFFFFFFFF)
        struct.pack_into("<Q", self.mem, REG_DC_RECV_PU, t)

    def _dc_systime_write(self, data: bytes | memoryview, ado: int) -> None:
        """A write of system time (ARMW/FRMW from the reference clock) feeds the drift filter: the
        difference is stored in 0x092C and the offset nudged by it (a crude control loop)."""
        if ado != REG_DC_SYSTIME or len(data) < 4:
            return
        received = int.from_bytes(bytes(data[:8]) if len(data) >= 8 else bytes(data[:4]), "little")
        mine = self.system_time()
        mask = 0xFFFFFFFFFFFFFFFF if len(data) >= 8 else 0xFFFFFFFF
        diff = ((received - mine) & mask)
        if diff > mask >> 1:
            diff -= mask + 1
        offset = struct.unpack_from("<Q", self.mem, REG_DC_OFFSET)[0]
        step = max(-1000, min(1000, diff // 4 if diff > 0 else -((-diff) // 4)))
        struct.pack_into("<Q", self.mem, REG_DC_OFFSET, (offset + step) & 0xFFFFFFFFFFFFFFFF)
        sign = 0x80000000 if diff < 0 else 0
        struct.pack_into("<I", self.mem, 0x092C, min(abs(diff), 0x7FFFFFFF) | sign)

    # ---- mailbox / CoE ----------------------------------------------------------------------------
    def _post(self, payload: bytes) -> None:
        sm1 = next((sm for sm in self.sms if sm.index == 1 and sm.mailbox), None)
        if sm1 is None:
            return
        status = REG_SM + 8 + 5
        if self.mem[status] & 0x08:
            if len(self.mbx_queue) >= MBX_QUEUE:
                self.mbx_queue.popleft()
                self.mbx_dropped += 1
            self.mbx_queue.append(payload)
            return
        self.mem[sm1.start:sm1.start + sm1.length] = payload[:sm1.length].ljust(sm1.length, b"\x00")
        self.mem[status] |= 0x08

    def _reply(self, mtype: int, body: bytes) -> None:
        self._mbx_counter = self._mbx_counter % 7 + 1
        self._post(struct.pack("<HHBB", len(body), 0, 0, mtype | (self._mbx_counter << 4)) + body)

    def _sdo(self, cmd: int, index: int, sub: int, data: bytes = b"\x00\x00\x00\x00") -> None:
        self._reply(3, struct.pack("<HBHB", 3 << 12, cmd, index, sub) + data)

    def _abort(self, index: int, sub: int, code: int) -> None:
        self._seg = None
        # CoE service 2 (SDO request) for aborts, as SOEM expects
        self._reply(3, struct.pack("<HBHBI", 2 << 12, 0x80, index, sub, code))

    def _mailbox_request(self, req: bytes) -> None:
        length, _addr, _chan, typ = struct.unpack_from("<HHBB", req, 0)
        if typ & 0x0F != 3 or length < 2:  # not CoE: mailbox error "unsupported protocol"
            self._reply(0, struct.pack("<HH", 1, 0x0002))
            return
        coe = struct.unpack_from("<H", req, 6)[0]
        if coe >> 12 != 2 or length < 10:
            self._reply(0, struct.pack("<HH", 1, 0x0002))
            return
        cmd, index, sub = req[8], struct.unpack_from("<H", req, 9)[0], req[11]
        body = req[6:6 + length]
        try:
            self._sdo_request(cmd, index, sub, body)
        except SdoAbort as exc:
            self._abort(exc.index, exc.subindex, exc.code)

    def _sdo_request(self, cmd: int, index: int, sub: int, body: bytes) -> None:
        ccs = cmd >> 5
        sm1 = next((sm for sm in self.sms if sm.index == 1), None)
        room = (sm1.length if sm1 else 128) - 16
        if ccs in (1, 2) and cmd & 0x10:
            raise SdoAbort(ABORT_UNSUPPORTED_ACCESS, index, sub)  # complete access not supported
        if ccs == 1:  # initiate download
            if cmd & 0x02:  # expedited
                size = 4 - ((cmd >> 2) & 3) if cmd & 0x01 else 4
                self.od.write(index, sub, body[6:6 + size])
                self._sdo(0x60, index, sub)
                return
            size = struct.unpack_from("<I", body, 6)[0]
            chunk = body[10:]
            if len(chunk) >= size:
                self.od.write(index, sub, chunk[:size])
            else:
                self._seg = ("down", index, sub, bytearray(chunk), size)
            self._sdo(0x60, index, sub)
        elif ccs == 0:  # download segment
            seg = self._seg
            if seg is None or seg[0] != "down":
                raise SdoAbort(ABORT_COMMAND, index, sub)
            _, sidx, ssub, buf, size = seg
            toggle = cmd & 0x10
            n = len(body) - 3
            if n == 7:
                n -= (cmd >> 1) & 7
            buf += body[3:3 + n]
            if cmd & 0x01 or len(buf) >= size:
                self._seg = None
                self.od.write(sidx, ssub, bytes(buf[:size]))
            self._reply(3, struct.pack("<HB", 3 << 12, 0x20 | toggle) + bytes(7))
        elif ccs == 2:  # initiate upload
            value = self.od.read(index, sub)
            if len(value) <= 4:
                self._sdo(0x43 | ((4 - len(value)) << 2), index, sub, value.ljust(4, b"\x00"))
                return
            first = value[:room]
            if len(value) > room:
                self._seg = ("up", index, sub, bytearray(value[room:]), len(value))
            self._sdo(0x41, index, sub, struct.pack("<I", len(value)) + first)
        elif ccs == 3:  # upload segment
            seg = self._seg
            if seg is None or seg[0] != "up":
                raise SdoAbort(ABORT_COMMAND, index, sub)
            toggle = cmd & 0x10
            rest = seg[3]
            chunk = bytes(rest[:room + 6])
            del rest[:len(chunk)]
            last = not rest
            if last:
                self._seg = None
            flags = toggle | (1 if last else 0) | (((7 - len(chunk)) << 1) if len(chunk) < 7 else 0)
            self._reply(3, struct.pack("<HB", 3 << 12, flags) + chunk.ljust(7, b"\x00"))
        elif ccs == 4:  # abort from the MainDevice
            self._seg = None
        else:
            raise SdoAbort(ABORT_COMMAND, index, sub)


class Line:
    """SubDevices in a row, processing EtherCAT frames (see the module docstring)."""

    def __init__(self, escs: list[Esc]) -> None:
        self.escs = escs
        self.frames = 0
        self.malformed = 0

    @classmethod
    def of(cls, descs: list[DeviceDescription], drift_ppm: list[float] | None = None) -> Line:
        """A line of SubDevices with the right DL status topology (the last one closes the loop)."""
        drifts = drift_ppm or [0.0] * len(descs)
        return cls([Esc(d, last=i == len(descs) - 1, drift_ppm=drifts[i]) for i, d in enumerate(descs)])

    def process(self, frame: bytearray) -> bool:
        """Process one Ethernet frame in place; False if it is not a well-formed EtherCAT frame
        (then nothing was changed and it must not be answered)."""
        if len(frame) < 16 or frame[12] != 0x88 or frame[13] != 0xA4:
            return False
        head = frame[14] | (frame[15] << 8)
        if head >> 12 != 1:
            self.malformed += 1
            return False
        end = 16 + (head & 0x7FF)
        if end > len(frame):
            self.malformed += 1
            return False
        grams: list[int] = []
        p = 16
        while True:
            if p + 12 > end:
                self.malformed += 1
                return False
            dlen = (frame[p + 6] | (frame[p + 7] << 8)) & 0x7FF
            if p + 12 + dlen > end:
                self.malformed += 1
                return False
            grams.append(p)
            if not frame[p + 7] & 0x80:
                break
            p += 12 + dlen
        self.frames += 1
        now = time.monotonic_ns()
        for esc in self.escs:
            if esc.muted:
                continue
            esc.frame_ns = now
            for p in grams:
                self._datagram(esc, frame, p)
            esc.frame_ns = 0
        return True

    @staticmethod
    def _datagram(esc: Esc, frame: bytearray, p: int) -> None:
        cmd = frame[p]
        if cmd == NOP or cmd > FRMW:
            return
        dlen = (frame[p + 6] | (frame[p + 7] << 8)) & 0x7FF
        at = p + 10
        wkc_at = at + dlen
        inc = 0
        if cmd in LOGICAL:
            laddr = struct.unpack_from("<I", frame, p + 2)[0]
            inc = esc.logical(cmd, frame, at, dlen, laddr)
        else:
            adp, ado = struct.unpack_from("<HH", frame, p + 2)
            if cmd in AUTO:
                addressed = adp == 0
                struct.pack_into("<H", frame, p + 2, (adp + 1) & 0xFFFF)
            elif cmd in BROADCAST:
                addressed = True
                struct.pack_into("<H", frame, p + 2, (adp + 1) & 0xFFFF)
            else:
                alias_on = esc.mem[REG_DLCTL + 3] & 0x01
                alias = struct.unpack_from("<H", esc.mem, REG_ALIAS)[0]
                addressed = adp == esc.station or bool(alias_on and adp == alias)
            if cmd in (ARMW, FRMW):
                if addressed:
                    got = esc.read(ado, dlen)
                    if got is not None:
                        frame[at:at + dlen] = got
                        inc = 1
                elif esc.write(ado, bytes(frame[at:at + dlen])):
                    inc = 1
            elif addressed:
                incoming = bytes(frame[at:at + dlen]) if cmd in WRITES else b""
                if cmd in READS:
                    got = esc.read(ado, dlen)
                    if got is not None:
                        if cmd in BROADCAST:
                            got = bytes(a | b for a, b in zip(got, frame[at:at + dlen], strict=True))
                        frame[at:at + dlen] = got
                        inc += 1
                if cmd in WRITES and esc.write(ado, incoming):
                    inc += 2 if cmd in READS else 1
        if inc:
            struct.pack_into("<H", frame, wkc_at, (struct.unpack_from("<H", frame, wkc_at)[0] + inc) & 0xFFFF)
