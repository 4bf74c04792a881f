"""Error policies, stopping, Runner, observer, monitor, thread attributes, allocation."""

from __future__ import annotations

import logging
import os
import threading
import time
import tracemalloc

import pytest
from taktora.actors import (
    ErrorPolicy,
    ExecutionMonitor,
    Executor,
    ItemError,
    LoggingObserver,
    Observer,
    OpenTelemetryObserver,
    Runner,
    ThreadAttributeError,
    ThreadAttrs,
    every,
    item,
    on_data,
)


def _failing(policy: ErrorPolicy, name: str = "bad"):
    def fn(ctx):
        raise ValueError("boom")

    return item(fn, [every(0.005)], name=name, error_policy=policy)


@pytest.mark.req("REQ_0210")
def test_propagate_stops_and_raises_from_run(closing):
    ex = closing(Executor("prop", signals=False))
    ex.add(_failing(ErrorPolicy.PROPAGATE))
    with pytest.raises(ItemError, match="'bad'") as info:
        ex.run_for(2.0)
    assert isinstance(info.value.__cause__, ValueError)
    assert ex.stats().item("bad").errors == 1


@pytest.mark.req("REQ_0210")
def test_log_and_continue_logs_every_error(closing, caplog):
    ex = closing(Executor("log", signals=False))
    ex.add(_failing(ErrorPolicy.LOG_AND_CONTINUE))
    with caplog.at_level(logging.ERROR, logger="taktora.actors.executor"):
        ex.run_for(0.1)
    s = ex.stats().item("bad")
    assert s.errors >= 3 and s.logged_errors == s.errors
    records = [r for r in caplog.records if "LOG_AND_CONTINUE" in r.getMessage()]
    assert len(records) == s.errors and records[0].exc_info is not None


@pytest.mark.req("REQ_0210")
def test_count_and_skip_counts_without_logging(closing, caplog):
    ex = closing(Executor("cnt", signals=False))
    ex.add(_failing(ErrorPolicy.COUNT_AND_SKIP))
    with caplog.at_level(logging.DEBUG, logger="taktora.actors.executor"):
        ex.run_for(0.1)
    s = ex.stats().item("bad")
    assert s.errors >= 3 and s.skipped_errors == s.errors
    assert not caplog.records


@pytest.mark.req("REQ_0211")
def test_stop_from_another_thread_wakes_an_idle_executor(closing):
    ex = closing(Executor("idle", signals=False))
    ex.add(item(lambda ctx: None, [every(3600)], name="hourly"))
    stopper = threading.Timer(0.1, ex.stoppable().stop)
    stopper.start()
    t0 = time.monotonic()
    ex.run()
    stopper.join()
    assert time.monotonic() - t0 < 2.0


@pytest.mark.req("REQ_0211")
def test_run_for_and_run_once_return(closing):
    ex = closing(Executor("rf", signals=False))
    ex.add(item(lambda ctx: None, [every(3600)], name="hourly"))
    t0 = time.monotonic()
    ex.run_for(0.1)
    assert 0.09 <= time.monotonic() - t0 < 2.0
    assert ex.run_once(timeout=0.05) is False


@pytest.mark.req("REQ_0212")
def test_runner_context_manager_and_reraise(closing):
    ex = Executor("runner", signals=False)
    runs = []
    ex.add(item(lambda ctx: runs.append(1), [every(0.005)], name="tick"))
    with Runner(ex) as r:
        time.sleep(0.05)
        assert r.running
    assert not r.running and runs

    ex2 = Executor("runner2", signals=False)
    ex2.add(_failing(ErrorPolicy.PROPAGATE))
    r2 = Runner(ex2).start()
    time.sleep(0.05)
    with pytest.raises(ItemError):
        r2.stop()
    r2.join()  # reported once


@pytest.mark.req("REQ_0212")
def test_items_on_stop_runs_at_close(closing):
    from taktora.actors import Item

    released = []

    class Res(Item):
        name = "res"

        def triggers(self):
            return [every(0.01)]

        def execute(self, ctx):
            return None

        def on_stop(self):
            released.append(threading.current_thread().name)

    ex = Executor("close", signals=False)
    ex.add(Res())
    with Runner(ex):
        time.sleep(0.02)
    assert released == ["close-runner"]


@pytest.mark.req("REQ_0218")
def test_observer_hooks_called_in_order(closing):
    calls: list[str] = []

    class Rec(Observer):
        def on_executor_start(self, executor):
            calls.append("up")

        def on_executor_stop(self, executor, error):
            calls.append(f"down:{type(error).__name__}")

        def on_item_start(self, item, now_ns):
            calls.append(f"start:{item}")

        def on_item_end(self, item, start_ns, end_ns, ok):
            calls.append(f"end:{item}:{ok}")

        def on_item_error(self, item, error):
            calls.append(f"error:{item}")

    ex = closing(Executor("obs", observer=Rec(), signals=False))
    ex.add(_failing(ErrorPolicy.PROPAGATE))
    with pytest.raises(ItemError):
        ex.run_for(1.0)
    assert calls == ["up", "start:bad", "error:bad", "end:bad:False", "down:ItemError"]


