"""MqttConnector on a real mosquitto with a RecordingContext: data both ways with plain paho,
QoS/retain, wildcards, TCP_NODELAY, Down on a lost broker, persistent sessions, malformed
payloads, a full outbound queue."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from mqtt_harness import Broker, PahoPeer, frames, free_port, mchan
from polling import wait_until
from taktora.actors.models.health import HealthState
from taktora.connectors import Direction
from taktora.connectors.codecs import default_registry
from taktora.connectors.errors import LinkDownError
from taktora.connectors.mqtt import MqttConnector, MqttError, MqttSettings, MqttSettingsError, route_of
from taktora.connectors.mqtt.messages import MESSAGE_CODECS
from taktora.connectors.testing import RecordingContext

OUT, IN = Direction.OUTBOUND, Direction.INBOUND


def opened(port: int, channels: list[Any], **settings: Any) -> tuple[MqttConnector, RecordingContext]:
    conn = MqttConnector(MqttSettings(port=port, **settings), name="t")
    ctx = RecordingContext(channels)
    conn.open(ctx)
    return conn, ctx


@pytest.mark.req("REQ_0901", "REQ_0902")
def test_data_both_ways_with_a_plain_client(broker: Broker) -> None:
    out = mchan("cmd", OUT, "plant/cmd", qos=1)
    inn = mchan("state", IN, "plant/+/state", qos=1)
    peer = PahoPeer(broker.port, ("plant/cmd", 1))
    conn, ctx = opened(broker.port, [out, inn])
    try:
        assert ctx.reports[-1][0] is HealthState.UP
        for i in range(5):
            conn.send(out, memoryview(f"c{i}".encode()))
        assert [p for _, p in peer.collect(5)] == [f"c{i}".encode() for i in range(5)]
        for i in range(3):
            peer.publish(f"plant/m{i}/state", f"s{i}".encode(), qos=1)
        peer.publish("plant/m0/other", b"not mine", qos=1)
        got = frames(ctx, 4, timeout=1.0)
        assert got == [("state", f"s{i}".encode()) for i in range(3)]
        stats = conn.stats()
        assert stats["plant/cmd|out"] == 5 and stats["plant/+/state|in"] == 3
        assert wait_until(lambda: conn.stats()["unacked"] == 0)
    finally:
        conn.close()
        peer.stop()


@pytest.mark.req("REQ_0902")
def test_retain_reaches_a_late_subscriber(broker: Broker) -> None:
    out = mchan("cfg", OUT, "plant/config", qos=1, retain=True)
    conn, _ = opened(broker.port, [out])
    try:
        conn.send(out, b"v1")
        assert wait_until(lambda: conn.stats()["unacked"] == 0)
        late = PahoPeer(broker.port, ("plant/config", 1))
        assert late.collect(1) == [("plant/config", b"v1")]
        late.stop()
        # a resumed session's re-subscription does not replay the retained message (MQTT 5)
        inn = mchan("cfg", IN, "plant/config", qos=1)
        sub, ctx = opened(broker.port, [inn], client_id="cfg-sub", clean_start=False,
                          session_expiry_s=600)
        try:
            assert frames(ctx, 1) == [("cfg", b"v1")]
            sub.close()
            sub.open(ctx)
            assert frames(ctx, 1, timeout=0.5) == []
        finally:
            sub.close()
    finally:
        conn.close()


@pytest.mark.req("REQ_0903")
def test_tcp_nodelay_is_set_on_the_client_socket(broker: Broker) -> None:
    conn, _ = opened(broker.port, [mchan("x", OUT, "x")])
    try:
        sock = conn._client.socket()  # type: ignore[union-attr]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        conn.close()


@pytest.mark.req("REQ_0904")
def test_no_broker_fails_open_and_a_killed_broker_is_reported_down(broker: Broker) -> None:
    out = mchan("cmd", OUT, "plant/cmd", qos=0)
    with pytest.raises(MqttError, match="cannot connect"):
        MqttConnector(MqttSettings(port=free_port()), name="none").open(RecordingContext([out]))
    conn, ctx = opened(broker.port, [out], keepalive_s=1)
    try:
        broker.kill()
        assert wait_until(lambda: ctx.reports[-1][0] is HealthState.DOWN)
        assert conn.health() is HealthState.DOWN
        with pytest.raises(LinkDownError):
            conn.send(out, b"lost")
        assert conn.stats()["plant/cmd|dropped:link_down"] == 1
    finally:
        conn.close()


@pytest.mark.req("REQ_0905")
def test_persistent_session_delivers_what_was_published_while_away(broker: Broker) -> None:
    inn = mchan("state", IN, "plant/state", qos=1)
    conn, ctx = opened(broker.port, [inn], client_id="persist-1", clean_start=False,
                       session_expiry_s=600)
    peer = PahoPeer(broker.port)
    try:
        conn.close()
        for i in range(20):
            peer.publish("plant/state", f"m{i}".encode(), qos=1)
        conn.open(ctx)
        got = frames(ctx, 20)
        assert [p for _, p in got] == [f"m{i}".encode() for i in range(20)]
    finally:
        conn.close()
        peer.stop()


@pytest.mark.req("REQ_0905")
def test_unacknowledged_outbound_qos1_survives_a_broker_kill(broker: Broker) -> None:
    out = mchan("cmd", OUT, "plant/cmd", qos=1)
    rx = PahoPeer(broker.port, ("plant/cmd", 1), client_id="rx", clean=False)
    conn, ctx = opened(broker.port, [out], client_id="tx", clean_start=False,
                       session_expiry_s=600, keepalive_s=30)
    try:
        rx.stop()
        broker.proc.send_signal(19)  # SIGSTOP: nothing is acknowledged  # type: ignore[union-attr]
        for i in range(10):
            conn.send(out, f"m{i}".encode())
        assert conn.stats()["unacked"] == 10
        broker.kill()
        assert wait_until(lambda: ctx.reports[-1][0] is HealthState.DOWN)
        broker.start()
        conn.close()
        conn.open(ctx)  # what the gateway does on reconnect: paho sends the 10 again
        assert wait_until(lambda: conn.stats()["unacked"] == 0)
        rx = PahoPeer(broker.port, client_id="rx", clean=False)
        got = {p for _, p in rx.collect(10)}
        assert got == {f"m{i}".encode() for i in range(10)}  # at least once: duplicates allowed
    finally:
        conn.close()
        rx.stop()


@pytest.mark.req("REQ_0906")
def test_malformed_inbound_payloads_are_counted_not_delivered(broker: Broker) -> None:
    inn = mchan("state", IN, "plant/state", codec="json", qos=1)
    conn, ctx = opened(broker.port, [inn])
    peer = PahoPeer(broker.port)
    try:
        peer.publish("plant/state", b"{not json", qos=1)
        peer.publish("plant/state", b"\xff\xfe", qos=1)
        peer.publish("plant/state", b'{"ok": 1}', qos=1)
        assert frames(ctx, 1) == [("state", b'{"ok": 1}')]
        stats = conn.stats()
        assert stats["plant/state|in"] == 3 and stats["plant/state|dropped:malformed"] == 2
        assert conn.health() is HealthState.UP
    finally:
        conn.close()
        peer.stop()


@pytest.mark.req("REQ_0907")
def test_a_full_outbound_queue_refuses_and_reports_degraded(broker: Broker) -> None:
    out = mchan("cmd", OUT, "plant/cmd", qos=1)
    conn, ctx = opened(broker.port, [out], max_queue=10, max_inflight=10, high_water=0.5,
                       keepalive_s=30)
    try:
        broker.proc.send_signal(19)  # SIGSTOP: the broker stops acknowledging  # type: ignore[union-attr]
        refused = 0
        for i in range(15):
            try:
                conn.send(out, f"m{i}".encode())
            except MqttError:
                refused += 1
        assert refused == 5
        stats = conn.stats()
        assert stats["plant/cmd|dropped:queue_full"] == 5 and stats["plant/cmd|in_flight"] == 10
        assert any(s is HealthState.DEGRADED for s, _ in ctx.reports)
        broker.proc.send_signal(18)  # SIGCONT  # type: ignore[union-attr]
        assert wait_until(lambda: conn.stats()["queued"] == 0)
        assert wait_until(lambda: ctx.reports[-1][0] is HealthState.UP)
    finally:
        if broker.proc is not None:
            broker.proc.send_signal(18)
        conn.close()


@pytest.mark.req("REQ_0912")
def test_mqtt5_content_type_and_message_expiry(broker: Broker) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    out = mchan("cmd", OUT, "plant/cmd", codec="json", qos=1, expiry_s=30)
    got: list[Any] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    sub.on_message = lambda c, u, m: got.append(m.properties)
    subscribed: list[Any] = []
    sub.on_subscribe = lambda *a: subscribed.append(1)
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    sub.subscribe("plant/cmd", 1)
    conn, _ = opened(broker.port, [out])
    try:
        assert wait_until(lambda: subscribed)
        conn.send(out, b'{"go": 1}')
        assert wait_until(lambda: got)
        assert got[0].ContentType == "application/json"
        assert 0 < got[0].MessageExpiryInterval <= 30
    finally:
        conn.close()
        sub.disconnect()
        sub.loop_stop()


@pytest.mark.req("REQ_0913")
def test_with_topic_tells_the_app_which_topic_a_wildcard_message_came_on(broker: Broker) -> None:
    codec = MESSAGE_CODECS[0]
    inn = mchan("state", IN, "plant/+/state", qos=1, codec=codec, with_topic=True)
    conn, ctx = opened(broker.port, [inn])
    peer = PahoPeer(broker.port)
    try:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("line", "7")
        props.ContentType = "text/plain"
        peer.publish("plant/m1/state", b"s1", qos=1, properties=props)
        peer.publish("plant/m2/state", b"s2", qos=0)
        got = frames(ctx, 2)
        values = [default_registry.by_name(codec).decode(memoryview(f)) for _, f in got]
        assert [(m.topic, m.payload, m.qos) for m in values] == [
            ("plant/m1/state", b"s1", 1), ("plant/m2/state", b"s2", 0)]
        assert values[0].user_properties == (("line", "7"),)
        assert values[0].content_type == "text/plain"
    finally:
        conn.close()
        peer.stop()


@pytest.mark.req("REQ_0913")
def test_with_topic_needs_an_inbound_channel_and_the_message_codec() -> None:
    with pytest.raises(MqttSettingsError, match="with_topic delivers MqttMessage values"):
        route_of(mchan("s", IN, "a/+", with_topic=True))
    with pytest.raises(MqttSettingsError, match="inbound channels only"):
        route_of(mchan("s", OUT, "a/b", codec=MESSAGE_CODECS[0], with_topic=True))
    assert route_of(mchan("s", IN, "a/#", codec=MESSAGE_CODECS[1], with_topic=True)).with_topic


@pytest.mark.req("REQ_0902")
def test_qos2_is_exactly_once_both_ways(broker: Broker) -> None:
    out = mchan("cmd", OUT, "plant/cmd", qos=2)
    inn = mchan("state", IN, "plant/state", qos=2, buffer_size=512)
    peer = PahoPeer(broker.port, ("plant/cmd", 2))
    conn, ctx = opened(broker.port, [out, inn])
    try:
        for i in range(100):
            conn.send(out, f"c{i}".encode())
            peer.publish("plant/state", f"s{i}".encode(), qos=2)
        assert [p for _, p in peer.collect(100)] == [f"c{i}".encode() for i in range(100)]
        assert [p for _, p in frames(ctx, 100)] == [f"s{i}".encode() for i in range(100)]
        assert peer.collect(1, timeout=0.3) == [] and frames(ctx, 1, timeout=0.3) == []  # no dups
        assert wait_until(lambda: conn.stats()["unacked"] == 0)
    finally:
        conn.close()
        peer.stop()
