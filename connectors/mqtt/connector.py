"""The MQTT connector: iceoryx2 channels <-> MQTT topics on a broker, raw payloads (paho-mqtt 2).

Routing: ``Routing("mqtt", TOPIC, options={"qos": 0|1|2, "retain": bool})``. An OUTBOUND
channel publishes to its topic with its QoS and retain flag; an INBOUND channel subscribes to
its topic filter (``+`` / ``#`` allowed) with its QoS, on every connect. The MQTT wire carries
the application payload only (``carries_envelope = False``), so plain MQTT programs
(``mosquitto_pub`` / ``mosquitto_sub``) interoperate.

Threads: ``open`` / ``close`` run on the owner's thread (the gateway actor); ``open`` blocks
for the TCP connect, CONNACK and SUBACKs, at most ``connect_timeout_s``. paho's network thread
(``loop_start``, one per open connection, joined by ``close``) runs every callback: inbound
messages are published into iceoryx2 right there through ``ctx.deliver`` (no queue), and the
link's health is reported from there. ``send`` runs on the dispatcher's outbound thread and
does not block: paho queues the PUBLISH and its network thread writes it.

Reconnects belong to the framework: paho's own retry loop is off (``reconnect_on_failure``
False). A lost connection is reported Down; the gateway closes the connector and opens it
again under its ReconnectPolicy. The paho client (with its unacknowledged QoS >= 1 messages)
survives close/open, so with a persistent session (``clean_start = false``) those messages are
sent again after the reconnect, and the broker delivers what was published to the inbound
topics while the gateway was away.

Health: Connecting while ``open`` waits, Up after CONNACK and SUBACKs, Degraded while the
outbound queue or the in-flight window is above ``high_water``, Down when the connection is
lost. While it is not connected ``send`` raises LinkDownError (counted ``link_down``).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any

import attrs
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from taktora.actors.models.health import HealthState
from taktora.connectors.codecs import Codec, default_registry
from taktora.connectors.connector import Connector
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.errors import CodecError, LinkDownError
from taktora.connectors.model import ChannelDescriptor, Direction, FrozenMap
from taktora.connectors.mqtt.errors import MqttError
from taktora.connectors.mqtt.inflight import InFlight
from taktora.connectors.mqtt.messages import MqttMessage
from taktora.connectors.mqtt.paho_client import Client
from taktora.connectors.mqtt.requests import Requests
from taktora.connectors.mqtt.settings import MqttSettings, Route, check_protocol, route_of

log = logging.getLogger(__name__)

C, U, G, D = HealthState.CONNECTING, HealthState.UP, HealthState.DEGRADED, HealthState.DOWN


CONTENT_TYPES = {"json": "application/json", "msgpack": "application/msgpack",
                 "cattrs-json": "application/json", "cattrs-msgpack": "application/msgpack"}
"""MQTT 5 content type per codec family (raw and ctypes: none)."""

MATCH_CACHE = 4096
"""Topic names whose matching inbound routes are remembered (cleared when full)."""


class Cell:
    """One counter written by a single thread (paho's network thread), read by any."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class _Counts:
    """Per topic counters ``TOPIC|in``, ``TOPIC|out``, ``TOPIC|dropped:CAUSE`` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, topic: str, what: str, n: int = 1) -> None:
        name = f"{topic}|{what}"
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class MqttConnector(Connector):
    """MQTT publish/subscribe through one broker connection (see the module doc).

    ``settings``: an :class:`MqttSettings` (None: the defaults, a broker on 127.0.0.1:1883).
    """

    carries_envelope = False
    settings_class = MqttSettings

    @classmethod
    def from_settings(cls, name: str, settings: Any) -> MqttConnector:
        """The connector of gateway ``name`` (``settings``: an :class:`MqttSettings`)."""
        return cls(settings, name=name)

    @classmethod
    def check_channel(cls, settings: Any, descriptor: ChannelDescriptor) -> None:
        """Routing kind ``mqtt``, a topic (a filter for INBOUND), ``qos`` 0..2, ``retain`` a
        bool on OUTBOUND channels only, request/response roles only with MQTT 5
        (MqttSettingsError naming the channel)."""
        check_protocol(settings, route_of(descriptor))

    def envelope_on(self, descriptor: ChannelDescriptor) -> bool:
        """Whole envelopes on request/response channels (kind and correlation id), payloads
        on data channels (owner's thread, at each connect)."""
        routing = descriptor.routing
        return routing.kind == "mqtt" and routing.option("role", None) is not None

    def __init__(self, settings: MqttSettings | None = None, *, name: str = "mqtt") -> None:
        self.name = name
        self.settings = settings or MqttSettings()
        self.counts = _Counts()
        self._lock = threading.Lock()
        self._ctx: ConnectorContext | None = None
        self._client: mqtt.Client | None = None
        self._out: dict[str, Route] = {}
        self._in: tuple[Route, ...] = ()
        self._rr: Requests | None = None  # request/response endpoints (kept across reconnects)
        self._sub_topics: tuple[str, ...] = ()  # what each connect subscribes, in order
        self._codecs: dict[str, Codec[Any] | None] = {}
        self._wrappers: dict[str, Codec[Any]] = {}
        self._props: dict[str, Properties | None] = {}
        self._in_cells: dict[str, Cell] = {}
        self._out_cells: dict[str, Cell] = {}  # written by the outbound thread only
        self._matches: dict[str, tuple[tuple[Route, Cell, Codec[Any] | None], ...]] = {}
        self._inflight = InFlight()  # published, not yet completed
        self._connected = threading.Event()
        self._ready = threading.Event()
        self._refused: str | None = None
        self._suback: set[int] = set()
        self._degraded = False
        self._closing = False
        self._open = False
        self._events = {"connects": 0, "disconnects": 0, "sub_refused": 0}
        self._paho_max_queue = self.settings.max_queue

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self, ctx: ConnectorContext) -> None:
        """Connect to the broker, subscribe every INBOUND channel's topic filter and report Up
        (owner's thread; blocks up to ``connect_timeout_s``).

        Raises MqttSettingsError for a bad routing, MqttError when the broker cannot be
        reached, refuses the connection or a subscription, or does not answer in time; the
        connection is closed again then."""
        if self._open:
            raise MqttError(f"mqtt {self.name!r} is already open")
        s = self.settings
        routes = [route_of(d) for d in ctx.channels]
        for r in routes:
            check_protocol(s, r)
        requests = [r for r in routes if r.role is not None]
        routes = [r for r in routes if r.role is None]
        self._out = {r.channel: r for r in routes if r.direction is Direction.OUTBOUND}
        self._in = tuple(r for r in routes if r.direction is Direction.INBOUND)
        if requests or self._rr is not None:
            self._rr = self._rr or Requests(self.name, self.counts, self._publish)
            self._rr.configure(requests, ctx.channels, s, s.client_id or self.name, ctx)
        self._codecs = {d.name: self._checker(d.codec) for d in ctx.inbound}
        # with_topic channels: their codec encodes the MqttMessage the connector delivers
        self._wrappers = {r.channel: default_registry.by_name(
            next(d.codec for d in ctx.inbound if d.name == r.channel))
            for r in self._in if r.with_topic}
        self._props = {d.name: self._publish_properties(d, self._out[d.name])
                       for d in ctx.outbound if d.name in self._out}
        self._in_cells = {r.channel: self._in_cells.get(r.channel) or Cell() for r in self._in}
        self._matches = {}
        self._ctx = ctx
        self._closing = False
        self._refused = None
        self._connected.clear()
        self._ready.clear()
        ctx.report(C, f"connecting to {self.settings.host}:{self.settings.port}")
        client = self._client or self._new_client()
        self._client = client
        # all QoS 0: no on_publish, whose per-message ReasonCode and Properties cost as much as
        # the rest of paho's write (inflight.py)
        qos0 = all(r.qos == 0 for r in routes + requests if r.direction is Direction.OUTBOUND)
        self._inflight.watch_qos0 = qos0
        client.on_publish = None if qos0 else self._on_publish
        rr_subs = self._rr.subscriptions() if self._rr is not None else []
        for topic, _, callback in rr_subs:  # paho routes these filters to their own callbacks
            client.message_callback_add(topic, callback)
        self._sub_topics = tuple(r.topic for r in self._in) + tuple(t for t, _, _ in rr_subs)
        try:
            client.connect(s.host, s.port, keepalive=s.keepalive_s, **self._connect_options())
        except ssl.SSLError as exc:
            raise MqttError(f"mqtt {self.name!r}: TLS handshake with {s.host}:{s.port} failed: "
                            f"{exc} (check tls_ca against the broker's certificate)") from exc
        except (OSError, ValueError) as exc:
            raise MqttError(f"mqtt {self.name!r}: cannot connect to {s.host}:{s.port}: {exc} "
                            "(is the broker running?)") from exc
        client.loop_start()
        self._open = True
        if not self._ready.wait(s.connect_timeout_s) or self._refused is not None:
            why = self._refused or f"no CONNACK/SUBACK within {s.connect_timeout_s:g} s"
            if s.tls_ca is not None and s.tls_cert is None:
                why += " (a TLS broker may require a client certificate: set tls_cert and tls_key)"
            self.close()
            raise MqttError(f"mqtt {self.name!r}: {s.host}:{s.port}: {why}")
        if self._rr is not None:
            self._rr.start()
        self._report_level(force=True)

    def close(self) -> None:
        """Disconnect (a persistent session stays on the broker) and join paho's network
        thread; idempotent (owner's thread). The paho client is kept for the next ``open``."""
        client = self._client
        if not self._open or client is None:
            return
        self._closing = True
        self._connected.clear()
        try:
            client.disconnect()
        finally:
            client.loop_stop()
            self._open = False
            if self._rr is not None:
                self._rr.stop()

    def _new_client(self) -> mqtt.Client:
        s = self.settings
        v5 = s.protocol == "5"
        client = Client(CallbackAPIVersion.VERSION2, client_id=s.client_id or self.name,
                        clean_session=None if v5 else s.clean_start,
                        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
                        reconnect_on_failure=False)
        client.max_inflight_messages_set(s.max_inflight)
        client.max_queued_messages_set(s.max_queue)
        self._paho_max_queue = s.max_queue  # fixed for this client (see configure)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls_ca is not None:
            try:
                client.tls_set(ca_certs=s.tls_ca, certfile=s.tls_cert, keyfile=s.tls_key)
            except (OSError, ValueError) as exc:
                raise MqttError(f"mqtt {self.name!r}: TLS files cannot be loaded: {exc}") from exc
            client.tls_insecure_set(s.tls_insecure)
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        return client

    def _connect_options(self) -> dict[str, Any]:
        s = self.settings
        if s.protocol != "5":
            return {}
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: untyped
        props.SessionExpiryInterval = s.session_expiry_s
        return {"clean_start": s.clean_start, "properties": props}

    def _subscriptions(self) -> list[tuple[str, Any]]:
        """Every inbound filter with its QoS. MQTT 5: retained messages only for a new
        subscription, so re-subscribing on a resumed session does not replay them."""
        subs: list[tuple[str, Any]] = [(r.topic, r.qos) for r in self._in]
        if self._rr is not None:
            subs += [(topic, qos) for topic, qos, _ in self._rr.subscriptions()]
        if self.settings.protocol != "5":
            return subs
        return [(topic, SubscribeOptions(qos=qos,
                                         retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB))
                for topic, qos in subs]

    def _publish_properties(self, descriptor: ChannelDescriptor, route: Route) -> Properties | None:
        """MQTT 5 PUBLISH properties of an outbound channel, built once: the content type of
        its codec and the route's message expiry (None on 3.1.1 or when there is neither)."""
        content = CONTENT_TYPES.get(descriptor.codec.split(":", 1)[0])
        if self.settings.protocol != "5" or (content is None and route.expiry_s is None):
            return None
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho: untyped
        if content is not None:
            props.ContentType = content
        if route.expiry_s is not None:
            props.MessageExpiryInterval = route.expiry_s
        return props

    @staticmethod
    def _checker(codec: str) -> Codec[Any] | None:
        """The codec inbound payloads are checked with (None: not checked: raw bytes, or a
        codec this process does not have)."""
        if codec == "raw" or codec not in default_registry:
            return None
        return default_registry.by_name(codec)

    # -- paho callbacks (paho's network thread) ------------------------------------------------
    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # Nagle plus the broker's delayed ACKs turn a QoS 1 round trip into ~44 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self._refused = f"broker refused the connection: {reason}"
            self._ready.set()
            return
        self._events["connects"] += 1
        self._connected.set()
        if not self._sub_topics:
            self._ready.set()
            return
        rc, mid = client.subscribe(self._subscriptions())
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            self._refused = f"subscribe failed: {mqtt.error_string(rc)}"
            self._ready.set()
            return
        self._suback.add(mid)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        self._suback.discard(mid)
        bad = [(topic, str(code)) for topic, code in zip(self._sub_topics, reasons, strict=False)
               if code.is_failure]
        if bad:
            self._events["sub_refused"] += len(bad)
            self._refused = f"broker refused subscription(s): {bad}"
        self._ready.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        ctx = self._ctx
        payload = msg.payload
        targets = self._matches.get(msg.topic)
        if targets is None:
            targets = self._match(msg.topic)
        for route, cell, codec in targets:
            cell.n += 1
            if route.with_topic:
                payload = self._wrap(route, msg)
            elif codec is not None:
                try:
                    codec.decode(memoryview(payload))
                except CodecError as exc:
                    self.counts.add(route.topic, "dropped:malformed")
                    log.warning("mqtt %r: %r on %r is not %s: dropped (%s)", self.name,
                                bytes(payload[:32]), msg.topic, codec.name, exc)
                    continue
            if ctx is None or not ctx.deliver(route.channel, payload):
                self.counts.add(route.topic, "dropped:not_delivered")
        if not targets:
            self.counts.add(msg.topic, "dropped:no_route")

    def _wrap(self, route: Route, msg: mqtt.MQTTMessage) -> bytes:
        """The message with its topic (and MQTT 5 properties) as the channel's codec encodes
        an :class:`MqttMessage` (paho's network thread)."""
        props = getattr(msg, "properties", None)
        value = MqttMessage(topic=msg.topic, payload=bytes(msg.payload), qos=msg.qos,
                            retain=bool(msg.retain),
                            user_properties=getattr(props, "UserProperty", None) or (),
                            content_type=getattr(props, "ContentType", None))
        return bytes(self._wrappers[route.channel].encode(value))

    def _match(self, topic: str) -> tuple[tuple[Route, Cell, Codec[Any] | None], ...]:
        """The inbound routes whose filter matches ``topic`` (cached per topic name: paho's
        ``topic_matches_sub`` builds a matcher per call; the cache is bounded)."""
        found = tuple((r, self._in_cells[r.channel], self._codecs.get(r.channel))
                      for r in self._in if mqtt.topic_matches_sub(r.topic, topic))
        if len(self._matches) >= MATCH_CACHE:
            self._matches.clear()
        self._matches[topic] = found
        return found

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        route = self._inflight.complete(mid)
        if route is not None and getattr(reason, "is_failure", False):
            self.counts.add(route.topic, "dropped:refused")
        self._report_level()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self._connected.clear()
        self._events["disconnects"] += 1
        for route in self._inflight.disconnected():  # QoS 0 ones paho had not written
            self.counts.add(route.topic, "dropped:disconnected")
        if not self._ready.is_set():
            self._refused = f"connection lost during the handshake: {reason}"
            self._ready.set()
        ctx = self._ctx
        if ctx is not None and not self._closing:
            ctx.report(D, f"connection lost: {reason}")

    # -- outbound (dispatcher's outbound thread) ----------------------------------------------
    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        """Publish ``frame`` (the raw payload) on the channel's topic with its QoS and retain;
        on a request/response channel, ``frame`` is a whole envelope (``requests.py``).

        Raises LinkDownError while not connected (``dropped:link_down``), MqttError when the
        outbound queue is full (``dropped:queue_full``, the publish is refused) or paho refuses
        the publish, or for a channel that is not an open outbound channel."""
        route = self._out.get(descriptor.name)
        if route is None:
            rr = self._rr
            if rr is not None and rr.handles(descriptor.name):
                rr.send(descriptor, frame)
                return
            raise MqttError(f"mqtt {self.name!r}: {descriptor.name!r} is not an open outbound "
                            "channel")
        self._publish(route, route.topic, bytes(frame), self._props.get(route.channel))
        cell = self._out_cells.get(route.channel)
        if cell is None:
            cell = self._out_cells[route.channel] = Cell()
        cell.n += 1

    def _publish(self, route: Route, topic: str, payload: bytes, props: Properties | None) -> None:
        """Hand one PUBLISH to paho and track it until it completes (outbound thread). Raises
        LinkDownError / MqttError and counts the cause under ``route.topic``."""
        client = self._client
        if client is None or not self._connected.is_set():
            self.counts.add(route.topic, "dropped:link_down")
            raise LinkDownError(f"mqtt {self.name!r}: not connected to the broker")
        if len(self._inflight) >= self.settings.max_queue:
            self.counts.add(route.topic, "dropped:queue_full")
            raise MqttError(f"mqtt {self.name!r}: outbound queue full ({self.settings.max_queue}"
                            " messages): publish refused")
        # not under a lock: paho calls on_publish holding its own message lock
        info = client.publish(topic, payload, route.qos, route.retain, props)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
                info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and route.qos):
            self._inflight.add(info, route)  # paho keeps QoS >= 1 queued across a reconnect
        else:
            cause = ("link_down" if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN else
                     "queue_full" if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE else
                     "publish_error")
            self.counts.add(route.topic, f"dropped:{cause}")
            error = LinkDownError if cause == "link_down" else MqttError
            raise error(f"mqtt {self.name!r}: publish on {topic!r} failed: "
                        f"{mqtt.error_string(info.rc)}")
        self._report_level()

    #: Settings :meth:`configure` applies to a running connection (the others need a new one).
    LIVE_SETTINGS = frozenset({"max_queue", "high_water"})

    def configure(self, settings: Any) -> bool:
        """Run-time settings (the gateway's actor thread; never blocks): ``high_water``, and
        ``max_queue`` up to the bound the paho client was created with (paho cannot change
        its own on an established connection), are applied live: ``send`` and the level
        check read the settings object once per use, and the level is checked against them
        at once. Any other change, or a larger ``max_queue``, needs a new connection
        (False)."""
        if not isinstance(settings, MqttSettings):
            return False
        current = self.settings
        if attrs.evolve(settings, **{k: getattr(current, k) for k in self.LIVE_SETTINGS}) != current:
            return False  # something else changed too
        if self._client is not None and settings.max_queue > self._paho_max_queue:
            return False
        self.settings = settings
        self._report_level()
        return True

    def _report_level(self, *, force: bool = False) -> None:
        """Degraded above the high-water mark of the queue or the in-flight window, Up again
        below half of it (any thread; one report per change)."""
        ctx = self._ctx
        if ctx is None or not self._connected.is_set():
            return
        s = self.settings
        inflight = self._inflight
        low = not self._degraded and len(inflight) < s.high_water * s.max_queue and (
            inflight.unacked < s.high_water * s.max_inflight)
        if low and not force:  # the common case, without the lock
            return
        with self._lock:
            fill = max(len(inflight) / s.max_queue, inflight.unacked / s.max_inflight)
            was = self._degraded
            if fill >= s.high_water:
                self._degraded = True
            elif fill < s.high_water / 2:
                self._degraded = False
            now = self._degraded
        if force or now != was:
            if now:
                ctx.report(G, f"outbound backlog at {fill:.0%} of its bound")
            else:
                ctx.report(U, f"connected to {s.host}:{s.port}")

    # -- observation (any thread) -------------------------------------------------------------
    def health(self) -> HealthState:
        """The last state reported (Connecting before ``open``)."""
        return C if self._ctx is None else self._ctx.state

    def stats(self) -> Mapping[str, int]:
        """Per topic ``TOPIC|in``, ``TOPIC|out``, ``TOPIC|dropped:CAUSE`` (``link_down``,
        ``queue_full``, ``publish_error``, ``refused``, ``disconnected``, ``malformed``,
        ``not_delivered``, ``no_route``) and ``TOPIC|in_flight`` (published, not yet completed), plus
        ``connects``, ``disconnects``, ``sub_refused``, ``queued`` and ``unacked``; with
        request/response channels also ``requests_waiting`` (published, no response yet) and
        ``requests_served`` (delivered to the app, not yet answered)."""
        counts = self.counts.snapshot()
        cells = [(r.topic, "in", self._in_cells.get(r.channel)) for r in self._in]
        cells += [(r.topic, "out", self._out_cells.get(r.channel)) for r in self._out.values()]
        for topic, what, cell in cells:
            if cell is not None and cell.n:
                key = f"{topic}|{what}"
                counts[key] = counts.get(key, 0) + cell.n
        topics = self._inflight.topics()
        for topic in topics:
            key = f"{topic}|in_flight"
            counts[key] = counts.get(key, 0) + 1
        counts["queued"] = len(topics)
        counts["unacked"] = self._inflight.unacked
        if self._rr is not None:
            counts["requests_waiting"], counts["requests_served"] = self._rr.in_flight()
        counts.update(self._events)
        return FrozenMap(counts)
