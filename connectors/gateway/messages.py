"""The gateway's own messages: a crash hook for tests and the demo, the reply to Shutdown, and
what the actors of one gateway group (gateway, health monitor) tell each other."""

from __future__ import annotations

from typing import Any

import attrs
from taktora.actors.control.messages import ControlMessage, Reply
from taktora.actors.models.health import HealthEvent, HealthState


@attrs.frozen(kw_only=True)
class InjectCrash(ControlMessage):
    """Make the gateway's handler raise (a crash its supervisor restarts). Test/demo hook."""

    reason: str = "injected crash"


@attrs.frozen(kw_only=True)
class GatewayStopped(Reply):
    """Answer to :class:`Shutdown`: what stopped within the timeout and what did not."""

    stopped: tuple[str, ...] = ()
    not_stopped: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    timeout_s: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.not_stopped


@attrs.frozen(kw_only=True)
class LinkReport:
    """A connector's health report, sent by the gateway to itself from the reporting thread
    (``generation``: the connection it belongs to; reports of an earlier one are dropped)."""

    state: HealthState
    reason: str = ""
    generation: int = 0


# --- inside a gateway group (gateway <-> its monitor) -----------------------------------------
@attrs.frozen(kw_only=True)
class LinkHealth:
    """Gateway -> its monitor: one transition of the gateway's link health. ``incarnation``
    (``"<pid>-<start ns>"``) tells a restarted gateway's events from a dead one's late ones."""

    incarnation: str
    event: HealthEvent


@attrs.frozen(kw_only=True)
class LinkExited:
    """Group supervisor -> monitor: the gateway actor exited without being asked to (crash,
    ``kill -9``); ``reason`` as the supervisor saw it."""

    reason: str


@attrs.frozen(kw_only=True)
class ConfigApplied:
    """Gateway -> its group supervisor: settings were changed at run time (``Configure``);
    the group starts the gateway's next incarnation with ``config``, so a restart keeps them.
    ``config`` is a :class:`~taktora.connectors.gateway.config.GatewayConfig` (typed ``Any``
    here to keep this module free of the config's imports)."""

    config: Any
