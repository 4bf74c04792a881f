"""``TaktoraActor``: a small base over Thespian's ``Actor``.

What it adds:

- dispatch by message class: methods marked ``@handles(SomeMessage)`` are found through the
  class's MRO (a subclass handler wins, a handler for a base class catches subclasses);
- replies: a handler returns a :class:`~taktora.actors.control.messages.Reply` (or None) and the base
  sends it to the sender; helpers build replies carrying the request's correlation id;
- lifecycle: ``on_start`` runs before the first message is handled, ``on_stop`` when the actor
  receives ``ActorExitRequest``;
- timers with a generation token: Thespian's ``wakeupAfter`` cannot be cancelled, so each named
  timer carries a generation and a wakeup whose generation is stale is dropped (and counted);
- failure rules: an unknown message class gets ``ErrorReply(UNKNOWN_MESSAGE)``, a non-taktora
  object ``ErrorReply(INVALID_MESSAGE)``, a handler raising :class:`ControlError`
  ``ErrorReply(REJECTED)``; in all three cases the actor keeps running. Any other exception is
  a *crash*: the sender gets ``ErrorReply(CRASHED)``, the supervisor (if any) gets
  :class:`ChildCrashed` and stops and restarts the actor; until then it drops further messages.

Threads: every hook and handler runs on the actor's own thread (its process's main thread on a
multi-process base, the in-process system's control thread on the in-process base), one
message at a time. Nothing here is thread-safe: a background thread of the actor reaches it with
``self.send(self.myAddress, msg)``.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import attrs
from taktora.actors.control.messages import (
    Ack,
    ChildCrashed,
    ChildStarted,
    ChildStopping,
    ControlMessage,
    ErrorKind,
    ErrorReply,
    Reply,
    Route,
    Supervised,
)
from taktora.actors.errors import ControlError
from thespian.actors import (
    Actor,
    ActorExitRequest,
    ChildActorExited,
    PoisonMessage,
    WakeupMessage,
)

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any, Any], Reply | None]
F = TypeVar("F", bound=Callable[..., Any])

_HANDLES_ATTR = "_taktora_handles"


def handles(*message_types: type) -> Callable[[F], F]:
    """Mark a method ``(self, msg, sender) -> Reply | None`` as the handler of these classes."""

    def mark(fn: F) -> F:
        setattr(fn, _HANDLES_ATTR, tuple(message_types))
        return fn

    return mark


@attrs.frozen
class TimerFired:
    """The payload of a taktora timer's wakeup (name + generation token + user data)."""

    name: str
    generation: int
    data: Any = None


