"""The cycle's clock: a periodic timerfd programmed once (:class:`Pacer`).

The cycle item runs on the executor with an fd trigger on this timer: the kernel re-arms a
periodic timerfd itself (absolute, drift-free ticks ``first + k * period``), so a tick costs
one read of the expiration count and no timer programming. A wake that finds more than one
expiration skipped the ticks between (counted in :attr:`Pacer.missed`), as the executor's
``every`` with the skip policy does. Measured on the 2-core Firecracker VM of the benchmarks:
``timerfd_settime`` costs 14-46 us per call there (programming the timer exits the VM), which
an interval trigger re-armed every tick pays on every cycle (an empty 1 kHz item: 28-51 us of
CPU per tick on ``every``, 20-39 us on this timer).

Owned by the cycle thread (``consume`` and the properties); created and closed by the
connector's owner thread around the executor's run.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time

from taktora.connectors.ethercat.errors import EthercatError

log = logging.getLogger(__name__)

_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1
_NS = 1_000_000_000
_PR_SET_TIMERSLACK = 29


_LIBC: list[ctypes.CDLL] = []


def _libc() -> ctypes.CDLL:
    """The C library (loaded once)."""
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class Pacer:
    """A periodic timer of ``period_s`` whose first tick is one period from now."""

    def __init__(self, period_s: float) -> None:
        libc = _libc()
        fd = int(libc.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC))
        if fd < 0:
            raise EthercatError(f"EtherCAT: timerfd_create failed: {os.strerror(ctypes.get_errno())}")
        self.fd = fd
        self.period_ns = max(1, round(period_s * _NS))
        self.first_ns = time.monotonic_ns() + self.period_ns
        spec = _Itimerspec(_Timespec(self.period_ns // _NS, self.period_ns % _NS),
                           _Timespec(self.first_ns // _NS, self.first_ns % _NS))
        if libc.timerfd_settime(fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise EthercatError(f"EtherCAT: timerfd_settime failed: {os.strerror(err)}")
        self.ticks = 0
        """Ticks elapsed so far (expirations read)."""
        self.missed = 0
        """Ticks skipped: a wake that came later than the next tick."""
        self.due = False
        """True after a :meth:`consume` that read at least one expiration."""

    def fileno(self) -> int:
        return self.fd

    def consume(self, fd: int) -> None:
        """Read the expiration count (the executor, before the item runs; never blocks)."""
        try:
            n = int.from_bytes(os.read(fd, 8), "little")
        except BlockingIOError:
            self.due = False
            return
        self.ticks += n
        self.missed += n - 1
        self.due = True

    @property
    def scheduled_ns(self) -> int:
        """The time of the latest tick (the one the current run belongs to)."""
        return self.first_ns + (self.ticks - 1) * self.period_ns

    def close(self) -> None:
        """Close the timer (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def set_timer_slack(ns: int) -> None:
    """Set the calling thread's timer slack (Linux ``prctl(PR_SET_TIMERSLACK)``; the default
    of 50 us lets the kernel wake a timed wait up to that late). Best effort: ignored where
    it is not available."""
    try:
        _libc().prctl(_PR_SET_TIMERSLACK, ns, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        log.debug("timer slack not set: prctl not available")