@pytest.mark.req("REQ_0218")
def test_observer_errors_are_counted_not_fatal(closing, caplog):
    class Broken(Observer):
        def on_item_start(self, item, now_ns):
            raise RuntimeError("observer bug")

    ex = closing(Executor("obs2", observer=Broken(), signals=False))
    ex.add(item(lambda ctx: None, [every(0.005)], name="ok"))
    ex.run_for(0.05)
    assert ex.stats().observer_errors >= 2
    assert ex.stats().item("ok").runs >= 2
    assert sum("observer hook" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.req("REQ_0221")
def test_logging_and_otel_adapters(closing, caplog):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = OpenTelemetryObserver(tracer=provider.get_tracer("t"))
    ex = closing(Executor("otel", observer=otel, signals=False))
    ex.add(item(lambda ctx: ctx.stop(), [every(0.005)], name="step"))
    ex.run_for(1.0)
    names = [s.name for s in exporter.get_finished_spans()]
    assert "step" in names and "executor otel" in names

    ex2 = closing(Executor("logged", observer=LoggingObserver(), signals=False))
    ex2.add(_failing(ErrorPolicy.COUNT_AND_SKIP))
    with caplog.at_level(logging.INFO, logger="taktora.actors.observer"):
        ex2.run_for(0.02)
    msgs = [r.getMessage() for r in caplog.records if r.name == "taktora.actors.observer"]
    assert "executor logged started" in msgs and any("item bad raised" in m for m in msgs)


@pytest.mark.req("REQ_0219")
def test_monitor_histogram_and_budget_misses(closing):
    mon = ExecutionMonitor(budgets={"slow": 0.002})
    ex = closing(Executor("mon", monitor=mon, signals=False))
    n = {"k": 0}

    def slow(ctx):
        n["k"] += 1
        if n["k"] % 2 == 0:
            time.sleep(0.005)  # every second run breaks the 2 ms budget

    ex.add(item(slow, [every(0.01)], name="slow"))
    ex.add(item(lambda ctx: None, [every(0.01)], name="fast", budget=1.0))
    while n["k"] < 8:
        ex.run_once(timeout=1.0)
    snap = ex.monitor_snapshot().item("slow")
    assert snap.runs == n["k"] and snap.budget_misses == n["k"] // 2
    assert snap.max_us >= 5000 and snap.p50_us > 0
    assert ex.monitor_snapshot().item("fast").budget_misses == 0
    with pytest.raises(AttributeError):
        snap.runs = 0  # frozen


@pytest.mark.req("REQ_0220")
def test_thread_attrs_refused_raise_clear_error(closing):
    bad_cpu = max(os.sched_getaffinity(0)) + 4096
    with pytest.raises(ThreadAttributeError, match=f"CPU affinity \\[{bad_cpu}\\]"):
        ThreadAttrs(cpus={bad_cpu}).apply()
    ex = closing(Executor("ta", thread_attrs=ThreadAttrs(cpus={bad_cpu}), signals=False))
    ex.add(item(lambda ctx: None, [every(0.01)], name="x"))
    with pytest.raises(ThreadAttributeError):
        ex.run_for(0.01)


@pytest.mark.req("REQ_0220")
def test_thread_attrs_best_effort_and_applied(caplog):
    before = os.sched_getaffinity(0)
    result: dict[str, object] = {}

    def body() -> None:
        cpu = min(os.sched_getaffinity(0))
        ok = ThreadAttrs(name="tk-exec", cpus={cpu}).apply()
        refused = ThreadAttrs(cpus={cpu + 4096}, best_effort=True).apply()
        result.update(ok=ok, refused=refused, aff=os.sched_getaffinity(0), cpu=cpu,
                      name=threading.current_thread().name)

    with caplog.at_level(logging.WARNING):
        t = threading.Thread(target=body)
        t.start()
        t.join()
    assert result["aff"] == {result["cpu"]} and result["name"] == "tk-exec"
    assert result["refused"].refused == ("cpus",)
    assert any("best effort" in r.getMessage() for r in caplog.records)
    assert os.sched_getaffinity(0) == before  # only the calling thread changed
    with pytest.raises(ValueError, match="fifo_priority"):
        ThreadAttrs(fifo_priority=100)


@pytest.mark.req("REQ_0217")
def test_dispatch_allocates_nothing_in_steady_state(events, closing):
    port, notifier = events.pair("t/alloc")
    mon = ExecutionMonitor()
    ex = closing(Executor("alloc", monitor=mon, observer=Observer(), signals=False))
    ex.add(item(lambda ctx: None, [on_data(port)], name="sink"))
    ex.add_chain([item(lambda ctx: None, [every(0.0005)], name="h"),
                  item(lambda ctx: None, name="t")])

    def cycle(n: int) -> None:
        for _ in range(n):
            notifier.notify()
            ex.run_once(timeout=1.0)

    cycle(300)  # warm up: caches, histogram buckets, interned ints
    actors_dir = os.path.dirname(__import__("taktora.actors.executor").actors.executor.__file__)
    flt = [tracemalloc.Filter(True, os.path.join(actors_dir, "*"))]
    grown: dict[int, int] = {}
    tracemalloc.start(5)
    try:
        for n in (1000, 3000):
            cycle(50)
            before = tracemalloc.take_snapshot().filter_traces(flt)
            cycle(n)
            after = tracemalloc.take_snapshot().filter_traces(flt)
            diff = after.compare_to(before, "filename")
            grown[n] = sum(d.size_diff for d in diff if d.size_diff > 0)
    finally:
        tracemalloc.stop()
    # what stays is the latest value of a few fields (timestamps, counters): a constant few
    # hundred bytes whatever the number of dispatches, i.e. nothing per dispatch
    assert grown[1000] < 1024 and grown[3000] < 1024, grown
    assert grown[3000] / 3000 < 0.5, grown
