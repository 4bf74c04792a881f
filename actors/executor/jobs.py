"""What a trigger starts: one item (:class:`Job`), a chain (:class:`ChainJob`) or a graph
(:class:`GraphJob`), each built once when it is added and reused on every wake.

Internal to the executor (not exported). A :class:`Step` is one item with its pre-allocated
context, counters and monitor record. The executor thread fills a job's contexts (``fill``)
and then runs it (``run``) itself, or submits it to the pool, where a worker calls
``run_in_pool``; graph jobs always run in the executor thread and schedule their vertices on
the pool themselves. Items run through the executor's ``_run_step``, which applies the item's
error policy, so a job never raises what an item raised.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from taktora.actors.executor.context import Context
from taktora.actors.executor.execution_monitor import ItemRecord
from taktora.actors.executor.graph import Graph
from taktora.actors.executor.item import Item
from taktora.actors.executor.pool import Pool
from taktora.actors.executor.stats import ItemStats
from taktora.actors.executor.triggers import Trigger, TriggerKind


class JobHost(Protocol):
    """What a job needs from its executor (an :class:`Executor`)."""

    _pool: Pool | None

    def _run_step(self, step: Step) -> bool:
        """Run one item under its error policy; True if the chain or graph may go on."""


class Step:
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
        """Overwrite the context for the coming run (executor thread, before the run)."""
        ctx = self.ctx
        ctx.trigger = trigger
        ctx.kind = kind
        ctx.source = source
        ctx.now_ns = now_ns
        ctx.scheduled_ns = scheduled_ns
        ctx.missed_deadline = missed

    def stats(self) -> ItemStats:
        """A frozen copy of the counters (any thread; may straddle a run)."""
        return ItemStats(self.name, self.runs, self.stops, self.errors, self.logged_errors,
                         self.skipped_errors, self.deadline_misses, self.missed_ticks)


class Job:
    """What a trigger starts: a single item, a chain or a graph (subclasses)."""

    __slots__ = ("executor", "head", "pending")

    inline = False  # True: always run in the executor thread (graphs schedule the pool)

    def __init__(self, executor: JobHost, head: Step) -> None:
        self.executor = executor
        self.head = head
        self.pending = False

    def fill(self, trigger: Trigger, kind: TriggerKind, source: Any, now_ns: int,
             scheduled_ns: int, missed: bool) -> None:
        self.head.fill(trigger, kind, source, now_ns, scheduled_ns, missed)

    def run(self) -> None:
        """Run the item(s) in the calling thread: the executor thread, or a pool worker
        through :meth:`run_in_pool`."""
        self.executor._run_step(self.head)

    def run_in_pool(self) -> None:
        """Pool worker: :meth:`run`, then clear ``pending`` so the job may be submitted again."""
        try:
            self.run()
        finally:
            self.pending = False


class ChainJob(Job):
    """Items in order; a step returning ``Control.STOP`` or raising ends this run."""

    __slots__ = ("steps",)

    def __init__(self, executor: JobHost, steps: Sequence[Step]) -> None:
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


class VertexTask:
    """A graph vertex as a pool task (pre-allocated, one per vertex)."""

    __slots__ = ("graph", "index", "pending")

    def __init__(self, graph: GraphJob, index: int) -> None:
        self.graph = graph
        self.index = index
        self.pending = False

    def run_in_pool(self) -> None:
        """Pool worker: run the vertex (see :meth:`GraphJob._run_vertex`)."""
        self.graph._run_vertex(self.index)


class GraphJob(Job):
    """A DAG run: counters are reset at the start of each run, never re-allocated."""

    __slots__ = ("counters", "in_degree", "lock", "ready", "roots", "steps", "successors",
                 "tasks")

    inline = True

    def __init__(self, executor: JobHost, graph: Graph, steps: Sequence[Step]) -> None:
        roots = graph.roots()
        super().__init__(executor, steps[roots[0]])
        self.steps = tuple(steps)
        self.successors = tuple(tuple(s) for s in graph.successors)
        self.in_degree = tuple(graph.in_degrees())
        self.counters = list(self.in_degree)
        self.roots = tuple(roots)
        self.ready = [0] * len(steps)  # a stack for the sequential walk
        self.tasks = tuple(VertexTask(self, i) for i in range(len(steps)))
        self.lock = threading.Lock()

    def fill(self, trigger: Trigger, kind: TriggerKind, source: Any, now_ns: int,
             scheduled_ns: int, missed: bool) -> None:
        for step in self.steps:
            step.fill(trigger, kind, source, now_ns, scheduled_ns, missed)

    def run(self) -> None:
        """Executor thread: walk the DAG here (no pool), or submit the roots to the pool and
        block until every vertex reached has run."""
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
