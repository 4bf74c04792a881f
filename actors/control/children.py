"""OTP's supervisor API on every taktora supervisor: the messages and the supervisor's share.

Requests (answered by the supervisor that receives them; send them to a nested supervisor with
:class:`~taktora.actors.control.messages.Route`):

- :class:`WhichChildren` -> :class:`ChildrenReply`: one :class:`ChildEntry` per child spec, in
  start order (OTP's ``which_children``);
- :class:`CountChildren` -> :class:`CountReply`: ``specs``, ``active``, ``supervisors``,
  ``workers`` (OTP's ``count_children``);
- :class:`TerminateChild`: stop a child; its spec stays (state ``stopped``) and the supervisor
  does not restart it, except that a later one_for_all / rest_for_one restart that covers it
  starts it again, as in OTP. A temporary child's spec is deleted. A known child that is not
  running is answered with Ack at once (OTP's ``ok``);
- :class:`RestartChild`: start a terminated child again (``running`` if it runs,
  ``restarting`` while a restart of it is pending);
- :class:`DeleteChild`: remove a terminated child's spec (``running`` / ``restarting`` as
  above);
- :class:`StartChild`: append a spec and start it (``already_present`` if a terminated child
  has that id, ``already_started`` if it runs).

Replies come once the operation completed (the child is up, or stopped), never earlier; the
supervisor never blocks meanwhile: each operation is an entry of its ops queue followed by a
``"reply"`` entry. Errors are :class:`~taktora.actors.control.messages.ErrorReply`: kind
``not_found`` for an unknown id, ``rejected`` otherwise, the detail starting with OTP's error
atom and saying what to do. A start that fails (the child crashes or dies before it reported
started, or its class cannot be imported) is answered ``rejected`` with the reason and is not a
crash of the supervisor: no restart, nothing counted against its intensity; ``StartChild``
then discards the spec and ``RestartChild`` leaves it (state ``failed``), as OTP does.
(``AddChild``, the handle's ``start_child``, differs on purpose: there a failing start is a
crash handled by the strategy, so a gateway that cannot start makes its supervisor give up.)

Importing this module does not import Thespian: :class:`ChildOps` only queues operations that
the :class:`~taktora.actors.control.supervisor.Supervisor` carries out.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from taktora.actors.control.messages import (
    ChildInfo,
    ControlMessage,
    ErrorKind,
    ErrorReply,
    Reply,
    Route,
)
from taktora.actors.control.supervision import ChildSpec, Restart
from taktora.actors.errors import ControlError
from taktora.transport.validators import Checks, to_tuple

_v = Checks(ControlError)

_child_id = _v.predicate(lambda v: isinstance(v, str) and bool(v) and "/" not in v,
                         "a non-empty child id without '/'")


# --- requests ---------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class WhichChildren(ControlMessage):
    """Ask a supervisor for its children (answered with :class:`ChildrenReply`)."""


@attrs.frozen(kw_only=True)
class CountChildren(ControlMessage):
    """Ask a supervisor for its child counts (answered with :class:`CountReply`)."""


@attrs.frozen(kw_only=True)
class TerminateChild(ControlMessage):
    """Stop the child ``child_id``; its spec stays unless it is temporary (Ack once stopped)."""

    child_id: str = attrs.field(validator=_child_id)


@attrs.frozen(kw_only=True)
class RestartChild(ControlMessage):
    """Start the terminated child ``child_id`` again (Ack once it is up)."""

    child_id: str = attrs.field(validator=_child_id)


@attrs.frozen(kw_only=True)
class DeleteChild(ControlMessage):
    """Remove the spec of the terminated child ``child_id`` (Ack)."""

    child_id: str = attrs.field(validator=_child_id)


@attrs.frozen(kw_only=True)
class StartChild(ControlMessage):
    """Append ``spec`` to the supervisor's children and start it (Ack once it is up)."""

    spec: ChildSpec = attrs.field(validator=_v.instance(ChildSpec))


# --- replies ----------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class ChildEntry:
    """One child as :class:`WhichChildren` reports it.

    ``state``: starting, running, stopping, backoff, stopped or failed; ``kind``: worker or
    supervisor; ``restart``: permanent, transient or temporary; ``pid`` while it runs.
    """

    id: str = attrs.field(validator=_v.string(nonempty=True))
    state: str = attrs.field(validator=_v.string(nonempty=True))
    kind: str = attrs.field(validator=_v.one_of(("worker", "supervisor")))
    restart: str = attrs.field(validator=_v.one_of(tuple(r.value for r in Restart)))
    pid: int | None = attrs.field(default=None, validator=_v.optional(_v.integer(ge=1)))
    restarts: int = attrs.field(default=0, validator=_v.non_negative_int())


@attrs.frozen(kw_only=True)
class ChildrenReply(Reply):
    """The children of ``supervisor`` in start order."""

    supervisor: str = attrs.field(validator=_v.string())
    children: tuple[ChildEntry, ...] = attrs.field(
        default=(), converter=to_tuple, validator=_v.tuple_of(_v.instance(ChildEntry), "ChildEntry"))


