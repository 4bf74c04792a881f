"""ExecutionMonitor: per-item latency histograms, budget and deadline misses, as plain values.

The executor registers each item when it is added and records every run into that item's
pre-allocated record (an HdrHistogram in microseconds, 1 us .. 60 s, 3 significant digits), so
recording allocates nothing new. :meth:`ExecutionMonitor.snapshot` may be called from any
thread; it reads the live counters without stopping the executor, so the values of one
snapshot may straddle a run that is being recorded.
"""

from __future__ import annotations

import math
import threading

import attrs
from hdrh.histogram import HdrHistogram
from taktora.actors.executor.errors import ExecutorConfigError
from taktora.transport.validators import Checks

_MAX_US = 60_000_000

_v = Checks(ExecutorConfigError)


@attrs.frozen
class ItemTiming:
    """One item's figures at snapshot time (latencies in microseconds)."""

    name: str
    runs: int = attrs.field(validator=_v.non_negative_int())
    failures: int = attrs.field(validator=_v.non_negative_int())
    budget_us: float | None
    budget_misses: int = attrs.field(validator=_v.non_negative_int())
    deadline_misses: int = attrs.field(validator=_v.non_negative_int())
    missed_ticks: int = attrs.field(validator=_v.non_negative_int())
    p50_us: float = attrs.field(validator=_v.non_negative())
    p99_us: float = attrs.field(validator=_v.non_negative())
    max_us: float = attrs.field(validator=_v.non_negative())


@attrs.frozen
class MonitorSnapshot:
    """Every registered item's :class:`ItemTiming`, in registration order."""

    items: tuple[ItemTiming, ...]

    def item(self, name: str) -> ItemTiming:
        """The figures of the item called ``name`` (KeyError names the known items)."""
        for it in self.items:
            if it.name == name:
                return it
        raise KeyError(f"no item {name!r} in snapshot; items: {[i.name for i in self.items]}")


class ItemRecord:
    """The live counters of one item (written only by the thread running the item)."""

    __slots__ = ("budget_misses", "budget_ns", "deadline_misses", "failures", "hist",
                 "missed_ticks", "name", "runs")

    def __init__(self, name: str, budget_s: float | None) -> None:
        self.name = name
        self.budget_ns = -1 if budget_s is None else int(budget_s * 1e9)
        self.hist = HdrHistogram(1, _MAX_US, 3)
        self.runs = 0
        self.failures = 0
        self.budget_misses = 0
        self.deadline_misses = 0
        self.missed_ticks = 0

    def record(self, start_ns: int, end_ns: int, ok: bool) -> None:
        """Record one run (the thread that ran the item)."""
        took = end_ns - start_ns
        us = took // 1000
        self.hist.record_value(1 if us < 1 else (us if us < _MAX_US else _MAX_US))
        self.runs += 1
        if not ok:
            self.failures += 1
        if 0 <= self.budget_ns < took:
            self.budget_misses += 1


class ExecutionMonitor:
    """Collects per-item timing; pass one to ``Executor(monitor=...)``.

    ``budgets`` maps item names to budgets in seconds and overrides ``Item.budget``;
    ``default_budget`` applies to items with neither.
    """

    def __init__(self, budgets: dict[str, float] | None = None,
                 default_budget: float | None = None) -> None:
        self._budgets = dict(budgets or {})
        self._default = default_budget
        self._records: dict[str, ItemRecord] = {}
        self._lock = threading.Lock()

    def register(self, name: str, budget: float | None = None) -> ItemRecord:
        """Create (or return) the record of item ``name`` (called by ``Executor.add``)."""
        with self._lock:
            rec = self._records.get(name)
            if rec is None:
                b = self._budgets.get(name, budget if budget is not None else self._default)
                rec = ItemRecord(name, b)
                self._records[name] = rec
            return rec

    def snapshot(self) -> MonitorSnapshot:
        """Frozen figures of every item; safe from any thread."""
        with self._lock:
            records = list(self._records.values())
        out = []
        for r in records:
            h = r.hist
            n = h.get_total_count()
            out.append(ItemTiming(
                name=r.name, runs=r.runs, failures=r.failures,
                budget_us=None if r.budget_ns < 0 else r.budget_ns / 1000,
                budget_misses=r.budget_misses, deadline_misses=r.deadline_misses,
                missed_ticks=r.missed_ticks,
                p50_us=float(h.get_value_at_percentile(50)) if n else 0.0,
                p99_us=float(h.get_value_at_percentile(99)) if n else 0.0,
                max_us=float(h.get_max_value()) if n else 0.0,
            ))
        return MonitorSnapshot(tuple(out))


def percentile_us(samples_ns: list[int], pct: float) -> float:
    """A nearest-rank percentile of nanosecond samples, in microseconds (for tests/benches)."""
    if not samples_ns:
        return 0.0
    s = sorted(samples_ns)
    k = max(0, min(len(s) - 1, math.ceil(pct / 100 * len(s)) - 1))
    return s[k] / 1000
