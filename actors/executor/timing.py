"""Deterministic timing: absolute-time interval schedules and the timerfd that wakes them.

An interval's k-th tick is due at ``start + k * period`` on the monotonic clock, whatever
happened before: lateness never accumulates into drift. When the executor wakes late and one
or more ticks have passed, the :class:`MissedTickPolicy` decides what runs, and every tick that
did not run on time is counted.

The WaitSet's own timeout has millisecond granularity (measured here: a 700 us timeout returns
after ~1.07 ms), so timed triggers use a Linux ``timerfd`` armed at an absolute
``CLOCK_MONOTONIC`` time and attached to the WaitSet as a file descriptor.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import enum
import os
import time

from taktora.actors.executor.errors import ExecutorConfigError, ExecutorError

NS = 1_000_000_000


class MissedTickPolicy(enum.Enum):
    """What an interval does when the executor wakes after one or more ticks have passed.

    Every policy stays on the original grid ``start + k * period`` and counts missed ticks.

    - ``SKIP``: run once now, drop the missed ticks.
    - ``CATCH_UP``: run every missed tick, one per wake, so other triggers interleave.
    - ``BURST``: run every missed tick back to back in this wake.
    """

    SKIP = "skip"
    CATCH_UP = "catch_up"
    BURST = "burst"


class IntervalSchedule:
    """The tick arithmetic of one interval (no I/O; driven by the executor thread).

    ``fire(now_ns)`` is called when the timer went off; it returns how many times the item
    runs in this wake and advances :attr:`next_ns`. :attr:`scheduled_ns` is the tick time the
    current run belongs to; :attr:`missed` counts ticks that did not run on time.
    """

    __slots__ = ("missed", "next_ns", "period_ns", "policy", "scheduled_ns",
                 "start_ns", "ticks")

    def __init__(self, period_ns: int, start_ns: int, policy: MissedTickPolicy) -> None:
        if period_ns <= 0:
            raise ExecutorConfigError(f"interval period must be > 0 ns, got {period_ns}; use a "
                                      "period of at least 1e-9 s")
        self.period_ns = period_ns
        self.start_ns = start_ns
        self.policy = policy
        self.ticks = 0  # index of the next tick
        self.next_ns = start_ns
        self.scheduled_ns = start_ns
        self.missed = 0

    def fire(self, now_ns: int) -> int:
        """Account for a wake at ``now_ns``; return how many runs to do now (0 if early).

        A tick counts as missed when it did not run within one period of its time (skipped
        under SKIP, run late under CATCH_UP and BURST); each tick is counted at most once.
        """
        if now_ns < self.next_ns:
            return 0
        self.scheduled_ns = self.next_ns
        due = (now_ns - self.next_ns) // self.period_ns + 1  # ticks whose time has come
        if self.policy is MissedTickPolicy.SKIP:
            self.missed += due - 1
            self.ticks += due
            self.scheduled_ns = self.start_ns + (self.ticks - 1) * self.period_ns
            runs = 1
        elif self.policy is MissedTickPolicy.CATCH_UP:
            if due > 1:
                self.missed += 1
            self.ticks += 1
            runs = 1
        else:
            self.missed += due - 1
            self.ticks += due
            runs = due
        self.next_ns = self.start_ns + self.ticks * self.period_ns
        return runs

    def burst_time(self, run_index: int) -> int:
        """The tick time of run ``run_index`` of the current wake (BURST runs several)."""
        return self.scheduled_ns + run_index * self.period_ns


class TimerFd:
    """A non-blocking ``timerfd`` on ``CLOCK_MONOTONIC`` armed at absolute times.

    Owned by the executor; ``arm`` and ``clear`` run in the executor thread and allocate no
    Python objects beyond what ctypes needs for the call.
    """

    _CLOCK_MONOTONIC = 1
    _TFD_TIMER_ABSTIME = 1

    class _Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    class _Itimerspec(ctypes.Structure):
        _fields_ = [("it_interval", ctypes.c_long * 2), ("it_value", ctypes.c_long * 2)]

    _libc: ctypes.CDLL | None = None

    def __init__(self) -> None:
        libc = TimerFd._load()
        fd = libc.timerfd_create(self._CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise ExecutorError(f"timerfd_create failed: {os.strerror(err)}")
        self.fd: int = fd
        self._spec = TimerFd._Itimerspec()
        self._ref = ctypes.byref(self._spec)
        self._settime = libc.timerfd_settime
        self._value = self._spec.it_value
        self._interval = self._spec.it_interval

    @classmethod
    def _load(cls) -> ctypes.CDLL:
        if cls._libc is None:
            name = ctypes.util.find_library("c")
            cls._libc = ctypes.CDLL(name, use_errno=True)
        return cls._libc

    def arm(self, when_ns: int, period_ns: int = 0) -> None:
        """Fire at the absolute monotonic time ``when_ns`` (past times fire at once), then,
        with ``period_ns``, every ``period_ns`` after it: the kernel keeps the grid
        ``when_ns + k * period_ns`` itself (drift-free), so a periodic timer is programmed once
        instead of on every tick (``timerfd_settime`` measured 14-46 us per call on the
        benchmarks' virtual machines, where programming a timer exits the VM)."""
        if when_ns <= 0:
            when_ns = 1
        value = self._value
        value[0] = when_ns // NS
        value[1] = when_ns % NS
        interval = self._interval
        interval[0] = period_ns // NS
        interval[1] = period_ns % NS
        if self._settime(self.fd, self._TFD_TIMER_ABSTIME, self._ref, None) != 0:
            err = ctypes.get_errno()
            raise ExecutorError(f"timerfd_settime failed: {os.strerror(err)}")

    def clear(self) -> None:
        """Consume a pending expiry so the fd stops being readable."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def close(self) -> None:
        """Close the fd (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def spin_until(when_ns: int) -> None:
    """Busy-wait until the monotonic clock reaches ``when_ns`` (holds the GIL in slices)."""
    clock = time.monotonic_ns
    while clock() < when_ns:
        pass
