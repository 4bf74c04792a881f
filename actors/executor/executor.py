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

The parts live beside this module: :mod:`.jobs` (what a trigger starts: an item, a chain, a
graph), :mod:`.bindings` (one per WaitSet attachment: what to consume and what to run),
:mod:`.pool` (the worker threads) and :mod:`.signal_hub` (the process-wide signal handlers).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import iceoryx2 as iox
from taktora.actors.executor.bindings import (
    Binding,
    DeadlineDataBinding,
    DeadlineTimerBinding,
    FdBinding,
    IntervalBinding,
    ListenerBinding,
    PortBinding,
    RunTimerBinding,
    SignalBinding,
    StopBinding,
)
from taktora.actors.executor.context import Context, Stoppable
from taktora.actors.executor.errors import (
    ExecutorConfigError,
    ExecutorError,
    ExecutorTypeError,
    ItemError,
)
from taktora.actors.executor.execution_monitor import ExecutionMonitor, MonitorSnapshot
from taktora.actors.executor.graph import Graph
from taktora.actors.executor.item import Control, ErrorPolicy, Item
from taktora.actors.executor.jobs import ChainJob, GraphJob, Job, Step
from taktora.actors.executor.observer import Observer
from taktora.actors.executor.pool import Pool
from taktora.actors.executor.signal_hub import HUB
from taktora.actors.executor.stats import ExecutorStats
from taktora.actors.executor.thread_attrs import ThreadAttrs
from taktora.actors.executor.timing import TimerFd
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
_ALL_HANDLED = iox.WaitSetRunResult.AllEventsHandled
_INTERRUPT = iox.WaitSetRunResult.Interrupt
_STOP = Control.STOP


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
            raise ExecutorConfigError(f"Executor.workers must be >= 0, got {workers}; pass 0 to "
                                      "run items in the executor thread or N > 0 for N pool "
                                      "threads")
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
        #: waits interrupted by a signal (EINTR); the loop goes on waiting
        self.interrupts = 0
        self._ws: Any = (iox.WaitSetBuilder.new()
                         .signal_handling_mode(iox.SignalHandlingMode.Disabled)
                         .create(iox.ServiceType.Ipc))
        self._guards: list[Any] = []
        self._fds: list[Any] = []  # iox FileDescriptor wrappers, kept alive with the guards
        self._timers: list[TimerFd] = []
        self._table: dict[Any, Binding] = {}
        self._steps: list[Step] = []
        self._names: set[str] = set()
        self._stop_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._stoppable = Stoppable(self._stop_fd)
        self._attach_fd(self._stop_fd, StopBinding(self, self._stop_fd))
        self._run_timer = TimerFd()
        self._timers.append(self._run_timer)
        self._attach_fd(self._run_timer.fd, RunTimerBinding(self, self._run_timer))
        self._run_timer_expired = False
        self._signal_guard: Any = None
        self._error: ItemError | None = None
        self._error_lock = threading.Lock()
        self._pool: Pool | None = None
        self._running = False
        self._closed = False

    # -- composition ---------------------------------------------------------------------------
    def add(self, item: Item) -> None:
        """Add a single item; its triggers are attached now (caller's thread)."""
        step = self._step(item)
        self._attach_triggers(Job(self, step), item, required=True)

    def add_chain(self, items: Sequence[Item]) -> None:
        """Run ``items`` in order whenever the first one's triggers fire.

        A step returning ``Control.STOP`` or raising aborts the rest of that run. Triggers
        declared by later steps are ignored (only the head gates the chain).
        """
        if not items:
            raise ExecutorConfigError("add_chain needs at least one item; pass a non-empty "
                                      "sequence (or add() a single item)")
        steps = [self._step(it) for it in items]
        self._attach_triggers(ChainJob(self, steps), items[0], required=True)

    def add_graph(self, graph: Graph) -> None:
        """Run ``graph`` whenever one of its roots' triggers fires (see :mod:`graph`)."""
        if not graph.items:
            raise ExecutorConfigError(f"graph {graph.name!r} has no vertices; add items with "
                                      "graph.vertex(item) before add_graph()")
        steps = [self._step(it) for it in graph.items]
        job = GraphJob(self, graph, steps)
        attached = 0
        for r in graph.roots():
            attached += self._attach_triggers(job, graph.items[r], required=False)
        if not attached:
            raise ExecutorConfigError(f"graph {graph.name!r}: no root vertex declares a trigger; "
                                      "return at least one from a root's triggers()")

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
            raise ExecutorConfigError(f"run_for needs seconds >= 0, got {seconds}; use run() to "
                                      "run until stopped")
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
        HUB.install()

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
            HUB.uninstall()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------
    def _step(self, item: Item) -> Step:
        if self._closed:
            raise ExecutorError(f"executor {self.name!r} is closed")
        name = item.item_name()
        if name in self._names:
            raise ExecutorConfigError(f"executor {self.name!r} already has an item named "
                                      f"{name!r}; give items unique names")
        self._names.add(name)
        record = (self.monitor.register(name, item.budget) if self.monitor is not None
                  else None)
        step = Step(item, Context(self.name, name, item.publishers, self._stoppable), record)
        self._steps.append(step)
        return step

    def _attach_triggers(self, job: Job, item: Item, required: bool) -> int:
        triggers: Iterable[Trigger] = item.triggers()
        n = 0
        for trig in triggers:
            n += 1
            if isinstance(trig, DataTrigger):
                for port in trig.ports:
                    self._attach_listener(port.listener, PortBinding(self, job, trig, port))
            elif isinstance(trig, IntervalTrigger):
                timer = self._timer()
                self._attach_fd(timer.fd, IntervalBinding(self, job, trig, timer))
            elif isinstance(trig, DeadlineTrigger):
                timer = self._timer()
                side = DeadlineTimerBinding(self, job, trig, timer)
                self._attach_fd(timer.fd, side)
                self._attach_listener(trig.port.listener,
                                      DeadlineDataBinding(self, job, trig, side))
            elif isinstance(trig, FdTrigger):
                self._attach_fd(trig.fileno(), FdBinding(self, job, trig))
            elif isinstance(trig, ListenerTrigger):
                self._attach_listener(trig.listener, ListenerBinding(self, job, trig))
            else:
                raise ExecutorTypeError(f"item {item.item_name()!r}: unknown trigger {trig!r}; "
                                        "build triggers with on_data(), every(), deadline(), "
                                        "on_fd() or on_listener()")
        if required and not n:
            raise ExecutorConfigError(f"item {item.item_name()!r} declares no trigger; return "
                                      "at least one from triggers() (or put it inside a "
                                      "chain/graph)")
        return n

    def _timer(self) -> TimerFd:
        timer = TimerFd()
        self._timers.append(timer)
        return timer

    def _attach_fd(self, fd: int, binding: Binding) -> Any:
        wrapper = iox.FileDescriptor.non_owning_new(fd)
        guard = self._ws.attach_notification_fd(wrapper)
        self._fds.append(wrapper)
        self._guards.append(guard)
        self._table[iox.WaitSetAttachmentId.from_guard(guard)] = binding
        return guard

    def _attach_listener(self, listener: Any, binding: Binding) -> None:
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
                self._pool = Pool(self.name, self.workers, self.thread_attrs)
            if self.signals:
                if threading.current_thread() is threading.main_thread():
                    HUB.install()
                if HUB.installed:
                    HUB.enter(self)
                    self._signal_guard = self._attach_fd(HUB.read_fd, SignalBinding(
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
            HUB.leave(self)
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
        if result != _ALL_HANDLED:
            if result == _INTERRUPT:
                # EINTR: any signal that interrupted the wait (SIGCHLD of a subprocess, a
                # profiler's SIGPROF...). Not a stop request: SIGINT/SIGTERM reach the executor
                # through the signal hub's wake-up fd, which is attached like any other fd.
                self.interrupts += 1
            else:  # TerminationRequest / StopRequest: iceoryx2 itself asks the loop to end
                self._stoppable.stop()
        now = _clock()
        table = self._table
        for aid in ids:
            binding = table.get(aid)
            if binding is not None:
                binding.fire(now)
        if self._pool is not None:
            self._pool.wait_idle()

    def _dispatch(self, job: Job, trigger: Trigger, kind: TriggerKind, source: Any,
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

    def _run_step(self, step: Step) -> bool:
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

    def _item_failed(self, step: Step, exc: Exception, start: int, end: int) -> None:
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
