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
    Thespian's ``multiprocTCPBase``: an admin process plus one forked process per actor, talking
    over TCP on ``admin_port``. Every listener binds to loopback (see
    :mod:`taktora.system.security`) unless ``allow_remote=True``. A ``convention_leader``
    ("host:port" of another system's admin) makes this system a member of that leader's
    convention (multi-host, see ``spec/system.rst``).

Both start a root :class:`~taktora.actors.control.supervisor.Supervisor` (global name
``taktora.root``, spec ``root``) to which :meth:`~ActorSystemHandle.start_child` adds children;
``taktora status`` shows its tree. :meth:`~ActorSystemHandle.close` (or leaving the ``with``
block) stops the root's children in reverse order, shuts the Thespian system down and joins the
control thread: nothing of the system is left running.
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
from taktora.actors.errors import AttachError, ControlError
from taktora.system import security
from taktora.system.errors import SystemError_
from thespian.actors import ActorSystem

log = logging.getLogger(__name__)

ROOT_NAME = "taktora.root"
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


def port_listening(port: int, host: str = security.LOOPBACK, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port`` (blocks up to ``timeout``)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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
                 bind_address: str | None) -> None:
        self.mode = mode
        self.admin_port = admin_port
        self.bind_address = bind_address
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
            if self.root is not None:
                if self._pump is None:
                    actor_pids = _tree_pids(self.tree(timeout=min(timeout, 5.0)))
                self.ask(self.root, Shutdown(), timeout)
        except Exception as exc:
            log.warning("orderly stop of the root supervisor failed: %s", exc)
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
            self._asys.shutdown()
            _reap(actor_pids - {os.getpid()})

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


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _reap(pids: set[int], grace_s: float = 2.0) -> None:
    """Kill actor processes Thespian's shutdown left behind (seen when a shutdown races a
    restart); they were listed in the supervision tree just before the shutdown."""
    deadline = time.monotonic() + grace_s
    while (left := {p for p in pids if _alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in left:
        log.warning("actor process %d outlived the system shutdown: killing it", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


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
) -> ActorSystemHandle:
    """Start an actor system and its root supervisor; return its handle (a context manager).

    ``admin_port`` is required for ``"multiprocess"`` (each system on a host needs its own).
    ``bind_address`` other than loopback (or None: every interface) needs
    ``allow_remote=True``, else :class:`SecurityError`. ``root`` is the root supervisor's spec
    (default: one_for_one, intensity 1 per 5 s, no children). Blocks until the root's initial
    children are up; raises :class:`SystemError_` if something already listens on
    ``admin_port`` or the system does not come up.
    """
    root_spec = root or SupervisorSpec()
    if mode == "inprocess":
        asys = ActorSystem("simpleSystemBase", logDefs=False, transientUnique=True)
        handle = ActorSystemHandle(mode, asys, None, None)
    elif mode == "multiprocess":
        if admin_port is None:
            raise SystemError_("mode='multiprocess' needs admin_port (a free TCP port)")
        bind = security.resolve_bind(bind_address, allow_remote)
        probe_host = bind or security.LOOPBACK
        if port_listening(admin_port, probe_host):
            raise SystemError_(f"something already listens on {probe_host}:{admin_port}: pick "
                               f"another admin_port (or attach to it with the taktora CLI)")
        security.apply_bind_policy(bind)
        caps: dict[str, Any] = {"Admin Port": admin_port}
        if convention_leader is not None:
            host, _, port = convention_leader.rpartition(":")
            caps["Convention Address.IPv4"] = (host, int(port))
        caps.update(capabilities or {})
        asys = ActorSystem("multiprocTCPBase", caps, logDefs=logging_config or DEFAULT_LOGGING,
                           transientUnique=True)
        handle = ActorSystemHandle(mode, asys, admin_port, bind)
    else:
        raise SystemError_(f"unknown mode {mode!r}: use 'inprocess' or 'multiprocess'")
    try:
        handle.root = handle.create_actor(Supervisor, ROOT_NAME)
        handle.tell(handle.root, Supervised(supervisor=None, child_id="root",
                                            args={"spec": root_spec}))
        handle.call(handle.root, WaitIdle(), start_timeout)
    except BaseException:
        handle.close(timeout=5.0)
        raise
    return handle


def attach(admin_port: int, host: str = security.LOOPBACK, timeout: float = 5.0) -> Any:
    """Attach to a running multi-process system on ``host:admin_port``; return the root address
    and the Thespian system object as ``(asys, root)``.

    Checks first that something listens (else :class:`AttachError`: Thespian would silently
    start a new, empty system). The caller must never call ``asys.shutdown()``; release it with
    ``asys._systemBase.transport.close()`` (see :func:`detach`).
    """
    if not port_listening(admin_port, host, timeout=min(timeout, 2.0)):
        raise AttachError(f"nothing listens on {host}:{admin_port}: start the system first "
                          f"(taktora never starts an empty one to attach to)")
    security.apply_bind_policy(host if security.is_loopback(host) else None)
    asys = ActorSystem("multiprocTCPBase", {"Admin Port": admin_port}, logDefs=QUIET_LOGGING,
                       transientUnique=True)
    return asys


def detach(asys: Any) -> None:
    """Release an attached system's local endpoint without shutting the system down."""
    try:
        asys._systemBase.transport.close()
    except Exception:
        log.debug("detach: closing the transport failed", exc_info=True)
