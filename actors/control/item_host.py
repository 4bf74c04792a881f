"""``ItemHost``: runs an executor (and its items) in a background thread of an actor.

Configured through ``args`` (from its :class:`~taktora.actors.control.supervision.ChildSpec`):

- ``factory``: ``"module:function"`` returning an object with the executor API
  (``run()``, ``stoppable().stop()``, ``monitor_snapshot()``, optionally ``close()``),
  normally :class:`taktora.actors.executor.Executor`;
- ``autostart`` (default True): start the executor in ``on_start``;
- ``placement``: ``"thread"`` (default: a thread of this actor's process) or ``"dedicated"``
  (a spawned process of its own, :mod:`taktora.actors.control.dedicated`: the factory string
  or ExecutorSpec is the recipe the child builds), with ``affinity``, ``priority``, ``mlock``,
  ``best_effort``, ``gc``, ``gc_period_s`` (:class:`DedicatedOptions`). GetStats then adds
  ``placement`` and ``dedicated`` (the child's pid, options, what it applied, its executor
  stats and gc figures). A killed child makes ``run()`` raise: the actor crashes and restarts.

The factory is called inside the actor after it started (actors are forked: iceoryx2 nodes and
threads must be created in the process that uses them). The executor runs on the thread
``taktora-itemhost-<id>``; when ``run()`` returns or raises without having been asked to stop,
the thread tells the actor (``self.send(self.myAddress, ...)``) and the actor crashes, so its
supervisor restarts it per its spec.

Messages: :class:`StartExecutor` / :class:`Resume` start it, :class:`StopExecutor` /
:class:`Pause` stop it (blocking the actor up to ``stop_timeout_s`` for the thread to end),
:class:`GetStats` returns the monitor snapshot.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

import attrs
from taktora.actors.control.base import TaktoraActor, handles
from taktora.actors.control.dedicated import DedicatedExecutor, DedicatedOptions
from taktora.actors.control.messages import Ack, ControlMessage, GetStats, Pause, Resume, StatsReply
from taktora.actors.errors import ActorConfigError, ActorError, ControlError
from taktora.transport.errors import TaktoraError

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class StartExecutor(ControlMessage):
    """Build (if needed) and start the executor; Ack (detail "already running" if it was)."""


@attrs.frozen(kw_only=True)
class StopExecutor(ControlMessage):
    """Stop the executor and wait for its thread; Ack."""


@attrs.frozen(kw_only=True)
class ExecutorExited:
    """Executor thread -> its actor: ``run()`` returned (``error`` empty) or raised."""

    generation: int
    error: str = ""


def load_factory(path: str) -> Any:
    """Import ``"module:function"``; raise :class:`ActorError` naming what is missing."""
    module, sep, name = path.partition(":")
    if not sep or not module or not name:
        raise ActorError(f"invalid executor factory {path!r}: expected 'module:function'")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ActorError(f"cannot import executor factory {path!r}: {exc}") from exc


def _snapshot_dict(snapshot: Any) -> dict[str, Any]:
    if attrs.has(type(snapshot)):
        return attrs.asdict(snapshot)
    if isinstance(snapshot, dict):
        return {str(k): v for k, v in snapshot.items()}
    return {"snapshot": repr(snapshot)}


class ItemHost(TaktoraActor):
    """Hosts one executor; see the module docstring."""

    stop_timeout_s = 5.0

    def on_start(self) -> None:
        # args["executor"]: an ExecutorSpec (taktora.actors.executor.spec), built here in the
        # actor's process under args["iox_prefix"] (None: TAKTORA_IOX_PREFIX); else "factory"
        spec, prefix = self.args.get("executor"), self.args.get("iox_prefix")
        self.factory = ((lambda: spec.build(prefix)) if spec is not None
                        else load_factory(str(self.args.get("factory", ""))))
        self.executor: Any = None
        self.thread: threading.Thread | None = None
        self.generation = 0
        self.stopping = False
        self.stop_requested = threading.Event()
        self.runs = 0
        if self.args.get("autostart", True):
            self._start()

    def _start(self) -> bool:
        if self.thread is not None and self.thread.is_alive():
            return False
        self._close_executor()
        self.executor = self._new_executor()
        self.generation += 1
        self.stopping = False
        self.runs += 1
        self.stop_requested = threading.Event()
        gen, executor, me, asked = self.generation, self.executor, self.myAddress, self.stop_requested

        def run() -> None:
            error = ""
            try:
                executor.run()
            except BaseException as exc:
                error = f"{type(exc).__name__}: {exc}"
            # After a stop request the actor is joining this thread: do not send (on the
            # in-process base a send waits for the lock the joining control thread holds).
            if not asked.is_set():
                self.send(me, ExecutorExited(generation=gen, error=error))

        self.thread = threading.Thread(target=run, name=f"taktora-itemhost-{self.name}",
                                       daemon=True)
        self.thread.start()
        return True

    def _new_executor(self) -> Any:
        """``placement`` "thread": the factory's executor; "dedicated": a started
        :class:`DedicatedExecutor` (the spawn and the child's start block this actor thread;
        a refused option raises :class:`DedicatedCapabilityError`, a ControlError)."""
        placement = self.args.get("placement", "thread")
        if placement == "thread":
            return self.factory()
        if placement != "dedicated":
            raise ActorConfigError(f"item host {self.name}: placement {placement!r}: use "
                                   "'thread' (default) or 'dedicated'")
        a = self.args
        options = DedicatedOptions(affinity=a.get("affinity"), priority=a.get("priority"),
                                   mlock=a.get("mlock", False),
                                   best_effort=a.get("best_effort", False),
                                   gc=a.get("gc", "default"), gc_period_s=a.get("gc_period_s", 0.1))
        spec = a.get("executor")
        executor = DedicatedExecutor(spec if spec is not None else str(a.get("factory", "")),
                                     options, name=self.name, prefix=a.get("iox_prefix"))
        executor.start()
        return executor

    def _stop(self) -> None:
        self.stopping = True
        self.stop_requested.set()
        if self.executor is not None:
            self.executor.stoppable().stop()
        if self.thread is not None:
            timeout = self.stop_timeout_s
            if isinstance(self.executor, DedicatedExecutor):  # it escalates to SIGTERM/SIGKILL
                timeout += self.executor.stop_timeout_s + self.executor.kill_timeout_s
            self.thread.join(timeout)
            if self.thread.is_alive():
                raise ControlError(f"executor of {self.name} did not stop within "
                                   f"{timeout} s")
            self.thread = None
        self._close_executor()

    def _close_executor(self) -> None:
        close = getattr(self.executor, "close", None)
        if close is not None:
            close()
        self.executor = None

    @handles(StartExecutor, Resume)
    def _on_start_msg(self, msg: ControlMessage, sender: Any) -> Ack:
        return self.ack(msg, "started" if self._start() else "already running")

    @handles(StopExecutor, Pause)
    def _on_stop_msg(self, msg: ControlMessage, sender: Any) -> Ack:
        self._stop()
        return self.ack(msg, "stopped")

    @handles(ExecutorExited)
    def _on_exited(self, msg: ExecutorExited, sender: Any) -> None:
        if msg.generation != self.generation or self.stopping:
            return
        self.thread = None
        reason = msg.error or "executor run() returned without a stop request"
        log.error("item host %s: %s", self.name, reason)
        raise ActorError(f"executor exited: {reason}")

    @handles(GetStats)
    def _stats(self, msg: GetStats, sender: Any) -> StatsReply:
        running = self.thread is not None and self.thread.is_alive()
        stats: dict[str, Any] = {"running": running, "runs": self.runs}
        if self.executor is not None:
            try:
                stats["monitor"] = _snapshot_dict(self.executor.monitor_snapshot())
            except TaktoraError as exc:  # e.g. an executor built without a monitor
                stats["monitor"] = None
                stats["monitor_error"] = str(exc)
            if isinstance(self.executor, DedicatedExecutor):
                stats["placement"] = "dedicated"
                stats["dedicated"] = self.executor.describe()
        return StatsReply(correlation_id=msg.correlation_id, source=self.name, stats=stats)

    def on_stop(self) -> None:
        try:
            self._stop()
        except ControlError:
            log.error("item host %s: executor thread still running at exit", self.name)
