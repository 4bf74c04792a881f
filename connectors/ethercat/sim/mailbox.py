"""The mailbox of the software SubDevice: SM0 (out, MainDevice to SubDevice) and SM1 (in),
and the CoE SDO server behind them.

:class:`Mailbox` serves a request as soon as the MainDevice writes the last byte of the
out-mailbox: expedited, normal and segmented SDO download and upload against the object
dictionary, aborts with the dictionary's abort code (CoE service 2, as SOEM expects). A
response goes into SM1 and marks it full; while SM1 is still full, responses wait in a queue
of ``MBX_QUEUE`` (beyond that the oldest is dropped and counted as :attr:`Mailbox.dropped`).

Runs on the simulator process's single thread, inside the ESC's memory access; never blocks.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Sequence

from taktora.connectors.ethercat.sim.coe import (
    ABORT_COMMAND,
    ABORT_UNSUPPORTED_ACCESS,
    ObjectDictionary,
    SdoAbort,
)
from taktora.connectors.ethercat.sim.registers import REG_SM, Sm

MBX_QUEUE = 8  # responses waiting while SM1 is still full; beyond that the oldest is dropped


class Mailbox:
    """The mailbox SyncManagers of one ESC (see the module docstring).

    ``mem``: the ESC's memory (SM1's buffer and status byte are written here); ``sms``: the
    ESC's enabled SyncManagers now; ``od``: its object dictionary.
    """

    def __init__(self, mem: bytearray, sms: Callable[[], Sequence[Sm]], od: ObjectDictionary) -> None:
        self.mem = mem
        self._sms = sms
        self.od = od
        self.queue: deque[bytes] = deque()
        self.dropped = 0
        self._counter = 0
        self._seg: tuple[str, int, int, bytearray, int] | None = None  # kind, index, sub, data, size

    def reset(self) -> None:
        """Forget a segmented transfer in progress and the queued responses (back to INIT)."""
        self._seg = None
        self.queue.clear()

    def deliver_next(self) -> None:
        """SM1 was read empty: move the next queued response, if any, into it."""
        if self.queue:
            self.post(self.queue.popleft())

    def post(self, payload: bytes) -> None:
        """Put ``payload`` into the in-mailbox (SM1) and mark it full; while it is still full,
        queue it (at most ``MBX_QUEUE``; beyond that the oldest is dropped and counted)."""
        sm1 = next((sm for sm in self._sms() if sm.index == 1 and sm.mailbox), None)
        if sm1 is None:
            return
        status = REG_SM + 8 + 5
        if self.mem[status] & 0x08:
            if len(self.queue) >= MBX_QUEUE:
                self.queue.popleft()
                self.dropped += 1
            self.queue.append(payload)
            return
        self.mem[sm1.start:sm1.start + sm1.length] = payload[:sm1.length].ljust(sm1.length, b"\x00")
        self.mem[status] |= 0x08

    def _reply(self, mtype: int, body: bytes) -> None:
        self._counter = self._counter % 7 + 1
        self.post(struct.pack("<HHBB", len(body), 0, 0, mtype | (self._counter << 4)) + body)

    def _sdo(self, cmd: int, index: int, sub: int, data: bytes = b"\x00\x00\x00\x00") -> None:
        self._reply(3, struct.pack("<HBHB", 3 << 12, cmd, index, sub) + data)

    def _abort(self, index: int, sub: int, code: int) -> None:
        self._seg = None
        # CoE service 2 (SDO request) for aborts, as SOEM expects
        self._reply(3, struct.pack("<HBHBI", 2 << 12, 0x80, index, sub, code))

    def request(self, req: bytes) -> None:
        """Serve one request the MainDevice wrote into the out-mailbox (SM0): CoE SDO
        transfers; any other protocol is answered with a mailbox error."""
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
        sm1 = next((sm for sm in self._sms() if sm.index == 1), None)
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

