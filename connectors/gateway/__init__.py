"""taktora.connectors.gateway: the gateway and its pieces.

``config`` (GatewayConfig), ``dispatcher`` (the threads that move frames between iceoryx2 and
a connector), ``messages`` (the gateway's own messages), ``actor`` (the Gateway actor that
owns connector, dispatcher, health and reconnects) and ``host`` (ConnectorHost: several
gateways under one supervisor, health events for the application). The last two import
Thespian and load on first access.
"""

import importlib

from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.dispatcher import Dispatcher, DispatcherStats, StopReport
from taktora.connectors.gateway.messages import GatewayStopped, InjectCrash

_LAZY = {
    "Gateway": "taktora.connectors.gateway.actor",
    "flatten_stats": "taktora.connectors.gateway.actor",
    "ConnectorHost": "taktora.connectors.gateway.host",
    "EventCallback": "taktora.connectors.gateway.host",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taktora.connectors.gateway' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


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
