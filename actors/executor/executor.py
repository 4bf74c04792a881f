"""The executor: one iceoryx2 WaitSet, the items it wakes, and the loop that runs them.

Threading model. The thread that calls :meth:`Executor.run` (or ``run_for`` / ``run_once``)
is the *executor thread*: it blocks in the WaitSet (the GIL is released there), wakes when a
trigger fires and dispatches what fired. With ``workers=0`` items run in the executor thread.
With ``workers=N`` the jobs that fired in one wake run in parallel on N pool threads and the
executor thread waits for all of them before it waits again; graph vertices run in parallel
on the pool. An item never runs concurrently with itself.

Steady-state dispatch allocates nothing that outlives a wake: every per-item context, counter,
timer and graph counter is created when the item is added and overwritten afterwards (the
pre-allocated scratch of the Rust seed's BB_0023). What remains per wake are the short-lived
objects the iceoryx2 binding returns.

Stopping. :meth:`Executor.stoppable` returns a thread-safe handle whose ``stop()`` writes to an
eventfd attached to the WaitSet. With ``signals=True`` SIGINT and SIGTERM stop the executor
too: the handlers are installed in the main thread (by ``run()`` when it runs there, or by
``Runner.start()`` / :meth:`install_signal_handlers`), and ``signal.set_wakeup_fd`` wakes the
WaitSet wherever it runs (iceoryx2's own signal handling is disabled: in a worker thread it
swallows SIGINT).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from queue import SimpleQueue
from types import FrameType
from typing import Any

import iceoryx2 as iox
from taktora.actors.executor.context import Context, Stoppable
from taktora.actors.executor.errors import ExecutorError, ItemError
from taktora.actors.executor.execution_monitor import ExecutionMonitor, ItemRecord, MonitorSnapshot
from taktora.actors.executor.graph import Graph
from taktora.actors.executor.item import Control, ErrorPolicy, Item
from taktora.actors.executor.observer import Observer
from taktora.actors.executor.stats import ExecutorStats, ItemStats
from taktora.actors.executor.thread_attrs import ThreadAttrs
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

log = logging.getLogger("taktora.actors.executor")

_clock = time.monotonic_ns
_CONTINUE = Control.CONTINUE
_STOP = Control.STOP


# --- per-item runtime ------------------------------------------------------------------------
class _Step:
    """One item with its pre-allocated context, counters and monitor record."""

    __slots__ = ("ctx", "deadline_misses", "errors", "item", "logged_errors", "missed_ticks",
                 "name", "policy", "record", "runs", "skipped_errors", "stops")

    def __init__(self, item: Item, ctx: Context, record: ItemRecord | None) -> None:
        self.item = item
        self.name = item.item_name()
        self.policy = item.error_policy
        self.ctx = ctx
        self.record = record
        self.runs = 0
        self.stops = 0
        self.errors = 0
        self.logged_errors = 0
        self.skipped_errors = 0
        self.deadline_misses = 0
        self.missed_ticks = 0

    def fill(self, trigger: Trigger, kind: TriggerKind, source: Any, now_ns: int,
             scheduled_ns: int, missed: bool) -> None:
        ctx = self.ctx
        ctx.trigger = trigger
        ctx.kind = kind
        ctx.source = source
        ctx.now_ns = now_ns
        ctx.scheduled_ns = scheduled_ns
        ctx.missed_deadline = missed

    def stats(self) -> ItemStats:
        return ItemStats(self.name, self.runs, self.stops, self.errors, self.logged_errors,
                         self.skipped_errors, self.deadline_misses, self.missed_ticks)


class _Job:
    """What a trigger starts: a single item, a chain or a graph (subclasses)."""

    __slots__ = ("executor", "head", "pending")

    inline = False  # True: always run in the executor thread (graphs schedule the pool)

    def __init__(self, executor: Executor, head: _Step) -> None:
        self.executor = executor
        self.head = head
        self.pending = False

    def fill(self, trigger: Trigger, kind: TriggerKind, source: Any, now_ns: int,
             scheduled_ns: int, missed: bool) -> None:
        self.head.fill(trigger, kind, source, now_ns, scheduled_ns, missed)

    def run(self) -> None:
        self.executor._run_step(self.head)

    def run_in_pool(self) -> None:
        try:
            self.run()
        finally:
            self.pending = False


class _ChainJob(_Job):
    __slots__ = ("steps",)

    def __init__(self, executor: Executor, steps: Sequence[_Step]) -> None:
        super().__init__(executor, steps[0])
        self.steps = tuple(steps)

    def fill(self, trigger: Trigger, kind: TriggerKind, source: Any, now_ns: int,
             scheduled_ns: int, missed: bool) -> None:
        for step in self.steps:
            step.fill(trigger, kind, source, now_ns, scheduled_ns, missed)

    def run(self) -> None:
        run_step = self.executor._run_step
        for step in self.steps:
            if not run_step(step):
                return


class _VertexTask:
    """A graph vertex as a pool task (pre-allocated, one per vertex)."""

    __slots__ = ("graph", "index", "pending")

    def __init__(self, graph: _GraphJob, index: int) -> None:
        self.graph = graph
        self.index = index
        self.pending = False

    def run_in_pool(self) -> None:
        self.graph._run_vertex(self.index)


class _GraphJob(_Job):
    """A DAG run: counters are reset at the start of each run, never re-allocated."""

    __slots__ = ("counters", "in_degree", "lock", "ready", "roots", "steps", "successors",
                 "tasks")

    inline = True

    def __init__(self, executor: Executor, graph: Graph, steps: Sequence[_Step]) -> None:
        roots = graph.roots()
        super().__init__(executor, steps[roots[0]])
        self.steps = tuple(steps)
        self.successors = tuple(tuple(s) for s in graph.successors)
        self.in_degree = tuple(graph.in_degrees())
        self.counters = list(self.in_degree)
        self.roots = tuple(roots)
        self.ready = [0] * len(steps)  # a stack for the sequential walk
        self.tasks = tuple(_VertexTask(self, i) for i in range(len(steps)))
        self.lock = threading.Lock()

    def fill(self, trigger: Trigger, kind: TriggerKind, source: Any, now_ns: int,
             scheduled_ns: int, missed: bool) -> None:
        for step in self.steps:
            step.fill(trigger, kind, source, now_ns, scheduled_ns, missed)

    def run(self) -> None:
        counters = self.counters
        counters[:] = self.in_degree
        ex = self.executor
        pool = ex._pool
        if pool is not None:
            for r in self.roots:
                pool.submit(self.tasks[r])
            pool.wait_idle()
            return
        ready = self.ready
        top = 0
        for r in self.roots:
            ready[top] = r
            top += 1
        run_step = ex._run_step
        steps = self.steps
        successors = self.successors
        while top:
            top -= 1
            i = ready[top]
            if run_step(steps[i]):
                for c in successors[i]:
                    counters[c] -= 1
                    if counters[c] == 0:
                        ready[top] = c
                        top += 1

    def _run_vertex(self, i: int) -> None:
        """Pool worker: run vertex ``i`` and submit the successors it made ready."""
        ex = self.executor
        if not ex._run_step(self.steps[i]):
            return
        pool = ex._pool
        assert pool is not None
        counters = self.counters
        for c in self.successors[i]:
            with self.lock:
                counters[c] -= 1
                now_ready = counters[c] == 0
            if now_ready:
                pool.submit(self.tasks[c])


# --- WaitSet bindings: one per attachment, each knows how to consume and what to run -------------
class _Binding:
    __slots__ = ("executor", "job", "trigger")

    def __init__(self, executor: Executor, job: _Job | None, trigger: Trigger | None) -> None:
        self.executor = executor
        self.job = job
        self.trigger = trigger

    def fire(self, now_ns: int) -> None:
        raise NotImplementedError


class _PortBinding(_Binding):
    __slots__ = ("kind", "port")

    def __init__(self, executor: Executor, job: _Job, trigger: DataTrigger, port: Any) -> None:
        super().__init__(executor, job, trigger)
        self.port = port
        self.kind = trigger.kind

    def fire(self, now_ns: int) -> None:
        self.port.consume_wakeups()
        job = self.job
        assert job is not None and self.trigger is not None
        self.executor._dispatch(job, self.trigger, self.kind, self.port, now_ns, now_ns, False)


class _ListenerBinding(_Binding):
    __slots__ = ("listener",)

    def __init__(self, executor: Executor, job: _Job, trigger: ListenerTrigger) -> None:
        super().__init__(executor, job, trigger)
        self.listener = trigger.listener

    def fire(self, now_ns: int) -> None:
        self.listener.try_wait()
        job = self.job
        assert job is not None and self.trigger is not None
        self.executor._dispatch(job, self.trigger, TriggerKind.LISTENER, self.listener, now_ns,
                                now_ns, False)


class _FdBinding(_Binding):
    __slots__ = ("consume", "fd", "source")

    def __init__(self, executor: Executor, job: _Job, trigger: FdTrigger) -> None:
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


class _IntervalBinding(_Binding):
    __slots__ = ("schedule", "spin_ns", "timer")

    def __init__(self, executor: Executor, job: _Job, trigger: IntervalTrigger,
                 timer: TimerFd) -> None:
        super().__init__(executor, job, trigger)
        period = round(trigger.period * 1e9)
        start = (round(trigger.start * 1e9) if trigger.start is not None
                 else _clock() + period)
        self.schedule = IntervalSchedule(period, start, trigger.policy)
        self.spin_ns = round(trigger.spin * 1e9)
        self.timer = timer
        timer.arm(start - self.spin_ns)

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
        timer.arm(sched.next_ns - self.spin_ns)


class _DeadlineDataBinding(_Binding):
    __slots__ = ("port", "timer_side")

    def __init__(self, executor: Executor, job: _Job, trigger: DeadlineTrigger,
                 timer_side: _DeadlineTimerBinding) -> None:
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


class _DeadlineTimerBinding(_Binding):
    __slots__ = ("due_ns", "port", "timeout_ns", "timer")

    def __init__(self, executor: Executor, job: _Job, trigger: DeadlineTrigger,
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


class _StopBinding(_Binding):
    __slots__ = ("fd",)

    def __init__(self, executor: Executor, fd: int) -> None:
        super().__init__(executor, None, None)
        self.fd = fd

    def fire(self, now_ns: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.fd)


class _RunTimerBinding(_Binding):
    __slots__ = ("timer",)

    def __init__(self, executor: Executor, timer: TimerFd) -> None:
        super().__init__(executor, None, None)
        self.timer = timer

    def fire(self, now_ns: int) -> None:
        self.timer.clear()
        self.executor._run_timer_expired = True


class _SignalBinding(_Binding):
    __slots__ = ()

    def fire(self, now_ns: int) -> None:
        signum = _HUB.drain()
        if signum:
            self.executor._on_signal(signum)


# --- process-wide signal hub -----------------------------------------------------------------
class _SignalHub:
    """SIGINT/SIGTERM handlers + a wakeup pipe shared by every executor of the process.

    ``install`` must run in the main thread (CPython's rule for ``signal.signal``). The
    handler (main thread) stops every running executor; the wakeup pipe, attached to each
    running executor's WaitSet, wakes them at once wherever they run. With no executor
    running, the handler calls the handler that was there before (so Ctrl-C still raises
    KeyboardInterrupt in a program between runs).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed = False
        self.read_fd = -1
        self.write_fd = -1
        self.previous: dict[int, Any] = {}
        self.previous_wakeup_fd = -1
        self.running: list[Executor] = []

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise ExecutorError("signal handlers can only be installed from the main thread; "
                                "call install_signal_handlers() there or use Runner.start()")
        with self.lock:
            if self.installed:
                return
            self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self.previous_wakeup_fd = signal.set_wakeup_fd(self.write_fd,
                                                           warn_on_full_buffer=False)
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
            self.installed = True

    def uninstall(self) -> None:
        """Restore the previous handlers (main thread, no executor running)."""
        with self.lock:
            if not self.installed or self.running:
                return
            if threading.current_thread() is not threading.main_thread():
                return
            for sig, prev in self.previous.items():
                signal.signal(sig, prev)
            signal.set_wakeup_fd(self.previous_wakeup_fd)
            os.close(self.read_fd)
            os.close(self.write_fd)
            self.read_fd = self.write_fd = -1
            self.installed = False

    def drain(self) -> int:
        """Empty the wakeup pipe; return the last SIGINT/SIGTERM number seen in it (or 0)."""
        found = 0
        while True:
            try:
                data = os.read(self.read_fd, 64)
            except (BlockingIOError, OSError):
                return found
            if not data:
                return found
            for b in data:
                if b in (signal.SIGINT, signal.SIGTERM):
                    found = b

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        with self.lock:
            running = list(self.running)
        self.drain()
        if running:
            for ex in running:
                ex._on_signal(signum)
            return
        prev = self.previous.get(signum)
        if callable(prev):
            prev(signum, frame)
        elif prev == signal.SIG_DFL:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def enter(self, ex: Executor) -> None:
        with self.lock:
            self.running.append(ex)

    def leave(self, ex: Executor) -> None:
        with self.lock:
            if ex in self.running:
                self.running.remove(ex)


_HUB = _SignalHub()


# --- pool ------------------------------------------------------------------------------------
class _Pool:
    """N worker threads taking pre-allocated task objects (``run_in_pool``) from a queue."""

    def __init__(self, name: str, workers: int, attrs_: ThreadAttrs | None) -> None:
        self.queue: SimpleQueue[Any] = SimpleQueue()
        self.cond = threading.Condition()
        self.outstanding = 0
        self.attrs = attrs_
        self.start_errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._work, name=f"{name}-worker-{i}",
                                         daemon=True) for i in range(workers)]
        self.started = threading.Barrier(workers + 1)
        for t in self.threads:
            t.start()
        self.started.wait()
        if self.start_errors:
            self.close()
            raise self.start_errors[0]

    def _work(self) -> None:
        try:
            if self.attrs is not None:
                self.attrs.apply()
        except BaseException as exc:
            self.start_errors.append(exc)
        self.started.wait()
        q = self.queue
        cond = self.cond
        while True:
            task = q.get()
            if task is None:
                return
            try:
                task.run_in_pool()
            except BaseException:
                log.exception("pool task %r raised outside the error policy", task)
            finally:
                with cond:
                    self.outstanding -= 1
                    if self.outstanding == 0:
                        cond.notify_all()

    def submit(self, task: Any) -> None:
        with self.cond:
            self.outstanding += 1
        self.queue.put(task)

    def wait_idle(self) -> None:
        with self.cond:
            while self.outstanding:
                self.cond.wait()

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for t in self.threads:
            t.join()


