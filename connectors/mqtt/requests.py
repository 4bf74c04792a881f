"""MQTT 5 request/response on the framework's request/response frames, for :class:`MqttConnector`.

Channels: an endpoint ``NAME`` is a pair of descriptors (:func:`request_channels`), both routed
to the same address with the routing option ``role``; their frames are whole envelopes
(``MqttConnector.envelope_on`` is True for them) whose ``kind`` and ``correlation_id`` carry
the exchange, the same model as Zenoh's queries (``connectors/zenoh/query.py``):

=============  ==========================================  =====================================
side           app -> gateway (OUTBOUND)                   gateway -> app (INBOUND)
=============  ==========================================  =====================================
requester      ``NAME/request``: QUERY frames (id: app's)   ``NAME/response``: REPLY_DATA or
                                                           REPLY_TIMEOUT with the request's id
responder      ``NAME/response``: REPLY_DATA (answer) or    ``NAME/request``: QUERY frames (id:
               REPLY_END (no answer) with the request's id  the gateway's)
=============  ==========================================  =====================================

On the MQTT wire only payloads travel, so plain MQTT 5 programs interoperate:

- Requester: a request is a PUBLISH to the routing address (a topic) with the properties
  *ResponseTopic* (``{response_prefix}/{client_id}/{address}``, which the gateway subscribes
  to on every connect) and *CorrelationData* (the request's correlation id, 8 bytes big
  endian). The first response carrying that correlation data completes the request: it reaches
  the app as one REPLY_DATA frame with the request's id (MQTT has one response per request, so
  no REPLY_END follows). When ``timeout_s`` passes first the app gets one REPLY_TIMEOUT frame
  (empty payload) and the request is sealed: a response arriving later is dropped and counted
  ``TOPIC|dropped:late_response``; one whose correlation data this gateway never sent is
  counted ``dropped:unknown_response``. A request that cannot be published (not connected,
  outbound queue full, ``max_requests`` waiting) is refused - the dispatcher counts the frame
  by the error's cause - and answered at once with REPLY_TIMEOUT. (One written while the
  gateway is between connections never reaches the connector: the dispatcher counts it
  ``down``; applications keep a deadline of their own too.)
- Responder: the gateway subscribes the routing address (a filter, ``+``/``#`` allowed); each
  request carrying a ResponseTopic becomes a QUERY frame with a fresh gateway-assigned id
  (correlation data is optional in MQTT 5 and echoed when present); a message without one
  cannot be answered and is counted ``dropped:no_response_topic``. The app's first REPLY_DATA
  frame with that id is published to the request's response topic with its correlation data
  and retires the id; a REPLY_END (or REPLY_TIMEOUT) retires it without a response. A frame for
  an unknown, answered or expired id is refused (MqttError, counted
  ``dropped:unknown_request``); an id the app leaves unanswered for ``timeout_s`` expires
  (``dropped:expired``).

Protocol 3.1.1 has no response topic or correlation data: request/response routes are refused
at load (``check_channel``) and at ``open``.

Threads: ``send`` runs on the dispatcher's outbound thread; responses and requests arrive on
paho's network thread (per-filter callbacks, so data routes never look at them: a message
that matches a request filter goes to the responder only, even if a data route's filter
matches it too); deadlines are
kept by one clock thread per open connection (:meth:`Requests.start`, joined by
:meth:`Requests.stop` from ``close``), asleep on a condition until the nearest deadline. Every
frame to the app is built and delivered under this object's lock, so each inbound channel's
envelope sequence follows delivery order (the gateway's sink checks it). Requests in flight
survive a reconnect; a deadline that passed while the connection was closed is served when it
opens again.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from taktora.connectors.codecs import codec_id_for
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.model import ChannelDescriptor, ChannelPair, Direction, Routing
from taktora.connectors.mqtt.errors import MqttError, MqttSettingsError
from taktora.connectors.mqtt.settings import REQUESTER, RESPONDER, MqttSettings, Route
from taktora.transport import envelope
from taktora.transport.envelope import FrameKind
from taktora.transport.errors import EnvelopeError

log = logging.getLogger(__name__)

LATE_MEMORY = 4096
"""Correlation ids of completed or timed-out requests remembered to tell a late response from
an unknown one (the oldest is forgotten first)."""

Publish = Callable[[Route, str, bytes, Any], None]
"""The connector's publish: route (for its QoS and counters), topic, payload, properties."""

Subscription = tuple[str, int, Callable[[Any, Any, Any], None]]
"""A topic filter, its QoS and the paho callback its messages go to."""


RequestChannels = ChannelPair
"""The descriptor pair of one endpoint (:class:`~taktora.connectors.model.ChannelPair`)."""


