"""Absolute-time intervals, missed-tick policies, spin-then-block."""

from __future__ import annotations

import itertools
import time

import pytest
from taktora.actors import Executor, MissedTickPolicy, every, item
from taktora.actors.executor.timing import IntervalSchedule

P = 1_000_000  # 1 ms in ns


@pytest.mark.req("REQ_0214")
def test_schedule_stays_on_the_absolute_grid():
    s = IntervalSchedule(P, 10 * P, MissedTickPolicy.SKIP)
    # wake late by varying amounts (< a period): every tick still belongs to start + k*P
    for k, late in enumerate([300_000, 10, 999_999, 0, 500_000]):
        assert s.fire(10 * P + k * P + late) == 1
        assert s.scheduled_ns == 10 * P + k * P
        assert s.next_ns == 10 * P + (k + 1) * P
    assert s.missed == 0
    assert s.fire(s.next_ns - 1) == 0  # early wake: nothing runs


@pytest.mark.req("REQ_0215")
def test_skip_policy_drops_and_counts_missed_ticks():
    s = IntervalSchedule(P, 0 + P, MissedTickPolicy.SKIP)
    assert s.fire(P + 3 * P + 10) == 1  # ticks at 1,2,3,4 ms due: run once, skip 3
    assert s.missed == 3
    assert s.scheduled_ns == 4 * P and s.next_ns == 5 * P


@pytest.mark.req("REQ_0215")
def test_burst_policy_runs_every_missed_tick_now():
    s = IntervalSchedule(P, P, MissedTickPolicy.BURST)
    assert s.fire(4 * P + 10) == 4
    assert [s.burst_time(i) for i in range(4)] == [P, 2 * P, 3 * P, 4 * P]
    assert s.missed == 3 and s.next_ns == 5 * P


@pytest.mark.req("REQ_0215")
def test_catch_up_policy_runs_missed_ticks_one_per_wake():
    s = IntervalSchedule(P, P, MissedTickPolicy.CATCH_UP)
    now = 4 * P + 10
    runs = []
    while s.fire(now) == 1:
        runs.append(s.scheduled_ns)
    assert runs == [P, 2 * P, 3 * P, 4 * P]
    assert s.missed == 3 and s.next_ns == 5 * P


@pytest.mark.req("REQ_0215")
@pytest.mark.parametrize("policy", list(MissedTickPolicy))
def test_executor_counts_missed_ticks_under_each_policy(policy, closing):
    ex = closing(Executor(f"mt_{policy.value}", signals=False))
    scheduled: list[int] = []
    period = 0.01

    def step(ctx):
        scheduled.append(ctx.scheduled_ns)
        if len(scheduled) == 2:
            time.sleep(period * 4.5)  # overrun: ticks pass meanwhile

    ex.add(item(step, [every(period, policy)], name="ctl"))
    ex.run_for(0.15)
    missed = ex.stats().item("ctl").missed_ticks
    assert missed >= 3
    p = round(period * 1e9)
    steps = [(b - a) // p for a, b in itertools.pairwise(scheduled)]
    assert all((b - a) % p == 0 for a, b in itertools.pairwise(scheduled))
    if policy is MissedTickPolicy.SKIP:
        assert max(steps) >= 4  # a jump over the skipped ticks
    else:
        assert set(steps) == {1}  # every tick ran


@pytest.mark.req("REQ_0216")
def test_spin_then_block_never_runs_early(closing):
    ex = closing(Executor("spin", signals=False))
    errs: list[int] = []
    ex.add(item(lambda ctx: errs.append(time.monotonic_ns() - ctx.scheduled_ns),
                [every(0.005, spin=0.001)], name="spin"))
    ex.run_for(0.2)
    assert len(errs) >= 20
    assert min(errs) >= 0
    with pytest.raises(ValueError, match="shorter than the period"):
        every(0.001, spin=0.002)


@pytest.mark.req("REQ_0214")
def test_no_cumulative_drift_over_many_ticks(closing):
    ex = closing(Executor("drift", signals=False))
    first: list[int] = []
    last: list[int] = []
    missed_before_first: list[int] = []

    def step(ctx):
        if not first:
            first.append(ctx.scheduled_ns)
            # under load the first wake can come more than a period late: the ticks it skipped
            # lie before ``first`` and are missed already
            missed_before_first.append(ex.stats().item("d").missed_ticks)
        last[:] = [ctx.scheduled_ns]
        time.sleep(0.0003)  # work that a relative sleep would add to the period

    ex.add(item(step, [every(0.002)], name="d"))
    ex.run_for(0.3)
    stats = ex.stats().item("d")
    ticks = (last[0] - first[0]) // 2_000_000 + 1
    assert (last[0] - first[0]) % 2_000_000 == 0
    assert ticks == stats.runs + stats.missed_ticks - missed_before_first[0]
