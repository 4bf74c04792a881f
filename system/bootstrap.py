"""Start and stop a taktora actor system: :func:`start_system` and :class:`ActorSystemHandle`.

Modes:

``"inprocess"`` (default)
    Thespian's ``simpleSystemBase``: every actor lives in this process. Thespian runs actors
    only inside ``tell``/``ask``/``listen`` calls, so the handle owns a *control thread*
    (``taktora-control``) that runs every actor, delivers every message and fires timers on
    time. :meth:`ActorSystemHandle.tell` / :meth:`~ActorSystemHandle.ask` may be called from any
    thread: they queue the message, wake the control thread and (``ask``) wait on a private
    reply queue of the calling thread. Messages are not pickled on this base.

``"multiprocess"``
    Thespian's ``multiprocTCPBase``: an admin process plus one process per actor (forked or
    spawned: :mod:`taktora.system.start_method`), talking over TCP on ``admin_port``, every
    listener on loopback (:mod:`taktora.system.security`) unless ``allow_remote=True``. A
    ``convention_leader`` ("host:port" of another system's admin) makes this system a member of
    that leader's convention (multi-host, see ``spec/system.rst``).

Both start a root :class:`~taktora.actors.control.supervisor.Supervisor` (global name
``taktora.root``, spec ``root``) to which :meth:`~ActorSystemHandle.start_child` adds children;
``taktora status`` shows its tree. :meth:`~ActorSystemHandle.close` (or leaving the ``with``
block) stops the root's children in reverse order, shuts the Thespian system down and joins the
control thread: nothing of the system is left running.

Process lifetime (multi-process): the Thespian admin detaches from the process that starts it,
so :func:`start_system` also starts the owner watch (:mod:`taktora.system.reaper`): if the
owner dies without closing the system (``kill -9`` included), the watch shuts the system down
and ends every process of it. The admin carries the owner's pid as a capability
(:data:`~taktora.system.attach.OWNER_CAPABILITY`), which marks it as a taktora system for the
CLI. ``admin_port=0`` picks a free port (:attr:`ActorSystemHandle.admin_port` says which).

Giving up: a root supervisor exceeding its restart intensity tells the handle (its owner);
:attr:`ActorSystemHandle.failure` then holds the one-line reason, requests to the root fail at
once, and :meth:`~ActorSystemHandle.close` does not wait for the root.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal

from taktora.actors.control.messages import (
    ChildCrashed,
    ChildInfo,
    ControlMessage,
    ErrorReply,
    GetTree,
    Reply,
    Route,
    Shutdown,
    Supervised,
    TreeReply,
)
from taktora.actors.control.supervision import ChildSpec, SupervisorSpec
from taktora.actors.control.supervisor import AddChild, Supervisor, WaitIdle
from taktora.actors.errors import ControlError
from taktora.system import processes, security
from taktora.system import start_method as start_methods
from taktora.system.args import port_problem
from taktora.system.attach import OWNER_CAPABILITY, ROOT_NAME, attach, detach, port_listening
from taktora.system.errors import SystemError_
from taktora.system.reaper import Reaper
from thespian.actors import ActorSystem

__all__ = ["DEFAULT_LOGGING", "QUIET_LOGGING", "ROOT_NAME", "ActorSystemHandle", "Mode",
           "attach", "detach", "port_listening", "start_system"]  # those 4 live in attach

log = logging.getLogger(__name__)

Mode = Literal["inprocess", "multiprocess"]

#: Thespian logging for multi-process systems: warnings and worse to stderr.
DEFAULT_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "root": {"level": "WARNING", "handlers": ["stderr"]},
}
#: Thespian logging that drops everything (tests).
QUIET_LOGGING: dict[str, Any] = {"version": 1, "root": {"level": "CRITICAL", "handlers": []}}


class _InprocessPump:
    """The control thread of an in-process system: the only thread that runs actors."""

    IDLE_POLL_S = 0.05  # also bounds the delay of sends made from actors' own threads

    def __init__(self, asys: Any) -> None:
        self.asys = asys
        self.base = asys._systemBase
        self._wake = threading.Event()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue[Any]]] = (
            queue.SimpleQueue())
        self._stop = False
        self.run_lock = threading.Lock()  # one deliverer at a time: Thespian's base is not
        self._thread = threading.Thread(target=self._run, name="taktora-control", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def call(self, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Run ``fn`` on the control thread; block until it returns; re-raise its exception."""
        if threading.current_thread() is self._thread:
            return fn()
        done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._jobs.put((fn, done))
        self._wake.set()
        try:
            ok, value = done.get(timeout=timeout)
        except queue.Empty:
            raise ControlError(f"the control thread did not run a job within {timeout} s") from None
        if not ok:
            raise value
        return value

    def _run(self) -> None:
        while True:
            nxt = self.base._next_wakeup()
            wait = self.IDLE_POLL_S
            if nxt is not None:
                wait = max(0.0, min(wait, nxt.view().remainingSeconds()))
            self._wake.wait(wait)
            self._wake.clear()
            while True:
                try:
                    fn, done = self._jobs.get_nowait()
                except queue.Empty:
                    break
                try:
                    with self.run_lock:
                        result = fn()
                    done.put((True, result))
                except BaseException as exc:
                    done.put((False, exc))
            if self._stop:
                return
            with self.run_lock:
                self._deliver()

    def _deliver(self) -> None:
        try:
            self.base._realizeWakeups()
            self.base._runSends()
        except Exception:  # an actor bug must not kill the control plane
            log.exception("in-process actor system: delivery failed")

    def deliver_inline(self) -> None:
        """Deliver pending messages on the calling thread if nobody else is delivering;
        otherwise wake the control thread. Never blocks on the delivery lock."""
        if self.run_lock.acquire(blocking=False):
            try:
                self._deliver()
            finally:
                self.run_lock.release()
        else:
            self._wake.set()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=10)


