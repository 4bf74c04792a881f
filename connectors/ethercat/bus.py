"""The EtherCAT MainDevice on pysoem (SOEM): bring-up, cyclic exchange and SDO access.

:class:`Bus` is owned by one thread (the connector's cycle thread, or a test): pysoem is not
thread-safe and its calls hold the GIL while they block (``state_check`` up to its timeout,
``receive_processdata`` up to ``receive_timeout_us``, SDO transfers up to SOEM's mailbox
timeouts). Errors are project errors: :class:`~taktora.connectors.ethercat.errors.BringUpError` (naming
the SubDevice, the state it reached and its AL status code), :class:`SdoAbortError` (with the
ETG abort code) and :class:`EthercatError` for everything else.

Bring-up (ARCH_0040): ``config_init`` discovers the SubDevices and requests PRE-OP; expected
identities are checked; with ``distributed_clocks`` SOEM's ``config_dc`` latches receive
times and writes offsets and delays (ARCH_0042; every exchange then carries the reference
clock's time to the others); the configured PDO assignment is written through SDO (0x1C12/0x1C13)
while in PRE-OP; ``config_map`` builds the process image and requests SAFE-OP; one process-data
cycle is sent, then OP is requested. Each state is awaited with its own timeout.
"""

from __future__ import annotations

import logging
import struct
import time
from typing import Any

import attrs
from taktora.connectors.ethercat.errors import BringUpError, EthercatError, SdoAbortError
from taktora.transport.validators import Checks

log = logging.getLogger(__name__)

INIT, PREOP, SAFEOP, OP = 1, 2, 4, 8
STATE_NAMES = {0: "NONE", 1: "INIT", 2: "PRE-OP", 3: "BOOT", 4: "SAFE-OP", 8: "OP"}


_v = Checks(EthercatError)
_u32_or_none = _v.optional(_v.integer(ge=0, le=0xFFFFFFFF))


@attrs.frozen
class ExpectedSubDevice:
    """The identity a SubDevice position must have (None = any value)."""

    vendor_id: int | None = attrs.field(default=None, validator=_u32_or_none)
    product_code: int | None = attrs.field(default=None, validator=_u32_or_none)
    revision: int | None = attrs.field(default=None, validator=_u32_or_none)


@attrs.frozen
class PdoAssignment:
    """PDOs to assign to one SubDevice (0-based position) during PRE-OP: RxPDOs into 0x1C12,
    TxPDOs into 0x1C13 (an empty tuple leaves that assignment as the device has it)."""

    subdevice: int
    rx: tuple[int, ...] = ()
    tx: tuple[int, ...] = ()


@attrs.frozen
class BusConfig:
    """How to bring a bus up."""

    iface: str
    expected: tuple[ExpectedSubDevice, ...] = ()
    pdo: tuple[PdoAssignment, ...] = ()
    state_timeout_s: float = attrs.field(default=2.0, validator=_v.positive())
    receive_timeout_us: int = 2000
    distributed_clocks: bool = False


REG_ESC_FEATURES = 0x0008
FEATURE_DC = 0x0004
REG_DC_SYSTIME_DIFF = 0x092C


def al_text(code: int) -> str:
    """The ETG description of an AL status code."""
    try:
        import pysoem

        return str(pysoem.al_status_code_to_string(code))
    except Exception:  # pragma: no cover - pysoem missing
        return "unknown"


