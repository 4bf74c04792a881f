"""MQTT gateway settings (frozen attrs) and the routing checks (topics, QoS, retain).

:class:`MqttSettings` is what a system file's ``settings`` table for ``connector = "mqtt"`` is
structured into; it validates at construction (:class:`MqttSettingsError` naming the field).
:func:`route_of` reads one channel's ``Routing("mqtt", TOPIC, options={qos, retain})`` into a
:class:`Route` and is what ``MqttConnector.check_channel`` runs at load. Pure; any thread.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs
from taktora.connectors.model import ChannelDescriptor, Direction
from taktora.connectors.mqtt.errors import MqttSettingsError
from taktora.connectors.mqtt.messages import MESSAGE_CODECS
from taktora.transport.validators import AssignChecks

_v = AssignChecks(MqttSettingsError)

#: Bounds (the class docstring states them).
KEEPALIVE_MAX_S = 65_535
SESSION_EXPIRY_MAX_S = 4_294_967_295  # MQTT 5: 0xFFFFFFFF means "never expires"
CONNECT_TIMEOUT_MAX_S = 300.0
QUEUE_MAX = 1_000_000
INFLIGHT_MAX = 65_535
TOPIC_MAX = 65_535  # bytes of UTF-8
REQUEST_TIMEOUT_MAX_S = 3600.0
REQUESTS_MAX = 1_000_000

#: ``role`` routing option values of request/response channels (``connectors/mqtt/requests.py``)
REQUESTER = "requester"
RESPONDER = "responder"


class Overflow(enum.Enum):
    """What a full outbound queue does with the next publish. ``drop_newest``: the publish is
    refused and counted (``dropped:queue_full``). It is the only policy: what is queued is
    already in paho's hands (possibly half written, or waiting for its acknowledgement), so the
    oldest cannot be withdrawn."""

    DROP_NEWEST = "drop_newest"


def _protocol(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _exists(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise _v.fail(inst, attribute.name, "a file path (a non-empty str)", value)


@attrs.frozen(kw_only=True)
class MqttSettings:
    """How an MQTT gateway connects to its broker.

    - ``host`` (default ``127.0.0.1``), ``port`` 1..65535 (default 1883, 8883 is usual for TLS).
    - ``client_id``: 1-128 characters (None: the gateway's name). A persistent session needs a
      fixed id.
    - ``protocol``: ``"5"`` (default, MQTT 5) or ``"3.1.1"``.
    - ``clean_start``: True (default) starts a new session on every connect; False resumes the
      broker's session, so QoS >= 1 messages published while the gateway was away arrive after
      it reconnects. ``session_expiry_s``: how long the broker keeps the session after a
      disconnect (0 .. 4294967295 s; MQTT 5 only, 3.1.1 keeps it until a clean connect).
    - ``keepalive_s``: 1 .. 65535 (default 10); ``connect_timeout_s``: how long ``open`` waits
      for CONNACK (> 0, at most 300).
    - ``username`` / ``password``: None for anonymous; a password needs a username.
    - ``tls_ca``: CA file that turns TLS on; ``tls_cert`` / ``tls_key``: client certificate
      and key (both or neither, and only with ``tls_ca``); ``tls_insecure``: skip the host name
      check (self-signed test brokers only).
    - ``max_queue``: outbound messages paho may hold while they wait for the socket or for
      their acknowledgement (1 .. 1000000, default 1000); ``overflow``: what happens when it is
      full (:class:`Overflow`, default ``drop_newest``: the publish is refused and counted as
      ``dropped:queue_full``). ``max_inflight``: QoS >= 1 messages unacknowledged at once
      (1 .. 65535, default 100). ``high_water``: fraction (0 < x <= 1, default 0.8) of either
      bound above which the connector reports Degraded; it reports Up again below half of it.
    - Request/response routes (MQTT 5 only): ``request_timeout_s`` (> 0, at most 3600,
      default 5): how long a request waits for its response, and how long an inbound request
      waits for the app's answer (a route's ``timeout_s`` option overrides it);
      ``response_prefix`` (default ``taktora/responses``, no wildcards): a requester route's
      response topic is ``PREFIX/CLIENT_ID/REQUEST_TOPIC``; ``max_requests`` (1 .. 1000000,
      default 1000): requests waiting for a response, and inbound requests waiting for an
      answer, each at most (the next one is refused and counted).
    """

    host: str = attrs.field(default="127.0.0.1", validator=_v.string(nonempty=True))
    port: int = attrs.field(default=1883, validator=_v.int_range(1, 65535))
    client_id: str | None = attrs.field(default=None, validator=_v.optional(_v.predicate(
        lambda v: isinstance(v, str) and 1 <= len(v) <= 128, "1-128 characters")))
    protocol: str = attrs.field(default="5", converter=_protocol, validator=_v.one_of(("5", "3.1.1")))
    clean_start: bool = attrs.field(default=True, validator=_v.instance(bool))
    session_expiry_s: int = attrs.field(default=0, validator=_v.int_range(0, SESSION_EXPIRY_MAX_S))
    keepalive_s: int = attrs.field(default=10, validator=_v.int_range(1, KEEPALIVE_MAX_S))
    connect_timeout_s: float = attrs.field(default=5.0,
                                           validator=_v.number(gt=0, le=CONNECT_TIMEOUT_MAX_S))
    username: str | None = attrs.field(default=None, validator=_v.optional(_v.string(nonempty=True)))
    password: str | None = attrs.field(default=None, validator=_v.optional(_v.string()))
    tls_ca: str | None = attrs.field(default=None, validator=_exists)
    tls_cert: str | None = attrs.field(default=None, validator=_exists)
    tls_key: str | None = attrs.field(default=None, validator=_exists)
    tls_insecure: bool = attrs.field(default=False, validator=_v.instance(bool))
    max_queue: int = attrs.field(default=1000, validator=_v.int_range(1, QUEUE_MAX))
    overflow: Overflow = attrs.field(default=Overflow.DROP_NEWEST, validator=_v.instance(Overflow))
    max_inflight: int = attrs.field(default=100, validator=_v.int_range(1, INFLIGHT_MAX))
    high_water: float = attrs.field(default=0.8, validator=_v.number(gt=0, le=1))
    request_timeout_s: float = attrs.field(default=5.0,
                                           validator=_v.number(gt=0, le=REQUEST_TIMEOUT_MAX_S))
    response_prefix: str = attrs.field(default="taktora/responses", validator=_v.predicate(
        lambda v: isinstance(v, str) and _topic_problem(v, False) is None,
        "a topic without wildcards"))
    max_requests: int = attrs.field(default=1000, validator=_v.int_range(1, REQUESTS_MAX))

    def __attrs_post_init__(self) -> None:
        if self.password is not None and self.username is None:
            raise _v.problem(self, "password", "a password needs a username")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise _v.problem(self, "tls_cert", "set tls_cert and tls_key together (the client "
                             "certificate and its private key)")
        if self.tls_cert is not None and self.tls_ca is None:
            raise _v.problem(self, "tls_ca", "a client certificate needs tls_ca (TLS is off)")
        if self.tls_insecure and self.tls_ca is None:
            raise _v.problem(self, "tls_insecure", "only meaningful with tls_ca (TLS is off)")
        if not self.clean_start and self.protocol == "5" and self.session_expiry_s == 0:
            raise _v.problem(self, "session_expiry_s", "clean_start = false with MQTT 5 needs "
                             "session_expiry_s > 0, or the broker drops the session on "
                             "disconnect")


@attrs.frozen
class Route:
    """One channel's MQTT side: its topic (a filter with ``+``/``#`` for INBOUND), QoS 0..2,
    for OUTBOUND retain and the MQTT 5 message expiry in seconds (None: never expires), for
    INBOUND ``with_topic`` (deliver :class:`~taktora.connectors.mqtt.messages.MqttMessage`
    values carrying the topic each message came on); for request/response channels their
    ``role`` (``requester`` / ``responder``; None: a data route) and ``timeout_s`` (None: the
    settings' ``request_timeout_s``)."""

    channel: str
    direction: Direction
    topic: str
    qos: int
    retain: bool
    expiry_s: int | None = None
    with_topic: bool = False
    role: str | None = None
    timeout_s: float | None = None


def _topic_problem(topic: str, inbound: bool) -> str | None:
    if not topic:
        return "the topic is empty"
    if len(topic.encode()) > TOPIC_MAX:
        return f"the topic is longer than {TOPIC_MAX} bytes"
    if "\0" in topic:
        return "the topic holds a NUL character"
    levels = topic.split("/")
    if not inbound:
        if "+" in topic or "#" in topic:
            return "an outbound topic cannot hold the wildcards '+' or '#' (publish to one topic)"
        return None
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one (as in 'plant/#')"
        if "+" in level and level != "+":
            return "'+' must be a whole level (as in 'plant/+/state')"
    return None


OPTIONS = ("qos", "retain", "expiry_s", "with_topic", "role", "timeout_s")
"""The routing options an ``mqtt`` channel may set."""


def route_of(descriptor: ChannelDescriptor) -> Route:
    """The :class:`Route` of a channel with an ``mqtt`` routing; MqttSettingsError naming the
    channel and the fix otherwise (pure; what ``check_channel`` runs at load)."""
    routing = descriptor.routing
    where = f"channel {descriptor.name!r}"
    if routing.kind != "mqtt":
        raise MqttSettingsError(f"{where}: routing kind {routing.kind!r} is not 'mqtt' (the MQTT "
                                "connector serves mqtt routings only)")
    inbound = descriptor.direction is Direction.INBOUND
    unknown = sorted(set(routing.options) - set(OPTIONS))
    if unknown:
        raise MqttSettingsError(f"{where}: unknown routing option(s) {unknown} (known: "
                                f"{', '.join(OPTIONS)})")
    role = routing.option("role", None)
    if role is not None and role not in (REQUESTER, RESPONDER):
        raise MqttSettingsError(f"{where}: routing option role={role!r}: expected "
                                f"{REQUESTER!r} or {RESPONDER!r}")
    # a requester's two channels name the topic it publishes requests to; a responder's the
    # filter it takes requests from (its outbound channel publishes to each response topic)
    why = _topic_problem(routing.address, inbound if role is None else role == RESPONDER)
    if why is not None:
        raise MqttSettingsError(f"{where}: routing address {routing.address!r}: {why}")
    with_topic = routing.option("with_topic", False)
    if not isinstance(with_topic, bool):
        raise MqttSettingsError(f"{where}: routing option with_topic={with_topic!r}: expected "
                                "true or false")
    if with_topic and not inbound:
        raise MqttSettingsError(f"{where}: with_topic applies to inbound channels only")
    if with_topic and descriptor.codec not in MESSAGE_CODECS:
        raise MqttSettingsError(f"{where}: with_topic delivers MqttMessage values: set codec = "
                                f"{MESSAGE_CODECS[0]!r} (or {MESSAGE_CODECS[1]!r}), not "
                                f"{descriptor.codec!r}")
    qos = routing.option("qos", 0)
    if isinstance(qos, bool) or not isinstance(qos, int) or not 0 <= qos <= 2:
        raise MqttSettingsError(f"{where}: routing option qos={qos!r}: expected 0, 1 or 2")
    retain = routing.option("retain", False)
    if not isinstance(retain, bool):
        raise MqttSettingsError(f"{where}: routing option retain={retain!r}: expected true or false")
    if retain and inbound:
        raise MqttSettingsError(f"{where}: retain applies to outbound channels only")
    expiry = routing.option("expiry_s", None)
    if expiry is not None:
        if inbound:
            raise MqttSettingsError(f"{where}: expiry_s applies to outbound channels only")
        if isinstance(expiry, bool) or not isinstance(expiry, int) or not (
                1 <= expiry <= SESSION_EXPIRY_MAX_S):
            raise MqttSettingsError(f"{where}: routing option expiry_s={expiry!r}: expected "
                                    f"an int in 1..{SESSION_EXPIRY_MAX_S} (seconds)")
    timeout = routing.option("timeout_s", None)
    if role is not None:
        _check_request_route(where, descriptor, role, retain, with_topic, expiry)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                    or not 0 < timeout <= REQUEST_TIMEOUT_MAX_S):
            raise MqttSettingsError(f"{where}: routing option timeout_s={timeout!r}: expected a "
                                    f"number of seconds in (0, {REQUEST_TIMEOUT_MAX_S:g}]")
    elif timeout is not None:
        raise MqttSettingsError(f"{where}: timeout_s applies to request/response channels only "
                                f"(set role = {REQUESTER!r} or {RESPONDER!r})")
    return Route(descriptor.name, descriptor.direction, routing.address, qos, retain, expiry,
                 with_topic, None if role is None else str(role),
                 None if timeout is None else float(timeout))


def _check_request_route(where: str, descriptor: ChannelDescriptor, role: Any, retain: Any,
                         with_topic: Any, expiry: Any) -> None:
    if descriptor.codec != "raw":
        raise MqttSettingsError(f"{where}: a request/response channel carries raw bytes (its "
                                "timeout frames are empty): set codec = 'raw', not "
                                f"{descriptor.codec!r}")
    if retain or with_topic:
        raise MqttSettingsError(f"{where}: retain and with_topic do not apply to "
                                "request/response channels")
    if expiry is not None and (role != REQUESTER or descriptor.direction is Direction.INBOUND):
        raise MqttSettingsError(f"{where}: expiry_s applies to a requester's outbound channel "
                                "only (the requests)")


def check_protocol(settings: Any, route: Route) -> None:
    """Refuse a request/response route unless the settings speak MQTT 5 (MqttSettingsError
    naming the channel and the fix; pure)."""
    protocol = getattr(settings, "protocol", "5")
    if route.role is not None and protocol != "5":
        raise MqttSettingsError(f"channel {route.channel!r}: request/response ({route.role}) "
                                "needs MQTT 5 (response topic and correlation data are MQTT 5 "
                                f"properties): set protocol = '5', not {protocol!r}")
