"""OTP's child API on a taktora supervisor, brutal kill, and a root that gave up
(REQ_0332..REQ_0338), on both bases."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from actorkit import MODES, Worker, node, open_system, wait_for
from taktora.actors.control.base import TaktoraActor
from taktora.actors.control.children import (
    ChildrenReply,
    CountChildren,
    CountReply,
    DeleteChild,
    RestartChild,
    StartChild,
    TerminateChild,
    WhichChildren,
)
from taktora.actors.control.messages import (
    Ack,
    ControlMessage,
    ErrorKind,
    ErrorReply,
    GetTree,
    Pause,
    Reply,
    Resume,
    Route,
    Shutdown,
)
from taktora.actors.control.supervision import ChildSpec, SupervisorSpec
from taktora.actors.control.supervisor import AddChild
from taktora.actors.errors import ControlError, SupervisorError
from taktora.system.bootstrap import ActorSystemHandle

pytestmark = pytest.mark.slow


class FailsToStart(TaktoraActor):
    """Every start raises in on_start."""

    def on_start(self) -> None:
        raise RuntimeError("cannot start (test)")


class FailsIfFlag(TaktoraActor):
    """on_start raises while the file ``args["flag"]`` exists."""

    def on_start(self) -> None:
        if os.path.exists(self.args["flag"]):
            raise RuntimeError("flag set (test)")


class SlowToStop(Worker):
    """on_stop blocks far longer than any test waits (a child that will not stop by itself)."""

    def on_stop(self) -> None:
        time.sleep(float(self.args.get("stop_s", 0.0)))


def gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (exited, or a zombie its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def sup(*children: ChildSpec, **kw: Any) -> ChildSpec:
    return ChildSpec(id="sup", start=SupervisorSpec(intensity=kw.pop("intensity", 5),
                                                    children=children, **kw))


def ok(reply: Reply) -> Reply:
    assert isinstance(reply, Ack | ChildrenReply | CountReply), reply
    return reply


def error(reply: Reply, kind: ErrorKind, *texts: str) -> ErrorReply:
    assert isinstance(reply, ErrorReply) and reply.kind is kind, reply
    for text in texts:
        assert text in reply.detail, reply.detail
    return reply


def which(h: ActorSystemHandle, path: str = "sup") -> dict[str, Any]:
    reply = ok(h.control(path, WhichChildren()))
    assert isinstance(reply, ChildrenReply)
    return {c.id: c for c in reply.children}


@pytest.mark.req("REQ_0332")
@pytest.mark.parametrize("mode", MODES)
def test_which_children_and_count_children(mode, admin_port):
    inner = ChildSpec(id="inner", start=SupervisorSpec(children=[ChildSpec(id="x", start=Worker)]))
    with open_system(mode, admin_port) as h:
        h.start_child(sup(ChildSpec(id="a", start=Worker),
                          ChildSpec(id="b", start=Worker, restart="transient"), inner))
        h.control("sup/b", Shutdown())  # transient, normal exit: stays, stopped
        wait_for(lambda: which(h)["b"].state == "stopped", what="b stopped")
        kids = which(h)
        assert list(kids) == ["a", "b", "inner"]
        assert (kids["a"].state, kids["a"].kind, kids["a"].restart) == ("running", "worker",
                                                                        "permanent")
        assert kids["a"].pid and kids["b"].pid is None
        assert (kids["inner"].kind, kids["inner"].state) == ("supervisor", "running")
        count = ok(h.control("sup", CountChildren()))
        assert isinstance(count, CountReply)
        assert (count.specs, count.active, count.supervisors, count.workers) == (3, 2, 1, 2)
        # the root answers too, directly and at an empty path
        assert [c.id for c in ok(h.call(h.root, WhichChildren())).children] == ["sup"]
        assert ok(h.control("", CountChildren())).specs == 1
        # a worker has no children to list
        error(h.control("sup/a", WhichChildren()), ErrorKind.UNKNOWN_MESSAGE)


@pytest.mark.req("REQ_0333", "REQ_0334")
@pytest.mark.parametrize("mode", MODES)
def test_terminate_keeps_the_spec_and_restart_starts_it_again(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(sup(*(ChildSpec(id=n, start=Worker) for n in "abc"),
                          strategy="rest_for_one"))
        old = node(h, "sup/b").address
        n_events = len(node(h, "sup").events)
        assert ok(h.control("sup", TerminateChild(child_id="b"))).detail == "terminated b"
        # the reply came after the stop: the child is stopped at once, not restarted, and its
        # siblings were not touched (terminating is not a failure: no strategy, no restart)
        kids = which(h)
        assert kids["b"].state == "stopped" and kids["b"].restarts == 0
        assert node(h, "sup").events[n_events:] == ("stop:b", "stopped:b")
        assert kids["c"].state == "running"
        error(h.control("sup/b", Pause()), ErrorKind.NOT_FOUND, "stopped")
        # terminating a child that is not running is fine (OTP: ok)
        assert "not running" in ok(h.control("sup", TerminateChild(child_id="b"))).detail
        assert ok(h.control("sup", RestartChild(child_id="b"))).detail == "restarted b"
        assert which(h)["b"].state == "running"  # up when the reply came
        assert node(h, "sup/b").address != old
        assert ok(h.control("sup/b", Pause())).correlation_id
        error(h.control("sup", RestartChild(child_id="b")), ErrorKind.REJECTED,
              "running:", "'b'", "terminate it first")
        error(h.control("sup", RestartChild(child_id="zz")), ErrorKind.NOT_FOUND,
              "not_found:", "'zz'", "a, b, c")
        error(h.control("sup", TerminateChild(child_id="zz")), ErrorKind.NOT_FOUND, "'zz'")


@pytest.mark.req("REQ_0333")
@pytest.mark.parametrize("mode", MODES)
def test_terminating_a_temporary_child_deletes_it(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(sup(ChildSpec(id="t", start=Worker, restart="temporary"),
                          ChildSpec(id="p", start=Worker)))
        ok(h.control("sup", TerminateChild(child_id="t")))
        assert list(which(h)) == ["p"]
        error(h.control("sup", RestartChild(child_id="t")), ErrorKind.NOT_FOUND)


@pytest.mark.req("REQ_0335")
@pytest.mark.parametrize("mode", MODES)
def test_delete_child_removes_a_terminated_spec_only(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(sup(ChildSpec(id="a", start=Worker), ChildSpec(id="b", start=Worker)))
        error(h.control("sup", DeleteChild(child_id="a")), ErrorKind.REJECTED,
              "running:", "'a'", "terminate it first")
        ok(h.control("sup", TerminateChild(child_id="a")))
        assert ok(h.control("sup", DeleteChild(child_id="a"))).detail == "deleted a"
        assert list(which(h)) == ["b"]
        error(h.control("sup", DeleteChild(child_id="a")), ErrorKind.NOT_FOUND, "'a'")
        # the id is free again
        ok(h.control("sup", StartChild(spec=ChildSpec(id="a", start=Worker))))
        assert list(which(h)) == ["b", "a"]


@pytest.mark.req("REQ_0336")
@pytest.mark.parametrize("mode", MODES)
def test_start_child_appends_starts_and_refuses_known_ids(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(sup(ChildSpec(id="a", start=Worker)))
        assert ok(h.control("sup", StartChild(spec=ChildSpec(id="n", start=Worker)))).detail \
            == "started n"
        assert [(c.id, c.state) for c in which(h).values()] == [("a", "running"), ("n", "running")]
        assert ok(h.control("sup/n", Pause())).correlation_id
        error(h.control("sup", StartChild(spec=ChildSpec(id="n", start=Worker))),
              ErrorKind.REJECTED, "already_started:", "'n'")
        ok(h.control("sup", TerminateChild(child_id="n")))
        error(h.control("sup", StartChild(spec=ChildSpec(id="n", start=Worker))),
              ErrorKind.REJECTED, "already_present:", "'n'", "RestartChild", "DeleteChild")
        # AddChild (the handle's start_child) refuses a known id the same way
        error(h.control("sup", AddChild(spec=ChildSpec(id="n", start=Worker))),
              ErrorKind.REJECTED, "already_present:", "'n'")


@pytest.mark.req("REQ_0336")
@pytest.mark.parametrize("mode", MODES)
def test_a_failed_start_is_answered_and_not_restarted(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(sup(ChildSpec(id="a", start=Worker), intensity=0))
        # StartChild: the spec is discarded, the supervisor does not count it as a crash
        error(h.control("sup", StartChild(spec=ChildSpec(id="bad", start=FailsToStart))),
              ErrorKind.REJECTED, "'bad'", "failed to start", "cannot start (test)",
              "discarded")
        error(h.control("sup", StartChild(spec=ChildSpec(id="imp", start="nowhere:Nothing"))),
              ErrorKind.REJECTED, "'imp'", "failed to start", "cannot import")
        assert list(which(h)) == ["a"]
        assert node(h, "sup").restarts == 0  # intensity 0, yet it did not give up
        assert node(h, "sup").state == "running"


@pytest.mark.req("REQ_0334")
@pytest.mark.parametrize("mode", MODES)
def test_a_failed_restart_keeps_the_spec(mode, admin_port, tmp_path):
    flag = tmp_path / "fail"
    with open_system(mode, admin_port) as h:
        h.start_child(sup(ChildSpec(id="f", start=FailsIfFlag, args={"flag": str(flag)}),
                          intensity=0))
        ok(h.control("sup", TerminateChild(child_id="f")))
        flag.touch()
        error(h.control("sup", RestartChild(child_id="f")), ErrorKind.REJECTED,
              "'f'", "failed to restart", "flag set", "its spec stays")
        assert which(h)["f"].state == "failed"
        assert node(h, "sup").restarts == 0  # intensity 0, yet it did not give up
        flag.unlink()
        ok(h.control("sup", RestartChild(child_id="f")))
        assert which(h)["f"].state == "running"


@pytest.mark.req("REQ_0337")
@pytest.mark.parametrize("mode", MODES)
def test_brutal_kill_does_not_wait(mode, admin_port):
    with open_system(mode, admin_port) as h:
        # shutdown_s is long and the child's on_stop would block: only brutal_kill is fast
        h.start_child(sup(ChildSpec(id="k", start=SlowToStop, shutdown_s=60.0, brutal_kill=True,
                                    args={"stop_s": 60.0 if mode == "multiprocess" else 0.0}),
                          ChildSpec(id="w", start=Worker)))
        pid = node(h, "sup/k").pid
        t0 = time.monotonic()
        ok(h.control("sup", TerminateChild(child_id="k"), timeout=20.0))
        assert time.monotonic() - t0 < 10.0
        assert which(h)["k"].state == "stopped"
        if mode == "multiprocess":
            assert pid and pid != os.getpid()
            wait_for(lambda: gone(pid), what="the killed process gone")
        ok(h.control("sup", RestartChild(child_id="k")))
        assert which(h)["k"].state == "running"


@pytest.mark.req("REQ_0337")
def test_brutal_kill_is_a_validated_bool_for_workers():
    with pytest.raises(SupervisorError, match="brutal_kill"):
        ChildSpec(id="k", start=Worker, brutal_kill="yes")  # type: ignore[arg-type]
    with pytest.raises(SupervisorError, match="brutal_kill is for workers"):
        ChildSpec(id="s", start=SupervisorSpec(), brutal_kill=True)
    with pytest.raises(ControlError, match="child_id"):
        TerminateChild(child_id="a/b")


def raw_ask(h: ActorSystemHandle, msg: ControlMessage, timeout: float = 10.0) -> Any:
    """Ask the root directly: the handle itself refuses requests to a root that gave up."""
    ctx = h._context()
    ctx.tell(h.root, msg)
    if h._pump is not None:
        h._pump.deliver_inline()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        reply = h._listen(ctx, left)
        if isinstance(reply, Reply) and reply.correlation_id == msg.correlation_id:
            return reply
    pytest.fail(f"no reply to {msg!r} from the root that gave up")


@pytest.mark.req("REQ_0338")
@pytest.mark.parametrize("mode", MODES)
def test_a_root_that_gave_up_answers_every_request(mode, admin_port):
    root = SupervisorSpec(intensity=0, children=[ChildSpec(id="w", start=Worker)])
    with open_system(mode, admin_port, root) as h:
        error(h.control("w", Resume()), ErrorKind.CRASHED)  # one restart > intensity 0
        reason = h.wait_failure(15.0)
        assert reason is not None and reason.startswith("gave up: ")
        pause = Pause()  # a Route is answered for the message it carries (as handle.control)
        requests = [GetTree(), Route(path=("w",), message=pause, correlation_id=pause.correlation_id),
                    WhichChildren(),
                    CountChildren(), TerminateChild(child_id="w"), RestartChild(child_id="w"),
                    DeleteChild(child_id="w"), StartChild(spec=ChildSpec(id="n", start=Worker)),
                    AddChild(spec=ChildSpec(id="n", start=Worker)), Shutdown()]
        for _ in range(2):  # and again: nothing it answers changes its state
            for msg in requests:
                reply = raw_ask(h, msg)
                inner = msg.message if isinstance(msg, Route) else msg
                assert reply.message_type == type(inner).__name__
                error(reply, ErrorKind.REJECTED, "supervisor 'root' gave up: ",
                      "1 restarts within", "last: w: RuntimeError: boom", "; restart the system")
        with pytest.raises(ControlError, match="gone"):
            h.tree()  # the handle still refuses at once


@pytest.mark.req("REQ_0338")
@pytest.mark.parametrize("mode", MODES)
def test_a_nested_supervisor_that_gives_up_rejects_what_waits(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(sup(ChildSpec(id="a", start=Worker), intensity=0))
        # AddChild: a failing start is a crash; one restart > intensity 0: sup gives up
        error(h.control("sup", AddChild(spec=ChildSpec(id="bad", start=FailsToStart)),
                        timeout=20.0),
              ErrorKind.REJECTED, "supervisor 'sup' gave up: ", "bad",
              "its own supervisor restarts it")
        wait_for(lambda: node(h, "sup").restarts == 1 and node(h, "sup").state == "running",
                 what="sup restarted by the root")
        assert list(which(h)) == ["a"]  # a fresh supervisor with its spec's children
