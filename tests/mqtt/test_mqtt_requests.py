"""MQTT 5 request/response on the framework's request/response frames, on a real mosquitto:
a taktora requester against a plain paho responder, a taktora responder answering a plain paho
requester and ``mosquitto_rr``, both sides taktora, the timeout with its late response, the
refusal on MQTT 3.1.1."""

from __future__ import annotations

import queue
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from mqtt_harness import START_S, Broker, mchan
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from polling import collect, wait_until
from taktora.connectors import ChannelReader, ChannelWriter, Direction, Dispatcher, Routing
from taktora.connectors.channel import Received
from taktora.connectors.mqtt import (
    MqttConnector,
    MqttError,
    MqttSettings,
    MqttSettingsError,
    RequestChannels,
    correlation_data,
    request_channels,
)
from taktora.connectors.testing import RecordingContext
from taktora.system.config import loads
from taktora.system.errors import ConfigError
from taktora.transport import FrameKind, Node, envelope


class PlainClient:
    """A plain paho MQTT 5 client: a responder (answers requests on ``serve`` with
    ``answer(payload)``, or holds them in :attr:`held` when ``answer`` is None) and/or a
    requester (publishes with a response topic and collects the responses)."""

    def __init__(self, port: int, *, serve: str | None = None, answer: Any = None,
                 responses: str | None = None) -> None:
        self.answer = answer
        self.held: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.got: queue.SimpleQueue[tuple[bytes, bytes | None]] = queue.SimpleQueue()
        self.requests: list[tuple[str | None, bytes | None]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = self._on_message
        subscribed: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.client.on_subscribe = lambda c, u, mid, *a: subscribed.put(mid)
        self.serve, self.responses = serve, responses
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        topics = [t for t in (serve, responses) if t is not None]
        if topics:
            self.client.subscribe([(t, 1) for t in topics])
            subscribed.get(timeout=START_S)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        props = msg.properties
        corr = getattr(props, "CorrelationData", None)
        if self.serve is not None and mqtt.topic_matches_sub(self.serve, msg.topic):
            self.requests.append((getattr(props, "ResponseTopic", None), corr))
            if self.answer is None:
                self.held.put(msg)
            else:
                self.respond(msg, self.answer(bytes(msg.payload)))
        else:
            self.got.put((bytes(msg.payload), corr))

    def respond(self, msg: Any, payload: bytes, correlation: bytes | None = None) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = correlation or msg.properties.CorrelationData
        client = self.client
        client.publish(msg.properties.ResponseTopic, payload, 1, properties=props)

    def request(self, topic: str, payload: bytes, correlation: bytes | None,
                response_topic: str | None) -> None:
        props = Properties(PacketTypes.PUBLISH)
        if response_topic is not None:
            props.ResponseTopic = response_topic
        if correlation is not None:
            props.CorrelationData = correlation
        self.client.publish(topic, payload, 1, properties=props).wait_for_publish(START_S)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def gateway(prefix: str, port: int, endpoint: RequestChannels, name: str,
            **settings: Any) -> Dispatcher:
    conn = MqttConnector(MqttSettings(port=port, client_id=name, **settings), name=name)
    disp = Dispatcher(prefix, conn, endpoint.descriptors, name=name).start()
    assert wait_until(lambda: conn.health().value == "up")
    return disp


def next_frame(reader: ChannelReader[bytes]) -> Received[bytes]:
    got = collect(reader, 1)
    assert got, "no frame"
    return got[0]


@pytest.fixture
def requester(broker: Broker, iox_prefix: str) -> Iterator[tuple[Dispatcher, Node, RequestChannels]]:
    ask = request_channels("ask", "svc/add", timeout_s=5.0, qos=1)
    disp = gateway(iox_prefix, broker.port, ask, "req-gw")
    try:
        with Node("app", prefix=iox_prefix) as node:
            yield disp, node, ask
    finally:
        assert disp.stop().clean


@pytest.mark.req("REQ_0914", "REQ_0915")
def test_a_taktora_requester_against_a_plain_responder(
        broker: Broker, requester: tuple[Dispatcher, Node, RequestChannels]) -> None:
    disp, node, ask = requester
    plain = PlainClient(broker.port, serve="svc/add", answer=lambda p: p + b"+1")
    try:
        writer: ChannelWriter[bytes] = ChannelWriter(node, ask.out)
        reader: ChannelReader[bytes] = ChannelReader(node, ask.inbound)
        ids = [0x7700_0000_0000 + i for i in range(1, 4)]
        for i, qid in enumerate(ids):
            writer.send(f"{i}".encode(), correlation_id=qid, kind=FrameKind.QUERY)
        got = collect(reader, 3)
        assert sorted((g.header.correlation_id, g.header.kind, g.value) for g in got) == [
            (qid, FrameKind.REPLY_DATA, f"{i}+1".encode()) for i, qid in enumerate(ids)]
        # the wire: a plain MQTT 5 request with the gateway's response topic
        assert plain.requests == [("taktora/responses/req-gw/svc/add", correlation_data(qid))
                                  for qid in ids]
        stats = disp.connector.stats()
        assert stats["svc/add|out"] == 3 and stats["svc/add|in"] == 3
        assert stats["requests_waiting"] == 0
        # a second response to a completed request is late; one nobody asked for is unknown
        plain.respond(plain_msg(plain, ids[0]), b"again")
        plain.respond(plain_msg(plain, 12345), b"who?")
        assert wait_until(lambda: disp.connector.stats().get("svc/add|dropped:late_response") == 1
                          and disp.connector.stats().get("svc/add|dropped:unknown_response") == 1)
        assert reader.recv(0.05) is None
    finally:
        plain.stop()


def plain_msg(plain: PlainClient, qid: int) -> Any:
    """A stand-in for a received request, to answer ``qid`` on the gateway's response topic."""
    msg = mqtt.MQTTMessage(topic=b"svc/add")
    msg.properties = Properties(PacketTypes.PUBLISH)
    msg.properties.ResponseTopic = "taktora/responses/req-gw/svc/add"
    msg.properties.CorrelationData = correlation_data(qid)
    return msg


@pytest.mark.req("REQ_0914", "REQ_0916")
def test_a_request_times_out_and_its_late_response_is_counted(
        broker: Broker, iox_prefix: str) -> None:
    ask = request_channels("slow", "svc/slow", timeout_s=0.3)
    disp = gateway(iox_prefix, broker.port, ask, "slow-gw")
    plain = PlainClient(broker.port, serve="svc/slow")  # holds every request
    try:
        with Node("app", prefix=iox_prefix) as node:
            writer: ChannelWriter[bytes] = ChannelWriter(node, ask.out)
            reader: ChannelReader[bytes] = ChannelReader(node, ask.inbound)
            writer.send(b"?", correlation_id=41, kind=FrameKind.QUERY)
            held = plain.held.get(timeout=START_S)
            got = next_frame(reader)
            assert (got.header.correlation_id, got.header.kind, got.value) == (
                41, FrameKind.REPLY_TIMEOUT, b"")
            plain.respond(held, b"too late")
            assert wait_until(lambda: disp.connector.stats().get("svc/slow|dropped:late_response")
                              == 1)
            assert reader.recv(0.05) is None
            stats = disp.connector.stats()
            assert stats["svc/slow|timeout"] == 1 and stats["requests_waiting"] == 0
            # while the broker is gone a request is refused at once and answered by a timeout
            plain.stop()
            broker.kill()
            assert wait_until(lambda: disp.connector.health().value == "down")
            writer.send(b"?", correlation_id=42, kind=FrameKind.QUERY)
            got = next_frame(reader)
            assert (got.header.correlation_id, got.header.kind) == (42, FrameKind.REPLY_TIMEOUT)
            assert wait_until(lambda: disp.stats().outbound_dropped.get("link_down") == 1)
    finally:
        plain.stop()
        assert disp.stop().clean


@pytest.mark.req("REQ_0914", "REQ_0917")
def test_a_taktora_responder_answers_plain_requesters(broker: Broker, iox_prefix: str) -> None:
    serve = request_channels("calc", "svc/+/double", side="responder", qos=1)
    disp = gateway(iox_prefix, broker.port, serve, "resp-gw")
    plain = PlainClient(broker.port, responses="plain/responses")
    try:
        with Node("app", prefix=iox_prefix) as node:
            reader: ChannelReader[bytes] = ChannelReader(node, serve.inbound)
            writer: ChannelWriter[bytes] = ChannelWriter(node, serve.out)
            for i in range(3):
                plain.request(f"svc/m{i}/double", f"{i}".encode(), f"c{i}".encode(),
                              "plain/responses")
            queries = collect(reader, 3)
            assert [(q.header.kind, q.value) for q in queries] == [
                (FrameKind.QUERY, f"{i}".encode()) for i in range(3)]
            qids = [q.header.correlation_id for q in queries]
            assert len(set(qids)) == 3 and 0 not in qids
            for q in queries:
                writer.send(q.value * 2, correlation_id=q.header.correlation_id,
                            kind=FrameKind.REPLY_DATA)
            got = sorted(plain.got.get(timeout=START_S) for _ in range(3))
            assert got == [(f"{i}".encode() * 2, f"c{i}".encode()) for i in range(3)]
            # answered ids are retired: a second answer is refused and counted
            writer.send(b"again", correlation_id=qids[0], kind=FrameKind.REPLY_DATA)
            assert wait_until(lambda: disp.connector.stats().get(
                "svc/+/double|dropped:unknown_request") == 1)
            assert wait_until(lambda: disp.stats().outbound_dropped.get("send_error") == 1)
            # a message without a response topic cannot be answered; REPLY_END declines
            plain.request("svc/x/double", b"data", None, None)
            plain.request("svc/y/double", b"no", b"c9", "plain/responses")
            declined = next_frame(reader)
            assert declined.value == b"no"
            writer.send(b"", correlation_id=declined.header.correlation_id,
                        kind=FrameKind.REPLY_END)
            assert wait_until(lambda: disp.connector.stats().get("svc/+/double|declined") == 1)
            stats = disp.connector.stats()
            assert stats["svc/+/double|dropped:no_response_topic"] == 1
            assert stats["svc/+/double|in"] == 4 and stats["svc/+/double|out"] == 3
            assert stats["requests_served"] == 0
            if shutil.which("mosquitto_rr") is not None:  # mosquitto's own requester
                rr = subprocess.Popen(["mosquitto_rr", "-h", "127.0.0.1", "-p", str(broker.port),
                                       "-V", "mqttv5", "-t", "svc/rr/double", "-e", "rr/resp",
                                       "-m", "ab", "-W", "10"], stdout=subprocess.PIPE, text=True)
                q = next_frame(reader)
                writer.send(q.value * 2, correlation_id=q.header.correlation_id,
                            kind=FrameKind.REPLY_DATA)
                out, _ = rr.communicate(timeout=START_S)
                assert (rr.returncode, out.strip()) == (0, "abab")
    finally:
        plain.stop()
        assert disp.stop().clean


@pytest.mark.req("REQ_0914", "REQ_0917")
def test_an_unanswered_request_expires_at_the_responder(broker: Broker, iox_prefix: str) -> None:
    serve = request_channels("mute", "svc/mute", side="responder", timeout_s=0.2)
    disp = gateway(iox_prefix, broker.port, serve, "mute-gw")
    plain = PlainClient(broker.port, responses="plain/mute")
    try:
        with Node("app", prefix=iox_prefix) as node:
            reader: ChannelReader[bytes] = ChannelReader(node, serve.inbound)
            writer: ChannelWriter[bytes] = ChannelWriter(node, serve.out)
            plain.request("svc/mute", b"?", b"c", "plain/mute")
            q = next_frame(reader)
            assert wait_until(lambda: disp.connector.stats().get("svc/mute|dropped:expired") == 1)
            writer.send(b"late", correlation_id=q.header.correlation_id, kind=FrameKind.REPLY_DATA)
            assert wait_until(lambda: disp.connector.stats().get(
                "svc/mute|dropped:unknown_request") == 1)
            assert plain.got.empty()
    finally:
        plain.stop()
        assert disp.stop().clean


@pytest.mark.req("REQ_0914", "REQ_0915", "REQ_0917")
def test_requester_and_responder_both_taktora(broker: Broker, iox_prefix: str) -> None:
    ask = request_channels("ask", "svc/sum", timeout_s=5.0, qos=1)
    serve = request_channels("sum", "svc/sum", side="responder", qos=1)
    prefix_b = f"{iox_prefix}b_"
    disp_a = gateway(iox_prefix, broker.port, ask, "gw-a")
    disp_b = gateway(prefix_b, broker.port, serve, "gw-b")
    try:
        with Node("a", prefix=iox_prefix) as na, Node("b", prefix=prefix_b) as nb:
            q_out: ChannelWriter[bytes] = ChannelWriter(na, ask.out)
            r_in: ChannelReader[bytes] = ChannelReader(na, ask.inbound)
            s_in: ChannelReader[bytes] = ChannelReader(nb, serve.inbound)
            s_out: ChannelWriter[bytes] = ChannelWriter(nb, serve.out)
            for qid in range(1, 21):
                q_out.send(f"{qid}".encode(), correlation_id=qid, kind=FrameKind.QUERY)
            for q in reversed(collect(s_in, 20)):  # answered out of order
                s_out.send(b"=" + q.value, correlation_id=q.header.correlation_id,
                           kind=FrameKind.REPLY_DATA)
            got = collect(r_in, 20)
            assert sorted((g.header.correlation_id, g.value) for g in got) == [
                (qid, f"={qid}".encode()) for qid in range(1, 21)]
            assert all(g.header.kind == FrameKind.REPLY_DATA for g in got)
            # the gateways' sinks saw a gap-free link sequence on the envelope channels
            assert disp_a.stats().inbound_forwarded == 20 and disp_b.stats().inbound_forwarded == 20
            for disp in (disp_a, disp_b):
                assert (disp.stats().inbound_gaps, disp.stats().inbound_lost) == (0, 0)
                assert not dict(disp.stats().inbound_dropped)
    finally:
        reports = [disp_a.stop(), disp_b.stop()]
    assert all(r.clean for r in reports)


DOC = """
name = "rr"
[[gateways]]
name = "mq"
connector = "mqtt"
settings = { port = 1883, client_id = "c1", protocol = "3.1.1" }
[[gateways.channels]]
name = "ask/request"
direction = "outbound"
routing = { kind = "mqtt", address = "svc/a", options = { role = "requester" } }
[[gateways.channels]]
name = "ask/response"
direction = "inbound"
routing = { kind = "mqtt", address = "svc/a", options = { role = "requester" } }
"""


@pytest.mark.req("REQ_0918")
def test_request_response_is_refused_on_mqtt_3_1_1() -> None:
    with pytest.raises(ConfigError, match=r"gateways\[0\]\.channels\[0\].*needs MQTT 5"):
        loads(DOC)
    loads(DOC.replace('protocol = "3.1.1"', 'protocol = "5"'))  # the same on MQTT 5 loads
    ask = request_channels("ask", "svc/a")
    conn = MqttConnector(MqttSettings(protocol="3.1.1", port=1), name="old")
    with pytest.raises(MqttError, match="needs MQTT 5"):
        conn.open(RecordingContext(list(ask.descriptors)))
    assert not conn.envelope_on(mchan("d", Direction.OUTBOUND, "svc/a"))
    assert conn.envelope_on(ask.out) and conn.envelope_on(ask.inbound)


@pytest.mark.req("REQ_0914")
def test_request_routes_are_checked() -> None:
    good = request_channels("ask", "svc/a").out
    bad = [({"role": "asker"}, "role"), ({"role": "requester", "retain": True}, "retain"),
           ({"timeout_s": 1.0}, "request/response channels only"),
           ({"role": "requester", "timeout_s": 0}, "timeout_s")]
    for options, match in bad:
        d = _with_routing(good, Routing("mqtt", "svc/a", options))
        with pytest.raises(MqttSettingsError, match=match):
            MqttConnector.check_channel(MqttSettings(), d)
    with pytest.raises(MqttSettingsError, match="raw"):
        MqttConnector.check_channel(MqttSettings(), _with_codec(good, "json"))
    with pytest.raises(MqttSettingsError, match="wildcards"):
        MqttConnector.check_channel(MqttSettings(), request_channels("a", "svc/+").out)
    request_channels("a", "svc/+", side="responder")  # a responder takes a filter
    with pytest.raises(MqttSettingsError, match="response_prefix"):
        MqttSettings(response_prefix="a/#")
    lonely = RecordingContext([good])
    with pytest.raises(MqttError, match="one OUTBOUND and one INBOUND"):
        MqttConnector(MqttSettings(port=1), name="x").open(lonely)


def _with_routing(d: Any, routing: Routing) -> Any:
    import attrs

    return attrs.evolve(d, routing=routing)


def _with_codec(d: Any, codec: str) -> Any:
    import attrs

    return attrs.evolve(d, codec=codec)


@pytest.mark.req("REQ_0914", "REQ_0908")
def test_request_settings_come_from_the_system_file() -> None:
    doc = DOC.replace('protocol = "3.1.1"', 'request_timeout_s = 2.5, response_prefix = "r/x", '
                      'max_requests = 10')
    settings = loads(doc).gateway_configs()[0].connector_settings()
    assert (settings.request_timeout_s, settings.response_prefix, settings.max_requests) == (
        2.5, "r/x", 10)
    for bad, key in (("request_timeout_s = 0", "request_timeout_s"),
                     ('response_prefix = "r/+"', "response_prefix"),
                     ("max_requests = 0", "max_requests")):
        with pytest.raises(ConfigError, match=rf"gateways\[0\]\.settings\.{key}"):
            loads(DOC.replace('protocol = "3.1.1"', bad))


@pytest.mark.req("REQ_0915", "REQ_0917")
def test_requests_in_flight_survive_a_reconnect(broker: Broker) -> None:
    ask = request_channels("ask", "svc/keep", timeout_s=10.0, qos=1)
    serve = request_channels("keep", "svc/keep2", side="responder", qos=1)
    conn = MqttConnector(MqttSettings(port=broker.port, client_id="keep-gw"), name="keep")
    plain = PlainClient(broker.port, serve="svc/keep", responses="plain/keep")
    first = RecordingContext([*ask.descriptors, *serve.descriptors])
    first.open(conn)
    try:
        conn.send(ask.out, envelope_of(b"q", 77, FrameKind.QUERY))
        held = plain.held.get(timeout=START_S)
        plain.request("svc/keep2", b"r", b"c1", "plain/keep")
        _, frame = first.next(START_S) or (None, b"")
        query, _ = envelope.decode(frame)
        conn.close()
        second = RecordingContext([*ask.descriptors, *serve.descriptors])
        second.open(conn)
        plain.respond(held, b"answer")  # the response to a request sent before the reconnect
        _, frame = second.next(START_S) or (None, b"")
        header, payload = envelope.decode(frame)
        assert (header.correlation_id, header.kind, bytes(payload)) == (
            77, FrameKind.REPLY_DATA, b"answer")
        # and an inbound request delivered before the reconnect can still be answered
        conn.send(serve.out, envelope_of(b"done", query.correlation_id, FrameKind.REPLY_DATA))
        assert plain.got.get(timeout=START_S) == (b"done", b"c1")
        assert conn.stats()["requests_waiting"] == 0 and conn.stats()["requests_served"] == 0
    finally:
        conn.close()
        plain.stop()


def envelope_of(payload: bytes, qid: int, kind: int) -> bytes:
    return envelope.encode(payload, codec_id=0, sequence=1, correlation_id=qid, kind=kind)