class ActorSystemHandle:
    """A running actor system owned by this process (see the module docstring).

    Thread-safe: ``tell``/``ask``/``start_child``/``tree``/``control`` may be called from any
    thread. Use it as a context manager, or call :meth:`close`.
    """

    INBOX_LEN = 1000

    def __init__(self, mode: Mode, asys: Any, admin_port: int | None,
                 bind_address: str | None, *, reaper: Reaper | None = None) -> None:
        self.mode = mode
        self.admin_port = admin_port
        self.bind_address = bind_address
        #: session id shared by the system's processes (multiprocess, once the root is up)
        self.session: int | None = None
        self._reaper = reaper
        self._failure: str | None = None
        self._failed = threading.Event()
        self._watch_stop = threading.Event()
        self._watch_thread: threading.Thread | None = None
        self._asys = asys
        self._local = threading.local()
        self._contexts: list[Any] = []
        self._ctx_lock = threading.Lock()
        self._closed = False
        self.inbox_dropped = 0
        self._pump = _InprocessPump(asys) if mode == "inprocess" else None
        self.root: Any = None

    @property
    def raw(self) -> Any:
        """The Thespian ``ActorSystem`` itself, for what this handle does not cover (e.g.
        ``createActor`` with ``targetActorRequirements`` across a convention).

        Multiprocess mode only, and only from the thread that started the system: in-process,
        the control thread drives it and a direct call would race with it.
        """
        if self._pump is not None:
            raise SystemError_("raw access is for multiprocess systems; use tell/ask in-process")
        return self._asys

    # ---- the root's owner ----------------------------------------------------------------------
    @property
    def failure(self) -> str | None:
        """Why the root supervisor gave up ("gave up: N restarts within ..."), or None while it
        has not. Set by the ``taktora-root-watch`` thread; readable from any thread."""
        return self._failure

    def wait_failure(self, timeout: float) -> str | None:
        """Block up to ``timeout`` seconds for the root supervisor to give up; its reason, or
        None if it did not."""
        self._failed.wait(timeout)
        return self._failure

    def _start_watch(self) -> Any:
        """Start the ``taktora-root-watch`` thread; return its endpoint (the root's owner).

        The thread blocks in :meth:`receive` on its own endpoint: the root supervisor sends it
        :class:`ChildCrashed` when it gives up. Other messages are dropped (debug log).
        """
        ready = threading.Event()
        endpoint: list[Any] = []

        def watch() -> None:
            try:
                endpoint.append(self.endpoint())
            finally:
                ready.set()
            while not self._watch_stop.is_set():
                try:
                    msg = self.receive(0.1)
                except Exception:  # the system is closing under us
                    if self._watch_stop.wait(0.1):
                        return
                    continue
                if isinstance(msg, ChildCrashed):
                    log.debug("the root supervisor %s", msg.reason)  # it logged it
                    self._failure = msg.reason
                    self._failed.set()
                elif msg is not None:
                    log.debug("root watch: ignoring %r", msg)

        self._watch_thread = threading.Thread(target=watch, name="taktora-root-watch",
                                              daemon=True)
        self._watch_thread.start()
        if not ready.wait(10.0) or not endpoint:
            raise SystemError_("the root watch thread did not start")
        return endpoint[0]

    def _stop_watch(self) -> None:
        self._watch_stop.set()
        if self._watch_thread is not None:
            self._watch_thread.join(5.0)
            self._watch_thread = None

    def _announce_session(self) -> None:
        """Learn the session id of the system's processes (from the root's pid) and tell the
        owner watch."""
        pid = self.tree().pid
        session = processes.session_of(pid) if pid else None
        if session is not None and processes.safe_session(session):
            self.session = session
            if self._reaper is not None:
                self._reaper.announce(session)

    # ---- plumbing ----------------------------------------------------------------------------
    def _context(self) -> Any:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            if self._closed:
                raise SystemError_("the actor system is closed")
            ctx = self._asys._systemBase.external_clone()
            self._local.ctx = ctx
            self._local.inbox = collections.deque(maxlen=self.INBOX_LEN)
            with self._ctx_lock:
                self._contexts.append(ctx)
        return ctx

    def _admin(self, fn: Callable[[], Any]) -> Any:
        return self._pump.call(fn) if self._pump is not None else fn()

    # ---- messaging ---------------------------------------------------------------------------
    def tell(self, target: Any, msg: Any) -> None:
        """Send ``msg`` to ``target`` (an actor address); does not wait for delivery."""
        ctx = self._context()
        ctx.tell(target, msg)
        if self._pump is not None:
            self._pump.wake()

    def ask(self, target: Any, msg: ControlMessage, timeout: float = 5.0) -> Reply:
        """Send ``msg`` and block until the reply carrying its correlation id arrives.

        Other messages reaching this thread's endpoint meanwhile (events from subscriptions, late
        replies) are kept for :meth:`receive` (the last ``INBOX_LEN``; older ones are dropped and
        counted in ``inbox_dropped``).
        An :class:`ErrorReply` is returned, not raised. Raises :class:`ControlError` after
        ``timeout`` seconds without a reply.
        """
        if self._failure is not None and self.root is not None and target == self.root:
            raise ControlError(f"the root supervisor is gone ({self._failure}): "
                               f"{type(msg).__name__} not sent")
        ctx = self._context()
        ctx.tell(target, msg)
        if self._pump is not None:
            self._pump.deliver_inline()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            reply = self._listen(ctx, remaining)
            if reply is None:
                continue
            if isinstance(reply, Reply) and reply.correlation_id == msg.correlation_id:
                return reply
            inbox: collections.deque[Any] = self._local.inbox
            if len(inbox) == inbox.maxlen:
                self.inbox_dropped += 1
            inbox.append(reply)
        raise ControlError(f"no reply to {type(msg).__name__} from {target} within {timeout} s")

    def receive(self, timeout: float = 1.0) -> Any:
        """The next message sent to this thread's endpoint (an actor may send it events), or None
        after ``timeout`` seconds. Blocks the calling thread."""
        ctx = self._context()
        inbox: collections.deque[Any] = self._local.inbox
        if inbox:
            return inbox.popleft()
        return self._listen(ctx, timeout)

    def endpoint(self) -> Any:
        """The address actors reply to for this thread (for Subscribe messages and the like)."""
        return self._context().my_ext_addr if self._pump is not None else (
            self._context().transport.myAddress)

    def _listen(self, ctx: Any, timeout: float) -> Any:
        if self._pump is None:
            return ctx.listen(timeout)
        # Thespian 4.0.1's in-process private listen passes its timeout as Queue.get's *block*
        # argument (it would wait forever): read the private queue directly.
        try:
            return ctx.my_instance.rcvq.get(timeout=timeout)
        except queue.Empty:
            return None

    def call(self, target: Any, msg: ControlMessage, timeout: float = 5.0) -> Reply:
        """Like :meth:`ask`, but an :class:`ErrorReply` raises :class:`ControlError`."""
        reply = self.ask(target, msg, timeout)
        if isinstance(reply, ErrorReply):
            raise ControlError(f"{reply.message_type} failed ({reply.kind.value}): {reply.detail}")
        return reply

    def create_actor(self, actor_class: type | str, global_name: str | None = None) -> Any:
        """Create a top-level actor (not supervised); returns its address. Blocks until created."""
        return self._admin(lambda: self._asys.createActor(actor_class, globalName=global_name))

    # ---- supervision -------------------------------------------------------------------------
    def start_child(self, spec: ChildSpec, timeout: float = 30.0) -> Reply:
        """Add ``spec`` under the root supervisor; block until it (and its subtree) is up."""
        return self.call(self.root, AddChild(spec=spec), timeout)

    def tree(self, timeout: float = 5.0) -> ChildInfo:
        """The supervision tree from the root (blocks for one round trip)."""
        reply = self.call(self.root, GetTree(), timeout)
        assert isinstance(reply, TreeReply)
        return reply.tree

    def control(self, path: str | tuple[str, ...], msg: ControlMessage,
                timeout: float = 5.0) -> Reply:
        """Deliver ``msg`` to the descendant at ``path`` ("a/b" or ("a", "b")) and return its reply."""
        parts = tuple(p for p in path.split("/") if p) if isinstance(path, str) else path
        route = Route(path=parts, message=msg, correlation_id=msg.correlation_id)
        return self.ask(self.root, route, timeout)

    # ---- lifetime ----------------------------------------------------------------------------
    def close(self, timeout: float = 30.0) -> None:
        """Stop the root's children in reverse order, shut the system down, join the threads.

        Idempotent. Blocks up to about ``timeout`` seconds for the orderly stop; the Thespian
        shutdown then removes whatever is left.
        """
        if self._closed:
            return
        actor_pids: set[int] = set()
        try:
            if self.root is not None and self._failure is None:  # a root that gave up is gone
                if self._pump is None:
                    actor_pids = _tree_pids(self.tree(timeout=min(timeout, 5.0)))
                self.ask(self.root, Shutdown(), timeout)
        except Exception as exc:
            log.warning("orderly stop of the root supervisor failed: %s", exc)
        self._stop_watch()
        self._closed = True
        with self._ctx_lock:
            contexts, self._contexts = self._contexts, []
        if self._pump is not None:
            try:
                self._pump.call(self._asys.shutdown)
            finally:
                self._pump.stop()
            for ctx in contexts:
                ctx.exit_context()
        else:
            for ctx in contexts:
                try:
                    ctx.exit_context()
                except Exception:  # a half-closed socket must not stop the shutdown
                    log.debug("closing a private context failed", exc_info=True)
            try:
                self._asys.shutdown()
            finally:
                if self.session is not None:  # everything of the system, whatever it forked
                    if not processes.wait_session_gone(self.session, 2.0):
                        left = processes.end_session(self.session)
                        log.warning("processes %s outlived the system shutdown: ended",
                                    sorted(left))
                else:
                    _reap(actor_pids - {os.getpid()})
                if self._reaper is not None:
                    self._reaper.release()

    def __enter__(self) -> ActorSystemHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _tree_pids(tree: ChildInfo) -> set[int]:
    out = {tree.pid} if tree.pid else set()
    for child in tree.children:
        out |= _tree_pids(child)
    return out


