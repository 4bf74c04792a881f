"""Shared harness for tests/bench/*.py: arguments, machine description, percentiles, JSON.

Every benchmark is a script taking ``[--quick] --json OUT`` and writing
``{"bench": NAME, "machine": {...}, "results": [{"case": ..., "p50_us": ..., "p99_us": ...,
"n": ..., ...}], "ratios": {...}}``. Raw-library cases run in the same process run as the
taktora cases, so the ratios mean something on a noisy shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

HIST_MAX_US = 60_000_000  # 60 s, in microseconds
HIST_DIGITS = 3
_LOAD_AT_START = os.getloadavg()[0]  # when the benchmark began (machine() gives the end)


def private_prefix(tag: str = "tkbench") -> str:
    """Give this benchmark run its own iceoryx2 prefix (exported to child processes through
    TAKTORA_IOX_PREFIX) and remove whatever is left of it when the process exits."""
    import atexit

    from taktora.transport import isolation

    prefix = os.environ.setdefault(isolation.PREFIX_ENV, isolation.unique_prefix(tag))
    atexit.register(isolation.purge_prefix, prefix)
    return prefix


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The common command line: ``--quick`` and ``--json OUT``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help="short run (CI smoke)")
    ap.add_argument("--json", dest="json_out", metavar="OUT", help="write results as JSON here")
    return ap.parse_args(argv)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    load = os.getloadavg()
    return {
        "hostname": platform.node(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_1m": round(load[0], 2),
        "loadavg_1m_start": round(_LOAD_AT_START, 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


TICKS_PER_US = 10
"""The histograms count tenths of a microsecond: a 13 us latency is resolved to 0.1 us (a
ratio target of 1.05 at that size needs better than whole microseconds)."""


def histogram() -> HdrHistogram:
    """An HdrHistogram in tenths of a microsecond (0.1 us .. 60 s, 3 significant digits)."""
    return HdrHistogram(1, HIST_MAX_US * TICKS_PER_US, HIST_DIGITS)


def summarize(case: str, samples_us: Iterable[float], **extra: Any) -> dict[str, Any]:
    """A result row from latencies in microseconds (p50, p99, p999, max, n; to 0.1 us) plus
    ``extra``."""
    h = histogram()
    n = 0
    top = HIST_MAX_US * TICKS_PER_US
    for v in samples_us:
        h.record_value(max(1, min(round(v * TICKS_PER_US), top)))
        n += 1
    row: dict[str, Any] = {"case": case, "n": n}
    if n:
        row.update({f"{name}_us": round(h.get_value_at_percentile(pct) / TICKS_PER_US, 1)
                    for name, pct in (("p50", 50), ("p99", 99), ("p999", 99.9))})
        row["max_us"] = round(h.get_max_value() / TICKS_PER_US, 1)
    row.update(extra)
    return row


def ratio(results: list[dict[str, Any]], num: str, den: str, field: str = "p50_us") -> float | None:
    """``num[field] / den[field]`` over the result rows, or None if either is missing."""
    by = {r["case"]: r for r in results}
    try:
        a, b = by[num][field], by[den][field]
    except KeyError:
        return None
    return round(a / b, 3) if b else None


def target(results: list[dict[str, Any]], num: str, den: str, op: str, bound: float,
           field: str = "p50_us") -> dict[str, Any]:
    """``num[field] / den[field]`` with the issue's target: ``{"value", "target",
    "target_met"}`` (value None and target_met False when a case is missing or failed)."""
    value = ratio(results, num, den, field)
    met = value is not None and (value <= bound if op == "<=" else value >= bound)
    return {"value": value, "target": f"{op} {bound}", "target_met": met,
            "of": f"{num}.{field} / {den}.{field}"}


def run_case(case: str, fn: Callable[..., dict[str, Any]], *args: Any,
             **kwargs: Any) -> dict[str, Any]:
    """``fn(*args, **kwargs)``'s result row, or ``{"case": case, "error": ...}`` if it raised
    (the traceback goes to stderr): one broken case must not hide the others' numbers."""
    t0 = time.monotonic()
    try:
        row = fn(*args, **kwargs)
    except Exception as exc:
        traceback.print_exc()
        row = {"case": case, "error": f"{type(exc).__name__}: {exc}"[:300]}
    print(f"done {case} in {time.monotonic() - t0:.1f} s: {row}", file=sys.stderr, flush=True)
    return row


def cpu_s(pids: Iterable[int]) -> float:
    """CPU time (s, every thread, ns resolution from schedstat) used so far by ``pids``;
    processes that are gone count 0."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total / 1e9


def forks_of_me() -> set[int]:
    """Every other process running this process's command line: its forks, also those that
    detached (a multi-process actor system's admin and actors re-parent to init)."""
    with open("/proc/self/cmdline", "rb") as f:
        me = f.read()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read() == me:
                    found.add(int(entry))
        except OSError:
            continue
    return found


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of ``pid`` (default: this process) in MiB."""
    with open(f"/proc/{pid or os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def write(name: str, results: list[dict[str, Any]], json_out: str | None,
          ratios: dict[str, Any] | None = None) -> dict[str, Any]:
    """Print a table (rich) and write the JSON document if asked; return the document."""
    doc = {"bench": name, "machine": machine(), "results": results, "ratios": ratios or {}}
    try:
        from rich.console import Console
        from rich.table import Table

        cols = ["case", *sorted({k for r in results for k in r} - {"case"})]
        table = Table(title=f"bench: {name}")
        for c in cols:
            table.add_column(c, justify="left" if c == "case" else "right")
        for r in results:
            table.add_row(*(_fmt(r.get(c, "")) for c in cols))
        console = Console(width=None if sys.stdout.isatty() else 220)
        console.print(table)
        if ratios:
            for k, v in ratios.items():
                console.print(f"  {k}: {v}")
        console.print(f"  loadavg_1m: {doc['machine']['loadavg_1m_start']} at start, "
                      f"{doc['machine']['loadavg_1m']} at the end")
    except ImportError:  # pragma: no cover - rich is a core dependency
        print(json.dumps(doc, indent=2))
    if json_out:
        Path(json_out).write_text(json.dumps(doc, indent=2))
    return doc


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}"
    return str(v)
