"""The ``Supervisor`` actor: OTP supervision semantics on Thespian.

A supervisor receives its :class:`~taktora.actors.control.supervision.SupervisorSpec` in
``args["spec"]`` and then:

- starts its children in list order, one at a time: the next child is created only after the
  previous one reported :class:`ChildStarted` (its ``on_start`` returned; a nested supervisor
  reports once its own children are up);
- stops children in reverse order, one at a time, waiting for each exit (``shutdown_s``, then
  the child's process is killed on multi-process bases; a ``brutal_kill`` child's process is
  killed at once, in-process it is sent ``ActorExitRequest`` and forgotten at once);
- treats as a crash: a handler or hook of a child raising (the child sends
  :class:`ChildCrashed`), a nested supervisor giving up, and a child's death without notice
  (Thespian's ``ChildActorExited`` with no :class:`ChildStopping` first: ``kill -9`` of the
  child's process). A child exiting after :class:`ChildStopping` exited normally;
- restarts per strategy and restart type; more than ``intensity`` restarts within
  ``period_s`` stops every child (reverse order) and escalates: a nested supervisor reports
  :class:`ChildCrashed` to its parent (which restarts it per its own spec); the root supervisor
  tells its owner (``args["owner"]``, an address, if given) with :class:`ChildCrashed` and
  stays, childless, answering every later request (a routed one too) with
  ``ErrorReply(REJECTED)``: ``supervisor 'root' gave up: REASON; restart the system`` (it
  tells its owner when the actor system is shut down under it, too). Requests still waiting
  for the supervisor (``AddChild``, ``WaitIdle``, the OTP requests) are answered with
  ``ErrorReply(REJECTED)`` naming the reason as soon as it begins to exit;
- answers :class:`GetTree` with the tree (ids, states, restart counts, recent events), routes
  :class:`Route` messages to descendants, and pushes its subtree to its parent after changes;
- answers OTP's child API (:mod:`taktora.actors.control.children`: which/count/terminate/
  restart/delete/start child).

A supervisor that never got its :class:`Supervised` message (a stray ``createActor`` of the
class) answers every request with ``ErrorReply(REJECTED)`` saying so.

All of it runs on the supervisor's actor thread, event-driven: nothing blocks, waits are
timers or replies. Its log (``events`` in the tree) records ``start:ID``, ``stop:ID``,
``exit:ID:REASON`` and ``escalate:REASON`` in the order they happened.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import logging
import os
import random
import signal
import time
from typing import Any

import attrs
from taktora.actors.control.base import TaktoraActor, handles
from taktora.actors.control.children import CHILD_REQUESTS, ChildOps, ChildRecord
from taktora.actors.control.messages import (
    ChildCrashed,
    ChildInfo,
    ChildStarted,
    ChildStopping,
    ControlMessage,
    ErrorKind,
    ErrorReply,
    GetStats,
    GetTree,
    Route,
    Shutdown,
    StatsReply,
    Supervised,
    TreeReply,
    TreeUpdate,
)
from taktora.actors.control.supervision import ChildSpec, Restart, Strategy, SupervisorSpec
from taktora.actors.errors import ControlError, SupervisorError
from taktora.transport.validators import Checks
from thespian.actors import ActorExitRequest

log = logging.getLogger(__name__)
_v = Checks(ControlError)

EVENT_LOG_LEN = 200


@attrs.frozen(kw_only=True)
class AddChild(ControlMessage):
    """Append a child to a running supervisor and start it (Ack once it is up)."""

    spec: ChildSpec = attrs.field(validator=_v.instance(ChildSpec))


@attrs.frozen(kw_only=True)
class WaitIdle(ControlMessage):
    """Ack once the supervisor has no start/stop/backoff operation in progress."""


def resolve_child(spec: ChildSpec) -> type:
    """The actor class a child spec starts: :class:`Supervisor` for a nested supervisor spec,
    the class itself, or the class a ``"module:Class"`` string names (imported here, on the
    supervisor's actor thread).

    Raises :class:`SupervisorError` if the module or class cannot be found.
    """
    if isinstance(spec.start, SupervisorSpec):
        # a SupervisorSpec subclass may name a Supervisor subclass (e.g. the gateway group)
        return getattr(spec.start, "supervisor_class", Supervisor)
    if isinstance(spec.start, type):
        return spec.start
    module, _, name = spec.start.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise SupervisorError(f"child {spec.id!r}: cannot import {spec.start!r}: {exc}") from exc
    if not isinstance(cls, type):
        raise SupervisorError(f"child {spec.id!r}: {spec.start!r} is not a class")
    return cls


class Supervisor(TaktoraActor, ChildOps):
    """Supervises an ordered list of children (see the module docstring for the semantics)."""

    announce_on_start = False

    def on_start(self) -> None:
        spec = self.args.get("spec")
        if not isinstance(spec, SupervisorSpec):
            raise SupervisorError(f"supervisor {self.name!r}: args['spec'] must be a "
                                  f"SupervisorSpec, got {type(spec).__name__}")
        self.spec = spec
        self.children = [ChildRecord(c) for c in spec.children]
        self.ops: collections.deque[tuple[str, Any]] = collections.deque()
        self.waiting: tuple[str, str] | None = None
        self.restart_times: collections.deque[float] = collections.deque()
        self.events: collections.deque[str] = collections.deque(maxlen=EVENT_LOG_LEN)
        self.idle_waiters: list[tuple[ControlMessage, Any]] = []
        self.exiting = False
        self.gave_up: str | None = None  # the reason, once it exceeded its intensity
        self.start_failures: dict[str, str] = {}  # why a StartChild / RestartChild failed
        self.exit_mark = 0
        self.rng = random.Random()
        self._last_pushed: ChildInfo | None = None
        for c in self.children:
            self.ops.append(("start", c.spec.id))
        self._pump()

    def dispatch(self, msg: Any, sender: Any) -> None:
        """The base's dispatch, once the supervisor has its spec and while it has not given up
        (actor thread). A supervisor that gave up answers every request (a :class:`Route`
        included) with ``ErrorReply(REJECTED)`` naming the reason; the supervision protocol
        (its children's notices) still reaches its handlers."""
        if not hasattr(self, "spec"):  # created without Supervised: there is no tree to show
            self._reply_error(msg, sender, ErrorKind.REJECTED,
                              f"supervisor {self.name!r} is not initialised (it got no "
                              f"Supervised message): not a running taktora supervisor")
            return
        if self.gave_up is not None and isinstance(msg, ControlMessage):
            self.reject_given_up(msg, sender)
            return
        super().dispatch(msg, sender)

    # ---- queries and control -----------------------------------------------------------------
    def tree(self) -> ChildInfo:
        """This supervisor's subtree as a value."""
        return ChildInfo(id=self.name, state="exiting" if self.exiting else "running",
                         kind="supervisor", strategy=self.spec.strategy.value,
                         children=tuple(c.info() for c in self.children),
                         events=tuple(self.events), pid=os.getpid(), address=str(self.myAddress))

    @handles(GetTree)
    def _get_tree(self, msg: GetTree, sender: Any) -> TreeReply:
        return TreeReply(correlation_id=msg.correlation_id, tree=self.tree())

    @handles(GetStats)
    def _get_stats(self, msg: GetStats, sender: Any) -> StatsReply:
        return StatsReply(correlation_id=msg.correlation_id, source=self.name, stats={
            "children": len(self.children),
            "running": sum(c.state == "running" for c in self.children),
            "restarts": sum(c.restarts for c in self.children),
            "restarts_in_period": len(self.restart_times),
            "stale_timers": self.stale_timers,
        })

    @handles(Route)
    def _route(self, msg: Route, sender: Any) -> None:
        reply_to = sender if msg.reply_to is None else msg.reply_to
        child = self._find(msg.path[0])
        if child is None or child.address is None or child.state != "running":
            state = "no" if child is None else f"{child.state}, not running,"
            self.send(reply_to, ErrorReply(
                correlation_id=msg.message.correlation_id, kind=ErrorKind.NOT_FOUND,
                message_type=type(msg.message).__name__,
                detail=f"supervisor {self.name!r} has {state} child {msg.path[0]!r}"))
            return
        self.send(child.address, Route(path=msg.path[1:], message=msg.message, reply_to=reply_to,
                                       correlation_id=msg.correlation_id))

    @handles(*CHILD_REQUESTS)
    def _child_request(self, msg: ControlMessage, sender: Any) -> Any:
        return self.child_op(msg, sender)

    @handles(AddChild)
    def _add_child(self, msg: AddChild, sender: Any) -> None:
        if self.exiting:
            raise ControlError(f"supervisor {self.name!r} is shutting down")
        if self._find(msg.spec.id) is not None:
            raise ControlError(f"already_present: supervisor {self.name!r} already has a child "
                               f"{msg.spec.id!r}: pick another id, or delete that one first")
        self.children.append(ChildRecord(msg.spec))
        self.ops.append(("start", msg.spec.id))
        self.idle_waiters.append((msg, sender))
        self._pump()

    @handles(WaitIdle)
    def _wait_idle(self, msg: WaitIdle, sender: Any) -> None:
        self.idle_waiters.append((msg, sender))
        self._pump()

    @handles(Shutdown)
    def _shutdown(self, msg: Shutdown, sender: Any) -> None:
        """Stop every child in reverse order, then exit normally.

        The Ack's detail lists the children in the order they stopped: ``"stopped: c,b,a"``.
        """
        self._begin_exit(f"supervisor {self.name!r} is shutting down")
        self.ops.append(("exit_normal", (msg, sender)))
        self._pump()

    # ---- supervision protocol ----------------------------------------------------------------
    @handles(ChildStarted)
    def _child_started(self, msg: ChildStarted, sender: Any) -> None:
        child = self._find(msg.child_id)
        if child is None or child.state != "starting":
            return
        child.state = "running"
        child.pid = msg.pid
        child.up_since = time.monotonic()
        child.otp_start = None
        if self.waiting == ("start", child.spec.id):
            self.waiting = None
        self.on_child_up(child.spec.id)
        self._pump()

    @handles(ChildCrashed)
    def _child_crashed(self, msg: ChildCrashed, sender: Any) -> None:
        child = self._find(msg.child_id)
        if child is None or child.address is None:
            return
        log.warning("supervisor %s: child %s crashed: %s", self.name, msg.child_id, msg.reason)
        child.exit_note = msg.reason
        self.send(child.address, ActorExitRequest())

    @handles(ChildStopping)
    def _child_stopping(self, msg: ChildStopping, sender: Any) -> None:
        child = self._find(msg.child_id)
        if child is not None:
            child.exit_note = "normal"

    @handles(TreeUpdate)
    def _tree_update(self, msg: TreeUpdate, sender: Any) -> None:
        child = self._find(msg.child_id)
        if child is not None:
            child.tree = msg.tree
            self._push_tree()

    def on_child_exited(self, msg: Any) -> None:
        child = next((c for c in self.children if c.address is not None
                      and c.address == msg.childAddress), None)
        if child is None:
            return
        cid = child.spec.id
        child.address = None
        child.pid = None
        child.tree = None
        if child.expected_exit:
            self._stopped(child)
        else:
            note = child.exit_note or "killed"
            child.exit_note = None
            if self.waiting == ("start", cid):
                self.waiting = None
            self.on_child_down(cid, note, abnormal=note != "normal")
            if child.otp_start is not None and child.state == "starting":
                self.events.append(f"exit:{cid}:{note}")
                self.otp_start_failed(child, note)  # OTP: a failed start is not restarted
            else:
                self._child_failed(child, abnormal=note != "normal", reason=note)
        self._pump()

    def on_child_down(self, child_id: str, reason: str, *, abnormal: bool) -> None:
        """A child exited without being asked to (``reason``: its crash reason, ``"normal"``
        or ``"killed"`` for a death without notice, e.g. ``kill -9``); called before the
        restart decision, on the actor thread. Default: nothing. A subclass tells whoever
        watches that child (the gateway group tells its health monitor)."""

    def on_child_up(self, child_id: str) -> None:
        """A child reported started (actor thread). Default: nothing."""

    def child_args(self, child_id: str, args: dict[str, Any]) -> dict[str, Any]:
        """The args the child ``child_id`` starts with (``args``: its spec's). A subclass may
        add what only exists at run time, e.g. the addresses of siblings started before it.
        Runs on the actor thread at every (re)start of the child."""
        return args

    def on_timer(self, name: str, data: Any) -> None:
        if name == "backoff" and self.waiting == ("delay", ""):
            self.waiting = None
            self._pump()
        elif name.startswith("kill:"):
            child = self._find(name[5:])
            if child is None or child.address is None:
                return
            if not self._kill(child, f"did not stop within {child.spec.shutdown_s:.1f} s"):
                self._forget(child)  # same process (in-process base): nothing to kill
                self._pump()

    def _kill(self, child: ChildRecord, why: str) -> bool:
        """SIGKILL the child's process if it is another process with a known pid (its exit
        then arrives as ``ChildActorExited``); False if there is no such process."""
        if child.pid is None or child.pid == os.getpid():
            return False
        log.log(logging.INFO if child.spec.brutal_kill else logging.WARNING,
                "supervisor %s: child %s %s: killing pid %d", self.name, child.spec.id, why,
                child.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        return True

    def _forget(self, child: ChildRecord) -> None:
        """Consider a child of this process gone without waiting for its exit."""
        log.info("supervisor %s: forgetting child %s without waiting for its exit", self.name,
                 child.spec.id)
        child.address = None
        child.pid = None
        child.tree = None
        self._stopped(child)

    def _stopped(self, child: ChildRecord) -> None:
        """A child this supervisor stopped is gone (it exited, was killed or forgotten)."""
        cid = child.spec.id
        child.expected_exit = False
        child.state = "stopped"
        self.cancel_timer(f"kill:{cid}")
        self.events.append(f"stopped:{cid}")
        if child.spec.restart is Restart.TEMPORARY and child in self.children:
            self.children.remove(child)
        if self.waiting == ("stop", cid):
            self.waiting = None

    def on_stop(self) -> None:
        # Thespian is taking this supervisor down: best effort, reverse order, no waiting.
        if self.supervisor is None and not getattr(self, "exiting", True):
            self._tell_owner("was stopped from outside its owner (an actor system shutdown, "
                             "e.g. taktora stop --force)")
        if hasattr(self, "spec"):
            self.exiting = True  # children's exits from now on are expected: no restarts
        for child in reversed(getattr(self, "children", [])):
            if child.address is not None:
                child.expected_exit = True
                self.send(child.address, ActorExitRequest())

    # ---- the engine ----------------------------------------------------------------------------
    def _find(self, child_id: str) -> ChildRecord | None:
        return next((c for c in self.children if c.spec.id == child_id), None)

    def _child_failed(self, child: ChildRecord, *, abnormal: bool, reason: str) -> None:
        cid = child.spec.id
        self.events.append(f"exit:{cid}:{reason}")
        restart = child.spec.restart
        if restart is Restart.TEMPORARY:
            self.children.remove(child)
            return
        if restart is Restart.TRANSIENT and not abnormal:
            child.state = "stopped"
            return
        child.state = "failed"
        if self.exiting:
            return
        now = time.monotonic()
        self.restart_times.append(now)
        while self.restart_times and self.restart_times[0] < now - self.spec.period_s:
            self.restart_times.popleft()
        if len(self.restart_times) > self.spec.intensity:
            self._escalate(f"{len(self.restart_times)} restarts within {self.spec.period_s} s "
                           f"(intensity {self.spec.intensity}); last: {cid}: {reason}")
            return
        idx = self.children.index(child)
        if self.spec.strategy is Strategy.ONE_FOR_ONE:
            affected = [child]
        elif self.spec.strategy is Strategy.ONE_FOR_ALL:
            affected = list(self.children)
        else:
            affected = self.children[idx:]
        for other in reversed(affected):
            if other is not child:
                self.ops.append(("stop", other.spec.id))
        delay = self._backoff_delay(child, now)
        if delay > 0:
            child.state = "backoff"
            self.ops.append(("delay", delay))
        for other in affected:
            if other is child or other.spec.restart is not Restart.TEMPORARY:
                other.restarts += 1
                self.ops.append(("start", other.spec.id))

    def _backoff_delay(self, child: ChildRecord, now: float) -> float:
        b = self.spec.backoff
        if b is None:
            return 0.0
        reset_after = b.reset_after_s if b.reset_after_s is not None else b.max_s
        if child.up_since is not None and now - child.up_since >= reset_after:
            child.consecutive = 0
        child.consecutive += 1
        return b.delay(child.consecutive, self.rng)

    def _begin_exit(self, why: str) -> None:
        self.exiting = True
        self.exit_mark = len(self.events)
        self.reject_pending(why)  # a TerminateChild / StartChild ... that will not complete now
        self.ops.clear()
        waiters, self.idle_waiters = self.idle_waiters, []
        for msg, sender in waiters:  # an AddChild / WaitIdle that will never complete now
            self._reply_error(msg, sender, ErrorKind.REJECTED, why)
        if self.waiting is not None and self.waiting[0] == "delay":
            self.cancel_timer("backoff")
            self.waiting = None
        for c in reversed(self.children):
            if c.address is not None:
                self.ops.append(("stop", c.spec.id))

    def _escalate(self, reason: str) -> None:
        log.error("supervisor %s gives up: %s", self.name, reason)
        self.events.append(f"escalate:{reason}")
        self._begin_exit(self.gave_up_detail(reason))
        self.gave_up = reason
        self.ops.append(("escalate", reason))

    def _pump(self) -> None:
        while self.waiting is None and self.ops:
            op, arg = self.ops.popleft()
            if op == "start":
                self._start_child(arg)
            elif op == "stop":
                self._stop_child(arg)
            elif op == "delay":
                self.start_timer("backoff", arg)
                self.waiting = ("delay", "")
            elif op == "escalate":
                self._push_tree()
                if self.supervisor is not None:
                    self.crash(f"escalated: {arg}")
                else:  # the root stays, answering every request with the reason (dispatch)
                    self._tell_owner(f"gave up: {arg}")
                return
            elif op == "reply":  # an OTP request whose operation completed
                msg, sender, result = arg
                if sender is not None:
                    self.send(sender, result())
            elif op == "exit_normal":
                msg, sender = arg
                self._push_tree()
                order = [e[8:] for e in list(self.events)[self.exit_mark:]
                         if e.startswith("stopped:")]
                self.send(sender, self.ack(msg, "stopped: " + ",".join(order)))
                self.exit_normally()
                return
        # push the tree before announcing: the parent then has it when it reports "started"
        self._push_tree()
        if self.waiting is None and not self.ops:
            if not self._announced and not self.exiting:
                self.announce_started()
            waiters, self.idle_waiters = self.idle_waiters, []
            for msg, sender in waiters:
                self.send(sender, self.ack(msg, "idle"))

    def _start_child(self, child_id: str) -> None:
        child = self._find(child_id)
        if child is None or child.address is not None:
            return
        try:
            cls = resolve_child(child.spec)
        except SupervisorError as exc:
            log.error("supervisor %s: %s", self.name, exc)
            self.events.append(f"exit:{child_id}:{exc}")
            child.state = "failed"
            if child.otp_start is not None:
                self.otp_start_failed(child, str(exc))
            return
        args = ({"spec": child.spec.start} if isinstance(child.spec.start, SupervisorSpec)
                else self.child_args(child_id, dict(child.spec.args)))
        child.address = self.createActor(cls)
        child.state = "starting"
        child.exit_note = None
        self.events.append(f"start:{child_id}")
        self.send(child.address, Supervised(supervisor=self.myAddress, child_id=child_id,
                                            args=args))
        if issubclass(cls, TaktoraActor):
            self.waiting = ("start", child_id)
        else:  # a plain Thespian actor reports nothing: it runs once created
            child.state = "running"
            child.up_since = time.monotonic()
            child.otp_start = None

    def _stop_child(self, child_id: str) -> None:
        child = self._find(child_id)
        if child is None or child.address is None:
            return
        child.expected_exit = True
        child.state = "stopping"
        self.events.append(f"stop:{child_id}")
        if child.spec.brutal_kill:
            if self._kill(child, "is brutal_kill"):
                self.waiting = ("stop", child_id)  # its ChildActorExited follows at once
                return
            if child.pid is not None:  # in-process: ask it to exit, and forget it at once
                self.send(child.address, ActorExitRequest())
                self._forget(child)
                return
        self.send(child.address, ActorExitRequest())
        self.start_timer(f"kill:{child_id}", child.spec.shutdown_s)
        self.waiting = ("stop", child_id)

    def _tell_owner(self, reason: str) -> None:
        """A root supervisor is going away without being asked to: tell its owner (if any)."""
        owner = self.args.get("owner")
        if owner is not None:
            self.send(owner, ChildCrashed(child_id=self.name, reason=reason))

    def _push_tree(self) -> None:
        if self.supervisor is None:
            return
        tree = self.tree()
        if tree != self._last_pushed:
            self._last_pushed = tree
            self.send(self.supervisor, TreeUpdate(child_id=self.child_id, tree=tree))


