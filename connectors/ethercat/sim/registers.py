"""The ESC's register map: addresses, AL states and status codes, status words, and which
register bytes the MainDevice may write.

Also the decoded records of the enabled SyncManagers (:class:`Sm`, registers 0x0800..) and the
active FMMUs (:class:`Fmmu`, 0x0600..). Pure data; the behaviour is in :mod:`.esc`.
"""

from __future__ import annotations

import attrs

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

DL_STATUS_LAST, DL_STATUS_MIDDLE = 0x5613, 0x5A13
EEP_STATUS = 0x0040  # 8-byte reads supported, never busy, no error
EEP_CHECKSUM_ERROR = 0x0800  # the configuration area's CRC did not match when the image loaded


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