def _reap(pids: set[int], grace_s: float = 2.0) -> None:
    """Kill actor processes Thespian's shutdown left behind (seen when a shutdown races a
    restart); they were listed in the supervision tree just before the shutdown."""
    deadline = time.monotonic() + grace_s
    while (left := {p for p in pids if processes.alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in left:
        log.warning("actor process %d outlived the system shutdown: killing it", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _free_port(host: str) -> int:
    """A TCP port nothing listens on right now (the kernel's choice). Another process could
    take it before the admin binds it; the admin's start then fails with SystemError_."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_system(
    mode: Mode = "inprocess",
    *,
    admin_port: int | None = None,
    root: SupervisorSpec | None = None,
    allow_remote: bool = False,
    bind_address: str | None = security.LOOPBACK,
    convention_leader: str | None = None,
    capabilities: dict[str, Any] | None = None,
    logging_config: dict[str, Any] | None = None,
    start_timeout: float = 30.0,
    start_method: start_methods.StartMethod = "auto",
) -> ActorSystemHandle:
    """Start an actor system and its root supervisor; return its handle (a context manager).

    ``admin_port`` is required for ``"multiprocess"`` (each system on a host needs its own):
    1..65535, or 0 to pick a free port (read it from the handle's ``admin_port``); anything
    else raises :class:`SystemError_` before anything starts. ``bind_address`` other than
    loopback (or None: every interface) needs ``allow_remote=True``, else
    :class:`SecurityError`. ``root``: the root supervisor's spec (default: one_for_one,
    intensity 1 per 5 s). ``start_method``: :mod:`taktora.system.start_method`. A multiprocess
    system gets an owner watch and does not outlive the calling process. Blocks until the
    root's initial children are up; raises :class:`SystemError_` if something listens on
    ``admin_port`` or the system does not come up, ``ControlError`` if the root gives up.
    """
    root_spec = root or SupervisorSpec()
    reaper: Reaper | None = None
    if mode == "inprocess":
        asys = ActorSystem("simpleSystemBase", logDefs=False, transientUnique=True)
        handle = ActorSystemHandle(mode, asys, None, None)
    elif mode == "multiprocess":
        if admin_port is None:
            raise SystemError_("mode='multiprocess' needs admin_port (a free TCP port, or 0 "
                               "to pick one)")
        problem = port_problem(admin_port, allow_zero=True)
        if problem:
            raise SystemError_(f"admin_port: {problem} (0 picks a free port)")
        bind = security.resolve_bind(bind_address, allow_remote)
        probe_host = bind or security.LOOPBACK
        if admin_port == 0:
            admin_port = _free_port(probe_host)
        elif port_listening(admin_port, probe_host):
            raise SystemError_(f"something already listens on {probe_host}:{admin_port}: pick "
                               f"another admin_port (or attach to it with the taktora CLI)")
        security.apply_bind_policy(bind)
        caps: dict[str, Any] = {"Admin Port": admin_port}
        if convention_leader is not None:
            host, _, port = convention_leader.rpartition(":")
            caps["Convention Address.IPv4"] = (host, int(port))
        caps[start_methods.CAPABILITY] = start_methods.resolve(start_method)
        caps.update(capabilities or {})
        caps[OWNER_CAPABILITY] = os.getpid()
        reaper = Reaper(admin_port, probe_host)  # before the admin forks: covers start-up
        try:
            asys = ActorSystem("multiprocTCPBase", caps, transientUnique=True, logDefs={
                **(logging_config or DEFAULT_LOGGING), **security.spawned_bind(bind)})
        except Exception as exc:  # Thespian's InvalidActorAddress and the like
            reaper.release()
            raise SystemError_(f"the actor system did not start on {probe_host}:{admin_port}: "
                               f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            reaper.release()
            raise
        handle = ActorSystemHandle(mode, asys, admin_port, bind, reaper=reaper)
    else:
        raise SystemError_(f"unknown mode {mode!r}: use 'inprocess' or 'multiprocess'")
    try:
        owner = handle._start_watch()
        handle.root = handle.create_actor(Supervisor, ROOT_NAME)
        handle.tell(handle.root, Supervised(supervisor=None, child_id="root",
                                            args={"spec": root_spec, "owner": owner}))
        handle.call(handle.root, WaitIdle(), start_timeout)
        if reaper is not None:
            handle._announce_session()
    except BaseException:
        handle.close(timeout=5.0)
        raise
    return handle
