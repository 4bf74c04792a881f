"""Zenoh session configuration (frozen attrs) and the QoS mapping onto zenoh's options.

:class:`ZenohConfig` is a plain value: it validates at construction (an error names the field)
and travels in configs and control messages; :meth:`ZenohConfig.to_zenoh` builds the
``zenoh.Config`` when a session opens. :func:`publisher_options` maps a descriptor's
:class:`~taktora.connectors.model.QoS` to ``declare_publisher`` keyword arguments.

Listeners stay on this host unless the user opens them (spec/zenoh.rst, ARCH_0604): zenoh
itself listens on every interface when ``listen/endpoints`` is unset (``tcp/[::]:0`` for a
peer, ``tcp/[::]:7447`` for a router, measured on eclipse-zenoh 1.10), so an empty ``listen``
becomes :data:`DEFAULT_LISTEN`, and a listener beyond loopback needs ``allow_remote=True``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import attrs
import zenoh
from taktora.connectors.model import Congestion, FrozenMap, QoS, Reliability
from taktora.connectors.zenoh.errors import ZenohConfigError
from taktora.transport.net import is_loopback
from taktora.transport.validators import AssignChecks

MODES = ("peer", "client", "router")
_ENDPOINT = re.compile(r"^(tcp|udp|tls|quic|unixsock-stream|ws)/.+$")

_v = AssignChecks(ZenohConfigError)

#: Bounds of the time settings in seconds (the class docstring states them).
POLL_MIN_S = 0.001
POLL_MAX_S = 60.0
REOPEN_MAX_S = 86_400.0
QUERY_MAX_S = 3_600.0

#: What a session listens on when ``listen`` is empty, per mode: zenoh's own default endpoint
#: narrowed to loopback. A peer listens on a free loopback port, so that peers on this host that
#: only ``connect`` to a common peer still find each other (gossip scouting hands them each
#: other's locators; a peer without a listener cannot be reached, and peers do not route for
#: one another). A router listens on zenoh's well-known port 7447, where clients look for it.
#: A client never listens.
DEFAULT_LISTEN: FrozenMap[str, tuple[str, ...]] = FrozenMap({
    "peer": ("tcp/127.0.0.1:0",),
    "router": ("tcp/127.0.0.1:7447",),
    "client": (),
})

#: Protocols whose listeners have a host part to check; ``unixsock-stream`` is a local file.
_IP_PROTOCOLS = ("tcp", "udp", "tls", "quic", "ws")

_endpoints = _v.tuple_of(_v.matches(_ENDPOINT, "an endpoint like 'tcp/127.0.0.1:7447'"),
                         "zenoh endpoints")


def exposure(endpoint: str) -> str | None:
    """None when a listener on ``endpoint`` is reachable from this host only, else why not.

    Loopback is 127.0.0.0/8, ``::1`` and the name ``localhost``; a ``unixsock-stream`` path is
    local too. ``0.0.0.0`` / ``::`` (every interface), any other address, any other host name
    (it may resolve beyond loopback) and any other protocol are not. Pure; any thread.
    """
    proto, _, rest = endpoint.partition("/")
    if proto == "unixsock-stream":
        return None
    if proto not in _IP_PROTOCOLS:
        return f"protocol {proto!r} is not known to stay on this host"
    address = rest.split("?", 1)[0].split("#", 1)[0]
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if is_loopback(host):
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"host name {host!r} may resolve beyond loopback (only 'localhost' counts)"
    if ip.is_unspecified:
        return f"{host} listens on every interface"
    return f"{host} is not a loopback address"


def _listed(value: Any) -> list[str]:
    """The endpoints of a ``listen/endpoints`` value read back from zenoh: a list, or a
    mapping of mode -> list (None: unset)."""
    if isinstance(value, dict):
        return [str(e) for v in value.values() for e in (v or [])]
    return [str(e) for e in value or []]


def _tuple(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _frozen(value: Any) -> FrozenMap[str, str]:
    return FrozenMap.of(value)


@attrs.frozen
class ZenohConfig:
    """How a :class:`~taktora.connectors.zenoh.session.ZenohSession` opens.

    ``mode``: "peer" (default), "client" (talks only through the routers in ``connect``) or
    "router". ``listen`` / ``connect``: zenoh endpoints (``tcp/127.0.0.1:7447``). An empty
    ``listen`` never means zenoh's default (every interface) but :data:`DEFAULT_LISTEN`: a
    peer listens on ``tcp/127.0.0.1:0`` (a free loopback port), a router on
    ``tcp/127.0.0.1:7447``, a client not at all.
    ``allow_remote``: False (default) keeps every listener on this host: a ``listen`` endpoint
    that is not loopback (``0.0.0.0``, ``::``, an interface address, a host name other than
    ``localhost``), ``multicast_scouting=True`` (zenoh binds UDP ``0.0.0.0`` and joins
    224.0.0.224:7446) and ``extra`` settings that listen beyond loopback, drop the listen
    endpoints (zenoh's default comes back) or load plugins raise ZenohConfigError naming the
    field. True opens exactly what ``listen`` names, to every host that can reach it: zenoh
    does not authenticate peers unless ``extra`` configures TLS/access control, so only on a
    network you trust. It never changes the default of an empty ``listen``.
    ``multicast_scouting``: off by default (deterministic tests and plants: peers are named);
    needs ``allow_remote=True``.
    ``min_peers``: fewer connected peers/routers than this is Degraded, none is Down.
    ``health_poll_s``: how often the health thread polls ``session.info`` (0.001 .. 60 s).
    ``reopen_after_s``: how long the session may stay Down before it is closed and opened
    again under the reconnect policy (> 0, at most a day; None: rely on zenoh's own link
    retries only). ``query_timeout_s``: default time after which a query is sealed with a
    timeout frame (a routing may override it with the option ``timeout_s``); ``late_grace_s``:
    how long after sealing late replies are still received (to be counted) before zenoh ends
    the query (both > 0, at most an hour). ``extra``: further zenoh config paths -> JSON5 (checked like the
    fields above once applied).
    ``shared_memory``: zenoh's own shared-memory transport between local sessions, off by
    default: on this host iceoryx2 carries payloads zero-copy, the gateway puts plain bytes
    (which zenoh never sends through its shared memory), and zenoh's segments (``/dev/shm/
    <n>.zenoh``) are only removed by an exit handler, so every ``kill -9`` of a gateway process
    (and a test worker ending without exit handlers) would leave them behind.
    """

    mode: str = attrs.field(default="peer", validator=_v.one_of(MODES))
    listen: tuple[str, ...] = attrs.field(default=(), converter=_tuple, validator=_endpoints)
    connect: tuple[str, ...] = attrs.field(default=(), converter=_tuple, validator=_endpoints)
    multicast_scouting: bool = attrs.field(default=False, validator=_v.instance(bool))
    allow_remote: bool = attrs.field(default=False, validator=_v.instance(bool))
    min_peers: int = attrs.field(default=1, validator=_v.non_negative_int())
    health_poll_s: float = attrs.field(default=0.05,
                                       validator=_v.number(ge=POLL_MIN_S, le=POLL_MAX_S))
    reopen_after_s: float | None = attrs.field(
        default=5.0, validator=_v.optional(_v.number(gt=0, le=REOPEN_MAX_S)))
    query_timeout_s: float = attrs.field(default=2.0, validator=_v.number(gt=0, le=QUERY_MAX_S))
    late_grace_s: float = attrs.field(default=1.0, validator=_v.number(gt=0, le=QUERY_MAX_S))
    shared_memory: bool = attrs.field(default=False, validator=_v.instance(bool))
    extra: FrozenMap[str, str] = attrs.field(
        factory=FrozenMap, converter=_frozen,
        validator=_v.mapping_of(lambda v: isinstance(v, str), "a JSON5 string"))

    def __attrs_post_init__(self) -> None:
        if not self.allow_remote:
            for endpoint in self.listen:
                why = exposure(endpoint)
                if why is not None:
                    raise _v.problem(self, "listen", f"{endpoint!r} leaves this host ({why}): "
                                     "listen on tcp/127.0.0.1:PORT, or set allow_remote=True "
                                     "to open the session to other hosts")
            if self.multicast_scouting:
                raise _v.problem(self, "multicast_scouting", "multicast scouting binds UDP on "
                                 "every interface (0.0.0.0 and 224.0.0.224:7446): name the "
                                 "peers in connect, or set allow_remote=True")
        self.to_zenoh()  # zenoh rejects a setting, or ``extra`` opens a listener: fail now

    def listen_endpoints(self) -> tuple[str, ...]:
        """What the session listens on: ``listen``, or the mode's :data:`DEFAULT_LISTEN`."""
        return self.listen or DEFAULT_LISTEN[self.mode]

    def to_zenoh(self) -> zenoh.Config:
        """The ``zenoh.Config`` (raises ZenohConfigError naming the setting zenoh rejected, or
        the field that would open a listener beyond loopback without ``allow_remote``).

        ``listen/endpoints`` is always set (zenoh's default listens on every interface); what
        zenoh holds after ``extra`` is read back and checked, so no path around the fields
        opens a listener unnoticed. Pure (no session, no thread); any thread."""
        cfg = zenoh.Config()
        settings = {
            "mode": json.dumps(self.mode),
            "scouting/multicast/enabled": json.dumps(self.multicast_scouting),
            "listen/endpoints": json.dumps(list(self.listen_endpoints())),
            "transport/shared_memory/enabled": json.dumps(self.shared_memory),
        }
        if self.connect:
            settings["connect/endpoints"] = json.dumps(list(self.connect))
        settings.update(self.extra)
        for key, value in settings.items():
            try:
                cfg.insert_json5(key, value)
            except Exception as exc:
                raise ZenohConfigError(f"ZenohConfig: zenoh rejected {key}={value}: {exc}") from exc
        if not self.allow_remote:
            self._check_applied(cfg)
        return cfg

    def _check_applied(self, cfg: zenoh.Config) -> None:
        """What ``extra`` left in ``cfg`` must not listen beyond loopback."""
        def read(path: str) -> Any:
            return json.loads(cfg.get_json(path))

        def fail(what: str) -> Exception:
            keys = sorted(self.extra) or ["(none)"]
            return _v.problem(self, "extra", f"{what} (extra keys: {', '.join(keys)}): set "
                              "allow_remote=True to open the session to other hosts")

        listen = read("listen/endpoints")
        if listen is None:
            raise fail("listen/endpoints is unset, so zenoh would listen on every interface")
        for endpoint in _listed(listen):
            why = exposure(endpoint)
            if why is not None:
                raise fail(f"listen endpoint {endpoint!r} leaves this host ({why})")
        if read("scouting/multicast/enabled") is not False:  # None: zenoh's default, on
            raise fail("multicast scouting is on (UDP on every interface)")
        if read("plugins_loading/enabled"):
            raise fail("plugin loading is on (plugins open listeners of their own)")


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
