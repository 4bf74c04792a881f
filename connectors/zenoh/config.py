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
from taktora.system.errors import ConfigError

MODES = ("peer", "client", "router")
_ENDPOINT = re.compile(r"^(tcp|udp|tls|quic|unixsock-stream|ws)/.+$")


def _fail(inst: Any, field: str, value: object, why: str) -> ConfigError:
    return ConfigError(f"{type(inst).__name__}.{field}={value!r}: {why}")


def _mode(inst: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in MODES:
        raise _fail(inst, attribute.name, value, f"must be one of {MODES}")


def _endpoints(inst: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for ep in value:
        if not isinstance(ep, str) or not _ENDPOINT.match(ep):
            raise _fail(inst, attribute.name, ep, "endpoints look like 'tcp/127.0.0.1:7447'")


def _non_negative_int(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(inst, attribute.name, value, "must be an integer >= 0")


def _positive(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail(inst, attribute.name, value, "must be a number > 0")


def _opt_positive(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _positive(inst, attribute, value)


def _json5(inst: Any, attribute: attrs.Attribute[Any], value: FrozenMap[str, Any]) -> None:
    for key, item in value.items():
        if not isinstance(key, str) or not key or not isinstance(item, str):
            raise _fail(inst, f"{attribute.name}[{key!r}]", item,
                        "extra settings map a zenoh config path to a JSON5 string")


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
    ``health_poll_s``: how often the health thread polls ``session.info``. ``reopen_after_s``:
    how long the session may stay Down before it is closed and opened again under the
    reconnect policy (None: rely on zenoh's own link retries only). ``query_timeout_s``:
    default time after which a query is sealed with a timeout frame (a routing may override
    it with the option ``timeout_s``); ``late_grace_s``: how long after sealing late replies
    are still received (to be counted) before zenoh ends the query. ``inbound_queue``: bound of
    the queue between zenoh's callback threads and the dispatcher (full: the newest frame is
    dropped and counted as ``queue_full``). ``extra``: further zenoh config paths -> JSON5.
    """

    mode: str = attrs.field(default="peer", validator=_mode)
    listen: tuple[str, ...] = attrs.field(default=(), converter=_tuple, validator=_endpoints)
    connect: tuple[str, ...] = attrs.field(default=(), converter=_tuple, validator=_endpoints)
    multicast_scouting: bool = attrs.field(default=False,
                                           validator=attrs.validators.instance_of(bool))
    min_peers: int = attrs.field(default=1, validator=_non_negative_int)
    health_poll_s: float = attrs.field(default=0.05, validator=_positive)
    reopen_after_s: float | None = attrs.field(default=5.0, validator=_opt_positive)
    query_timeout_s: float = attrs.field(default=2.0, validator=_positive)
    late_grace_s: float = attrs.field(default=1.0, validator=_positive)
    inbound_queue: int = attrs.field(default=4096, validator=_positive)
    extra: FrozenMap[str, str] = attrs.field(factory=FrozenMap, converter=_frozen,
                                             validator=_json5)

    def to_zenoh(self) -> zenoh.Config:
        """The ``zenoh.Config`` (raises ConfigError naming the setting zenoh rejected)."""
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
                raise ConfigError(f"ZenohConfig: zenoh rejected {key}={value}: {exc}") from exc
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
