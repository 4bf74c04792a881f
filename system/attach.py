"""Attaching to a running multi-process system from another process (the ``taktora`` CLI).

:func:`attach` never starts anything and fails fast:

- nothing listens on the port: :class:`AttachError` at once (Thespian would otherwise start a
  new, empty system on it);
- something listens but does not answer Thespian's ``QueryExists`` within a bound (at most
  :data:`HANDSHAKE_S`): :class:`AttachError` naming the port. Thespian's own attach retries
  for 11 s and then raises ``InvalidActorAddress``.

:func:`inspect` then asks the admin for its status and checks that it is a taktora system: its
capabilities carry :data:`OWNER_CAPABILITY` (the pid of the process that started it, set by
:func:`~taktora.system.bootstrap.start_system`) and the root supervisor is registered under
its global name. The root's address comes from that status: the CLI never calls
``createActor(..., globalName=...)``, which would create a fresh, uninitialised root where
none is (after the root gave up, or in a system that is not taktora's).

Threads: everything runs on the calling thread and blocks at most for the timeouts given.
The caller releases the attachment with :func:`detach` and must never call ``shutdown()``
unless it means to stop the system (``taktora stop``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from datetime import timedelta
from typing import Any, NoReturn

import attrs
from taktora.actors.errors import AttachError
from taktora.system import security
from taktora.system.args import port_problem, seconds_problem
from taktora.transport.net import is_loopback

log = logging.getLogger(__name__)

ROOT_NAME = "taktora.root"
#: Capability a taktora system's admin carries: the pid of the process that started (owns) it.
OWNER_CAPABILITY = "taktora.owner_pid"
#: Upper bound of the Thespian handshake: a live admin answers in milliseconds.
HANDSHAKE_S = 2.0

_QUIET: dict[str, Any] = {"version": 1, "root": {"level": "CRITICAL", "handlers": []}}


def port_listening(port: int, host: str = security.LOOPBACK, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port`` (blocks up to ``timeout``)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class _NoAdminError(Exception):
    """Raised inside Thespian's start-up loop to leave it (never escapes this module)."""


