"""Interval jitter at 1 kHz: taktora's executor against a sleep loop and an asyncio loop.

Cases: taktora_interval_1kHz, taktora_interval_1kHz_spin (spin 200 us before each tick),
sleep_loop_1kHz (time.sleep to absolute deadlines), asyncio_loop_1kHz (loop.call_at to
absolute deadlines), taktora_interval_1kHz_hog (a CPU-bound Python thread running beside it),
timerfd_raw_1kHz (a hand-written loop blocking in read() on a timerfd armed at absolute times:
the floor for a Python loop), taktora_interval_1kHz_dedicated (the executor in a dedicated
process, :mod:`taktora.actors.control.dedicated`), taktora_interval_1kHz_dedicated_hog (the
same with a CPU-bound thread in the parent) and taktora_interval_1kHz_dedicated_gcfreeze_hog
(gc="freeze": the collector off, generations 0-1 collected by a 10 Hz item). The dedicated
cases ask for SCHED_FIFO priority 50 (best effort; column ``sched``); ..._hog_sched_other
runs the child at the default policy, where the OS scheduler (not the GIL) shares the CPUs
with the hog and whatever else runs on the machine.
Fields: p50/p99/p999 of the absolute error (wake time - tick time) in us, drift_us (end-of-run
cumulative drift: last error minus first), missed (ticks skipped), n.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
from taktora.actors import Executor, MissedTickPolicy, every, item
from taktora.actors.control.dedicated import DedicatedExecutor, DedicatedOptions
from taktora.actors.executor.timing import TimerFd

PERIOD_NS = 1_000_000
#: the dedicated cases' SCHED_FIFO priority (best effort: without CAP_SYS_NICE they run
#: SCHED_OTHER and their row's "sched" says so)
FIFO_PRIORITY = 50


def _row(case: str, errs_ns: list[int], missed: int) -> dict[str, Any]:
    drift = (errs_ns[-1] - errs_ns[0]) / 1000 if errs_ns else 0.0
    return _bench.summarize(case, (e / 1000 for e in errs_ns), drift_us=round(drift, 1),
                            missed=missed)


def _hog(stop: threading.Event) -> threading.Thread:
    def burn() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    t = threading.Thread(target=burn, name="hog")
    t.start()
    return t


def taktora(seconds: float, spin: float = 0.0, hog: bool = False) -> tuple[list[int], int]:
    errs: list[int] = []
    append = errs.append
    clock = time.monotonic_ns
    ex = Executor("jitter", signals=False)
    ex.add(item(lambda ctx: append(clock() - ctx.scheduled_ns),
                [every(PERIOD_NS / 1e9, MissedTickPolicy.SKIP, spin=spin)], name="tick"))
    stop = threading.Event()
    hog_thread = _hog(stop) if hog else None
    try:
        ex.run_for(seconds)
    finally:
        stop.set()
        if hog_thread is not None:
            hog_thread.join()
    missed = ex.stats().item("tick").missed_ticks
    ex.close()
    return errs[10:], missed


class JitterExecutor:
    """The dedicated cases' executor (built in the child): the 1 kHz tick item recording its
    lateness; ``monitor_snapshot()`` returns the samples and the missed ticks."""

    def __init__(self) -> None:
        self.errs: list[int] = []
        append = self.errs.append
        clock = time.monotonic_ns
        self.ex = Executor("jitter-dedicated")
        self.ex.add(item(lambda ctx: append(clock() - ctx.scheduled_ns),
                         [every(PERIOD_NS / 1e9, MissedTickPolicy.SKIP)], name="tick"))
        self.add = self.ex.add  # gc="freeze" adds its collection item through it
        self.stoppable = self.ex.stoppable
        self.run = self.ex.run
        self.close = self.ex.close

    def monitor_snapshot(self) -> dict[str, Any]:
        return {"errs": self.errs[10:], "missed": self.ex.stats().item("tick").missed_ticks}


class JitterRecipe:
    """Picklable recipe of :class:`JitterExecutor` (the child imports this module by name)."""

    def build(self) -> JitterExecutor:
        return JitterExecutor()


def taktora_dedicated(case: str, seconds: float, hog: bool = False, gc: str = "default",
                      priority: int | None = FIFO_PRIORITY) -> dict[str, Any]:
    """The executor in a dedicated process; ``hog``: a CPU-bound thread in this (parent)
    process meanwhile. Samples are taken in the child and fetched before the stop.
    ``priority``: SCHED_FIFO for the child, best effort (the row says what was granted)."""
    ded = DedicatedExecutor(JitterRecipe(), DedicatedOptions(gc=gc, priority=priority,
                                                             best_effort=True), name="jitter")
    ded.start()
    policy = ded.info.get("policy")
    runner = threading.Thread(target=ded.run, name="dedicated-run")
    runner.start()
    stop = threading.Event()
    hog_thread = _hog(stop) if hog else None
    try:
        time.sleep(seconds)
        snap = ded.monitor_snapshot()
    finally:
        stop.set()
        if hog_thread is not None:
            hog_thread.join()
        ded.stop()
        runner.join(10)
        ded.close()
    row = _row(case, list(snap["errs"]), int(snap["missed"]))
    row["sched"] = policy
    if ded.last_gc and ded.last_gc.get("idle_collections"):
        row["gc_collect_max_us"] = ded.last_gc["idle_collect_max_us"]
        row["gc_collections"] = ded.last_gc["idle_collections"]
    return row


def timerfd_raw(seconds: float) -> tuple[list[int], int]:
    """The floor: a Python loop blocking in read() on a timerfd armed at each absolute tick."""
    clock = time.monotonic_ns
    timer = TimerFd()
    os.set_blocking(timer.fd, True)
    read, fd, arm = os.read, timer.fd, timer.arm
    errs: list[int] = []
    append = errs.append
    start = clock() + PERIOD_NS
    end = start + int(seconds * 1e9)
    k = 0
    missed = 0
    try:
        while True:
            tick = start + k * PERIOD_NS
            if tick > end:
                break
            arm(tick)
            read(fd, 8)
            now = clock()
            append(now - tick)
            late = (now - tick) // PERIOD_NS
            missed += late
            k += 1 + late
    finally:
        timer.close()
    return errs[10:], missed


def hog_with_switch_interval(seconds: float) -> tuple[list[int], int]:
    """The hog case with CPython's GIL switch interval lowered from 5 ms to 100 us: what
    limits the hog case is how long the hog may keep the GIL after the timer fired."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    try:
        return taktora(seconds, hog=True)
    finally:
        sys.setswitchinterval(old)


