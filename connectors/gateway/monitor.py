"""``GatewayMonitor``: the health and the loss ledger of one gateway, outliving its restarts.

The first child of a gateway group (:mod:`taktora.connectors.gateway.group`). It keeps:

- **the health state machine** (ARCH_0012) of the gateway. The gateway actor tells its own link
  transitions as :class:`LinkHealth`; the monitor follows them (a restarted gateway's first
  event, Connecting, follows the Down of the crash: ``previous`` is Down, not None) and ignores
  late events of an incarnation that already ended. When the gateway actor dies without
  stopping (a crash, ``kill -9``), the group supervisor tells the monitor
  (:class:`LinkExited`) and the monitor goes Down at once, reason ``exited: <why>``. Every
  transition is one :class:`HealthEvent`, sent to every subscriber: those in
  ``args["subscribers"]`` and those added at run time with :class:`Subscribe` (a gateway
  restart keeps both: they live here). A new subscriber gets the current state at once.
- **the loss ledger's file**: the gateway counts in a shared-memory counter block
  (:mod:`taktora.transport.shared_counters`) that every incarnation opens again, so nothing it
  counted is lost with its process. The monitor removes a stale block (of an earlier run) when
  it starts and the block when it stops; while the gateway restarts it answers ``GetStats``
  from the block itself.

It answers :class:`GetHealth` (also while the gateway restarts: the gateway group routes it
here) and :class:`GetStats` (health, the ledger's totals ``total.<key>`` and the number of
incarnations; the group routes it here only while the gateway actor is not running).

All handlers run on the monitor's actor thread and never block.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from taktora.actors.control.base import TaktoraActor, handles
from taktora.actors.control.health_monitor import HealthSubscribers
from taktora.actors.control.messages import (
    GetHealth,
    GetStats,
    HealthReply,
    StatsReply,
)
from taktora.actors.models.health import TRANSITIONS, HealthEvent, HealthMachine, HealthState
from taktora.connectors.errors import ConnectorError
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.counters import block_totals
from taktora.connectors.gateway.messages import LinkExited, LinkHealth
from taktora.connectors.model import Direction
from taktora.transport import isolation
from taktora.transport.errors import TransportError
from taktora.transport.shared_counters import SharedCounters, counters_path

log = logging.getLogger(__name__)

D = HealthState.DOWN

#: incarnations remembered as ended (their late messages are ignored)
ENDED_MEMORY = 32


class GatewayMonitor(HealthSubscribers, TaktoraActor):
    """See the module docstring. ``args``: ``config`` (the gateway's
    :class:`~taktora.connectors.gateway.config.GatewayConfig`), ``subscribers``."""

    def on_start(self) -> None:
        config = self.args.get("config")
        if not isinstance(config, GatewayConfig):
            raise ConnectorError(f"monitor {self.name!r}: args['config'] must be a "
                                 f"GatewayConfig, got {type(config).__name__}")
        self.gateway = config.name
        self.outbound = [d.name for d in config.channels if d.direction is Direction.OUTBOUND]
        self.inbound = [d.name for d in config.channels if d.direction is Direction.INBOUND]
        self.block_path = counters_path(config.iox_prefix or isolation.prefix_from_env(),
                                        str(self.args.get("ledger") or config.name))
        self.block_path.unlink(missing_ok=True)  # an earlier run's: this ledger starts at 0
        self.subscribers: list[Any] = list(self.args.get("subscribers", ()))
        self.health = HealthMachine(self.gateway)
        self.health.subscribe(self._fan_out)
        self.incarnation: str | None = None
        self.ended: collections.deque[str] = collections.deque(maxlen=ENDED_MEMORY)
        self.exits = 0
        self._fan_out(self.health.last_event)  # the initial Connecting

    def on_stop(self) -> None:
        if hasattr(self, "block_path"):
            self.block_path.unlink(missing_ok=True)

    def _fan_out(self, event: HealthEvent) -> None:
        log.info("gateway %s: health %s -> %s (%s)", self.gateway,
                 event.previous.value if event.previous else "-", event.state.value, event.reason)
        for sub in self.subscribers:
            self.send(sub, event)

    def _follow(self, state: HealthState, reason: str) -> None:
        """Move to ``state``; a step the table does not allow (a new incarnation's Connecting
        after an Up the monitor never saw end) goes through Down first."""
        current = self.health.state
        if state is current:
            return
        if state not in TRANSITIONS[current]:
            self.health.transition(D, f"gateway restarted ({reason})")
        self.health.transition(state, reason)

    @handles(LinkHealth)
    def _link_health(self, msg: LinkHealth, sender: Any) -> None:
        if msg.incarnation in self.ended:
            return  # a dead incarnation's late event
        if msg.incarnation != self.incarnation:
            if self.incarnation is not None:
                self.ended.append(self.incarnation)
            self.incarnation = msg.incarnation
        self._follow(msg.event.state, msg.event.reason)

    @handles(LinkExited)
    def _link_exited(self, msg: LinkExited, sender: Any) -> None:
        self.exits += 1
        if self.incarnation is not None:
            self.ended.append(self.incarnation)
            self.incarnation = None
        self._follow(D, f"exited: {msg.reason}")

    def current_event(self) -> HealthEvent:
        """A new subscriber gets the current state at once."""
        return self.health.last_event

    @handles(GetHealth)
    def _get_health(self, msg: GetHealth, sender: Any) -> HealthReply:
        state = self.health.state
        return HealthReply(correlation_id=msg.correlation_id, source=self.gateway, state=state,
                           sources={self.gateway: state}, last_event=self.health.last_event)

    @handles(GetStats)
    def _get_stats(self, msg: GetStats, sender: Any) -> StatsReply:
        """Answered here only while the gateway actor is not running (restarting)."""
        stats: dict[str, Any] = {"health": self.health.state.value, "restarting": True,
                                 "exits": self.exits}
        try:
            with SharedCounters.open(self.block_path) as block:
                totals = block_totals(block, self.outbound, self.inbound)
        except TransportError:  # no incarnation counted yet
            totals = {}
        stats["incarnations"] = totals.pop("incarnations", 0)
        for key, n in sorted(totals.items()):
            stats[f"total.{key}"] = n
        return StatsReply(correlation_id=msg.correlation_id, source=self.gateway, stats=stats)
