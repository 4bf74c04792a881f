"""Supervision semantics on both bases (REQ_0310..REQ_0317)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from actorkit import MODES, Worker, node, open_system, wait_for
from taktora.actors.control.messages import ErrorKind, ErrorReply, Pause, Resume, Shutdown
from taktora.actors.control.supervision import ChildSpec, SupervisorSpec
from taktora.actors.models.backoff import Backoff

pytestmark = pytest.mark.slow


def three(strategy: str, **kw: object) -> ChildSpec:
    return ChildSpec(id="sup", start=SupervisorSpec(
        strategy=strategy, intensity=kw.pop("intensity", 5),  # type: ignore[arg-type]
        children=[ChildSpec(id=n, start=Worker) for n in "abc"], **kw))  # type: ignore[arg-type]


def addresses(h, path="sup"):
    return {c.id: c.address for c in node(h, path).children}


def stable_node(h, sup: str):  # type: ignore[no-untyped-def]
    """A snapshot of ``sup`` that two reads 0.2 s apart agree on. In multiprocess mode nested
    supervisors push their subtree up asynchronously, so one read may lag behind."""
    prev = node(h, sup)
    while True:
        time.sleep(0.2)
        cur = node(h, sup)
        if cur == prev:
            return cur
        prev = cur


def crash_and_settle(h, path: str, sup: str = "sup") -> tuple[str, ...]:
    before = len(stable_node(h, sup).events)
    reply = h.control(path, Resume())
    assert isinstance(reply, ErrorReply) and reply.kind is ErrorKind.CRASHED

    def settled():  # type: ignore[no-untyped-def]
        n = node(h, sup)  # one snapshot: states and log must agree
        return (all(c.state == "running" for c in n.children) and len(n.events) > before + 1
                and n.events[-1].startswith("start:"))

    wait_for(settled, what="restart")
    return stable_node(h, sup).events[before:]


@pytest.mark.req("REQ_0310")
@pytest.mark.parametrize("mode", MODES)
def test_start_in_order_stop_in_reverse(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(three("one_for_one"))
        sup = node(h, "sup")
        assert [c.id for c in sup.children] == ["a", "b", "c"]
        assert all(c.state == "running" for c in sup.children)
        assert sup.events == ("start:a", "start:b", "start:c")
        # an orderly stop of the nested supervisor: children in reverse order, one at a time
        reply = h.control("sup", Shutdown())
        assert reply.detail == "stopped: c,b,a"
        # the root saw its permanent child exit normally and restarted it, children in order
        wait_for(lambda: node(h, "sup").restarts == 1 and node(h, "sup").state == "running",
                 what="sup restarted")
        assert node(h, "sup").events == ("start:a", "start:b", "start:c")
        assert "exit:sup:normal" in h.tree().events


@pytest.mark.req("REQ_0311")
@pytest.mark.parametrize("mode", MODES)
def test_one_for_one_restarts_only_the_failed_child(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(three("one_for_one"))
        old = addresses(h)
        ev = crash_and_settle(h, "sup/b")
        assert ev == ("exit:b:RuntimeError: boom", "start:b")
        new = addresses(h)
        assert new["a"] == old["a"] and new["c"] == old["c"] and new["b"] != old["b"]
        assert [c.restarts for c in node(h, "sup").children] == [0, 1, 0]
        assert h.control("sup/b", Pause()).detail == ""  # the new b answers


@pytest.mark.req("REQ_0312")
@pytest.mark.parametrize("mode", MODES)
def test_one_for_all_restarts_all_in_order(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(three("one_for_all"))
        old = addresses(h)
        ev = crash_and_settle(h, "sup/b")
        assert ev == ("exit:b:RuntimeError: boom", "stop:c", "stopped:c", "stop:a", "stopped:a",
                      "start:a", "start:b", "start:c")
        new = addresses(h)
        assert all(new[k] != old[k] for k in "abc")


@pytest.mark.req("REQ_0313")
@pytest.mark.parametrize("mode", MODES)
def test_rest_for_one_restarts_the_rest(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(three("rest_for_one"))
        old = addresses(h)
        ev = crash_and_settle(h, "sup/b")
        assert ev == ("exit:b:RuntimeError: boom", "stop:c", "stopped:c", "start:b", "start:c")
        new = addresses(h)
        assert new["a"] == old["a"] and new["b"] != old["b"] and new["c"] != old["c"]


@pytest.mark.req("REQ_0314")
@pytest.mark.parametrize("mode", MODES)
def test_intensity_exceeded_escalates_to_parent(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(three("one_for_one", intensity=1, period_s=10.0))
        old_sup = node(h, "sup").address
        crash_and_settle(h, "sup/a")  # restart 1: within intensity
        h.control("sup/a", Resume())  # restart 2 > intensity 1: sup gives up
        tree = wait_for(lambda: (t := h.tree()).find(("sup",)).address not in ("", old_sup)
                        and t.find(("sup",)).state == "running" and t, what="sup restarted")
        root_ev = tree.events
        assert any(e.startswith("exit:sup:escalated:") for e in root_ev), root_ev
        sup = tree.find(("sup",))
        assert sup.restarts == 1
        # the fresh supervisor started fresh children in order
        assert sup.events == ("start:a", "start:b", "start:c")


@pytest.mark.req("REQ_0315")
@pytest.mark.parametrize("mode", MODES)
def test_transient_and_temporary(mode, admin_port):
    spec = ChildSpec(id="sup", start=SupervisorSpec(intensity=5, children=[
        ChildSpec(id="tr", start=Worker, restart="transient"),
        ChildSpec(id="tmp", start=Worker, restart="temporary"),
        ChildSpec(id="perm", start=Worker)]))
    with open_system(mode, admin_port) as h:
        h.start_child(spec)
        # transient, normal exit: not restarted
        h.control("sup/tr", Shutdown())
        wait_for(lambda: node(h, "sup/tr").state == "stopped", what="tr stopped")
        assert node(h, "sup/tr").restarts == 0
        # temporary, crash: never restarted, removed
        h.control("sup/tmp", Resume())
        wait_for(lambda: node(h, "sup").find(("tmp",)) is None, what="tmp removed")
        # permanent, normal exit: restarted
        h.control("sup/perm", Shutdown())
        wait_for(lambda: node(h, "sup/perm").restarts == 1
                 and node(h, "sup/perm").state == "running", what="perm restarted")


@pytest.mark.req("REQ_0315")
@pytest.mark.parametrize("mode", MODES)
def test_transient_restarted_after_crash(mode, admin_port):
    spec = ChildSpec(id="sup", start=SupervisorSpec(intensity=5, children=[
        ChildSpec(id="tr", start=Worker, restart="transient")]))
    with open_system(mode, admin_port) as h:
        h.start_child(spec)
        h.control("sup/tr", Resume())
        wait_for(lambda: node(h, "sup/tr").restarts == 1
                 and node(h, "sup/tr").state == "running", what="tr restarted")


@pytest.mark.req("REQ_0316")
def test_kill_9_of_a_child_process_is_restarted(admin_port):
    with open_system("multiprocess", admin_port) as h:
        h.start_child(three("one_for_one"))
        b = node(h, "sup/b")
        assert b.pid and b.pid != os.getpid()
        os.kill(b.pid, signal.SIGKILL)
        wait_for(lambda: (n := node(h, "sup/b")).pid not in (None, b.pid)
                 and n.state == "running", what="b restarted")
        assert "exit:b:killed" in node(h, "sup").events
        assert node(h, "sup/b").restarts == 1
        assert h.control("sup/b", Pause()).correlation_id


@pytest.mark.req("REQ_0317")
@pytest.mark.parametrize("mode", MODES)
def test_backoff_delays_restarts(mode, admin_port):
    spec = ChildSpec(id="sup", start=SupervisorSpec(
        intensity=10, backoff=Backoff(initial_s=0.3, max_s=2.0, jitter=0.0, reset_after_s=30),
        children=[ChildSpec(id="w", start=Worker)]))
    with open_system(mode, admin_port) as h:
        h.start_child(spec)
        delays = []
        for k in range(2):
            t0 = time.monotonic()
            h.control("sup/w", Resume())
            wait_for(lambda k=k: (n := node(h, "sup/w")).state == "running" and n.restarts == k + 1,
                     what="restart")
            delays.append(time.monotonic() - t0)
        # 0.3 s then 0.6 s (doubling); generous upper bounds on a noisy machine
        assert 0.3 <= delays[0] < 3.0
        assert 0.6 <= delays[1] < 4.0


@pytest.mark.req("REQ_0318")
@pytest.mark.parametrize("mode", MODES)
def test_status_tree_reports_states_and_counts(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(three("one_for_one"))
        crash_and_settle(h, "sup/c")
        tree = h.tree()
        assert tree.id == "root" and tree.kind == "supervisor"
        sup = tree.find(("sup",))
        assert sup.strategy == "one_for_one"
        assert [(c.id, c.state, c.restarts) for c in sup.children] == [
            ("a", "running", 0), ("b", "running", 0), ("c", "running", 1)]
        nf = h.control("sup/zz", Pause())
        assert isinstance(nf, ErrorReply) and nf.kind is ErrorKind.NOT_FOUND
