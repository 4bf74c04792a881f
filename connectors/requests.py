"""The base of protocol-specific control requests a gateway hands to its connector."""

from __future__ import annotations

import attrs
from taktora.actors.control.messages import ControlMessage


@attrs.frozen(kw_only=True)
class ConnectorRequest(ControlMessage):
    """Base of requests a gateway does not interpret itself: it hands them to its connector's
    :meth:`~taktora.connectors.connector.Connector.handle_request` and sends back the typed
    reply that returns. A connector that does not serve the request (the default) or fails to
    carry it out answers ``ErrorReply(REJECTED)`` naming the reason; the gateway keeps running.

    Each protocol package defines its requests (subclasses) in its own ``messages`` module.
    """
