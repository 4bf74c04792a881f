"""WaitSet bindings: one per attachment, each knows how to consume its wake and what to run.

Internal to the executor (not exported). The executor keeps a table from WaitSet attachment id
to binding; after each wake its thread calls :meth:`Binding.fire` for every attachment that
fired, with the wake's monotonic time. ``fire`` runs in the executor thread, never blocks
(except :class:`IntervalBinding`'s busy-wait to the tick when ``spin`` > 0), consumes what woke
the WaitSet (the listener's events, the timer's expiry, the eventfd) so it does not fire again
at once, and hands the job to the executor's ``_dispatch``. What an item raises is handled by
its error policy; ``fire`` itself raises only when an OS call on its timer fails
(:class:`ExecutorError`).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Protocol

from taktora.actors.executor.jobs import Job
from taktora.actors.executor.signal_hub import HUB, SignalTarget
from taktora.actors.executor.timing import IntervalSchedule, TimerFd, spin_until
from taktora.actors.executor.triggers import (
    DataTrigger,
    DeadlineTrigger,
    FdTrigger,
    IntervalTrigger,
    ListenerTrigger,
    Trigger,
    TriggerKind,
)

_clock = time.monotonic_ns


class BindingHost(SignalTarget, Protocol):
    """What a binding needs from its executor (an :class:`Executor`)."""

    _run_timer_expired: bool

    def _dispatch(self, job: Job, trigger: Trigger, kind: TriggerKind, source: Any,
                  now_ns: int, scheduled_ns: int, missed: bool) -> None:
        """Run ``job`` now (executor thread) or submit it to the pool."""


class Binding:
    """One WaitSet attachment: what to consume when it fires and which job to run."""

    __slots__ = ("executor", "job", "trigger")

    def __init__(self, executor: BindingHost, job: Job | None, trigger: Trigger | None) -> None:
        self.executor = executor
        self.job = job
        self.trigger = trigger

    def fire(self, now_ns: int) -> None:
        """Executor thread: consume the wake that fired at ``now_ns`` and dispatch the job."""
        raise NotImplementedError


class PortBinding(Binding):
    """A data/request/response port: consume its wakeups, run the job."""

    __slots__ = ("kind", "port")

    def __init__(self, executor: BindingHost, job: Job, trigger: DataTrigger, port: Any) -> None:
        super().__init__(executor, job, trigger)
        self.port = port
        self.kind = trigger.kind

    def fire(self, now_ns: int) -> None:
        self.port.consume_wakeups()
        job = self.job
        assert job is not None and self.trigger is not None
        self.executor._dispatch(job, self.trigger, self.kind, self.port, now_ns, now_ns, False)


class ListenerBinding(Binding):
    """A raw iceoryx2 Listener: consume its events (``try_wait``), run the job."""

    __slots__ = ("listener",)

    def __init__(self, executor: BindingHost, job: Job, trigger: ListenerTrigger) -> None:
        super().__init__(executor, job, trigger)
        self.listener = trigger.listener

    def fire(self, now_ns: int) -> None:
        self.listener.try_wait()
        job = self.job
        assert job is not None and self.trigger is not None
        self.executor._dispatch(job, self.trigger, TriggerKind.LISTENER, self.listener, now_ns,
                                now_ns, False)


class FdBinding(Binding):
    """A readable file descriptor: call ``consume`` if given, run the job."""

    __slots__ = ("consume", "fd", "source")

    def __init__(self, executor: BindingHost, job: Job, trigger: FdTrigger) -> None:
        super().__init__(executor, job, trigger)
        self.fd = trigger.fileno()
        self.source = trigger.source
        self.consume = trigger.consume

    def fire(self, now_ns: int) -> None:
        if self.consume is not None:
            self.consume(self.fd)
        job = self.job
        assert job is not None and self.trigger is not None
        self.executor._dispatch(job, self.trigger, TriggerKind.FD, self.source, now_ns, now_ns,
                                False)


class IntervalBinding(Binding):
    """An interval's timerfd: fire once per due tick (per the policy). The timer is periodic,
    programmed once on the interval's grid (``start + k * period``, minus the spin lead); it
    is programmed again only when the schedule's next tick has already passed when a wake
    ends (CATCH_UP behind its ticks: the next run is due at once)."""

    __slots__ = ("schedule", "spin_ns", "timer")

    def __init__(self, executor: BindingHost, job: Job, trigger: IntervalTrigger,
                 timer: TimerFd) -> None:
        super().__init__(executor, job, trigger)
        period = round(trigger.period * 1e9)
        start = (round(trigger.start * 1e9) if trigger.start is not None
                 else _clock() + period)
        self.schedule = IntervalSchedule(period, start, trigger.policy)
        self.spin_ns = round(trigger.spin * 1e9)
        self.timer = timer
        timer.arm(start - self.spin_ns, period)

    def fire(self, now_ns: int) -> None:
        timer = self.timer
        timer.clear()
        sched = self.schedule
        if self.spin_ns:
            target = sched.next_ns
            if now_ns < target:
                spin_until(target)
                now_ns = _clock()
        runs = sched.fire(now_ns)
        if runs:
            job = self.job
            trigger = self.trigger
            assert job is not None and trigger is not None
            job.head.missed_ticks = sched.missed
            rec = job.head.record
            if rec is not None:
                rec.missed_ticks = sched.missed
            dispatch = self.executor._dispatch
            for i in range(runs):
                dispatch(job, trigger, TriggerKind.INTERVAL, None, now_ns, sched.burst_time(i),
                         False)
        due = sched.next_ns - self.spin_ns
        if due <= _clock():  # that tick's expiry was consumed above: wake again at once
            timer.arm(due, sched.period_ns)


class DeadlineDataBinding(Binding):
    """A deadline's data side: consume the wakeups, push the deadline back, run the job."""

    __slots__ = ("port", "timer_side")

    def __init__(self, executor: BindingHost, job: Job, trigger: DeadlineTrigger,
                 timer_side: DeadlineTimerBinding) -> None:
        super().__init__(executor, job, trigger)
        self.port = trigger.port
        self.timer_side = timer_side

    def fire(self, now_ns: int) -> None:
        self.port.consume_wakeups()
        self.timer_side.rearm(now_ns)
        job = self.job
        assert job is not None and self.trigger is not None
        self.executor._dispatch(job, self.trigger, TriggerKind.DEADLINE, self.port, now_ns,
                                now_ns, False)


