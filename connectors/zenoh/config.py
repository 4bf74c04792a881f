"""Zenoh session configuration (frozen attrs) and the QoS mapping onto zenoh's options.

:class:`ZenohConfig` is a plain value: it validates at construction (an error names the field)
and travels in configs and control messages; :meth:`ZenohConfig.to_zenoh` builds the
``zenoh.Config`` when a session opens. :func:`publisher_options` maps a descriptor's
:class:`~taktora.connectors.model.QoS` to ``declare_publisher`` keyword arguments.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs
import zenoh
from taktora.connectors.model import Congestion, FrozenMap, QoS, Reliability
from taktora.connectors.zenoh.errors import ZenohConfigError
from taktora.transport.validators import AssignChecks

MODES = ("peer", "client", "router")
_ENDPOINT = re.compile(r"^(tcp|udp|tls|quic|unixsock-stream|ws)/.+$")

_v = AssignChecks(ZenohConfigError)

#: Bounds of the time settings in seconds (the class docstring states them).
POLL_MIN_S = 0.001
POLL_MAX_S = 60.0
REOPEN_MAX_S = 86_400.0
QUERY_MAX_S = 3_600.0

_endpoints = _v.tuple_of(_v.matches(_ENDPOINT, "an endpoint like 'tcp/127.0.0.1:7447'"),
                         "zenoh endpoints")


def _tuple(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _frozen(value: Any) -> FrozenMap[str, str]:
    return FrozenMap.of(value)


@attrs.frozen
class ZenohConfig:
    """How a :class:`~taktora.connectors.zenoh.session.ZenohSession` opens.

    ``mode``: "peer" (default), "client" (talks only through the routers in ``connect``) or
    "router". ``listen`` / ``connect``: zenoh endpoints (``tcp/127.0.0.1:7447``).
    ``multicast_scouting``: off by default (deterministic tests and plants: peers are named).
    ``min_peers``: fewer connected peers/routers than this is Degraded, none is Down.
    ``health_poll_s``: how often the health thread polls ``session.info`` (0.001 .. 60 s).
    ``reopen_after_s``: how long the session may stay Down before it is closed and opened
    again under the reconnect policy (> 0, at most a day; None: rely on zenoh's own link
    retries only). ``query_timeout_s``: default time after which a query is sealed with a
    timeout frame (a routing may override it with the option ``timeout_s``); ``late_grace_s``:
    how long after sealing late replies are still received (to be counted) before zenoh ends
    the query (both > 0, at most an hour). ``inbound_queue``: bound of the queue between
    zenoh's callback threads and the dispatcher (full: the newest frame is dropped and counted
    as ``queue_full``). ``extra``: further zenoh config paths -> JSON5.
    """

    mode: str = attrs.field(default="peer", validator=_v.one_of(MODES))
    listen: tuple[str, ...] = attrs.field(default=(), converter=_tuple, validator=_endpoints)
    connect: tuple[str, ...] = attrs.field(default=(), converter=_tuple, validator=_endpoints)
    multicast_scouting: bool = attrs.field(default=False, validator=_v.instance(bool))
    min_peers: int = attrs.field(default=1, validator=_v.non_negative_int())
    health_poll_s: float = attrs.field(default=0.05,
                                       validator=_v.number(ge=POLL_MIN_S, le=POLL_MAX_S))
    reopen_after_s: float | None = attrs.field(
        default=5.0, validator=_v.optional(_v.number(gt=0, le=REOPEN_MAX_S)))
    query_timeout_s: float = attrs.field(default=2.0, validator=_v.number(gt=0, le=QUERY_MAX_S))
    late_grace_s: float = attrs.field(default=1.0, validator=_v.number(gt=0, le=QUERY_MAX_S))
    inbound_queue: int = attrs.field(default=4096, validator=_v.positive())
    extra: FrozenMap[str, str] = attrs.field(
        factory=FrozenMap, converter=_frozen,
        validator=_v.mapping_of(lambda v: isinstance(v, str), "a JSON5 string"))

    def to_zenoh(self) -> zenoh.Config:
        """The ``zenoh.Config`` (raises ZenohConfigError naming the setting zenoh rejected)."""
        cfg = zenoh.Config()
        settings = {
            "mode": json.dumps(self.mode),
            "scouting/multicast/enabled": json.dumps(self.multicast_scouting),
        }
        if self.listen:
            settings["listen/endpoints"] = json.dumps(list(self.listen))
        if self.connect:
            settings["connect/endpoints"] = json.dumps(list(self.connect))
        settings.update(self.extra)
        for key, value in settings.items():
            try:
                cfg.insert_json5(key, value)
            except Exception as exc:
                raise ZenohConfigError(f"ZenohConfig: zenoh rejected {key}={value}: {exc}") from exc
        return cfg


_PRIORITIES = (zenoh.Priority.REAL_TIME, zenoh.Priority.INTERACTIVE_HIGH,
               zenoh.Priority.INTERACTIVE_LOW, zenoh.Priority.DATA_HIGH, zenoh.Priority.DATA,
               zenoh.Priority.DATA_LOW, zenoh.Priority.BACKGROUND)


def zenoh_priority(priority: int) -> zenoh.Priority:
    """QoS priority 1 (real time) .. 7 (background) as zenoh's Priority (same scale)."""
    return _PRIORITIES[priority - 1]


def publisher_options(qos: QoS) -> dict[str, Any]:
    """``declare_publisher`` keyword arguments for ``qos``: priority, congestion control,
    express and reliability (zenoh's names; values one to one)."""
    return {
        "priority": zenoh_priority(qos.priority),
        "congestion_control": (zenoh.CongestionControl.BLOCK if qos.congestion is Congestion.BLOCK
                               else zenoh.CongestionControl.DROP),
        "express": qos.express,
        "reliability": (zenoh.Reliability.BEST_EFFORT
                        if qos.reliability is Reliability.BEST_EFFORT
                        else zenoh.Reliability.RELIABLE),
    }
