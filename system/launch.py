"""Starting what a system file declares inside a running actor system."""

from __future__ import annotations

from typing import Any

from taktora.connectors.gateway.host import ConnectorHost, EventCallback
from taktora.system.config import SystemConfig


def start_host(handle: Any, config: SystemConfig, *, host_id: str = "connectors",
               iox_prefix: str | None = None,
               on_event: EventCallback | None = None) -> ConnectorHost:
    """A started :class:`ConnectorHost` running ``config``'s gateways under ``handle``.

    ``on_event`` is registered before the gateways start, so it sees their first events (it
    runs on the host's health thread). Blocks until every gateway ran its ``on_start``; raises
    what :meth:`ConnectorHost.start` raises. The host is a context manager: ``with
    start_host(handle, config) as host:`` stops it at the end of the block.
    """
    host = ConnectorHost(handle, config.gateway_configs(iox_prefix),
                         supervision=config.supervision, host_id=host_id)
    if on_event is not None:
        host.on_event(on_event)
    return host.start()