@attrs.frozen(kw_only=True)
class CountReply(Reply):
    """OTP's ``count_children``: ``specs`` (child specs, running or not), ``active`` (children
    with a live actor), ``supervisors`` / ``workers`` (specs of each kind, running or not)."""

    supervisor: str = attrs.field(validator=_v.string())
    specs: int = attrs.field(validator=_v.non_negative_int())
    active: int = attrs.field(validator=_v.non_negative_int())
    supervisors: int = attrs.field(validator=_v.non_negative_int())
    workers: int = attrs.field(validator=_v.non_negative_int())


#: Every request :class:`ChildOps` answers.
CHILD_REQUESTS = (WhichChildren, CountChildren, TerminateChild, RestartChild, DeleteChild,
                  StartChild)


# --- the supervisor's record of a child -------------------------------------------------------
class ChildRecord:
    """A supervisor's mutable record of one child (private to the supervisor's actor thread)."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.address: Any = None
        self.state = "stopped"
        self.restarts = 0
        self.pid: int | None = None
        self.exit_note: str | None = None  # "normal" or a crash reason, told before the exit
        self.expected_exit = False  # the supervisor itself is stopping it
        self.tree: ChildInfo | None = None
        self.consecutive = 0
        self.up_since: float | None = None
        #: "start" / "restart" while a StartChild / RestartChild waits for this child to come up
        self.otp_start: str | None = None

    @property
    def kind(self) -> str:
        """``"supervisor"`` or ``"worker"``."""
        return "supervisor" if self.spec.is_supervisor else "worker"

    def info(self) -> ChildInfo:
        """This child as a node of the supervision tree."""
        base = ChildInfo(id=self.spec.id, state=self.state, restarts=self.restarts,
                         kind=self.kind, restart=self.spec.restart.value,
                         address=str(self.address) if self.address is not None else "",
                         pid=self.pid)
        if self.spec.is_supervisor and self.tree is not None and self.address is not None:
            return attrs.evolve(base, kind=self.tree.kind, strategy=self.tree.strategy,
                                children=self.tree.children,
                                events=self.tree.events)
        return base

    def entry(self) -> ChildEntry:
        """This child as :class:`WhichChildren` reports it."""
        return ChildEntry(id=self.spec.id, state=self.state, kind=self.kind,
                          restart=self.spec.restart.value, pid=self.pid, restarts=self.restarts)


class ChildOps:
    """The OTP child operations of :class:`~taktora.actors.control.supervisor.Supervisor`.

    Everything runs on the supervisor's actor thread and never blocks: a request becomes ops
    queue entries and its reply is sent when the queue reaches the ``"reply"`` entry after them.
    A ``ControlError`` raised here becomes ``ErrorReply(REJECTED)`` (the base's rule); nothing
    else is raised on purpose.
    """

    if TYPE_CHECKING:  # provided by Supervisor / TaktoraActor
        supervisor: Any
        children: list[ChildRecord]
        ops: collections.deque[tuple[str, Any]]
        exiting: bool
        gave_up: str | None
        start_failures: dict[str, str]

        @property
        def name(self) -> str: ...
        def send(self, target: Any, msg: Any) -> None: ...
        def ack(self, msg: ControlMessage, detail: str = "") -> Reply: ...
        def _find(self, child_id: str) -> ChildRecord | None: ...
        def _pump(self) -> None: ...

    def child_op(self, msg: ControlMessage, sender: Any) -> Reply | None:
        """Carry out one of :data:`CHILD_REQUESTS`; the immediate reply, or None when the reply
        follows once the operation completed."""
        if isinstance(msg, WhichChildren):
            return ChildrenReply(correlation_id=msg.correlation_id, supervisor=self.name,
                                 children=tuple(c.entry() for c in self.children))
        if isinstance(msg, CountChildren):
            sups = sum(c.spec.is_supervisor for c in self.children)
            return CountReply(correlation_id=msg.correlation_id, supervisor=self.name,
                              specs=len(self.children), supervisors=sups,
                              workers=len(self.children) - sups,
                              active=sum(c.address is not None for c in self.children))
        if isinstance(msg, StartChild):
            self._otp_start_child(msg, sender)
            return None
        assert isinstance(msg, TerminateChild | RestartChild | DeleteChild)
        child = self._find(msg.child_id)
        if child is None:
            known = ", ".join(c.spec.id for c in self.children) or "none"
            return ErrorReply(correlation_id=msg.correlation_id, kind=ErrorKind.NOT_FOUND,
                              message_type=type(msg).__name__,
                              detail=f"not_found: supervisor {self.name!r} has no child "
                                     f"{msg.child_id!r} (its children: {known})")
        self._check_open(msg)
        if isinstance(msg, TerminateChild):
            return self._terminate(child, msg, sender)
        self._check_terminated(child, msg)
        if isinstance(msg, DeleteChild):
            self.children.remove(child)
            return self.ack(msg, f"deleted {child.spec.id}")
        child.otp_start = "restart"
        self._queue_start(child, msg, sender)
        return None

    # ---- the operations ----------------------------------------------------------------------
    def _terminate(self, child: ChildRecord, msg: TerminateChild, sender: Any) -> Reply | None:
        cid = child.spec.id
        # a restart of it that is still pending (backoff, or queued behind other operations)
        # does not happen any more
        self.ops = collections.deque(op for op in self.ops if op != ("start", cid))
        if child.address is None:
            if child.spec.restart is Restart.TEMPORARY:
                self.children.remove(child)
            elif child.state in ("backoff", "failed"):
                child.state = "stopped"
            return self.ack(msg, f"terminated {cid} (it was not running)")
        self.ops.append(("stop", cid))
        self._queue_reply(msg, sender, lambda: self.ack(msg, f"terminated {cid}"))
        self._pump()
        return None

    def _otp_start_child(self, msg: StartChild, sender: Any) -> None:
        self._check_open(msg)
        cid = msg.spec.id
        existing = self._find(cid)
        if existing is not None:
            if existing.address is not None:
                raise ControlError(f"already_started: supervisor {self.name!r} already runs a "
                                   f"child {cid!r}: use another id, or terminate and delete it "
                                   f"first")
            raise ControlError(f"already_present: supervisor {self.name!r} already has a spec "
                               f"for child {cid!r} (not running): restart it with RestartChild "
                               f"or remove it with DeleteChild first")
        child = ChildRecord(msg.spec)
        child.otp_start = "start"
        self.children.append(child)
        self._queue_start(child, msg, sender)

    def _queue_start(self, child: ChildRecord, msg: ControlMessage, sender: Any) -> None:
        cid, verb = child.spec.id, child.otp_start

        def result() -> Reply:
            now = self._find(cid)
            if now is not None and now.state == "running":
                return self.ack(msg, f"{verb}ed {cid}")
            why = self.start_failures.pop(cid, f"it is {now.state if now else 'gone'}")
            fate = ("its spec was discarded" if verb == "start"
                    else "its spec stays: fix the cause and restart it, or delete it")
            return ErrorReply(correlation_id=msg.correlation_id, kind=ErrorKind.REJECTED,
                              message_type=type(msg).__name__,
                              detail=f"child {cid!r} of supervisor {self.name!r} failed to "
                                     f"{verb}: {why}; {fate}")

        self.ops.append(("start", cid))
        self._queue_reply(msg, sender, result)
        self._pump()

    def _queue_reply(self, msg: ControlMessage, sender: Any, result: Callable[[], Reply]) -> None:
        self.ops.append(("reply", (msg, sender, result)))

    def _check_open(self, msg: ControlMessage) -> None:
        if self.exiting:
            raise ControlError(f"shutting_down: supervisor {self.name!r} is stopping its "
                               f"children and exiting: {type(msg).__name__} not carried out")

    def _check_terminated(self, child: ChildRecord, msg: ControlMessage) -> None:
        cid = child.spec.id
        if child.address is not None:
            raise ControlError(f"running: child {cid!r} of supervisor {self.name!r} is "
                               f"{child.state}: terminate it first (TerminateChild)")
        if child.state == "backoff" or ("start", cid) in self.ops:
            raise ControlError(f"restarting: supervisor {self.name!r} is restarting child "
                               f"{cid!r}: wait until it runs, or terminate it first")

    # ---- hooks the Supervisor calls ----------------------------------------------------------
    def otp_start_failed(self, child: ChildRecord, reason: str) -> None:
        """``child`` (started for a StartChild / RestartChild) failed before it reported
        started: discard its spec (StartChild) or leave it failed (RestartChild); the reply
        entry already queued tells the requester why."""
        cid = child.spec.id
        self.start_failures[cid] = reason
        if child.otp_start == "start" and child in self.children:
            self.children.remove(child)
        else:
            child.state = "failed"
        child.otp_start = None

    def reject_pending(self, why: str) -> None:
        """Answer every queued reply entry with ``ErrorReply(REJECTED, why)`` (the supervisor
        is about to clear its queue: it exits or gave up)."""
        for op, arg in self.ops:
            if op == "reply":
                msg, sender, _ = arg
                self.send(sender, ErrorReply(correlation_id=msg.correlation_id,
                                             kind=ErrorKind.REJECTED,
                                             message_type=type(msg).__name__, detail=why))

    def gave_up_detail(self, reason: str) -> str:
        """The detail every request gets once this supervisor gave up."""
        what = ("restart the system" if self.supervisor is None
                else "its own supervisor restarts it or gives up in turn")
        return f"supervisor {self.name!r} gave up: {reason}; {what}"

    def reject_given_up(self, msg: Any, sender: Any) -> None:
        """Answer ``msg`` (a request; a Route is answered at its ``reply_to`` for the message it
        carries) with ``ErrorReply(REJECTED)`` saying that this supervisor gave up."""
        assert self.gave_up is not None
        reply_to = sender
        if isinstance(msg, Route):
            reply_to = sender if msg.reply_to is None else msg.reply_to
            msg = msg.message
        if reply_to is not None:
            self.send(reply_to, ErrorReply(correlation_id=msg.correlation_id,
                                           kind=ErrorKind.REJECTED,
                                           message_type=type(msg).__name__,
                                           detail=self.gave_up_detail(self.gave_up)))
