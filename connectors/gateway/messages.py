"""The gateway's own messages: a crash hook for tests and the demo, and the reply to Shutdown."""

from __future__ import annotations

import attrs
from taktora.actors.control.messages import ControlMessage, Reply
from taktora.actors.models.health import HealthState


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