# --- the executor ----------------------------------------------------------------------------
class Executor:
    """Runs items on the triggers they declare. See the module docstring for threads.

    ``name``: used in logs, thread names, stats. ``workers``: 0 runs items in the executor
    thread; N > 0 adds a pool of N threads. ``thread_attrs``: applied to the executor thread at
    the start of each run and to pool workers when they start (``ThreadAttributeError`` when
    refused, unless best-effort). ``observer`` / ``monitor``: see their modules. ``signals``:
    stop cleanly on SIGINT/SIGTERM.

    Not thread-safe except :meth:`stop`, :meth:`stoppable`, :meth:`stats` and
    :meth:`monitor_snapshot`: add items and run from one thread at a time.
    """

    def __init__(self, name: str = "executor", *, workers: int = 0,
                 thread_attrs: ThreadAttrs | None = None, observer: Observer | None = None,
                 monitor: ExecutionMonitor | None = None, signals: bool = True) -> None:
        if workers < 0:
            raise ValueError(f"Executor.workers must be >= 0, got {workers}")
        self.name = name
        self.workers = workers
        self.thread_attrs = thread_attrs
        self.observer = observer
        self.monitor = monitor
        self.signals = signals
        self.last_signal = 0
        self.observer_errors = 0
        self.on_stop_errors = 0
        self.wakes = 0
        self._ws: Any = (iox.WaitSetBuilder.new()
                         .signal_handling_mode(iox.SignalHandlingMode.Disabled)
                         .create(iox.ServiceType.Ipc))
        self._guards: list[Any] = []
        self._fds: list[Any] = []  # iox FileDescriptor wrappers, kept alive with the guards
        self._timers: list[TimerFd] = []
        self._table: dict[Any, _Binding] = {}
        self._steps: list[_Step] = []
        self._names: set[str] = set()
        self._stop_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._stoppable = Stoppable(self._stop_fd)
        self._attach_fd(self._stop_fd, _StopBinding(self, self._stop_fd))
        self._run_timer = TimerFd()
        self._timers.append(self._run_timer)
        self._attach_fd(self._run_timer.fd, _RunTimerBinding(self, self._run_timer))
        self._run_timer_expired = False
        self._signal_guard: Any = None
        self._error: ItemError | None = None
        self._error_lock = threading.Lock()
        self._pool: _Pool | None = None
        self._running = False
        self._closed = False

    # -- composition ---------------------------------------------------------------------------
    def add(self, item: Item) -> None:
        """Add a single item; its triggers are attached now (caller's thread)."""
        step = self._step(item)
        self._attach_triggers(_Job(self, step), item, required=True)

    def add_chain(self, items: Sequence[Item]) -> None:
        """Run ``items`` in order whenever the first one's triggers fire.

        A step returning ``Control.STOP`` or raising aborts the rest of that run. Triggers
        declared by later steps are ignored (only the head gates the chain).
        """
        if not items:
            raise ExecutorError("add_chain needs at least one item")
        steps = [self._step(it) for it in items]
        self._attach_triggers(_ChainJob(self, steps), items[0], required=True)

    def add_graph(self, graph: Graph) -> None:
        """Run ``graph`` whenever one of its roots' triggers fires (see :mod:`graph`)."""
        if not graph.items:
            raise ExecutorError(f"graph {graph.name!r} has no vertices")
        steps = [self._step(it) for it in graph.items]
        job = _GraphJob(self, graph, steps)
        attached = 0
        for r in graph.roots():
            attached += self._attach_triggers(job, graph.items[r], required=False)
        if not attached:
            raise ExecutorError(f"graph {graph.name!r}: no root vertex declares a trigger")

    # -- running -------------------------------------------------------------------------------
    def run(self) -> None:
        """Dispatch until stopped (``stop()``, ``ctx.stop()``, a signal, an item error).

        Blocks the calling thread, which becomes the executor thread. Raises
        :class:`ItemError` when an item under ``ErrorPolicy.PROPAGATE`` raised.
        """
        self._loop(None)

    def run_for(self, seconds: float) -> None:
        """Like :meth:`run`, but return after ``seconds`` at the latest."""
        if seconds < 0:
            raise ValueError(f"run_for needs seconds >= 0, got {seconds}")
        self._loop(_clock() + round(seconds * 1e9))

    def run_once(self, timeout: float | None = None) -> bool:
        """Wait for one wake (at most ``timeout`` seconds; None: forever) and dispatch it.

        Returns True if something was dispatched. Raises like :meth:`run`.
        """
        self._enter()
        try:
            if timeout is None:
                ids, result = self._ws.wait_and_process()
            else:
                ids, result = self._ws.wait_and_process_with_timeout(
                    iox.Duration.from_micros(max(0, round(timeout * 1e6))))
            self._handle_wake(ids, result)
            return bool(ids)
        finally:
            self._leave()

    def stoppable(self) -> Stoppable:
        """The thread-safe stop handle."""
        return self._stoppable

    def stop(self) -> None:
        """Ask the executor to stop; returns at once, from any thread (see :class:`Stoppable`)."""
        self._stoppable.stop()

    def install_signal_handlers(self) -> None:
        """Install the SIGINT/SIGTERM handlers now (main thread only)."""
        _HUB.install()

    def stats(self) -> ExecutorStats:
        """Counters of every item (any thread; values may straddle a running dispatch)."""
        return ExecutorStats(self.name, self.wakes, tuple(s.stats() for s in self._steps),
                             self.observer_errors, self.on_stop_errors)

    def monitor_snapshot(self) -> MonitorSnapshot:
        """The monitor's snapshot; raises :class:`ExecutorError` without a monitor."""
        if self.monitor is None:
            raise ExecutorError(f"executor {self.name!r} has no monitor: pass monitor=...")
        return self.monitor.snapshot()

    def close(self) -> None:
        """Release everything: call each item's ``on_stop`` (this thread), stop the pool, detach
        all triggers, close fds. Idempotent; the executor cannot run afterwards."""
        if self._closed:
            return
        if self._running:
            raise ExecutorError(f"executor {self.name!r} is running: stop it before close()")
        self._closed = True
        for step in self._steps:
            try:
                step.item.on_stop()
            except Exception:
                self.on_stop_errors += 1
                log.exception("item %s: on_stop raised", step.name)
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._table.clear()
        self._signal_guard = None
        for guard in self._guards:
            guard.delete()
        self._guards.clear()
        self._fds.clear()
        self._ws.delete()
        self._ws = None
        for t in self._timers:
            t.close()
        os.close(self._stop_fd)
        if self.signals:
            _HUB.uninstall()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------
    def _step(self, item: Item) -> _Step:
        if self._closed:
            raise ExecutorError(f"executor {self.name!r} is closed")
        name = item.item_name()
        if name in self._names:
            raise ExecutorError(f"executor {self.name!r} already has an item named {name!r}; "
                                "give items unique names")
        self._names.add(name)
        record = (self.monitor.register(name, item.budget) if self.monitor is not None
                  else None)
        step = _Step(item, Context(self.name, name, item.publishers, self._stoppable), record)
        self._steps.append(step)
        return step

    def _attach_triggers(self, job: _Job, item: Item, required: bool) -> int:
        triggers: Iterable[Trigger] = item.triggers()
        n = 0
        for trig in triggers:
            n += 1
            if isinstance(trig, DataTrigger):
                for port in trig.ports:
                    self._attach_listener(port.listener, _PortBinding(self, job, trig, port))
            elif isinstance(trig, IntervalTrigger):
                timer = self._timer()
                self._attach_fd(timer.fd, _IntervalBinding(self, job, trig, timer))
            elif isinstance(trig, DeadlineTrigger):
                timer = self._timer()
                side = _DeadlineTimerBinding(self, job, trig, timer)
                self._attach_fd(timer.fd, side)
                self._attach_listener(trig.port.listener,
                                      _DeadlineDataBinding(self, job, trig, side))
            elif isinstance(trig, FdTrigger):
                self._attach_fd(trig.fileno(), _FdBinding(self, job, trig))
            elif isinstance(trig, ListenerTrigger):
                self._attach_listener(trig.listener, _ListenerBinding(self, job, trig))
            else:
                raise ExecutorError(f"item {item.item_name()!r}: unknown trigger {trig!r}")
        if required and not n:
            raise ExecutorError(f"item {item.item_name()!r} declares no trigger; return at "
                                "least one from triggers() (or put it inside a chain/graph)")
        return n

    def _timer(self) -> TimerFd:
        timer = TimerFd()
        self._timers.append(timer)
        return timer

    def _attach_fd(self, fd: int, binding: _Binding) -> Any:
        wrapper = iox.FileDescriptor.non_owning_new(fd)
        guard = self._ws.attach_notification_fd(wrapper)
        self._fds.append(wrapper)
        self._guards.append(guard)
        self._table[iox.WaitSetAttachmentId.from_guard(guard)] = binding
        return guard

    def _attach_listener(self, listener: Any, binding: _Binding) -> None:
        guard = self._ws.attach_notification(listener)
        self._guards.append(guard)
        self._table[iox.WaitSetAttachmentId.from_guard(guard)] = binding

    def _enter(self) -> None:
        if self._closed:
            raise ExecutorError(f"executor {self.name!r} is closed")
        if self._running:
            raise ExecutorError(f"executor {self.name!r} is already running")
        self._running = True
        try:
            if self.thread_attrs is not None:
                self.thread_attrs.apply()
            if self.workers and self._pool is None:
                self._pool = _Pool(self.name, self.workers, self.thread_attrs)
            if self.signals:
                if threading.current_thread() is threading.main_thread():
                    _HUB.install()
                if _HUB.installed:
                    _HUB.enter(self)
                    self._signal_guard = self._attach_fd(_HUB.read_fd, _SignalBinding(
                        self, None, None))
                else:
                    log.warning("executor %s runs outside the main thread and no signal "
                                "handlers are installed: SIGINT/SIGTERM will not stop it "
                                "(use Runner.start() or install_signal_handlers() from the "
                                "main thread)", self.name)
        except BaseException:
            self._running = False
            raise
        self._error = None

    def _leave(self) -> None:
        if self._signal_guard is not None:
            _HUB.leave(self)
            self._table.pop(iox.WaitSetAttachmentId.from_guard(self._signal_guard), None)
            self._guards.remove(self._signal_guard)
            self._signal_guard = None
        self._running = False
        err = self._error
        self._error = None
        if err is not None:
            raise err

    def _loop(self, until_ns: int | None) -> None:
        self._enter()
        error: BaseException | None = None
        stoppable = self._stoppable
        try:
            self._notify_start()
            if until_ns is not None:
                self._run_timer_expired = False
                self._run_timer.arm(until_ns)
            ws = self._ws
            wait = ws.wait_and_process
            handle = self._handle_wake
            while not stoppable.stopped and not self._run_timer_expired:
                ids, result = wait()
                handle(ids, result)
                if self._error is not None:
                    break
        except BaseException as exc:
            error = exc
            raise
        finally:
            if until_ns is not None:
                self._run_timer.arm(1 << 62)  # far future: disarm
                self._run_timer.clear()
                self._run_timer_expired = False
            if stoppable.stopped:
                stoppable._reset()
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self._stop_fd)
            self._notify_stop(error or self._error)
            self._leave()

    def _handle_wake(self, ids: Any, result: Any) -> None:
        self.wakes += 1
        if result != iox.WaitSetRunResult.AllEventsHandled:
            # Interrupt/TerminationRequest cannot come with signal handling disabled; treat
            # any of them as a stop request rather than ignore it
            self._stoppable.stop()
        now = _clock()
        table = self._table
        for aid in ids:
            binding = table.get(aid)
            if binding is not None:
                binding.fire(now)
        if self._pool is not None:
            self._pool.wait_idle()

    def _dispatch(self, job: _Job, trigger: Trigger, kind: TriggerKind, source: Any,
                  now_ns: int, scheduled_ns: int, missed: bool) -> None:
        pool = self._pool
        if pool is None or job.inline:
            job.fill(trigger, kind, source, now_ns, scheduled_ns, missed)
            job.run()
            return
        if job.pending:  # fired twice in one wake: let the first run finish first
            pool.wait_idle()
        job.fill(trigger, kind, source, now_ns, scheduled_ns, missed)
        job.pending = True
        pool.submit(job)

    def _run_step(self, step: _Step) -> bool:
        """Run one item under its error policy; True if the chain/graph may go on."""
        obs = self.observer
        start = _clock()
        if obs is not None:
            self._observe(obs.on_item_start, step.name, start)
        try:
            result = step.item.execute(step.ctx)
        except Exception as exc:
            end = _clock()
            self._item_failed(step, exc, start, end)
            return False
        end = _clock()
        step.runs += 1
        if step.record is not None:
            step.record.record(start, end, True)
        if obs is not None:
            self._observe(obs.on_item_end, step.name, start, end, True)
        if result is _STOP:
            step.stops += 1
            return False
        return True

    def _item_failed(self, step: _Step, exc: Exception, start: int, end: int) -> None:
        step.runs += 1
        step.errors += 1
        if step.record is not None:
            step.record.record(start, end, False)
        obs = self.observer
        if obs is not None:
            self._observe(obs.on_item_error, step.name, exc)
            self._observe(obs.on_item_end, step.name, start, end, False)
        policy = step.policy
        if policy is ErrorPolicy.PROPAGATE:
            err = ItemError(f"item {step.name!r} of executor {self.name!r} raised {exc!r}")
            err.__cause__ = exc
            with self._error_lock:
                if self._error is None:
                    self._error = err
            self._stoppable.stop()
        elif policy is ErrorPolicy.LOG_AND_CONTINUE:
            step.logged_errors += 1
            log.error("item %s of executor %s raised; continuing (LOG_AND_CONTINUE)",
                      step.name, self.name, exc_info=exc)
        else:
            step.skipped_errors += 1

    def _observe(self, hook: Any, *args: Any) -> None:
        try:
            hook(*args)
        except Exception:
            self.observer_errors += 1
            if self.observer_errors == 1:
                log.exception("observer hook %s raised (counted in stats().observer_errors; "
                              "logged only the first time)", getattr(hook, "__name__", hook))

    def _notify_start(self) -> None:
        if self.observer is not None:
            self._observe(self.observer.on_executor_start, self.name)

    def _notify_stop(self, error: BaseException | None) -> None:
        if self.observer is not None:
            self._observe(self.observer.on_executor_stop, self.name, error)

    def _on_signal(self, signum: int) -> None:
        """A SIGINT/SIGTERM arrived (main thread handler or the wakeup pipe): stop cleanly."""
        self.last_signal = signum
        self._stoppable.stop()