def request_channels(name: str, topic: str, *, side: str = REQUESTER, qos: int = 0,
                     timeout_s: float | None = None, max_payload: int = 1024,
                     buffer_size: int = 64) -> RequestChannels:
    """The descriptor pair of endpoint ``name`` on ``topic`` (requester: the request topic;
    responder: the filter requests are taken from). ``side`` is ``"requester"`` or
    ``"responder"``; codec ``raw`` (timeout frames are empty). ``timeout_s`` overrides
    ``MqttSettings.request_timeout_s``. Raises MqttSettingsError for a bad side
    (DescriptorError for a bad name or size; the routing itself is checked at load and open)."""
    if side not in (REQUESTER, RESPONDER):
        raise MqttSettingsError(f"request_channels({name!r}): side {side!r} must be {REQUESTER!r} or "
                        f"{RESPONDER!r}")
    options: dict[str, str | int | float] = {"role": side, "qos": qos}
    if timeout_s is not None:
        options["timeout_s"] = float(timeout_s)
    routing = Routing("mqtt", topic, options)

    def make(suffix: str, direction: Direction) -> ChannelDescriptor:
        return ChannelDescriptor(f"{name}/{suffix}", direction, codec="raw",
                                 max_payload=max_payload, buffer_size=buffer_size,
                                 routing=routing)

    if side == REQUESTER:
        return RequestChannels(side, make("request", Direction.OUTBOUND),
                               make("response", Direction.INBOUND))
    return RequestChannels(side, make("response", Direction.OUTBOUND),
                           make("request", Direction.INBOUND))


def correlation_data(correlation_id: int) -> bytes:
    """The MQTT 5 CorrelationData a requester sends for ``correlation_id`` (8 bytes, big endian)."""
    return correlation_id.to_bytes(8, "big")


@attrs.frozen
class Endpoint:
    """One request/response endpoint of an open connection."""

    role: str
    topic: str  # requester: the request topic; responder: the request filter
    out: Route
    inbound: Route
    codec_id: int
    crc: bool
    timeout_s: float
    response_topic: str = ""  # requester only


@attrs.define
class _Pending:
    """A request this gateway published and that waits for its response."""

    endpoint: Endpoint
    deadline: float


@attrs.define
class _Served:
    """An inbound request delivered to the app and not yet answered."""

    endpoint: Endpoint
    response_topic: str
    correlation: bytes | None
    deadline: float


