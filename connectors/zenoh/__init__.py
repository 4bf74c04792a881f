"""taktora.connectors.zenoh: Zenoh pub/sub and query/reply connectors over a shared session.

- :class:`ZenohConnector`: iceoryx2 channels <-> zenoh key expressions (raw payloads on the
  wire, QoS mapped to zenoh publisher options).
- :class:`ZenohQueryConnector`: ARCH_0043 query/reply (QUERY / REPLY_DATA / REPLY_END /
  REPLY_TIMEOUT frames correlated by QueryId), with :class:`ZenohQuerier` and
  :class:`ZenohQueryable` for the application side and :func:`query_channels` for descriptors.
- :class:`ZenohSession`: the shared session, peer-count health and reconnect policy.

Both connectors are plain :class:`~taktora.connectors.connector.Connector` s driven by the
generic :class:`~taktora.connectors.gateway.dispatcher.Dispatcher` (one dispatcher each).
"""

from taktora.connectors.zenoh.config import ZenohConfig, publisher_options, zenoh_priority
from taktora.connectors.zenoh.connector import KeyCounts, ZenohConnector, key_expr
from taktora.connectors.zenoh.errors import ZenohConfigError, ZenohError
from taktora.connectors.zenoh.query import (
    QUERIER,
    QUERYABLE,
    QueryChannels,
    ZenohQuerier,
    ZenohQueryable,
    ZenohQueryConnector,
    query_channels,
)
from taktora.connectors.zenoh.session import ZenohSession

__all__ = [
    "QUERIER",
    "QUERYABLE",
    "KeyCounts",
    "QueryChannels",
    "ZenohConfig",
    "ZenohConfigError",
    "ZenohConnector",
    "ZenohError",
    "ZenohQuerier",
    "ZenohQueryConnector",
    "ZenohQueryable",
    "ZenohSession",
    "key_expr",
    "publisher_options",
    "query_channels",
    "zenoh_priority",
]
