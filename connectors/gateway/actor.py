"""The ``Gateway`` actor: one connector, its dispatcher, health and reconnects.

A gateway is a :class:`~taktora.actors.control.base.TaktoraActor` configured by a
:class:`GatewayConfig` in ``args["config"]`` (normally from a supervisor's ``ChildSpec``).
Everything with threads, sockets or iceoryx2 nodes is built in :meth:`Gateway.on_start`,
inside the actor (actors are forked on multi-process bases):

- the **connector**, found by ``config.connector`` (a registered short name or
  ``"module:Class"``) and built from ``config.settings`` (structured into its settings class);
- one :class:`~taktora.connectors.gateway.dispatcher.Dispatcher`: its iceoryx2 ports and
  outbound thread live as long as this incarnation, so a reconnect reopens only the protocol
  side; inbound frames are published by the connector's own threads through the context it
  gets in ``open``. Data never passes through the actor mailbox;
- a :class:`~taktora.actors.models.health.HealthMachine` of its link (Connecting / Up /
  Degraded / Down): every transition goes to the group's monitor (``args["monitor"]``) as a
  :class:`LinkHealth`; the monitor owns the health the application sees, fans it out to the
  subscribers and outlives this actor (:mod:`taktora.connectors.gateway.group`);
- the reconnect backoff lives in the group's policy actor (``args["policy"]``): when the link
  goes down the gateway disconnects the connector, goes Down and sends ``ConnectionLost``; the
  policy answers ``AttemptReconnect`` after its backoff: Connecting, reopen, Up (or Down again
  and the next ``ConnectionLost``). The attempt count survives a restart of this actor;
- the loss ledger: the dispatcher counts in the gateway's shared-memory counter block
  (:mod:`taktora.transport.shared_counters`, ``counters_<host>.<name>`` under the prefix),
  which every incarnation opens again: counts, link sequences and the last sequence taken of
  each writer survive a crash and ``kill -9`` exactly. ``GetStats`` reports this incarnation's
  counts under the usual keys and every incarnation's as ``total.<key>``.

The link is **pushed**: the connector reports Up / Degraded / Down through its context; the
report reaches the actor thread as a :class:`LinkReport` message (reports of an earlier
connection are dropped). The gateway never polls the connector. The ``health`` timer (every
``health_poll_s``) checks that the dispatcher's own threads still run.

While the connector is disconnected (Down, reconnecting), what the application writes on an
outbound channel is drained and counted as dropped with cause ``down``.

Control messages (all on the actor thread, answered with typed replies): :class:`Pause` /
:class:`Resume` (Ack; what arrives meanwhile is counted as ``paused`` drops; a reconnect
keeps the pause), :class:`Reconnect` (Ack; drop and re-establish now, the backoff starts
again at attempt 1), :class:`GetHealth` (HealthReply of the link; the group routes
``GetHealth`` to the monitor), :class:`GetStats` (StatsReply: dispatcher counters of this
incarnation, ``total.<key>`` across incarnations, connector counters, health, attempts),
:class:`Shutdown` (stop the data plane in order and answer :class:`GatewayStopped`; the
actor stays, Down, until its supervisor stops it: a restart brings the gateway back), any
:class:`ConnectorRequest` (handed to the connector's ``handle_request`` hook, which returns
the typed reply, e.g. an EtherCAT ``ReadSdo`` -> ``SdoValue``; a refusal or a protocol
failure, such as an SDO abort, becomes ``ErrorReply`` REJECTED naming it; UDP's fault
injection is such a request), :class:`InjectCrash` (raises: a crash the supervisor
restarts). Anything else gets ``ErrorReply`` and the gateway keeps running.

Shutdown (ARCH_0530): the connector is disconnected first (its reader thread, if any, then
``close``), then the outbound thread, then the iceoryx2 ports, bounded by
``shutdown_timeout_s`` in total; a thread that did not stop in time is named in the
:class:`GatewayStopped` reply and logged, and its ports are released once it has ended
(``on_stop`` waits up to ``linger_s`` more for it).

Blocking: opening the connector and stopping the dispatcher block the actor thread (bounded by
the connector's open and ``shutdown_timeout_s``). Raising: a failing connector never crashes
the gateway (it reconnects); a bad config or an unknown connector crashes it in ``on_start``
(its supervisor restarts it per its intensity, then escalates).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

from taktora.actors.control.base import TaktoraActor, handles
from taktora.actors.control.messages import (
    Ack,
    GetHealth,
    GetStats,
    HealthReply,
    Pause,
    Reconnect,
    Reply,
    Resume,
    Shutdown,
    StatsReply,
)
from taktora.actors.control.reconnect_policy import (
    AttemptReconnect,
    ConnectionLost,
    ConnectionUp,
    ReconnectGaveUp,
    ResetBackoff,
)
from taktora.actors.errors import ControlError
from taktora.actors.models.health import HealthEvent, HealthMachine, HealthState
from taktora.connectors.errors import ConnectorError
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.counters import (
    INCARNATIONS,
    block_totals,
    counter_names,
    flatten_stats,
)
from taktora.connectors.gateway.dispatcher import Dispatcher
from taktora.connectors.gateway.messages import (
    ConfigApplied,
    GatewayStopped,
    InjectCrash,
    LinkHealth,
    LinkReport,
)
from taktora.connectors.gateway.params import ParamsMixin
from taktora.connectors.gateway.reports import StopReport
from taktora.connectors.model import Direction
from taktora.connectors.requests import ConnectorRequest
from taktora.transport import isolation
from taktora.transport.errors import TaktoraError
from taktora.transport.shared_counters import SharedCounters, counters_path

log = logging.getLogger(__name__)

C, U, G, D = HealthState.CONNECTING, HealthState.UP, HealthState.DEGRADED, HealthState.DOWN


# --- the actor --------------------------------------------------------------------------------
class Gateway(ParamsMixin, TaktoraActor):
    """Owns one connector and its dispatcher; see the module docstring."""

    #: extra time ``on_stop`` waits for threads that missed the shutdown timeout
    linger_s = 5.0

    def on_start(self) -> None:
        config = self.args.get("config")
        if not isinstance(config, GatewayConfig):
            raise ConnectorError(f"gateway {self.name!r}: args['config'] must be a "
                                 f"GatewayConfig, got {type(config).__name__}")
        self.config = config
        self.prefix = config.iox_prefix or isolation.prefix_from_env()
        self.monitor = self.args.get("monitor")
        self.policy = self.args.get("policy")
        if self.monitor is None or self.policy is None:
            raise ConnectorError(f"gateway {config.name!r}: no monitor/policy address: a "
                                 f"Gateway runs inside a gateway group (see "
                                 f"taktora.connectors.gateway.group.group_child)")
        self.started_ns = time.time_ns()
        self.incarnation = f"{os.getpid()}-{self.started_ns}"
        self.attempt = 0  # the reconnect attempt in progress (0: none)
        self.paused = False
        self.connects = 0  # connections that opened
        self.generation = 0  # connection attempts: tags link reports
        self.link_losses = 0
        self.gave_up = False
        self.stop_report: StopReport | None = None
        self.stopped = False
        self.final_counts: dict[str, int] = {}
        self._reports: queue.SimpleQueue[LinkReport | None] = queue.SimpleQueue()
        self.health = HealthMachine(config.name)
        self.health.subscribe(self._tell_monitor)
        self.dispatcher: Dispatcher | None = None
        self.connector = config.build_connector()
        self._forwarder = threading.Thread(target=self._forward_reports, daemon=True,
                                           name=f"{config.name}-reports")
        self._forwarder.start()
        self.outbound = [d.name for d in config.channels if d.direction is Direction.OUTBOUND]
        self.inbound = [d.name for d in config.channels if d.direction is Direction.INBOUND]
        # the counters outlive this process: every incarnation counts on in the same block
        self.block: SharedCounters | None = SharedCounters.open_or_create(
            counters_path(self.prefix, str(self.args.get("ledger") or config.name)),
            counter_names(self.outbound, self.inbound))
        self.block.add(INCARNATIONS)
        self.final_totals: dict[str, int] = {}
        # the ports live as long as this incarnation: a reconnect reopens only the protocol
        self.dispatcher = Dispatcher(self.prefix, self.connector, config.channels,
                                     name=config.name, poll_s=config.poll_s,
                                     on_report=self._on_report, counters=self.block)
        self.dispatcher.open_ports()
        self._tell_monitor(self.health.last_event)  # the initial Connecting (after a crash: Down ->)
        self._connect()
        self.start_timer("health", config.health_poll_s)

    # ---- health ------------------------------------------------------------------------------
    def _tell_monitor(self, event: HealthEvent) -> None:
        """Every transition of the link goes to the group's monitor, which owns the health the
        application sees (and logs it)."""
        self.send(self.monitor, LinkHealth(incarnation=self.incarnation, event=event))

    def _go(self, state: HealthState, reason: str) -> None:
        self.health.transition(state, reason)

    def _on_report(self, state: HealthState, reason: str) -> None:
        """The connector (or a dispatcher thread) reported its link, on the reporting thread.

        Only queued here: the reporting thread may hold the dispatcher's send lock, and a
        Thespian send can wait for the actor system's own lock while an actor handler (which
        may be waiting for that send lock) runs. The ``<name>-reports`` thread hands the
        report to the actor thread as a :class:`LinkReport` message."""
        self._reports.put(LinkReport(state=state, reason=reason, generation=self.generation))

    def _forward_reports(self) -> None:
        """The ``<name>-reports`` thread: queued link reports -> messages to this actor (the
        route from a background thread of the actor); ends on the None sentinel."""
        while (report := self._reports.get()) is not None:
            try:
                self.send(self.myAddress, report)
            except Exception:
                log.exception("gateway %s: forwarding a link report failed", self.config.name)

    @handles(LinkReport)
    def _link_report(self, msg: LinkReport, sender: Any) -> None:
        if msg.generation == self.generation:  # reports of an earlier connection are stale
            self._apply_link(msg.state, msg.reason)

    # ---- connection --------------------------------------------------------------------------
    def _connect(self) -> None:
        """Connecting -> open the connector on the dispatcher's ports -> Up; or -> Down +
        backoff."""
        assert self.dispatcher is not None
        self.generation += 1
        try:
            self.dispatcher.connect(self.connector)
            if self.dispatcher.link is D:
                raise ConnectorError("the link is down")
        except (TaktoraError, OSError) as exc:  # the link or the protocol: Down, back off
            # anything else is a bug of the connector: it crashes this incarnation and the
            # supervisor restarts it (then escalates per its intensity)
            self.dispatcher.disconnect(self.config.shutdown_timeout_s)
            self._go(D, f"connect failed: {exc}")
            self._schedule()
            return
        self.connects += 1
        if self.paused:
            self.dispatcher.pause()
        self._apply_link(self.dispatcher.link, self.dispatcher.link_reason)

    def _apply_link(self, link: HealthState, reason: str) -> None:
        """Follow the connector's reported link state (on the actor thread)."""
        dispatcher = self.dispatcher
        if dispatcher is None or not dispatcher.connected or self.health.state is D:
            return
        if link is D:
            self._link_lost(f"link down: {reason}" if reason else "link down")
        elif self.health.state is C:
            if link is U:
                self.attempt = 0
                self.send(self.policy, ConnectionUp())
                self._go(U, "connected" if self.connects == 1
                         else f"reconnected (#{self.connects - 1})")
            elif link is G:
                self._go(G, f"connected, connector degraded: {reason}" if reason
                         else "connected, connector degraded")
        elif link is G:
            self._go(G, reason or "connector degraded")
        elif link is U and self.health.state is G:
            self._go(U, reason or "recovered")

    def _disconnect(self, timeout: float) -> StopReport | None:
        """Stop forwarding and close the connector (bounded by ``timeout``); keep the ports."""
        if self.dispatcher is None:
            return None
        return self.dispatcher.disconnect(timeout)

    def _link_lost(self, reason: str) -> None:
        self.link_losses += 1
        self._disconnect(self.config.shutdown_timeout_s)
        self._go(D, reason)
        self._schedule()

    def _schedule(self) -> None:
        """Ask the group's reconnect policy for the next attempt (it answers
        :class:`AttemptReconnect` after its backoff, or :class:`ReconnectGaveUp`)."""
        self.send(self.policy, ConnectionLost(reason=self.health.last_event.reason))

    @handles(AttemptReconnect)
    def _attempt(self, msg: AttemptReconnect, sender: Any) -> None:
        if self.stopped or self.health.state is not D:
            return  # connected meanwhile (e.g. a Reconnect request), or shut down
        self.attempt = msg.attempt
        self._go(C, f"reconnect attempt {msg.attempt}")
        self._connect()

    @handles(ReconnectGaveUp)
    def _gave_up(self, msg: ReconnectGaveUp, sender: Any) -> None:
        self.gave_up = True
        log.error("gateway %s: giving up after %d reconnect attempts (send Reconnect to try "
                  "again)", self.config.name, msg.attempts)


    def on_timer(self, name: str, data: Any) -> None:
        if self.stopped:
            return
        if name == "health":
            self._check_threads()
            self.start_timer("health", self.config.health_poll_s)

    def _check_threads(self) -> None:
        """Backstop for a lost report: the dispatcher's threads must be alive while connected
        (it never asks the connector)."""
        dispatcher = self.dispatcher
        if dispatcher is not None and not dispatcher.outbound_alive():
            # it lives as long as the ports: only a new incarnation brings it back
            raise ConnectorError(f"gateway {self.config.name!r}: the outbound thread died")
        if dispatcher is None or self.health.state is D or not dispatcher.connected:
            return
        if not dispatcher.threads_alive():
            self._link_lost("dispatcher thread ended")
        else:
            self._apply_link(dispatcher.link, dispatcher.link_reason)

    # ---- control -----------------------------------------------------------------------------
    @handles(Pause)
    def _pause(self, msg: Pause, sender: Any) -> Ack:
        self.paused = True
        if self.dispatcher is not None:
            self.dispatcher.pause()
        if self.connector is not None:
            self.connector.on_pause(True)
        return self.ack(msg, "paused")

    @handles(Resume)
    def _resume(self, msg: Resume, sender: Any) -> Ack:
        self.paused = False
        if self.dispatcher is not None:  # first: what the connector sends on resume must pass
            self.dispatcher.resume()
        if self.connector is not None:
            try:
                self.connector.on_pause(False)
            except BaseException:  # the connector refused: stay paused, as before the call
                self.paused = True
                if self.dispatcher is not None:
                    self.dispatcher.pause()
                raise
        return self.ack(msg, "resumed")

    @handles(Reconnect)
    def _reconnect(self, msg: Reconnect, sender: Any) -> Ack:
        if self.stopped:
            raise ControlError(f"gateway {self.config.name!r} was shut down; its supervisor "
                               "restarts it")
        self.reconnect_now("reconnect requested")
        return self.ack(msg, self.health.state.value)

    def reconnect_now(self, reason: str) -> None:
        """Drop the connection and connect again at once (actor thread; blocks for the
        connector's close and open): the backoff starts again at attempt 1."""
        if self.dispatcher is not None:
            self._disconnect(self.config.shutdown_timeout_s)
        if self.health.state is not D:
            self._go(D, reason)
        self.send(self.policy, ResetBackoff())
        self.attempt = 0
        self.gave_up = False
        self._go(C, reason)
        self._connect()

    def reconnect_for_settings(self, reason: str) -> None:
        """Reopen the connector after its settings changed (the Configure handler replaced
        ``self.connector``): as :meth:`reconnect_now`, keeping a pause. Refused (ControlError,
        nothing touched) once the gateway was shut down."""
        if self.stopped:
            raise ControlError(f"gateway {self.config.name!r} was shut down; its supervisor "
                               "restarts it")
        self.reconnect_now(reason)
        if self.paused:
            self.connector.on_pause(True)

    def settings_applied(self) -> None:
        """Tell the group: its next start of this gateway uses the new settings."""
        if self.supervisor is not None:
            self.send(self.supervisor, ConfigApplied(config=self.config))

    @handles(GetHealth)
    def _get_health(self, msg: GetHealth, sender: Any) -> HealthReply:
        state = self.health.state
        return HealthReply(correlation_id=msg.correlation_id, source=self.config.name,
                           state=state, sources={self.config.name: state},
                           last_event=self.health.last_event)

    def counters(self) -> dict[str, int]:
        """This incarnation's dispatcher counters (its ports outlive every reconnect). The
        connector's own stats are not in the ledger: some of them are gauges, not counts."""
        if self.dispatcher is None:
            return dict(self.final_counts)
        return flatten_stats(self.dispatcher.stats())

    def totals(self) -> dict[str, int]:
        """Every incarnation's counters (the counter block), as :meth:`counters` names them."""
        if self.block is None:
            return dict(self.final_totals)
        return block_totals(self.block, self.outbound, self.inbound)

    @handles(GetStats)
    def _get_stats(self, msg: GetStats, sender: Any) -> StatsReply:
        stats: dict[str, Any] = {
            "health": self.health.state.value,
            "paused": self.paused,
            "pid": os.getpid(),
            "incarnation": f"{os.getpid()}-{self.started_ns}",
            "connects": self.connects,
            "link_losses": self.link_losses,
            "reconnect_attempts": self.attempt,
            "gave_up": self.gave_up,
            "stale_timers": self.stale_timers,
            "incarnations": int(self.block.values[self.block.index(INCARNATIONS)])
            if self.block is not None else 1,
        }
        counts = self.counters()
        stats.update(counts)
        for key, n in self.connector.stats().items():
            stats[f"connector.{key}"] = n
        for key, n in sorted(self.totals().items()):
            stats[f"total.{key}"] = n
        return StatsReply(correlation_id=msg.correlation_id, source=self.config.name, stats=stats)

    @handles(ConnectorRequest)
    def _connector_request(self, msg: ConnectorRequest, sender: Any) -> Reply:
        """Protocol-specific requests: the connector answers (blocks the actor thread for as
        long as the connector's own timeout allows). Its project errors are rejections, not
        crashes: the gateway keeps running."""
        try:
            reply = self.connector.handle_request(msg)
        except ControlError:
            raise
        except TaktoraError as exc:
            raise ControlError(f"gateway {self.config.name!r}: {type(msg).__name__}: {exc}") from exc
        if not isinstance(reply, Reply):
            raise ControlError(f"gateway {self.config.name!r}: connector answered "
                               f"{type(msg).__name__} with {type(reply).__name__}, not a Reply")
        return reply

    @handles(InjectCrash)
    def _crash(self, msg: InjectCrash, sender: Any) -> None:
        raise RuntimeError(f"gateway {self.config.name}: {msg.reason}")

    @handles(Shutdown)
    def _shutdown(self, msg: Shutdown, sender: Any) -> GatewayStopped:
        # The actor itself stays until its supervisor stops it: replying and exiting in the same
        # turn can lose the reply on the multi-process base (the process ends before it is sent).
        report = self._stop_all()
        return GatewayStopped(correlation_id=msg.correlation_id, stopped=report.stopped,
                              not_stopped=report.not_stopped, elapsed_s=report.elapsed_s,
                              timeout_s=self.config.shutdown_timeout_s)

    # ---- shutdown ----------------------------------------------------------------------------
    def _stop_all(self) -> StopReport:
        """Ordered stop (ARCH_0530): timers off, dispatcher threads, connector, ports."""
        if self.stopped:
            return self.stop_report or StopReport((), (), 0.0)
        self.stopped = True
        self.cancel_timer("health")
        if self.crashed and self.health.state is not D:
            # a crash is Down at once, before the (bounded, but possibly slow) closing below:
            # the monitor has this event before the group learns that the process ended
            self._go(D, "crashed: being restarted")
        began = time.monotonic()
        report = None
        if self.dispatcher is not None:
            report = self.dispatcher.close(self.config.shutdown_timeout_s)
            self.final_counts = flatten_stats(self.dispatcher.stats())
            self.final_totals = self.totals()
            if report.clean:
                self.dispatcher = None
                self._close_block()
        self._reports.put(None)  # ends the forwarder thread
        self._forwarder.join(1.0)
        if self.health.state is not D:
            self._go(D, "crashed: being restarted" if self.crashed else "stopped")
        report = report or StopReport((), (), 0.0)
        self.stop_report = StopReport(report.stopped, report.not_stopped,
                                      time.monotonic() - began)
        if report.clean:
            log.info("gateway %s stopped in %.3f s", self.config.name, self.stop_report.elapsed_s)
        else:
            log.error("gateway %s: shutdown timeout %.3f s: not stopped: %s", self.config.name,
                      self.config.shutdown_timeout_s, list(report.not_stopped))
        return self.stop_report

    def _close_block(self) -> None:
        """Unmap the counter block (once no thread of ours can count in it any more); the file
        stays for the next incarnation and the monitor."""
        if getattr(self, "block", None) is not None:
            assert self.block is not None
            self.block.close()
            self.block = None

    def on_stop(self) -> None:
        if not hasattr(self, "connector"):
            return  # on_start never ran or failed before the connector existed
        self._stop_all()
        if self.dispatcher is not None:  # a thread missed the timeout: release its ports late
            late = self.dispatcher.close(self.linger_s)
            if late.clean:
                self.dispatcher = None
                self._close_block()
            else:
                log.error("gateway %s: %s still running %.1f s after the shutdown timeout; "
                          "their iceoryx2 ports stay open", self.config.name,
                          list(late.not_stopped), self.linger_s)
