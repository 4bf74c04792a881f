"""taktora.connectors.gateway: the gateway and its pieces.

``config`` (GatewayConfig), ``dispatcher`` (the threads that move frames between iceoryx2 and
a connector), ``messages`` (the gateway's own messages), ``actor`` (the Gateway actor that
owns connector, dispatcher, health and reconnects) and ``host`` (ConnectorHost: several
gateways under one supervisor, health events for the application). The last two import
Thespian and load on first access.
"""

from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.counters import DispatcherStats
from taktora.connectors.gateway.dispatcher import Dispatcher
from taktora.connectors.gateway.messages import GatewayStopped, InjectCrash
from taktora.connectors.gateway.reports import StopReport
from taktora.transport.lazy import lazy_getattr

_LAZY = {
    "Gateway": "taktora.connectors.gateway.actor",
    "flatten_stats": "taktora.connectors.gateway.counters",
    "ConnectorHost": "taktora.connectors.gateway.host",
    "EventCallback": "taktora.connectors.gateway.host",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "ConnectorHost",
    "Dispatcher",
    "DispatcherStats",
    "EventCallback",
    "Gateway",
    "GatewayConfig",
    "GatewayStopped",
    "InjectCrash",
    "StopReport",
    "flatten_stats",
]