class Requests:
    """The request/response endpoints of one :class:`MqttConnector` (see the module doc).

    ``counts`` has ``add(topic, what)`` (the connector's per topic counters); ``publish`` is
    the connector's publish (raises LinkDownError / MqttError and counts the cause). Kept by
    the connector across close/open, so requests in flight survive a reconnect.
    """

    def __init__(self, name: str, counts: Any, publish: Publish) -> None:
        self.name = name
        self._counts = counts
        self._publish = publish
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: dict[int, _Pending] = {}
        self._served: dict[int, _Served] = {}
        self._late: OrderedDict[int, None] = OrderedDict()
        self._deadlines: list[tuple[float, int, int]] = []  # (deadline, 0 pending / 1 served, id)
        self._ids = itertools.count(1)
        self._seq: dict[str, int] = {}
        self._ctx: ConnectorContext | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._max = 1000
        self._by_out: dict[str, Endpoint] = {}
        self._by_response: dict[str, Endpoint] = {}
        self.endpoints: tuple[Endpoint, ...] = ()

    # -- set-up (owner's thread) ---------------------------------------------------------------
    def configure(self, routes: Sequence[Route], descriptors: Sequence[ChannelDescriptor],
                  settings: MqttSettings, client_id: str, ctx: ConnectorContext) -> None:
        """Pair the request/response ``routes`` by address and role (MqttError unless each
        endpoint has exactly one OUTBOUND and one INBOUND channel) for the connection of
        ``ctx``, which frames go to from now on (owner's thread, before the connect)."""
        by_name = {d.name: d for d in descriptors}
        pairs: dict[tuple[str, str], dict[Direction, Route]] = {}
        for r in routes:
            assert r.role is not None
            pair = pairs.setdefault((r.topic, r.role), {})
            if r.direction in pair:
                raise MqttError(f"mqtt {self.name!r}: {r.role} endpoint {r.topic!r} has two "
                                f"{r.direction.value} channels ({pair[r.direction].channel!r}, "
                                f"{r.channel!r}); use request_channels")
            pair[r.direction] = r
        endpoints = []
        for (topic, role), pair in pairs.items():
            out, inbound = pair.get(Direction.OUTBOUND), pair.get(Direction.INBOUND)
            if out is None or inbound is None:
                raise MqttError(f"mqtt {self.name!r}: {role} endpoint {topic!r} needs one "
                                "OUTBOUND and one INBOUND channel (use request_channels)")
            d = by_name[inbound.channel]
            timeout = out.timeout_s or inbound.timeout_s or settings.request_timeout_s
            response = f"{settings.response_prefix}/{client_id}/{topic}" if role == REQUESTER else ""
            endpoints.append(Endpoint(role, topic, out, inbound, codec_id_for(d.codec), d.crc,
                                      timeout, response))
        self.endpoints = tuple(endpoints)
        self._by_out = {e.out.channel: e for e in endpoints}
        self._by_response = {e.response_topic: e for e in endpoints if e.role == REQUESTER}
        with self._lock:
            self._max = settings.max_requests
            self._ctx = ctx

    def subscriptions(self) -> list[Subscription]:
        """What the connector subscribes on every connect: each requester's response topic,
        each responder's request filter (with the inbound channel's QoS)."""
        return [(e.response_topic, e.out.qos, self._on_response) if e.role == REQUESTER else
                (e.topic, e.inbound.qos, self._request_handler(e)) for e in self.endpoints]

    def start(self) -> None:
        """Start the clock thread of this connection (owner's thread, once connected)."""
        with self._lock:
            self._stopping = False
        if self.endpoints and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{self.name}-requests",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and join the clock thread (owner's thread; idempotent). Requests in flight stay."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.error("mqtt %r: the request clock did not stop within %g s", self.name,
                          timeout)

    # -- frames from the app (outbound thread) -------------------------------------------------
    def handles(self, channel: str) -> bool:
        return channel in self._by_out

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        """A request (requester) or an answer (responder) frame from the app. Raises MqttError
        for a bad frame or id, what the connector's publish raises when it fails."""
        e = self._by_out.get(descriptor.name)
        if e is None:
            raise MqttError(f"mqtt {self.name!r}: {descriptor.name!r} is not an open "
                            "request/response channel")
        try:
            fields, payload = envelope.split(frame, None, verify_crc=False)
        except EnvelopeError as exc:
            self._counts.add(e.topic, "dropped:malformed")
            raise MqttError(f"mqtt {self.name!r}: {descriptor.name!r}: {exc}") from exc
        kind, qid = fields[5], fields[10]
        if qid == 0:
            self._counts.add(e.topic, "dropped:no_correlation_id")
            raise MqttError(f"mqtt {self.name!r}: frame on {descriptor.name!r} has no "
                            "correlation id (envelope correlation_id 0)")
        if e.role == REQUESTER:
            self._request(e, qid, kind, bytes(payload))
        else:
            self._answer(e, qid, kind, bytes(payload))

    def _request(self, e: Endpoint, qid: int, kind: int, payload: bytes) -> None:
        if kind not in (FrameKind.QUERY, FrameKind.DATA):
            self._counts.add(e.topic, "dropped:bad_kind")
            raise MqttError(f"mqtt {self.name!r}: frame kind {kind} on requester channel "
                            f"{e.out.channel!r} (expected QUERY)")
        with self._wake:
            if qid in self._pending:
                self._counts.add(e.topic, "dropped:duplicate_request")
                raise MqttError(f"mqtt {self.name!r}: correlation id {qid} is already waiting "
                                "for a response")
            if len(self._pending) >= self._max:
                self._counts.add(e.topic, "dropped:requests_full")
                self._emit(e, qid, FrameKind.REPLY_TIMEOUT, b"")
                raise MqttError(f"mqtt {self.name!r}: {self._max} requests already wait for "
                                "a response (max_requests): request refused")
            self._pending[qid] = _Pending(e, self._schedule(e, 0, qid))
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho: untyped
        props.ResponseTopic = e.response_topic
        props.CorrelationData = correlation_data(qid)
        if e.out.expiry_s is not None:
            props.MessageExpiryInterval = e.out.expiry_s
        try:
            self._publish(e.out, e.topic, payload, props)
        except BaseException:
            with self._wake:
                if self._pending.pop(qid, None) is not None:
                    self._emit(e, qid, FrameKind.REPLY_TIMEOUT, b"")
            raise
        self._counts.add(e.topic, "out")

    def _answer(self, e: Endpoint, qid: int, kind: int, payload: bytes) -> None:
        if kind not in (FrameKind.REPLY_DATA, FrameKind.REPLY_END, FrameKind.REPLY_TIMEOUT):
            self._counts.add(e.topic, "dropped:bad_kind")
            raise MqttError(f"mqtt {self.name!r}: frame kind {kind} on responder channel "
                            f"{e.out.channel!r} (expected REPLY_DATA or REPLY_END)")
        with self._lock:
            served = self._served.get(qid)
            # endpoints are rebuilt at each connect: compare what identifies them
            if served is not None and served.endpoint.out.channel == e.out.channel:
                del self._served[qid]
            else:
                served = None
        if served is None:
            self._counts.add(e.topic, "dropped:unknown_request")
            raise MqttError(f"mqtt {self.name!r}: answer on {e.out.channel!r} for unknown, "
                            f"answered or expired request id {qid}")
        if kind != FrameKind.REPLY_DATA:
            self._counts.add(e.topic, "declined")
            return
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho: untyped
        if served.correlation is not None:
            props.CorrelationData = served.correlation
        self._publish(e.out, served.response_topic, payload, props)
        self._counts.add(e.topic, "out")

    # -- messages from the broker (paho's network thread) --------------------------------------
    def _on_response(self, client: Any, userdata: Any, msg: Any) -> None:
        e = self._by_response.get(msg.topic)
        if e is None:
            self._counts.add(msg.topic, "dropped:no_route")
            return
        corr = getattr(msg.properties, "CorrelationData", None)
        qid = int.from_bytes(corr, "big") if isinstance(corr, bytes) and len(corr) == 8 else 0
        with self._wake:
            pending = self._pending.get(qid)
            # endpoints are rebuilt at each connect: compare what identifies them
            if pending is None or pending.endpoint.response_topic != e.response_topic:
                self._counts.add(e.topic, "dropped:late_response" if qid in self._late
                                 else "dropped:unknown_response")
                return
            del self._pending[qid]
            self._remember(qid)
            self._counts.add(e.topic, "in")
            self._emit(e, qid, FrameKind.REPLY_DATA, msg.payload)

    def _request_handler(self, e: Endpoint) -> Callable[[Any, Any, Any], None]:
        def on_request(client: Any, userdata: Any, msg: Any) -> None:
            props = getattr(msg, "properties", None)
            topic = getattr(props, "ResponseTopic", None)
            if not topic:
                self._counts.add(e.topic, "dropped:no_response_topic")
                log.debug("mqtt %r: message on %r has no response topic: dropped", self.name,
                          msg.topic)
                return
            corr = getattr(props, "CorrelationData", None)
            with self._wake:
                if len(self._served) >= self._max:
                    self._counts.add(e.topic, "dropped:requests_full")
                    return
                qid = next(self._ids)
                self._served[qid] = _Served(e, topic, corr, self._schedule(e, 1, qid))
                self._counts.add(e.topic, "in")
                if not self._emit(e, qid, FrameKind.QUERY, msg.payload):
                    del self._served[qid]

        return on_request

    # -- under the lock ------------------------------------------------------------------------
    def _emit(self, e: Endpoint, qid: int, kind: int, payload: bytes) -> bool:
        """Deliver one envelope on ``e``'s INBOUND channel; False (counted) if refused."""
        channel = e.inbound.channel
        seq = self._seq.get(channel, 0) + 1
        self._seq[channel] = seq  # every frame handed to the sink uses its number
        frame = envelope.encode(payload, codec_id=e.codec_id, sequence=seq,
                                correlation_id=qid, kind=kind, with_crc=e.crc)
        ctx = self._ctx
        if ctx is None or not ctx.deliver(channel, frame):
            self._counts.add(e.topic, "dropped:not_delivered")
            return False
        return True

    def _schedule(self, e: Endpoint, side: int, qid: int) -> float:
        deadline = time.monotonic() + e.timeout_s
        if not self._deadlines or deadline < self._deadlines[0][0]:
            self._wake.notify()
        heapq.heappush(self._deadlines, (deadline, side, qid))
        return deadline

    def _remember(self, qid: int) -> None:
        self._late[qid] = None
        if len(self._late) > LATE_MEMORY:
            self._late.popitem(last=False)

    def _expire(self, now: float) -> None:
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            deadline, side, qid = heapq.heappop(heap)
            if side == 0:
                pending = self._pending.get(qid)
                if pending is not None and pending.deadline == deadline:
                    del self._pending[qid]
                    self._remember(qid)
                    self._counts.add(pending.endpoint.topic, "timeout")
                    self._emit(pending.endpoint, qid, FrameKind.REPLY_TIMEOUT, b"")
            else:
                served = self._served.get(qid)
                if served is not None and served.deadline == deadline:
                    del self._served[qid]
                    self._counts.add(served.endpoint.topic, "dropped:expired")

    def _run(self) -> None:
        with self._wake:
            while not self._stopping:
                now = time.monotonic()
                self._expire(now)
                wait = self._deadlines[0][0] - now if self._deadlines else None
                self._wake.wait(wait)

    # -- observation (any thread) --------------------------------------------------------------
    def in_flight(self) -> tuple[int, int]:
        """``(requests waiting for a response, inbound requests waiting for the app)``."""
        with self._lock:
            return len(self._pending), len(self._served)
