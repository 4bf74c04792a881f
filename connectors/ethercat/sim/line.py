"""A line of software SubDevices processing EtherCAT frames the way a frame travels through
real hardware.

:class:`Line` parses one Ethernet frame (EtherType 0x88A4), checks the EtherCAT header and
every datagram's length, then lets every SubDevice that is not muted process every datagram
in order: auto-increment addresses count up at each SubDevice, working counters add +1 per
read, +1 per write (+2 for a write of a read-write command, so +3 for both), broadcast reads
OR their data.

Runs on the simulator process's single thread; nothing blocks here. Malformed frames are
dropped and counted (:attr:`Line.malformed`), never raised.
"""

from __future__ import annotations

import struct
import time

from taktora.connectors.ethercat.sim.commands import (
    ARMW,
    AUTO,
    BROADCAST,
    FRMW,
    LOGICAL,
    NOP,
    READS,
    WRITES,
)
from taktora.connectors.ethercat.sim.device import DeviceDescription
from taktora.connectors.ethercat.sim.esc import Esc
from taktora.connectors.ethercat.sim.registers import REG_ALIAS, REG_DLCTL


class Line:
    """SubDevices in a row, processing EtherCAT frames (see the module docstring)."""

    def __init__(self, escs: list[Esc]) -> None:
        self.escs = escs
        self.frames = 0
        self.malformed = 0
        self.forwarded = 0

    @classmethod
    def of(cls, descs: list[DeviceDescription], drift_ppm: list[float] | None = None, *,
           count_outputs_outside_op: bool = False) -> Line:
        """A line of SubDevices with the right DL status topology (the last one closes the loop);
        ``count_outputs_outside_op``: see :class:`~taktora.connectors.ethercat.sim.esc.Esc`."""
        drifts = drift_ppm or [0.0] * len(descs)
        return cls([Esc(d, last=i == len(descs) - 1, drift_ppm=drifts[i],
                        count_outputs_outside_op=count_outputs_outside_op)
                    for i, d in enumerate(descs)])

    def process(self, frame: bytearray) -> bool:
        """Process one Ethernet frame in place; True if it goes back to the MainDevice. False
        if it is not a well-formed EtherCAT frame (then nothing was changed and it must not be
        answered). Frames of EtherCAT types other than 1 (datagrams), e.g. 4 (network
        variables) or 5 (mailbox gateway), pass every SubDevice unchanged, as on real ESCs,
        and are counted (:attr:`forwarded`)."""
        if len(frame) < 16 or frame[12] != 0x88 or frame[13] != 0xA4:
            return False
        head = frame[14] | (frame[15] << 8)
        if head >> 12 != 1:
            self.forwarded += 1
            return True
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
