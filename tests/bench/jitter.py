"""Interval jitter at 1 kHz: taktora's executor against a sleep loop and an asyncio loop.

Cases: taktora_interval_1kHz, taktora_interval_1kHz_spin (spin 200 us before each tick),
sleep_loop_1kHz (time.sleep to absolute deadlines), asyncio_loop_1kHz (loop.call_at to
absolute deadlines), taktora_interval_1kHz_hog (a CPU-bound Python thread running beside it).
Fields: p50/p99/p999 of the absolute error (wake time - tick time) in us, drift_us (end-of-run
cumulative drift: last error minus first), missed (ticks skipped), n.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
from taktora.actors import Executor, MissedTickPolicy, every, item

PERIOD_NS = 1_000_000


def _row(case: str, errs_ns: list[int], missed: int) -> dict[str, Any]:
    drift = (errs_ns[-1] - errs_ns[0]) / 1000 if errs_ns else 0.0
    return _bench.summarize(case, (e / 1000 for e in errs_ns), drift_us=round(drift, 1),
                            missed=missed)


def taktora(seconds: float, spin: float = 0.0, hog: bool = False) -> tuple[list[int], int]:
    errs: list[int] = []
    append = errs.append
    clock = time.monotonic_ns
    ex = Executor("jitter", signals=False)
    ex.add(item(lambda ctx: append(clock() - ctx.scheduled_ns),
                [every(PERIOD_NS / 1e9, MissedTickPolicy.SKIP, spin=spin)], name="tick"))
    stop = threading.Event()
    hog_thread = None
    if hog:
        def burn() -> None:
            x = 0
            while not stop.is_set():
                x += 1

        hog_thread = threading.Thread(target=burn, name="hog")
        hog_thread.start()
    try:
        ex.run_for(seconds)
    finally:
        stop.set()
        if hog_thread is not None:
            hog_thread.join()
    missed = ex.stats().item("tick").missed_ticks
    ex.close()
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
        _row("taktora_interval_1kHz", *taktora(seconds)),
        _row("taktora_interval_1kHz_spin", *taktora(seconds, spin=0.0002)),
        _row("sleep_loop_1kHz", *sleep_loop(seconds)),
        _row("asyncio_loop_1kHz", *asyncio_loop(seconds)),
        _row("taktora_interval_1kHz_hog", *taktora(seconds, hog=True)),
        _row("taktora_interval_1kHz_hog_switch100us", *hog_with_switch_interval(seconds)),
    ]
    ratios = {
        "taktora_p99_vs_sleep": _bench.ratio(results, "taktora_interval_1kHz", "sleep_loop_1kHz",
                                             "p99_us"),
        "taktora_p99_vs_asyncio": _bench.ratio(results, "taktora_interval_1kHz",
                                               "asyncio_loop_1kHz", "p99_us"),
        "spin_p99_vs_plain": _bench.ratio(results, "taktora_interval_1kHz_spin",
                                          "taktora_interval_1kHz", "p99_us"),
        "hog_p99_vs_idle": _bench.ratio(results, "taktora_interval_1kHz_hog",
                                        "taktora_interval_1kHz", "p99_us"),
    }
    _bench.write("jitter", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