def sleep_loop(seconds: float) -> tuple[list[int], int]:
    clock = time.monotonic_ns
    errs: list[int] = []
    start = clock() + PERIOD_NS
    end = start + int(seconds * 1e9)
    k = 0
    missed = 0
    while True:
        tick = start + k * PERIOD_NS
        if tick > end:
            break
        delay = tick - clock()
        if delay > 0:
            time.sleep(delay / 1e9)
        now = clock()
        errs.append(now - tick)
        late = (now - tick) // PERIOD_NS
        missed += late
        k += 1 + late
    return errs[10:], missed


def asyncio_loop(seconds: float) -> tuple[list[int], int]:
    async def body() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        clock = time.monotonic_ns
        errs: list[int] = []
        start = clock() + PERIOD_NS
        end = start + int(seconds * 1e9)
        k = 0
        missed = 0
        while True:
            tick = start + k * PERIOD_NS
            if tick > end:
                break
            fut = loop.create_future()
            # loop.time() is time.monotonic(): schedule on the absolute tick
            loop.call_at(tick / 1e9, fut.set_result, None)
            await fut
            now = clock()
            errs.append(now - tick)
            late = (now - tick) // PERIOD_NS
            missed += late
            k += 1 + late
        return errs, missed

    errs, missed = asyncio.run(body())
    return errs[10:], missed


def main() -> None:
    args = _bench.parse_args(__doc__ or "jitter")
    _bench.private_prefix()
    seconds = 5.0 if args.quick else 20.0
    results = [
        _row("timerfd_raw_1kHz", *timerfd_raw(seconds)),
        _row("taktora_interval_1kHz", *taktora(seconds)),
        _row("taktora_interval_1kHz_spin", *taktora(seconds, spin=0.0002)),
        _row("sleep_loop_1kHz", *sleep_loop(seconds)),
        _row("asyncio_loop_1kHz", *asyncio_loop(seconds)),
        _row("taktora_interval_1kHz_hog", *taktora(seconds, hog=True)),
        _row("taktora_interval_1kHz_hog_switch100us", *hog_with_switch_interval(seconds)),
    ]
    dedicated: list[tuple[str, dict[str, Any]]] = [
        ("taktora_interval_1kHz_dedicated", {}),
        ("taktora_interval_1kHz_dedicated_hog", {"hog": True}),
        ("taktora_interval_1kHz_dedicated_gcfreeze_hog", {"hog": True, "gc": "freeze"}),
        ("taktora_interval_1kHz_dedicated_hog_sched_other", {"hog": True, "priority": None}),
    ]
    for case, kw in dedicated:
        results.append(_bench.run_case(case, taktora_dedicated, case, seconds, **kw))
    ratios = {
        "taktora_p99_vs_sleep": _bench.ratio(results, "taktora_interval_1kHz", "sleep_loop_1kHz",
                                             "p99_us"),
        "taktora_p99_vs_asyncio": _bench.ratio(results, "taktora_interval_1kHz",
                                               "asyncio_loop_1kHz", "p99_us"),
        "spin_p99_vs_plain": _bench.ratio(results, "taktora_interval_1kHz_spin",
                                          "taktora_interval_1kHz", "p99_us"),
        "hog_p99_vs_idle": _bench.ratio(results, "taktora_interval_1kHz_hog",
                                        "taktora_interval_1kHz", "p99_us"),
        "taktora_p99_vs_timerfd_raw": _bench.target(results, "taktora_interval_1kHz",
                                                    "timerfd_raw_1kHz", "<=", 1.2, "p99_us"),
        "dedicated_hog_p99_vs_dedicated": _bench.target(
            results, "taktora_interval_1kHz_dedicated_hog", "taktora_interval_1kHz_dedicated",
            "<=", 1.5, "p99_us"),
        "dedicated_hog_p99_vs_thread_hog": _bench.ratio(
            results, "taktora_interval_1kHz_dedicated_hog", "taktora_interval_1kHz_hog",
            "p99_us"),
        "dedicated_p99_vs_thread": _bench.ratio(
            results, "taktora_interval_1kHz_dedicated", "taktora_interval_1kHz", "p99_us"),
        "gcfreeze_hog_p99_vs_dedicated_hog": _bench.ratio(
            results, "taktora_interval_1kHz_dedicated_gcfreeze_hog",
            "taktora_interval_1kHz_dedicated_hog", "p99_us"),
    }
    _bench.write("jitter", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