class Bus:
    """One EtherCAT segment driven by SOEM (see the module docstring)."""

    def __init__(self, config: BusConfig) -> None:
        import pysoem

        self.config = config
        self._pysoem = pysoem
        self.master: Any = pysoem.Master()
        # SOEM calls otherwise hold the GIL while they wait for the frame: the dispatcher and
        # app threads of this process could not run during a cycle
        self.master.always_release_gil = True
        self.opened = False
        self.expected_wkc = 0

    # ---- lifecycle --------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the network interface (EthercatError if it cannot be opened)."""
        try:
            self.master.open(self.config.iface)
        except Exception as exc:
            raise EthercatError(f"EtherCAT: cannot open {self.config.iface}: {exc}") from None
        self.opened = True

    def close(self) -> None:
        """Close the interface (idempotent; SubDevices fall back by their watchdogs)."""
        if self.opened:
            self.master.close()
            self.opened = False

    @property
    def subdevices(self) -> list[Any]:
        return list(self.master.slaves)

    def bring_up(self, expected_count: int | None = None) -> int:
        """Discover, check identities, assign PDOs, map, SAFE-OP, OP; returns the expected working
        counter. ``expected_count`` (if given) is the number of SubDevices that must answer.
        Raises BringUpError on any failure (the bus is left where it got to)."""
        count = self.master.config_init()
        if count <= 0:
            raise BringUpError(f"EtherCAT: no SubDevices answered on {self.config.iface}", -1, 0, 0)
        if expected_count is not None and count != expected_count:
            raise BringUpError(f"EtherCAT: {count} SubDevices answered on {self.config.iface}, "
                               f"{expected_count} expected", -1, INIT, 0)
        self._check_identities()
        self._await(PREOP)
        if self.config.distributed_clocks and not self.master.config_dc():
            raise BringUpError(f"EtherCAT: distributed clocks requested, but no SubDevice on "
                               f"{self.config.iface} supports them", -1, PREOP, 0)
        for assignment in self.config.pdo:
            self._assign(assignment)
        try:
            self.master.config_map()
        except Exception as exc:
            raise BringUpError(f"EtherCAT: process image mapping failed: {exc}", -1, PREOP, 0) from None
        self._await(SAFEOP)
        self.expected_wkc = int(self.master.expected_wkc)
        self.master.state = OP
        self.cycle()
        self.master.write_state()
        deadline = time.monotonic() + self.config.state_timeout_s
        while True:
            self.cycle()
            if self.master.state_check(OP, 1000) == OP:
                break
            if time.monotonic() > deadline:
                self._fail(OP)
        return self.expected_wkc

    def _check_identities(self) -> None:
        subs = self.subdevices
        expected = self.config.expected
        if expected and len(subs) != len(expected):
            raise BringUpError(f"EtherCAT: {len(subs)} SubDevices found, {len(expected)} expected", -1,
                               INIT, 0)
        for pos, (sd, want) in enumerate(zip(subs, expected, strict=False)):
            for field, have, need in (("vendor", sd.man, want.vendor_id),
                                      ("product", sd.id, want.product_code),
                                      ("revision", sd.rev, want.revision)):
                if need is not None and have != need:
                    raise BringUpError(f"EtherCAT: SubDevice {pos} ({sd.name}) has {field} 0x{have:08X}, "
                                       f"expected 0x{need:08X}", pos, INIT, 0)

    def _assign(self, a: PdoAssignment) -> None:
        subs = self.subdevices
        if not 0 <= a.subdevice < len(subs):
            raise BringUpError(f"EtherCAT: PDO assignment for SubDevice {a.subdevice}, only {len(subs)} "
                               "found",
                               a.subdevice, PREOP, 0)
        for index, pdos in ((0x1C12, a.rx), (0x1C13, a.tx)):
            if not pdos:
                continue
            self.sdo_write(a.subdevice, index, 0, b"\x00")
            for i, pdo in enumerate(pdos, 1):
                self.sdo_write(a.subdevice, index, i, struct.pack("<H", pdo))
            self.sdo_write(a.subdevice, index, 0, bytes([len(pdos)]))

    def _await(self, state: int) -> None:
        timeout_us = int(self.config.state_timeout_s * 1e6)
        if self.master.state_check(state, timeout_us) != state:
            self._fail(state)
        self.master.read_state()
        if any(sd.state != state for sd in self.subdevices):
            self._fail(state)

    def _fail(self, wanted: int) -> None:
        self.master.read_state()
        for pos, sd in enumerate(self.subdevices):
            if sd.state & 0x0F != wanted or sd.state & 0x10:
                code = int(sd.al_status)
                reached = sd.state & 0x0F
                raise BringUpError(
                    f"EtherCAT: SubDevice {pos} ({sd.name}) did not reach {STATE_NAMES[wanted]}: it is in "
                    f"{STATE_NAMES.get(reached, hex(reached))} with AL status code 0x{code:04X} "
                    f"({al_text(code)})", pos, reached, code)
        raise BringUpError(f"EtherCAT: bus did not reach {STATE_NAMES[wanted]} within "
                           f"{self.config.state_timeout_s} s", -1, 0, 0)

    # ---- cyclic -----------------------------------------------------------------------------------
    def cycle(self) -> int:
        """One process-data exchange; returns the working counter (negative/0 = lost frame)."""
        self.master.send_processdata()
        return int(self.master.receive_processdata(self.config.receive_timeout_us))

    @property
    def dc_time(self) -> int:
        """The reference clock's system time (ns since 2000) of the last exchange (DC on)."""
        return int(self.master.dc_time)

    def dc_deviations(self) -> list[int | None]:
        """Every SubDevice's drift from the reference clock in ns: register 0x092C (its copy of
        system time minus the reference's, as last latched by the drift compensation; bit 31
        sign, bits 30..0 magnitude). The reference clock - the first SubDevice whose ESC
        features (0x0008, bit 2) include distributed clocks, as SOEM chooses it - reports 0;
        SubDevices without distributed clocks report None. Cycle thread only; an unanswered
        read raises EthercatError naming the SubDevice."""
        out: list[int | None] = []
        reference_seen = False
        for pos, sd in enumerate(self.master.slaves):
            if not self._read_u32(sd, pos, REG_ESC_FEATURES, 2) & FEATURE_DC:
                out.append(None)
            elif not reference_seen:
                reference_seen = True
                out.append(0)
            else:
                raw = self._read_u32(sd, pos, REG_DC_SYSTIME_DIFF, 4)
                magnitude = raw & 0x7FFFFFFF
                out.append(-magnitude if raw & 0x80000000 else magnitude)
        return out

    @staticmethod
    def _read_u32(sd: Any, pos: int, register: int, size: int) -> int:
        try:
            return int.from_bytes(bytes(sd._fprd(register, size, 2000)), "little")
        except Exception as exc:  # pysoem raises its own errors for an unanswered datagram
            raise EthercatError(f"SubDevice {pos}: register 0x{register:04X} not readable: "
                                f"{exc}") from exc

    def states(self) -> list[tuple[int, int]]:
        """(AL state with error flag, AL status code) of every SubDevice, read from the bus."""
        self.master.read_state()
        return [(int(sd.state), int(sd.al_status)) for sd in self.subdevices]

    # ---- SDO --------------------------------------------------------------------------------------
    def sdo_read(self, subdevice: int, index: int, subindex: int, size: int = 1024) -> bytes:
        """Upload one object value of at most ``size`` bytes (SdoAbortError with the abort code;
        EthercatError otherwise)."""
        try:
            return bytes(self.subdevices[subdevice].sdo_read(index, subindex, size))
        except self._pysoem.SdoError as exc:
            raise self._abort(exc, subdevice, index, subindex) from None
        except Exception as exc:
            raise EthercatError(f"EtherCAT: SDO read 0x{index:04X}:{subindex} of SubDevice {subdevice}: "
                                f"{exc!r}") from None

    def sdo_write(self, subdevice: int, index: int, subindex: int, data: bytes) -> None:
        """Download one object value (SdoAbortError with the abort code; EthercatError otherwise)."""
        try:
            self.subdevices[subdevice].sdo_write(index, subindex, bytes(data))
        except self._pysoem.SdoError as exc:
            raise self._abort(exc, subdevice, index, subindex) from None
        except Exception as exc:
            raise EthercatError(f"EtherCAT: SDO write 0x{index:04X}:{subindex} of SubDevice {subdevice}: "
                                f"{exc!r}") from None

    @staticmethod
    def _abort(exc: Any, subdevice: int, index: int, subindex: int) -> SdoAbortError:
        code = int(exc.abort_code)
        return SdoAbortError(f"EtherCAT: SubDevice {subdevice} aborted SDO 0x{index:04X}:{subindex} with "
                             f"0x{code:08X} ({exc.desc})", subdevice, index, subindex, code)
