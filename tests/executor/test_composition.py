"""Chains, graphs, conditions and signal/slot."""

from __future__ import annotations

import threading
import time

import pytest
from taktora.actors import (
    Control,
    Executor,
    Graph,
    GraphCycleError,
    every,
    item,
    wrap_with_condition,
)
from taktora.actors.executor import signal_slot


def _once(log: list[str], name: str, result: Control | None = None, triggers=()):
    def fn(ctx):
        log.append(name)
        return result

    return item(fn, triggers, name=name)


@pytest.mark.req("REQ_0206")
def test_chain_runs_in_order_and_stop_aborts_the_rest(closing):
    ex = closing(Executor("chain", signals=False))
    log: list[str] = []
    ex.add_chain([_once(log, "a", triggers=[every(0.01)]), _once(log, "b", Control.STOP),
                  _once(log, "c")])
    ex.run_once(timeout=1.0)
    assert log == ["a", "b"]
    s = ex.stats()
    assert s.item("b").stops == 1 and s.item("c").runs == 0


@pytest.mark.req("REQ_0206")
def test_chain_aborts_on_error(closing):
    from taktora.actors import ErrorPolicy

    ex = closing(Executor("chain_err", signals=False))
    log: list[str] = []

    def boom(ctx):
        log.append("b")
        raise RuntimeError("b failed")

    ex.add_chain([_once(log, "a", triggers=[every(0.01)]),
                  item(boom, name="b", error_policy=ErrorPolicy.COUNT_AND_SKIP),
                  _once(log, "c")])
    ex.run_once(timeout=1.0)
    assert log == ["a", "b"]
    assert ex.stats().item("b").skipped_errors == 1


def _diamond(log: list[str], stop_at: str | None = None, sleep: float = 0.0):
    g = Graph("diamond")
    lock = threading.Lock()

    def make(name, triggers=()):
        def fn(ctx):
            with lock:
                log.append(f"{name}+")
            time.sleep(sleep)
            with lock:
                log.append(f"{name}-")
            return Control.STOP if name == stop_at else None

        return g.vertex(item(fn, triggers, name=name))

    a = make("a", [every(0.01)])
    b, c, d = make("b"), make("c"), make("d")
    g.edge(a, b)
    g.edge(a, c)
    g.edge(b, d)
    g.edge(c, d)
    return g


@pytest.mark.req("REQ_0207")
def test_graph_runs_vertices_after_their_parents(closing):
    ex = closing(Executor("g", signals=False))
    log: list[str] = []
    ex.add_graph(_diamond(log))
    ex.run_once(timeout=1.0)
    ends = [e for e in log if e.endswith("-")]
    starts = {e[0]: i for i, e in enumerate(log) if e.endswith("+")}
    done = {e[0]: i for i, e in enumerate(log) if e.endswith("-")}
    assert len(ends) == 4
    assert done["a"] < starts["b"] and done["a"] < starts["c"]
    assert done["b"] < starts["d"] and done["c"] < starts["d"]


@pytest.mark.req("REQ_0207")
def test_graph_branches_run_in_parallel_on_a_pool(closing):
    ex = closing(Executor("gp", workers=2, signals=False))
    log: list[str] = []
    ex.add_graph(_diamond(log, sleep=0.05))
    ex.run_once(timeout=1.0)
    ib, ic = log.index("b+"), log.index("c+")
    # both branches started before either finished
    assert max(ib, ic) < min(log.index("b-"), log.index("c-"))
    assert log[-1] == "d-"


@pytest.mark.req("REQ_0207")
def test_graph_stop_skips_descendants_only(closing):
    ex = closing(Executor("gs", signals=False))
    log: list[str] = []
    ex.add_graph(_diamond(log, stop_at="b"))
    ex.run_once(timeout=1.0)
    assert "c-" in log and "d+" not in log


@pytest.mark.req("REQ_0207")
def test_graph_cycle_is_rejected_naming_it():
    g = Graph("cyc")
    a, b, c = (g.vertex(item(lambda ctx: None, name=n)) for n in "abc")
    g.edge(a, b)
    g.edge(b, c)
    with pytest.raises(GraphCycleError, match="'c' -> 'a' -> 'b' -> 'c'"):
        g.edge(c, a)
    assert g.successors[2] == []  # unchanged


@pytest.mark.req("REQ_0208")
def test_condition_gates_item_and_rest_of_chain(closing):
    ex = closing(Executor("cond", signals=False))
    log: list[str] = []
    flag = {"on": False}
    gated = wrap_with_condition(_once(log, "gated"), lambda ctx: flag["on"])
    ex.add_chain([_once(log, "head", triggers=[every(0.01)]), gated, _once(log, "tail")])
    ex.run_once(timeout=1.0)
    flag["on"] = True
    ex.run_once(timeout=1.0)
    assert log == ["head", "head", "gated", "tail"]
    assert gated.skipped == 1


@pytest.mark.req("REQ_0209")
def test_signal_slot_pair_triggers_another_item(closing):
    sig, slot = signal_slot.pair("measure", capacity=4)
    closing(slot)
    ex = closing(Executor("ss", signals=False))
    received: list[int] = []
    counter = iter(range(100))
    ex.add(signal_slot.emitter(sig, lambda ctx: next(counter), [every(0.01)], name="src"))
    ex.add(signal_slot.receiver(slot, lambda ctx, v: received.append(v), name="dst"))
    ex.run_for(0.2)
    assert received == list(range(len(received))) and len(received) >= 5


@pytest.mark.req("REQ_0209")
def test_slot_overflow_drops_oldest_and_counts():
    sig, slot = signal_slot.pair("small", capacity=2)
    try:
        for v in range(5):
            sig.emit(v)
        assert slot.drain() == [3, 4]
        assert slot.dropped == 3
    finally:
        slot.close()
