"""One zenoh session shared by the zenoh connectors of a gateway, with peer-count health and
the reconnect policy.

Threads:

- the **owner's thread** calls :meth:`ZenohSession.attach` / :meth:`detach` (from a connector's
  ``open``/``close``): the first attach opens the zenoh session (blocking while zenoh connects,
  e.g. a client to its router) and starts the health thread; the last detach stops and joins
  it and closes the session.
- the **health thread** (``<name>-health``) polls ``session.info`` every ``health_poll_s``: the
  number of connected peers plus routers decides the state - below ``min_peers`` Degraded,
  none Down, enough Up (Connecting until the first peer is seen). Each change is one
  :class:`~taktora.actors.models.health.HealthEvent` of :attr:`ZenohSession.machine` (subscribe to
  it). When the session stays Down for ``reopen_after_s`` (or cannot be opened at all) the
  thread closes it and opens it again, spacing attempts by the
  :class:`~taktora.actors.models.backoff.ReconnectPolicy`; every attached connector re-declares its
  publishers, subscribers and queryables on the new session. :meth:`reconnect` (the Reconnect
  control message) requests one reopen now.

A poll or reopen that raises is logged and counted (``health_errors`` / ``reopen_failures``)
and the thread keeps going.

Every open and reopen builds its ``zenoh.Config`` with :meth:`ZenohConfig.to_zenoh`, so the
session listens only where :meth:`ZenohConfig.listen_endpoints` says (loopback unless the
config has ``allow_remote=True``), never on zenoh's every-interface default.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

import zenoh
from taktora.actors.models.backoff import Backoff, ReconnectPolicy
from taktora.actors.models.health import HealthMachine, HealthState
from taktora.connectors.errors import ConnectorError
from taktora.connectors.model import FrozenMap
from taktora.connectors.zenoh.config import ZenohConfig

log = logging.getLogger(__name__)

C, U, G, D = HealthState.CONNECTING, HealthState.UP, HealthState.DEGRADED, HealthState.DOWN


class Declarer(Protocol):
    """What a connector attached to the session implements (called on the thread that opens
    or reopens the session, with the session lock held)."""

    def declare(self, session: zenoh.Session) -> None:
        """Declare publishers/subscribers/queryables on ``session``."""

    def undeclare(self) -> None:
        """Forget the entities of the previous session (it is being closed)."""


class ZenohSession:
    """A reference-counted zenoh session with health and reconnect (see the module doc).

    :attr:`session` is the live ``zenoh.Session`` or None while (re)opening; read it once and
    use the reference (a closed session's calls raise, which callers map to LinkDownError).
    """

    def __init__(self, config: ZenohConfig | None = None, *, name: str = "zenoh",
                 reconnect: Backoff | None = None) -> None:
        self.config = config or ZenohConfig()
        self.name = name
        self.machine = HealthMachine(name)
        self.session: zenoh.Session | None = None
        self._policy = ReconnectPolicy(reconnect or Backoff(initial_s=0.2, max_s=5.0))
        self._lock = threading.RLock()
        self._attached: list[Declarer] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._reopen_now = threading.Event()
        self._seen_peer = False
        self._down_since: float | None = None
        self._next_attempt = 0.0
        self._counts = {"reopens": 0, "reopen_failures": 0, "health_errors": 0, "peers": 0}

    # -- lifecycle (owner's thread) ------------------------------------------------------------
    def attach(self, declarer: Declarer) -> None:
        """Attach a connector: open the session if it is the first, then let it declare.

        Raises ConnectorError when zenoh cannot open the session (nothing stays open)."""
        with self._lock:
            if not self._attached:
                self._open_first()
            self._attached.append(declarer)
            if self.session is not None:
                declarer.declare(self.session)

    def detach(self, declarer: Declarer) -> None:
        """Detach a connector; the last one stops the health thread and closes the session."""
        with self._lock:
            if declarer not in self._attached:
                return
            self._attached.remove(declarer)
            declarer.undeclare()
            last = not self._attached
        if last:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
                self._thread = None
            with self._lock:
                self._close_session()
                self.machine.transition(D, "closed")

    def _open_first(self) -> None:
        try:
            self.session = zenoh.open(self.config.to_zenoh())
        except ConnectorError:
            raise
        except Exception as exc:
            raise ConnectorError(f"zenoh session {self.name!r} cannot open "
                                 f"({self.config.mode}, "
                                 f"listen={list(self.config.listen_endpoints())}, "
                                 f"connect={list(self.config.connect)}): {exc}") from exc
        self._stop.clear()
        self._seen_peer = False
        self._down_since = None
        if self.machine.state is D:  # reopened after a close (e.g. by a gateway)
            self.machine.transition(C, "opening")
        if self.config.min_peers == 0:
            self.machine.transition(U, "no peers required")
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-health", daemon=True)
        self._thread.start()
        log.info("zenoh session %r open (%s, zid %s, listening on %s)", self.name,
                 self.config.mode, self.session.info.zid(),
                 list(self.config.listen_endpoints()) or "nothing")

    def _close_session(self) -> None:
        session: Any = self.session
        self.session = None
        if session is not None:
            try:
                session.close()
            except Exception:
                log.exception("zenoh session %r: close failed", self.name)

    # -- control (any thread) ------------------------------------------------------------------
    def reconnect(self) -> None:
        """Ask the health thread to close and reopen the session now (Reconnect)."""
        self._reopen_now.set()

    def health(self) -> HealthState:
        """The current state of :attr:`machine`."""
        return self.machine.state

    def peer_count(self) -> int:
        """Connected peers plus routers at the last poll."""
        return self._counts["peers"]

    def stats(self) -> Mapping[str, int]:
        """``peers`` (last poll), ``reopens``, ``reopen_failures``, ``health_errors``."""
        with self._lock:
            return FrozenMap(dict(self._counts))

    # -- health thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.config.health_poll_s):
            try:
                self._poll()
            except Exception:
                self._counts["health_errors"] += 1
                log.exception("zenoh session %r: health poll failed", self.name)

    def _poll(self) -> None:
        now = time.monotonic()
        session = self.session
        peers = -1
        if session is not None:
            try:
                info = session.info
                peers = len(list(info.peers_zid())) + len(list(info.routers_zid()))
            except Exception as exc:  # the session died under us
                log.warning("zenoh session %r: info failed: %s", self.name, str(exc))
        self._counts["peers"] = max(peers, 0)
        self._judge(peers)
        if self._reopen_now.is_set():
            self._reopen_now.clear()
            self._reopen("reconnect requested")
            return
        if self.machine.state in (D, C) and self._down_since is not None:
            after = self.config.reopen_after_s
            if (after is not None and now - self._down_since >= after
                    and now >= self._next_attempt):
                delay = self._policy.next_delay()
                if delay is None:
                    if self._next_attempt != float("inf"):
                        log.error("zenoh session %r: reconnect policy gave up after %d attempts",
                                  self.name, self._policy.attempts)
                    self._next_attempt = float("inf")
                    return
                self._next_attempt = now + delay
                self._reopen(f"down for {now - self._down_since:.1f} s")

    def _judge(self, peers: int) -> None:
        need = self.config.min_peers
        state = self.machine.state
        if peers < 0:
            new, why = D, "no session"
        elif peers == 0 and need > 0:
            if not self._seen_peer and state is C:
                return  # still waiting for the first peer
            new, why = D, "no peers"
        elif peers < need:
            new, why = G, f"{peers} of {need} peers"
        else:
            new, why = U, f"{peers} peer(s)"
        if peers > 0:
            self._seen_peer = True
        if new is state:
            return
        if state is D:  # Down leaves only through Connecting (ARCH_0012)
            self.machine.transition(C, "link back")
        self.machine.transition(new, why)
        if new is D:
            self._down_since = time.monotonic()
        else:
            self._down_since = None
        if new is U:
            self._policy.mark_up()
            self._next_attempt = 0.0
        log.info("zenoh session %r: %s (%s)", self.name, new.value, why)

    def _reopen(self, why: str) -> None:
        log.warning("zenoh session %r: reopening (%s)", self.name, why)
        with self._lock:
            for declarer in self._attached:
                declarer.undeclare()
            self._close_session()
            if self.machine.state is not D:
                self.machine.transition(D, f"reopening: {why}")
            self._down_since = time.monotonic()
            self.machine.transition(C, "reopening")
            self._seen_peer = False
            try:
                self.session = zenoh.open(self.config.to_zenoh())
            except Exception as exc:
                self._counts["reopen_failures"] += 1
                log.warning("zenoh session %r: reopen failed: %s", self.name, str(exc))
                self.machine.transition(D, f"reopen failed: {exc}")
                return
            self._counts["reopens"] += 1
            for declarer in self._attached:
                declarer.declare(self.session)
            if self.config.min_peers == 0:
                self.machine.transition(U, "no peers required")
