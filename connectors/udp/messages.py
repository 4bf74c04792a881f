"""UDP's control requests: fault injection for tests and the demo."""

from __future__ import annotations

import attrs
from taktora.actors.errors import ControlError
from taktora.connectors.requests import ConnectorRequest
from taktora.transport.validators import Checks

_v = Checks(ControlError)

#: Upper bound of ``InjectFault.delay_ms``: a minute per frame (a link slower than that is down).
MAX_DELAY_MS = 60_000.0


@attrs.frozen(kw_only=True)
class InjectFault(ConnectorRequest):
    """Set faults on the UDP connector's :class:`~taktora.connectors.udp.faults.FaultInjector`.

    ``link`` "down"/"up" cuts or restores the link; ``drop_every`` / ``corrupt_every`` /
    ``delay_ms`` (at most a minute) set those faults; ``clear`` turns everything off first.
    Served by
    :meth:`UdpConnector.handle_request <taktora.connectors.udp.connector.UdpConnector.handle_request>`
    through the gateway like any connector request; answered with Ack.
    """

    link: str = attrs.field(default="", validator=_v.one_of(("", "up", "down")))
    drop_every: int = attrs.field(default=0, validator=_v.non_negative())
    corrupt_every: int = attrs.field(default=0, validator=_v.non_negative())
    delay_ms: float = attrs.field(default=0.0, validator=_v.number(ge=0, le=MAX_DELAY_MS))
    clear: bool = False
