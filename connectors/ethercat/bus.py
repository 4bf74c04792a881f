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
cycle is sent, then OP is requested. Each state is awaited with its own timeout, and the whole
bring-up with one deadline (``bring_up_timeout_s``; the steps run on a worker thread so the
caller's wait is bounded even while SOEM is stuck in a call). SOEM's own timeouts come from
``BusConfig.timeouts`` (:class:`SoemTimeouts`).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
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
class SoemTimeouts:
    """SOEM's own timeouts in microseconds (``pysoem.settings.timeouts``; SOEM's defaults).

    ``ret``: one datagram's round trip (raise it for SubDevices that answer late: with 2 ms a
    SubDevice answering 10 ms late is not found, or its SII is misread); ``safe``: safe
    datagrams; ``eeprom``: one SII access; ``tx_mailbox`` / ``rx_mailbox``: writing /
    reading a mailbox (SDO transfers); ``state``: a state change (SOEM-internal waits; the
    bring-up's own state waits use ``BusConfig.state_timeout_s``). They are process-wide in
    SOEM: each bring-up applies its bus's values, so buses of one process should agree.
    """

    ret: int = attrs.field(default=2_000, validator=_v.integer(ge=100, le=1_000_000))
    safe: int = attrs.field(default=20_000, validator=_v.integer(ge=100, le=10_000_000))
    eeprom: int = attrs.field(default=20_000, validator=_v.integer(ge=100, le=10_000_000))
    tx_mailbox: int = attrs.field(default=20_000, validator=_v.integer(ge=1_000, le=10_000_000))
    rx_mailbox: int = attrs.field(default=700_000, validator=_v.integer(ge=1_000, le=60_000_000))
    state: int = attrs.field(default=2_000_000, validator=_v.integer(ge=1_000, le=60_000_000))

    def apply(self) -> None:
        """Set ``pysoem.settings.timeouts`` to these values (process-wide)."""
        import pysoem

        t = pysoem.settings.timeouts
        t.ret, t.safe, t.eeprom = self.ret, self.safe, self.eeprom
        t.tx_mailbox, t.rx_mailbox, t.state = self.tx_mailbox, self.rx_mailbox, self.state


@attrs.frozen
class BusConfig:
    """How to bring a bus up.

    ``bring_up_timeout_s``: the deadline of the whole bring-up (discovery to OP), honoured
    whatever SOEM does (see :meth:`Bus.bring_up`); ``state_timeout_s``: each state wait, cut
    to what is left of the deadline; ``timeouts``: SOEM's own timeouts.
    """

    iface: str
    expected: tuple[ExpectedSubDevice, ...] = ()
    pdo: tuple[PdoAssignment, ...] = ()
    state_timeout_s: float = attrs.field(default=2.0, validator=_v.number(gt=0, le=600))
    receive_timeout_us: int = 2000
    distributed_clocks: bool = False
    bring_up_timeout_s: float = attrs.field(default=10.0, validator=_v.number(gt=0, le=3600))
    refuse_sii_checksum_error: bool = attrs.field(default=False, validator=_v.instance(bool))
    """A SubDevice whose ESC reports an SII checksum error (EEPROM status bit 11) is warned
    about (logged, :attr:`Bus.warnings`); with this set, bring-up fails instead."""
    timeouts: SoemTimeouts = attrs.field(factory=SoemTimeouts, validator=_v.instance(SoemTimeouts))


REG_ESC_FEATURES = 0x0008
REG_EEPROM_STATUS = 0x0502
EEPROM_CHECKSUM_ERROR = 0x0800
SII_MAILBOX_PROTOCOLS = 0x001C
MAILBOX_COE = 0x0004
FEATURE_DC = 0x0004
REG_DC_SYSTIME_DIFF = 0x092C


def al_text(code: int) -> str:
    """The ETG description of an AL status code."""
    try:
        import pysoem

        return str(pysoem.al_status_code_to_string(code))
    except Exception:  # pragma: no cover - pysoem missing
        return "unknown"


_abandoned: dict[str, Bus] = {}
"""Interfaces whose bring-up passed its deadline while SOEM was still working: SOEM cannot be
interrupted, so its worker thread runs on and no other bus may open the interface meanwhile."""
_abandoned_lock = threading.Lock()


def busy(iface: str) -> str | None:
    """The step an abandoned bring-up on ``iface`` is still in (None: the interface is free)."""
    with _abandoned_lock:
        bus = _abandoned.get(iface)
        return bus.step if bus is not None else None


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
        self.step = ""
        """The bring-up step running now (or the last one), e.g. ``discovery (config_init)``."""
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._working = False  # a bring-up worker runs (guarded by _lock)
        self._close_pending = False
        self.warnings: list[str] = []
        """What the last bring-up warned about (e.g. an SII checksum error)."""

    # ---- lifecycle --------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the network interface (EthercatError if it cannot be opened, or if a bring-up
        abandoned at its deadline still runs on it)."""
        step = busy(self.config.iface)
        if step is not None:
            raise BringUpError(f"EtherCAT: {self.config.iface} is still held by a bring-up that passed "
                               f"its deadline in step {step} (SOEM cannot be interrupted); try again "
                               "when it ends", -1, 0, 0)
        try:
            self.master.open(self.config.iface)
        except Exception as exc:
            raise EthercatError(f"EtherCAT: cannot open {self.config.iface}: {exc}") from None
        self.opened = True

    def close(self) -> None:
        """Close the interface (idempotent; SubDevices fall back by their watchdogs). While an
        abandoned bring-up still runs, the interface is closed when it ends."""
        with self._lock:
            if self._working:
                self._close_pending = True
                return
            if self.opened:
                self.master.close()
                self.opened = False

    @property
    def subdevices(self) -> list[Any]:
        return list(self.master.slaves)

    def bring_up(self, expected_count: int | None = None, cancel: threading.Event | None = None) -> int:
        """Discover, check identities, assign PDOs, map, SAFE-OP, OP; returns the expected working
        counter. ``expected_count`` (if given) is the number of SubDevices that must answer.
        Raises BringUpError on any failure (the bus is left where it got to).

        Blocks the caller at most ``bring_up_timeout_s`` (plus ~50 ms): the steps run on a
        worker thread (the only one touching SOEM meanwhile) and the caller waits for it. Past
        the deadline, or when ``cancel`` is set, BringUpError names the step that was running
        and the SubDevice when the step is about one; SOEM's call cannot be interrupted, so the
        worker runs on, holds the interface (:func:`busy`; :meth:`open` of another bus on it is
        refused) and closes it when it ends if :meth:`close` was called meanwhile."""
        with self._lock:
            if self._working:
                raise BringUpError(f"EtherCAT: the last bring-up on {self.config.iface} passed its "
                                   f"deadline and is still in step {self.step} (SOEM cannot be "
                                   "interrupted); try again when it ends", -1, 0, 0)
        self.config.timeouts.apply()
        deadline = time.monotonic() + self.config.bring_up_timeout_s
        done: Future[int] = Future()

        def work() -> None:
            try:
                done.set_result(self._bring_up(expected_count, deadline))
            except BringUpError as exc:  # handed to the waiting caller
                done.set_exception(exc)
            except Exception as exc:  # every bring-up failure is a BringUpError (REQ_0825)
                failure = BringUpError(f"EtherCAT: bring-up on {self.config.iface} failed in step "
                                       f"{self.step}: {exc}", self._step_subdevice, 0, 0)
                failure.__cause__ = exc
                done.set_exception(failure)
            finally:
                with self._lock:
                    self._working = False
                    with _abandoned_lock:
                        if _abandoned.get(self.config.iface) is self:
                            del _abandoned[self.config.iface]
                    if self._close_pending and self.opened:
                        self.master.close()
                        self.opened = False

        self.step = "start"
        self._working = True
        self._worker = threading.Thread(target=work, name=f"ethercat-bring-up-{self.config.iface}",
                                        daemon=True)
        self._worker.start()
        while True:
            left = deadline - time.monotonic()
            try:
                return done.result(max(0.0, min(0.05, left)))
            except FutureTimeout:
                cancelled = cancel is not None and cancel.is_set()
                if left > 0 and not cancelled:
                    continue
            with self._lock:
                if not self._working:  # it ended just now
                    return done.result()
                with _abandoned_lock:
                    _abandoned[self.config.iface] = self
            why = "was cancelled" if cancel is not None and cancel.is_set() else \
                f"passed its deadline of {self.config.bring_up_timeout_s} s"
            raise BringUpError(f"EtherCAT: bring-up on {self.config.iface} {why} in step {self.step}; "
                               f"{self._hint()}", self._step_subdevice, 0, 0)

    def _hint(self) -> str:
        t = self.config.timeouts
        return (f"SubDevices answering later than SOEM's datagram timeout (timeouts.ret = {t.ret} us) "
                "are retried again and again: raise BusConfig.timeouts.ret, or "
                "bring_up_timeout_s for a long line")

    _step_subdevice = -1

    def _enter(self, step: str, deadline: float, subdevice: int = -1) -> None:
        """Start bring-up step ``step`` (worker thread): a step starting past the deadline fails."""
        if time.monotonic() > deadline:
            raise BringUpError(f"EtherCAT: bring-up on {self.config.iface} passed its deadline of "
                               f"{self.config.bring_up_timeout_s} s before step {step} (after "
                               f"{self.step}); {self._hint()}", subdevice, 0, 0)
        self.step = step
        self._step_subdevice = subdevice

    def _bring_up(self, expected_count: int | None, deadline: float) -> int:
        iface = self.config.iface
        self._enter("discovery (config_init: every SubDevice's SII, then PRE-OP)", deadline)
        count = self.master.config_init()
        if count <= 0:
            raise BringUpError(f"EtherCAT: no SubDevices answered on {iface} within SOEM's datagram "
                               f"timeout (timeouts.ret = {self.config.timeouts.ret} us; raise it for "
                               "SubDevices that answer late)", -1, 0, 0)
        if expected_count is not None and count != expected_count:
            raise BringUpError(f"EtherCAT: {count} SubDevices answered on {iface}, "
                               f"{expected_count} expected", -1, INIT, 0)
        self._enter("identity check", deadline)
        self._check_identities()
        self._enter("SII checksum check", deadline)
        self._check_sii()
        self._await(PREOP, deadline)
        if self.config.distributed_clocks:
            self._enter("distributed clocks (config_dc)", deadline)
            if not self.master.config_dc():
                raise BringUpError(f"EtherCAT: distributed clocks requested, but no SubDevice on "
                                   f"{iface} supports them", -1, PREOP, 0)
        for assignment in self.config.pdo:
            self._enter(f"PDO assignment of SubDevice {assignment.subdevice}", deadline, assignment.subdevice)
            self._assign(assignment)
        self._enter("mapping (config_map: every SubDevice's PDO assignment and mapping)", deadline)
        try:
            self.master.config_map()
        except Exception as exc:
            raise BringUpError(f"EtherCAT: process image mapping failed: {exc}", -1, PREOP, 0) from None
        for sd in self.subdevices:  # a re-bring-up reuses SOEM's image: start from safe outputs
            sd.output = bytes(len(sd.output))
        self._await(SAFEOP, deadline)
        self.expected_wkc = int(self.master.expected_wkc)
        self._enter("OP", deadline)
        self.master.state = OP
        self.cycle()
        self.master.write_state()
        until = min(deadline, time.monotonic() + self.config.state_timeout_s)
        while True:
            self.cycle()
            if self.master.state_check(OP, 1000) == OP:
                break
            if time.monotonic() > until:
                self._fail(OP)
        self.step = "done"
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

    def _check_sii(self) -> None:
        """Warn about (or refuse) SubDevices whose ESC reports an SII checksum error: SOEM
        itself ignores it."""
        self.warnings = []
        for pos, sd in enumerate(self.subdevices):
            try:
                status = self._read_u32(sd, pos, REG_EEPROM_STATUS, 2, 3 * self.config.timeouts.ret)
            except EthercatError as exc:  # advisory: a late answer must not fail the bring-up here
                log.warning("EtherCAT: SII checksum of SubDevice %d not checked: %s", pos, exc)
                continue
            if not status & EEPROM_CHECKSUM_ERROR:
                continue
            text = (f"EtherCAT: SubDevice {pos} ({sd.name}) reports an SII checksum error (EEPROM "
                    f"status 0x{status:04X}): its configuration area may be corrupt")
            if self.config.refuse_sii_checksum_error:
                raise BringUpError(f"{text}; refused (BusConfig.refuse_sii_checksum_error)", pos, PREOP, 0)
            log.warning("%s", text)
            self.warnings.append(text)

    def _assign(self, a: PdoAssignment) -> None:
        subs = self.subdevices
        if not 0 <= a.subdevice < len(subs):
            raise BringUpError(f"EtherCAT: PDO assignment for SubDevice {a.subdevice}, only {len(subs)} "
                               "found",
                               a.subdevice, PREOP, 0)
        sd = subs[a.subdevice]
        protocols = int.from_bytes(bytes(sd.eeprom_read(SII_MAILBOX_PROTOCOLS))[:2], "little")
        if not protocols & MAILBOX_COE:
            raise BringUpError(f"EtherCAT: PDO assignment configured for SubDevice {a.subdevice} "
                               f"({sd.name}), which has no CoE mailbox (SII mailbox protocols "
                               f"0x{protocols:04X}): its PDOs are fixed; remove "
                               f"PdoAssignment(subdevice={a.subdevice})", a.subdevice, PREOP, 0)
        for index, pdos in ((0x1C12, a.rx), (0x1C13, a.tx)):
            if not pdos:
                continue
            try:
                self.sdo_write(a.subdevice, index, 0, b"\x00")
                for i, pdo in enumerate(pdos, 1):
                    self.sdo_write(a.subdevice, index, i, struct.pack("<H", pdo))
                self.sdo_write(a.subdevice, index, 0, bytes([len(pdos)]))
            except SdoAbortError as exc:
                listed = ", ".join(f"0x{p:04X}" for p in pdos)
                raise BringUpError(f"EtherCAT: SubDevice {a.subdevice} ({sd.name}) refused the PDO "
                                   f"assignment 0x{index:04X} = [{listed}]: abort 0x{exc.abort_code:08X} "
                                   f"at 0x{exc.index:04X}:{exc.subindex}", a.subdevice, PREOP, 0) from exc

    def _await(self, state: int, deadline: float) -> None:
        self._enter(STATE_NAMES[state], deadline)
        left = min(self.config.state_timeout_s, deadline - time.monotonic())
        timeout_us = max(1000, int(left * 1e6))
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
                if not sd.state:
                    raise BringUpError(
                        f"EtherCAT: SubDevice {pos} ({sd.name}) did not reach {STATE_NAMES[wanted]}: it did "
                        f"not answer the AL status read within SOEM's datagram timeout (timeouts.ret = "
                        f"{self.config.timeouts.ret} us; raise it for a SubDevice that answers late)",
                        pos, 0, 0)
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
    def _read_u32(sd: Any, pos: int, register: int, size: int, timeout_us: int = 2000) -> int:
        try:
            return int.from_bytes(bytes(sd._fprd(register, size, timeout_us)), "little")
        except Exception as exc:  # pysoem raises its own errors for an unanswered datagram
            raise EthercatError(f"SubDevice {pos}: register 0x{register:04X} not readable: "
                                f"{exc}") from exc

    def al_lowest(self) -> int:
        """Read every SubDevice's AL status from the bus and return the lowest AL state (8 = all
        in OP; 0 = a SubDevice did not answer or the frame was lost). One broadcast read (BRD
        of 0x0130) when every SubDevice is in the same state without error, else one read per
        SubDevice; afterwards :meth:`cached_states` holds each SubDevice's state. Cycle thread."""
        return int(self.master.read_state())

    def cached_states(self) -> list[tuple[int, int]]:
        """(AL state with error flag, AL status code) of every SubDevice as last read by
        :meth:`al_lowest` or :meth:`states` (no bus access)."""
        return [(int(sd.state), int(sd.al_status)) for sd in self.subdevices]

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
