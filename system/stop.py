"""Stopping a multi-process system from outside: ``taktora stop`` and the owner watch.

:func:`stop_system` attaches to the admin port, checks that a taktora system is there
(:func:`~taktora.system.attach.inspect`), shuts it down through Thespian (the admin asks every
actor to exit; gateways close their links and iceoryx2 ports), then ends whatever is left of
the system's session (:func:`~taktora.system.processes.end_session`) and waits until the
admin port is free. By default it refuses a system whose owner still runs (stop the owner
instead, or pass ``force=True``).

:func:`stop_orphan` is what the reaper (:mod:`taktora.system.reaper`) runs once the owner
died: the same, for the one system that owner started.

Both block the calling thread for at most about ``timeout`` plus a few seconds of grace.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import attrs
from taktora.actors.errors import AttachError
from taktora.system import processes, security
from taktora.system.attach import attach, detach, inspect, port_listening
from taktora.system.errors import SystemError_

log = logging.getLogger(__name__)

#: How long Thespian's orderly shutdown may take before the leftovers are signalled.
ORDERLY_S = 5.0


@attrs.frozen
class StopReport:
    """What :func:`stop_system` did."""

    admin_port: int
    owner_pid: int
    #: Thespian's orderly shutdown completed within its bound
    orderly: bool
    #: processes of the system still alive after the orderly shutdown (then signalled)
    leftovers: frozenset[int]

    def __str__(self) -> str:
        how = "shut it down" if self.orderly else "the orderly shutdown did not finish"
        left = (f", ended {len(self.leftovers)} leftover process(es)" if self.leftovers
                else "")
        return f"{how}{left}"


def _shutdown(asys: Any, bound: float) -> bool:
    """Thespian's ``shutdown()`` on a helper thread, waited for at most ``bound`` seconds."""
    done = threading.Event()

    def run() -> None:
        try:
            asys.shutdown()
        except Exception:
            log.debug("shutdown through the admin failed", exc_info=True)
        else:
            done.set()

    thread = threading.Thread(target=run, name="taktora-stop", daemon=True)
    thread.start()
    thread.join(bound)
    return done.is_set()


def stop_system(admin_port: int, *, host: str = security.LOOPBACK, timeout: float = 5.0,
                force: bool = False, expected_owner: int | None = None) -> StopReport:
    """Shut down the taktora system whose admin listens on ``host:admin_port``.

    Raises :class:`AttachError` if nothing or something other than a taktora system listens
    there (or, with ``expected_owner``, a system of another owner), and
    :class:`SystemError_` if the owner still runs and ``force`` is False, or the port is still
    taken after the system was ended.
    """
    if not port_listening(admin_port, host, timeout=min(timeout, 2.0)):
        raise AttachError(f"nothing listens on {host}:{admin_port}: no actor system to stop")
    session = processes.system_session(admin_port)
    asys = attach(admin_port, host, timeout=timeout)
    try:
        info = inspect(asys, admin_port, timeout)
        if expected_owner is not None and info.owner_pid != expected_owner:
            raise AttachError(f"the system on port {admin_port} belongs to pid "
                              f"{info.owner_pid}, not {expected_owner}: left alone")
        if not force and info.owner_pid != expected_owner and processes.alive(info.owner_pid):
            raise SystemError_(f"the system on port {admin_port} still has its owner (pid "
                               f"{info.owner_pid}): stop that process (Ctrl-C or kill "
                               f"{info.owner_pid}), or pass --force")
        orderly = _shutdown(asys, ORDERLY_S)
    finally:
        detach(asys)
    leftovers: set[int] = set()
    if session is not None and not processes.wait_session_gone(session, 1.0):
        leftovers = processes.end_session(session)
    deadline = time.monotonic() + 2.0
    while port_listening(admin_port, host, timeout=0.2):
        if time.monotonic() > deadline:
            raise SystemError_(f"port {admin_port} is still taken after the system was shut "
                               f"down (pids {sorted(processes.listener_pids(admin_port))})")
        time.sleep(0.02)
    return StopReport(admin_port=admin_port, owner_pid=info.owner_pid, orderly=orderly,
                      leftovers=frozenset(leftovers))


def stop_orphan(admin_port: int, owner: int, session: int | None,
                host: str = security.LOOPBACK) -> StopReport | None:
    """The reaper's job once ``owner`` died: stop the system it started on ``admin_port``.

    ``session`` is the id the owner announced (None if it died before announcing it). Returns
    None when there was nothing of that owner's to stop. Never raises.
    """
    try:
        if port_listening(admin_port, host, timeout=0.5):
            return stop_system(admin_port, host=host, timeout=ORDERLY_S, expected_owner=owner)
    except AttachError as exc:
        log.debug("reaper: %s", exc)
    except Exception:
        log.exception("reaper: stopping the system on port %d failed", admin_port)
    if session is not None and processes.safe_session(session):
        left = processes.end_session(session)
        if left:
            return StopReport(admin_port=admin_port, owner_pid=owner, orderly=False,
                              leftovers=frozenset(left))
    return None
