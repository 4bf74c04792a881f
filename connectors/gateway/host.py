"""``ConnectorHost``: several gateways under one supervisor, health events for the application.

The host runs inside an application that owns an :class:`~taktora.system.bootstrap.
ActorSystemHandle` (in-process or multi-process). :meth:`ConnectorHost.start` adds one
supervisor child (``host_id``, restart ``transient``) under the system's root; its children
are one gateway group (:mod:`taktora.connectors.gateway.group`: health monitor, reconnect
policy, gateway) per :class:`GatewayConfig`, in list order, each ``transient``. Inside a group
a gateway crash or ``kill -9`` restarts the gateway alone (its monitor goes Down at once);
``supervision`` (strategy, intensity, period, backoff) applies to the groups, and its
intensity, period and backoff also to each group's restarts of its gateway.

Health subscription: the host owns one thread, ``taktora-health-<host_id>``, which blocks in
the handle's ``receive`` on its own endpoint. That endpoint is in every gateway monitor's
``args["subscribers"]``, so it stays subscribed across restarts. Every :class:`HealthEvent`
lands in a bounded queue (``events_maxlen``; overflow policy: the oldest event is dropped and
counted in :attr:`ConnectorHost.events_dropped`) that the application reads from any thread
with :meth:`next_event` / :meth:`drain_events`; :meth:`on_event` callbacks run on that thread
(an exception in one is logged and counted, the others still run).

Stopping (:meth:`stop`): every gateway gets :class:`Shutdown` in reverse order (each answers
a :class:`GatewayStopped` report, bounded by its ``shutdown_timeout_s``), then the host
supervisor is shut down, then the health thread is joined. Blocks the caller.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from taktora.actors.control.messages import (
    ControlMessage,
    ErrorReply,
    GetHealth,
    GetStats,
    HealthReply,
    Reply,
    Shutdown,
    StatsReply,
)
from taktora.actors.control.supervision import ChildSpec, Restart, SupervisorSpec
from taktora.actors.errors import ControlError
from taktora.actors.models.health import HealthEvent
from taktora.connectors.errors import ConnectorError
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.group import group_child
from taktora.connectors.gateway.messages import GatewayStopped
from taktora.transport import isolation

log = logging.getLogger(__name__)

EventCallback = Callable[[HealthEvent], None]


class ConnectorHost:
    """Runs ``gateways`` under a supervisor (``supervision`` gives strategy, intensity,
    period and backoff; its ``children`` are ignored; default: ``SupervisorSpec()``, OTP's
    intensity 1 per 5 s). See the module docstring.

    Methods may be called from any thread; each blocks for the control round trips it makes.
    """

    def __init__(self, handle: Any, gateways: Sequence[GatewayConfig], *,
                 supervision: SupervisorSpec | None = None, host_id: str = "connectors",
                 events_maxlen: int = 1000, control_timeout_s: float = 10.0) -> None:
        names = [g.name for g in gateways]
        if not gateways or len(set(names)) != len(names):
            raise ConnectorError(f"ConnectorHost needs at least one gateway and unique names, "
                                 f"got {names}")
        prefix = isolation.prefix_from_env()
        self.handle = handle
        self.gateways = tuple(g if g.iox_prefix else _with_prefix(g, prefix) for g in gateways)
        self.supervision = supervision or SupervisorSpec()
        self.host_id = host_id
        self.control_timeout_s = control_timeout_s
        self.events_dropped = 0
        self.callback_errors = 0
        self._events: collections.deque[HealthEvent] = collections.deque(maxlen=events_maxlen)
        self._cond = threading.Condition()
        self._callbacks: list[EventCallback] = []
        self._stop = threading.Event()
        self._endpoint: Any = None
        self._thread: threading.Thread | None = None
        self._started = False

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> ConnectorHost:
        """Start the health thread, then the gateways (blocks until every gateway is up or
        Down-and-retrying: ``on_start`` returned). Raises ControlError if the supervisor does
        not come up within ``timeout``."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._feed, args=(ready,), daemon=True,
                                        name=f"taktora-health-{self.host_id}")
        self._thread.start()
        if not ready.wait(timeout) or self._endpoint is None:
            self._stop.set()
            raise ControlError("the health thread did not start")
        children = tuple(group_child(g, subscribers=[self._endpoint],
                                     supervision=self.supervision,
                                     ledger=f"{self.host_id}.{g.name}")
                         for g in self.gateways)
        spec = SupervisorSpec(strategy=self.supervision.strategy,
                              intensity=self.supervision.intensity,
                              period_s=self.supervision.period_s,
                              backoff=self.supervision.backoff, children=children)
        try:
            self.handle.start_child(ChildSpec(id=self.host_id, start=spec,
                                              restart=Restart.TRANSIENT,
                                              shutdown_s=sum(c.shutdown_s for c in children)
                                              + 1.0),
                                    timeout=timeout)
        except BaseException:
            self._stop.set()
            self._thread.join(2.0)
            raise
        self._started = True
        return self

    def stop(self) -> list[GatewayStopped | ErrorReply]:
        """Shut the gateways down in reverse order and return their stop reports; then stop the
        host supervisor and the health thread. Idempotent (a second call returns [])."""
        reports: list[GatewayStopped | ErrorReply] = []
        if self._started:
            self._started = False
            for g in reversed(self.gateways):
                wait = g.shutdown_timeout_s + self.control_timeout_s
                try:
                    reply = self.handle.control((self.host_id, g.name), Shutdown(), wait)
                except ControlError as exc:
                    log.error("gateway %s did not answer Shutdown: %s", g.name, exc)
                    continue
                if isinstance(reply, GatewayStopped | ErrorReply):
                    reports.append(reply)
                    if isinstance(reply, GatewayStopped) and not reply.clean:
                        log.error("gateway %s: not stopped within %.3f s: %s", g.name,
                                  reply.timeout_s, list(reply.not_stopped))
            try:
                self.handle.control((self.host_id,), Shutdown(), self.control_timeout_s)
            except ControlError as exc:
                log.error("host supervisor %s did not answer Shutdown: %s", self.host_id, exc)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        return reports

    def __enter__(self) -> ConnectorHost:
        """Start the host unless it already runs (``with start_host(...) as host:`` and
        ``with ConnectorHost(...) as host:`` both work)."""
        return self if self._started else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- health --------------------------------------------------------------------------------
    def _feed(self, ready: threading.Event) -> None:
        try:
            self._endpoint = self.handle.endpoint()
        finally:
            ready.set()
        while not self._stop.is_set():
            try:
                msg = self.handle.receive(0.1)
            except Exception:  # the system is closing under us
                if self._stop.wait(0.1):
                    return
                continue
            if isinstance(msg, HealthEvent):
                self._push(msg)
            elif msg is not None:
                log.debug("host %s: ignoring %r", self.host_id, msg)

    def _push(self, event: HealthEvent) -> None:
        with self._cond:
            if len(self._events) == self._events.maxlen:
                self.events_dropped += 1
            self._events.append(event)
            self._cond.notify_all()
        for cb in list(self._callbacks):
            try:
                cb(event)
            except Exception:
                self.callback_errors += 1
                log.exception("health callback %r raised on %r", cb, event)

    @property
    def endpoint(self) -> Any:
        """The address the host's health thread receives on (None before :meth:`start`):
        give it to other actors whose HealthEvents the application should see with the
        gateways' (``next_event``, ``on_event``)."""
        return self._endpoint

    def on_event(self, callback: EventCallback) -> None:
        """Also call ``callback(event)`` for every event (on the health thread)."""
        self._callbacks.append(callback)

    def next_event(self, timeout: float = 1.0) -> HealthEvent | None:
        """The oldest unread HealthEvent, waiting up to ``timeout`` seconds; None if none came."""
        with self._cond:
            if not self._events:
                self._cond.wait(timeout)
            return self._events.popleft() if self._events else None

    def drain_events(self) -> list[HealthEvent]:
        """Every unread HealthEvent now (does not wait)."""
        with self._cond:
            out = list(self._events)
            self._events.clear()
            return out

    # ---- queries -------------------------------------------------------------------------------
    def control(self, gateway: str, msg: ControlMessage, timeout: float | None = None) -> Reply:
        """Send ``msg`` to one gateway and return its reply (ErrorReply is returned)."""
        return self.handle.control((self.host_id, gateway), msg,  # type: ignore[no-any-return]
                                   timeout or self.control_timeout_s)

    def health(self) -> dict[str, HealthReply | ErrorReply]:
        """Each gateway's HealthReply (or the ErrorReply it answered, e.g. while restarting)."""
        out: dict[str, HealthReply | ErrorReply] = {}
        for g in self.gateways:
            reply = self._ask(g.name, GetHealth())
            if isinstance(reply, HealthReply | ErrorReply):
                out[g.name] = reply
        return out

    def stats(self) -> dict[str, dict[str, Any]]:
        """Each gateway's stats (``{}`` for a gateway that could not answer right now)."""
        out: dict[str, dict[str, Any]] = {}
        for g in self.gateways:
            reply = self._ask(g.name, GetStats())
            out[g.name] = dict(reply.stats) if isinstance(reply, StatsReply) else {}
        return out

    def _ask(self, name: str, msg: ControlMessage) -> Reply | None:
        try:
            return self.control(name, msg)
        except ControlError as exc:
            log.warning("gateway %s did not answer %s: %s", name, type(msg).__name__, exc)
            return None


def _with_prefix(config: GatewayConfig, prefix: str) -> GatewayConfig:
    import attrs

    return attrs.evolve(config, iox_prefix=prefix)