def _attach_base() -> type:
    from thespian.system import multiprocTCPBase
    from thespian.system.messages.admin import QueryAck, QueryExists
    from thespian.system.transport import ReceiveEnvelope

    class AttachOnlyBase(multiprocTCPBase.ActorSystemBase):  # type: ignore[misc]
        """Thespian's TCP system base that never starts an admin and asks once, bounded."""

        def __init__(self, system: Any, logDefs: Any, handshake_s: float) -> None:  # noqa: N803
            self._handshake_s = handshake_s
            super().__init__(system, logDefs)

        def _startAdmin(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802
            self._give_up("nothing listens")

        def _verifyAdminRunning(self) -> bool:  # noqa: N802
            watch = self._tx_to_admin(QueryExists())
            response = self._run_transport(timedelta(seconds=self._handshake_s))
            if watch.failed or not isinstance(response, ReceiveEnvelope) \
                    or not isinstance(response.message, QueryAck):
                self._give_up("no QueryAck")
            if response.message.inShutdown:
                self._give_up("shutting down")
            return True

        def _give_up(self, why: str) -> NoReturn:
            with contextlib.suppress(Exception):  # our own endpoint: nothing else uses it
                self.transport.close()
            raise _NoAdminError(why)

    return AttachOnlyBase


class _Caps:
    """What a Thespian system base reads from its ``ActorSystem``: the capabilities."""

    def __init__(self, capabilities: dict[str, Any]) -> None:
        self.capabilities = capabilities


def attach(admin_port: int, host: str = security.LOOPBACK, timeout: float = 5.0) -> Any:
    """Attach to the Thespian system whose admin listens on ``host:admin_port``; return the
    Thespian ``ActorSystem`` object (release it with :func:`detach`).

    Raises :class:`AttachError` when the port or timeout is invalid, nothing listens (nothing
    is started), or the listener does not answer as a Thespian admin within
    ``min(timeout, HANDSHAKE_S)`` seconds. Blocks for at most about that long.
    """
    problem = port_problem(admin_port) or seconds_problem(timeout)
    if problem:
        raise AttachError(problem)
    if not port_listening(admin_port, host, timeout=min(timeout, HANDSHAKE_S)):
        raise AttachError(f"nothing listens on {host}:{admin_port}: start the system first "
                          f"(taktora never starts an empty one to attach to)")
    from thespian.actors import ActorSystem

    # our reply endpoint listens on the admin's own address, never on every interface
    security.apply_bind_policy(security.LOOPBACK if is_loopback(host) else host)
    handshake = min(timeout, HANDSHAKE_S)
    try:
        base = _attach_base()(_Caps({"Admin Port": admin_port}), _QUIET, handshake)
    except _NoAdminError as exc:
        if str(exc) == "shutting down":
            raise AttachError(f"the actor system on {host}:{admin_port} is shutting down") \
                from None
        if str(exc) == "nothing listens":
            raise AttachError(f"nothing listens on {host}:{admin_port} any more: start the "
                              f"system first") from None
        raise AttachError(f"something listens on {host}:{admin_port} but it is not a Thespian "
                          f"actor system (no answer to its handshake within {handshake:g} s): "
                          f"check the port") from None
    except Exception as exc:  # Thespian's own failures (socket errors, bad replies)
        raise AttachError(f"cannot attach to {host}:{admin_port}: "
                          f"{type(exc).__name__}: {exc}") from None
    return ActorSystem(base, transientUnique=True)


def detach(asys: Any) -> None:
    """Release an attached system's local endpoint without shutting the system down."""
    try:
        asys._systemBase.transport.close()
    except Exception:
        log.debug("detach: closing the transport failed", exc_info=True)


@attrs.frozen
class SystemInfo:
    """What a taktora system's admin says about itself (see :func:`inspect`)."""

    admin_port: int
    #: pid of the process that started the system (its owner)
    owner_pid: int
    #: the root supervisor's Thespian address; None while it is not registered (it gave up)
    root: Any = attrs.field(eq=False)
    in_shutdown: bool = False


def inspect(asys: Any, admin_port: int, timeout: float = 5.0) -> SystemInfo:
    """Ask the attached admin for its status and check that it is a taktora system.

    Raises :class:`AttachError` if the admin does not answer within ``timeout`` or is a
    Thespian system that taktora did not start. Blocks one round trip.
    """
    from thespian.system.messages.status import Thespian_StatusReq, Thespian_SystemStatus

    base = asys._systemBase
    try:
        status = asys.ask(base.adminAddr, Thespian_StatusReq(), timeout)
    except Exception as exc:
        raise AttachError(f"the admin on port {admin_port} did not answer its status: "
                          f"{type(exc).__name__}: {exc}") from None
    if not isinstance(status, Thespian_SystemStatus):
        raise AttachError(f"the admin on port {admin_port} did not answer its status within "
                          f"{timeout:g} s")
    owner = status.capabilities.get(OWNER_CAPABILITY)
    if not isinstance(owner, int):
        raise AttachError(f"the actor system on port {admin_port} is not a taktora system "
                          f"(its admin lacks the {OWNER_CAPABILITY!r} capability): taktora "
                          f"leaves it alone")
    return SystemInfo(admin_port=admin_port, owner_pid=owner,
                      root=status.globalActors.get(ROOT_NAME),
                      in_shutdown=bool(status.inShutdown))


@contextlib.contextmanager
def attached(admin_port: int, host: str = security.LOOPBACK,
             timeout: float = 5.0) -> Any:
    """``with attached(port) as (asys, info):`` attach, inspect, and detach at the end."""
    asys = attach(admin_port, host, timeout)
    try:
        yield asys, inspect(asys, admin_port, timeout)
    finally:
        detach(asys)
