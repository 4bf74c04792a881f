"""A gateway group: the supervised actors of one gateway.

Each gateway runs as a small supervisor, :class:`GatewayGroup`, with three children in this
order and strategy ``rest_for_one``:

=========== ================================================ ==============================
child       what it is                                       a crash of it restarts
=========== ================================================ ==============================
``monitor`` :class:`~taktora.connectors.gateway.monitor.      the whole group
            GatewayMonitor`: health state machine, subscribers,
            the loss ledger across incarnations
``policy``  :class:`~taktora.actors.control.reconnect_policy.  policy and gateway
            ReconnectPolicyActor`: the reconnect backoff
``link``    :class:`~taktora.connectors.gateway.actor.Gateway`: the gateway alone
            the connector and its data path
=========== ================================================ ==============================

So a gateway crash (or ``kill -9`` of its process) restarts the gateway alone: its health
monitor, its subscribers, its ledger and its reconnect attempt count stay. The group tells the
monitor at once when the gateway exits without being asked (the monitor goes Down), and,
once the gateway reported started, which process it is: the monitor watches that process
itself and goes Down the moment it dies, before Thespian's exit notice reaches the group
(the group's notice then names the same process and makes no second Down). It hands
the gateway its siblings' addresses (``args["monitor"]``, ``args["policy"]``) at every start,
and the settings last changed at run time (``Configure``), so a restart keeps them.

Addressing: the group has the gateway's name, so ``connectors/<name>`` (a path of child ids)
still names "the gateway". A control message routed to the group itself is handed on:
:class:`GetHealth`, :class:`Subscribe` and :class:`Unsubscribe` to the monitor (they work
while the gateway restarts); :class:`GetStats` to the gateway (to the monitor, which answers
from its ledger, while the gateway is not running); everything else (Pause, Resume,
Reconnect, Shutdown, connector requests, ...) to the gateway, or ``ErrorReply(REJECTED)``
saying it is restarting. The group answers the supervisor messages (GetTree, the OTP child
operations) itself; its tree node has kind ``gateway``.

Everything runs on the group's actor thread, event-driven as any supervisor.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import attrs
from taktora.actors.control.base import handles
from taktora.actors.control.health_monitor import Subscribe, Unsubscribe
from taktora.actors.control.messages import (
    ChildInfo,
    ControlMessage,
    ErrorKind,
    GetHealth,
    GetStats,
    Route,
    Shutdown,
)
from taktora.actors.control.reconnect_policy import ReconnectPolicyActor
from taktora.actors.control.supervision import ChildSpec, Restart, Strategy, SupervisorSpec
from taktora.actors.control.supervisor import Supervisor
from taktora.connectors.gateway.actor import Gateway
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.messages import ConfigApplied
from taktora.connectors.gateway.monitor import (
    GatewayMonitor,
    LinkProcess,
    LinkProcessExited,
    pid_namespace,
    process_identity,
)

MONITOR, POLICY, LINK = "monitor", "policy", "link"

#: the shortest delay before a gateway restart (see GatewayGroup._backoff_delay)
RESTART_TICK_S = 0.001

#: the messages the monitor answers, also while the gateway restarts
_TO_MONITOR = (GetHealth, Subscribe, Unsubscribe)


class GatewayGroup(Supervisor):
    """The supervisor of one gateway's actors (see the module docstring)."""

    kind: ClassVar[str] = "gateway"
    #: the gateway's process (pid, start ticks) while it runs, as told to the monitor
    link_process: tuple[int, int] | None = None

    def child_args(self, child_id: str, args: dict[str, Any]) -> dict[str, Any]:
        if child_id == LINK:
            self.link_process = None  # a new incarnation: known once it reported started
            args["monitor"] = self._address(MONITOR)
            args["policy"] = self._address(POLICY)
            applied = getattr(self, "applied_config", None)
            if applied is not None:  # settings changed at run time outlive a restart
                args["config"] = applied
        return args

    @handles(ConfigApplied)
    def _config_applied(self, msg: ConfigApplied, sender: Any) -> None:
        self.applied_config = msg.config

    def on_child_up(self, child_id: str) -> None:
        """The gateway reported started: tell the monitor its process, which the monitor
        watches (its death watch). Only a process of this host and pid namespace, forked by
        this one (Thespian's multi-process bases), with the pid it reported: a pid already
        reaped and taken by another process is not this process's child."""
        child = self._find(child_id)
        monitor = self._address(MONITOR)
        if child_id != LINK or child is None or child.pid is None or monitor is None \
                or child.pid == os.getpid():
            return
        ticks = process_identity(child.pid, parent=os.getpid())
        if ticks is not None and pid_namespace():
            self.link_process = (child.pid, ticks)
            self.send(monitor, LinkProcess(pid=child.pid, start_ticks=ticks,
                                           namespace=pid_namespace()))

    def on_child_down(self, child_id: str, reason: str, *, abnormal: bool) -> None:
        monitor = self._address(MONITOR)
        if child_id == LINK and monitor is not None:
            pid, ticks = self.link_process or (None, None)
            self.link_process = None
            self.send(monitor, LinkProcessExited(reason=reason, pid=pid, start_ticks=ticks))

    def _backoff_delay(self, child: Any, now: float) -> float:
        # At least a tick: the restart (which forks the new gateway's process, milliseconds)
        # then runs after this handler returned, so the monitor's LinkExited goes out first
        # and the application sees Down without waiting for the fork.
        return max(super()._backoff_delay(child, now), RESTART_TICK_S)

    def tree(self) -> ChildInfo:
        return attrs.evolve(super().tree(), kind=self.kind)

    def _address(self, child_id: str) -> Any:
        child = self._find(child_id)
        return None if child is None else child.address

    def _running(self, child_id: str) -> Any:
        child = self._find(child_id)
        return child.address if child is not None and child.state == "running" else None

    def _hand_on(self, child_id: str, msg: ControlMessage, sender: Any) -> bool:
        address = self._running(child_id)
        if address is None:
            return False
        self.send(address, Route(path=(), message=msg, reply_to=sender,
                                 correlation_id=msg.correlation_id))
        return True

    @handles(ControlMessage)
    def _to_children(self, msg: ControlMessage, sender: Any) -> None:
        """Anything the supervisor does not answer itself goes to the gateway or its monitor."""
        first = MONITOR if isinstance(msg, _TO_MONITOR) else LINK
        if self._hand_on(first, msg, sender):
            return
        child = self._find(first)
        state = "missing" if child is None else child.state
        self._reply_error(msg, sender, ErrorKind.REJECTED,
                          f"gateway {self.name!r} is restarting ({first}: {state}); try again "
                          f"in a moment")

    @handles(GetStats)
    def _stats(self, msg: GetStats, sender: Any) -> None:
        if not self._hand_on(LINK, msg, sender) and not self._hand_on(MONITOR, msg, sender):
            self._reply_error(msg, sender, ErrorKind.REJECTED,
                              f"gateway {self.name!r} is restarting; try again in a moment")

    @handles(Shutdown)
    def _stop_gateway(self, msg: Shutdown, sender: Any) -> None:
        """Shutdown routed to the group stops the gateway's data plane (GatewayStopped); the
        group itself stops when its own supervisor stops it."""
        self._to_children(msg, sender)


