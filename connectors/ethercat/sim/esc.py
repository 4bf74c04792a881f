"""The EtherCAT SubController (ESC) model of the software SubDevice.

:class:`Esc` is one SubDevice: 64 KiB of memory (registers below 0x1000, process RAM above;
the register map is :mod:`.registers`), write protection of read-only registers, AL
control/status/status code with the ETG state machine, SyncManagers (mailbox SMs gate access
by their full/empty flag; the mailbox and its CoE SDO server are :mod:`.mailbox`), FMMUs with
bit-granular logical mapping, the SII EEPROM interface and distributed clocks. How a frame's
datagrams reach it is :mod:`.line`.

Everything runs on the simulator process's single thread; nothing blocks here.
"""

from __future__ import annotations

import struct
import time

from taktora.connectors.ethercat.bits import copy_bits
from taktora.connectors.ethercat.sim.coe import (
    RX_ASSIGN,
    TX_ASSIGN,
    ObjectDictionary,
    Slot,
    pack_image,
    unpack_image,
)
from taktora.connectors.ethercat.sim.commands import LRD, LRW, LWR
from taktora.connectors.ethercat.sim.device import DeviceDescription
from taktora.connectors.ethercat.sim.mailbox import Mailbox
from taktora.connectors.ethercat.sim.registers import (
    AL_ERROR,
    AL_INVALID_CHANGE,
    AL_INVALID_INPUTS,
    AL_INVALID_MBX,
    AL_INVALID_OUTPUTS,
    AL_INVALID_SM,
    AL_NO_BOOT,
    AL_SM_WATCHDOG,
    AL_UNKNOWN_STATE,
    BOOT,
    DL_STATUS_LAST,
    DL_STATUS_MIDDLE,
    EEP_CHECKSUM_ERROR,
    EEP_STATUS,
    INIT,
    OP,
    PREOP,
    REG_ALCODE,
    REG_ALCTL,
    REG_ALSTAT,
    REG_DC_OFFSET,
    REG_DC_RECV0,
    REG_DC_RECV_PU,
    REG_DC_SYSTIME,
    REG_DLSTAT,
    REG_EEPADR,
    REG_EEPCTL,
    REG_EEPDAT,
    REG_FMMU,
    REG_PDICTL,
    REG_SM,
    REG_STADR,
    SAFEOP,
    WRITABLE,
    Fmmu,
    Sm,
)
from taktora.connectors.ethercat.sim.sii import build_sii

ALLOWED = {(1, 1), (1, 2), (2, 1), (2, 2), (2, 4), (4, 1), (4, 2), (4, 4), (4, 8),
           (8, 1), (8, 2), (8, 4), (8, 8)}
"""The AL state changes the ETG state machine allows, as (current, requested)."""


class Esc:
    """One software SubDevice (see the module docstring).

    ``last``: the SubDevice closes the loop (DL status: port 1 open). ``drift_ppm``: how fast
    its local clock runs against the host's. ``count_outputs_outside_op``: outside OP, logical
    writes into the output SyncManager are still counted in the working counter (and land in
    memory, but are not taken into the output objects), as many ESCs do; by default they are
    neither taken nor counted, so a fall back to SAFE-OP lowers the working counter.
    """

    def __init__(self, desc: DeviceDescription, *, last: bool = True, drift_ppm: float = 0.0,
                 count_outputs_outside_op: bool = False) -> None:
        self.desc = desc
        self.count_outputs_outside_op = count_outputs_outside_op
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
        self.sii_checksum_error = False
        struct.pack_into("<H", self.mem, REG_EEPCTL, self._eeprom_status())
        self.fmmus: list[Fmmu] = []
        self.sms: list[Sm] = []
        self.out_slots: list[Slot] = []
        self.in_slots: list[Slot] = []
        self.out_bytes = 0
        self.in_bytes = 0
        self.mailbox = Mailbox(self.mem, lambda: self.sms, self.od)
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
            self.mailbox.reset()
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
                self.mailbox.deliver_next()
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
                self.mailbox.request(bytes(self.mem[sm.start:sm.start + sm.length]))
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
        working counter by 2, as on some hardware. With ``count_outputs_outside_op`` they are
        counted (the working counter stays as in OP), as on other ESCs."""
        if self.state == OP or self.count_outputs_outside_op:
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
        struct.pack_into("<H", self.mem, REG_EEPCTL, self._eeprom_status())

    def _eeprom_status(self) -> int:
        """EEPROM status word: 8-byte reads, never busy; bit 11 when the configuration area's
        CRC did not match as the image was loaded."""
        return EEP_STATUS | (EEP_CHECKSUM_ERROR if self.sii_checksum_error else 0)

    def corrupt_sii_checksum(self) -> None:
        """Fault injection: the SII's configuration-area CRC (word 7, low byte) is wrong, and
        the ESC reports it in EEPROM status bit 11 as after loading such an image."""
        self.sii[14] ^= 0xFF
        self.sii_checksum_error = True
        struct.pack_into("<H", self.mem, REG_EEPCTL, self._eeprom_status())

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