class TaktoraActor(Actor):  # type: ignore[misc]  # thespian is untyped
    """Base of every taktora actor. Subclasses add ``@handles`` methods and override hooks."""

    _handler_table: ClassVar[dict[type, str]] = {}
    #: False for actors that announce themselves started later (a supervisor does so once its
    #: own children are up), by calling :meth:`announce_started`.
    announce_on_start: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[type, str] = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                for mtype in getattr(member, _HANDLES_ATTR, ()):
                    table[mtype] = name
        cls._handler_table = table

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started = False
        self.crashed = False
        self.supervisor: Any = None
        self.child_id: str = ""
        self.args: dict[str, Any] = {}
        self._timer_gen: dict[str, int] = {}
        self.stale_timers = 0
        self.dropped_after_crash = 0
        self._announced = False

    # ---- hooks (actor thread) ----------------------------------------------------------------
    def on_start(self) -> None:
        """Runs once, before the first message is handled (``self.args`` is set).

        Raising here is a crash: a supervised actor is restarted per its supervisor's strategy.
        """

    def on_stop(self) -> None:
        """Runs when the actor is asked to exit. Exceptions are logged and ignored."""

    def on_timer(self, name: str, data: Any) -> None:
        """A timer armed with :meth:`start_timer` fired and was not cancelled or re-armed.

        Raising here is a crash, as in a handler.
        """

    def on_child_exited(self, msg: Any) -> None:
        """Thespian's ``ChildActorExited`` for a child this actor created (default: ignore)."""

    def on_poison(self, msg: Any) -> None:
        """A message this actor sent made its recipient fail (default: log)."""
        log.warning("%s: a message it sent failed at its recipient: %r", self.name,
                    msg.poisonMessage)

    # ---- helpers -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The child id under the supervisor, else the class name."""
        return self.child_id or type(self).__name__

    @staticmethod
    def ack(msg: ControlMessage, detail: str = "") -> Ack:
        """An :class:`Ack` answering ``msg``."""
        return Ack(correlation_id=msg.correlation_id, detail=detail)

    def start_timer(self, name: str, seconds: float, data: Any = None) -> int:
        """(Re-)arm the named timer; an earlier arming of the same name becomes stale.

        Returns the generation. Does not block; ``on_timer`` runs later on the actor thread.
        """
        gen = self._timer_gen.get(name, 0) + 1
        self._timer_gen[name] = gen
        self.wakeupAfter(datetime.timedelta(seconds=max(0.0, seconds)), TimerFired(name, gen, data))
        return gen

    def cancel_timer(self, name: str) -> None:
        """Make any pending wakeup of the named timer stale."""
        self._timer_gen[name] = self._timer_gen.get(name, 0) + 1

    # ---- dispatch ----------------------------------------------------------------------------
    def receiveMessage(self, msg: Any, sender: Any) -> None:  # noqa: N802 - Thespian's name
        """Thespian's entry point (actor thread). Never raises: failures become replies."""
        if isinstance(msg, ActorExitRequest):
            self._run_stop()
            return
        if self.crashed:
            self.dropped_after_crash += 1
            if isinstance(msg, ControlMessage | Route):
                inner = msg.message if isinstance(msg, Route) else msg
                self._reply_error(inner, msg.reply_to if isinstance(msg, Route) and
                                  msg.reply_to is not None else sender, ErrorKind.CRASHED,
                                  f"{self.name} crashed and is being restarted")
            return
        if isinstance(msg, Supervised):
            self.supervisor = msg.supervisor
            self.child_id = msg.child_id
            self.args = dict(msg.args)
            if self._ensure_started() and self.announce_on_start:
                self.announce_started()
            return
        if not self._ensure_started():
            return
        if isinstance(msg, WakeupMessage):
            payload = msg.payload
            if isinstance(payload, TimerFired):
                if self._timer_gen.get(payload.name) != payload.generation:
                    self.stale_timers += 1
                    return
                self._timer_gen[payload.name] = payload.generation + 1
                self._guard(lambda: self.on_timer(payload.name, payload.data), None, sender)
            return
        if isinstance(msg, ChildActorExited):
            self._guard(lambda: self.on_child_exited(msg), None, sender)
            return
        if isinstance(msg, PoisonMessage):
            self._guard(lambda: self.on_poison(msg), None, sender)
            return
        if isinstance(msg, Route):
            if not msg.path:
                self.dispatch(msg.message, sender if msg.reply_to is None else msg.reply_to)
                return
            if self._find_handler(Route) is None:
                self._reply_error(msg.message, msg.reply_to or sender, ErrorKind.NOT_FOUND,
                                  f"{self.name} has no children (path {'/'.join(msg.path)!r})")
                return
        self.dispatch(msg, sender)

    def dispatch(self, msg: Any, sender: Any) -> None:
        """Find the handler for ``msg``'s class and run it; send its reply to ``sender``."""
        method = self._find_handler(type(msg))
        if method is None:
            if isinstance(msg, ControlMessage):
                self._reply_error(msg, sender, ErrorKind.UNKNOWN_MESSAGE,
                                  f"{self.name} ({type(self).__name__}) has no handler for it")
            elif not isinstance(msg, Reply):
                self._reply_error(msg, sender, ErrorKind.INVALID_MESSAGE,
                                  f"{self.name} accepts taktora ControlMessage objects only")
            else:
                log.debug("%s: dropping unsolicited reply %r", self.name, msg)
            return
        handler = getattr(self, method)
        self._guard(lambda: handler(msg, sender), msg, sender)

    def _find_handler(self, mtype: type) -> str | None:
        table = self._handler_table
        for klass in mtype.__mro__:
            name = table.get(klass)
            if name is not None:
                return name
        return None

    def _guard(self, call: Callable[[], Reply | None], msg: Any, sender: Any) -> None:
        try:
            reply = call()
        except ControlError as exc:
            log.info("%s rejected %s: %s", self.name, type(msg).__name__, exc)
            self._reply_error(msg, sender, ErrorKind.REJECTED, str(exc))
            return
        except Exception as exc:
            log.exception("%s crashed handling %s", self.name, type(msg).__name__)
            self._reply_error(msg, sender, ErrorKind.CRASHED, f"{type(exc).__name__}: {exc}")
            self.crash(f"{type(exc).__name__}: {exc}")
            return
        if reply is not None and sender is not None:
            self.send(sender, reply)

    def _reply_error(self, msg: Any, sender: Any, kind: ErrorKind, detail: str) -> None:
        if sender is None or msg is None:
            return
        cid = getattr(msg, "correlation_id", "")
        self.send(sender, ErrorReply(correlation_id=cid if isinstance(cid, str) else "",
                                     kind=kind, message_type=type(msg).__name__, detail=detail))

    def announce_started(self) -> None:
        """Tell the supervisor this actor is up (once); a no-op when unsupervised."""
        if self.supervisor is not None and not self._announced:
            self._announced = True
            self.send(self.supervisor, ChildStarted(child_id=self.child_id, pid=os.getpid()))

    def crash(self, reason: str) -> None:
        """Declare this actor failed: tell the supervisor, then drop messages until stopped.

        Unsupervised actors only log the failure and keep running.
        """
        if self.supervisor is None:
            return
        self.crashed = True
        self.send(self.supervisor, ChildCrashed(child_id=self.child_id, reason=reason))

    def exit_normally(self, reason: str = "normal") -> None:
        """Leave on purpose: the supervisor will not restart a transient child for this."""
        if self.supervisor is not None:
            self.send(self.supervisor, ChildStopping(child_id=self.child_id, reason=reason))
        self.send(self.myAddress, ActorExitRequest())

    def _ensure_started(self) -> bool:
        """Run ``on_start`` once; False if it crashed (the actor must not handle messages)."""
        if self.started:
            return not self.crashed
        self.started = True
        try:
            self.on_start()
        except Exception as exc:
            log.exception("%s: on_start raised", self.name)
            self.crash(f"on_start: {type(exc).__name__}: {exc}")
        return not self.crashed

    def _run_stop(self) -> None:
        try:
            self.on_stop()
        except Exception:
            log.exception("%s: on_stop raised (ignored)", self.name)