@attrs.frozen(kw_only=True)
class GroupSpec(SupervisorSpec):
    """A :class:`SupervisorSpec` started as a :class:`GatewayGroup` (see :func:`group_child`)."""

    supervisor_class: ClassVar[type] = GatewayGroup


def group_child(config: GatewayConfig, *, subscribers: list[Any],
                supervision: SupervisorSpec, restart: Restart = Restart.TRANSIENT,
                ledger: str | None = None) -> ChildSpec:
    """The child spec of one gateway group: ``config``'s gateway, its monitor (telling
    ``subscribers``, actor addresses, every HealthEvent) and its reconnect policy
    (``config.reconnect``). ``supervision`` gives the group's restart intensity, period and
    backoff (its strategy is always rest_for_one; its children are ignored). ``ledger`` names
    the gateway's counter block (unique per prefix; default: the gateway's name)."""
    ledger = ledger or config.name
    link_s = config.shutdown_timeout_s + Gateway.linger_s + 1.0
    children = (
        ChildSpec(id=MONITOR, start=GatewayMonitor,
                  args={"config": config, "subscribers": list(subscribers), "ledger": ledger}),
        ChildSpec(id=POLICY, start=ReconnectPolicyActor, args={"settings": config.reconnect}),
        ChildSpec(id=LINK, start=Gateway, args={"config": config, "ledger": ledger},
                  shutdown_s=link_s),
    )
    spec = GroupSpec(strategy=Strategy.REST_FOR_ONE, intensity=supervision.intensity,
                     period_s=supervision.period_s, backoff=supervision.backoff,
                     children=children)
    return ChildSpec(id=config.name, start=spec, restart=restart,
                     shutdown_s=sum(c.shutdown_s for c in children) + 1.0)