class DeadlineTimerBinding(Binding):
    """A deadline's timer side: count a miss and run the job with ``missed_deadline``."""

    __slots__ = ("due_ns", "port", "timeout_ns", "timer")

    def __init__(self, executor: BindingHost, job: Job, trigger: DeadlineTrigger,
                 timer: TimerFd) -> None:
        super().__init__(executor, job, trigger)
        self.port = trigger.port
        self.timer = timer
        self.timeout_ns = round(trigger.timeout * 1e9)
        self.due_ns = 0
        self.rearm(_clock())

    def rearm(self, now_ns: int) -> None:
        self.due_ns = now_ns + self.timeout_ns
        self.timer.arm(self.due_ns)

    def fire(self, now_ns: int) -> None:
        self.timer.clear()
        if now_ns < self.due_ns:  # data re-armed the timer after it had gone off
            self.timer.arm(self.due_ns)
            return
        job = self.job
        assert job is not None and self.trigger is not None
        head = job.head
        head.deadline_misses += 1
        if head.record is not None:
            head.record.deadline_misses += 1
        self.due_ns += self.timeout_ns
        if self.due_ns <= now_ns:
            self.due_ns = now_ns + self.timeout_ns
        self.timer.arm(self.due_ns)
        self.executor._dispatch(job, self.trigger, TriggerKind.DEADLINE, self.port, now_ns,
                                now_ns, True)


class StopBinding(Binding):
    """The stop eventfd: drain it (the loop sees ``Stoppable.stopped``)."""

    __slots__ = ("fd",)

    def __init__(self, executor: BindingHost, fd: int) -> None:
        super().__init__(executor, None, None)
        self.fd = fd

    def fire(self, now_ns: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.fd)


class RunTimerBinding(Binding):
    """The ``run_for`` timer: mark the run's time as up."""

    __slots__ = ("timer",)

    def __init__(self, executor: BindingHost, timer: TimerFd) -> None:
        super().__init__(executor, None, None)
        self.timer = timer

    def fire(self, now_ns: int) -> None:
        self.timer.clear()
        self.executor._run_timer_expired = True


class SignalBinding(Binding):
    """The signal hub's wakeup pipe: drain it and stop the executor on SIGINT/SIGTERM."""

    __slots__ = ()

    def fire(self, now_ns: int) -> None:
        signum = HUB.drain()
        if signum:
            self.executor._on_signal(signum)
