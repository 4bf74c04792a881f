"""The connector's buffered reads (``connectors/mqtt/paho_client.py``) on a real mosquitto: a
burst of small messages mixed with ones larger than the read buffer arrives whole and in
order, and the buffer serves paho's small reads."""

from __future__ import annotations

import pytest
from mqtt_harness import Broker, PahoPeer, frames, mchan
from polling import wait_until
from taktora.actors.models.health import HealthState
from taktora.connectors import Direction
from taktora.connectors.mqtt import MqttConnector, MqttSettings
from taktora.connectors.mqtt.paho_client import READ_SIZE, BufferedSocket
from taktora.connectors.testing import RecordingContext


@pytest.mark.req("REQ_0901", "REQ_0920")
def test_a_burst_with_messages_larger_than_the_buffer_arrives_whole_and_in_order(
        broker: Broker) -> None:
    inn = mchan("burst", Direction.INBOUND, "bench/burst", qos=1, buffer_size=4096)
    conn = MqttConnector(MqttSettings(port=broker.port), name="reads")
    ctx = RecordingContext([inn])
    ctx.open(conn)
    peer = PahoPeer(broker.port)
    try:
        assert isinstance(conn._client.socket(), BufferedSocket)  # type: ignore[union-attr]
        sent = []
        for i in range(600):
            size = READ_SIZE + 1000 if i % 200 == 7 else 1 + i % 90
            payload = bytes([i % 251]) * size
            sent.append(payload)
            peer.client.publish("bench/burst", payload, 1)  # QoS 1: nothing may be dropped
        peer.publish("bench/burst", b"end", qos=1)
        got = [p for _, p in frames(ctx, len(sent) + 1)]
        assert got == [*sent, b"end"]
        assert conn.stats()["bench/burst|in"] == len(sent) + 1
    finally:
        peer.stop()
        conn.close()


@pytest.mark.req("REQ_0920")
def test_the_buffered_socket_serves_small_reads_from_one_recv() -> None:
    class Source:
        def __init__(self, chunks: list[bytes]) -> None:
            self.chunks, self.calls = chunks, 0

        def recv(self, size: int) -> bytes:
            self.calls += 1
            if not self.chunks:
                raise BlockingIOError
            return self.chunks.pop(0)

        def fileno(self) -> int:
            return 7

    src = Source([b"\x30\x03abc\x30\x01d", b""])
    sock = BufferedSocket(src)
    assert [sock.recv(1), sock.recv(1), sock.recv(3)] == [b"\x30", b"\x03", b"abc"]
    assert sock.pending() == 3 and src.calls == 1
    assert [sock.recv(1), sock.recv(1), sock.recv(5)] == [b"\x30", b"\x01", b"d"]
    assert sock.pending() == 0
    assert sock.recv(1) == b""  # the end of the stream
    with pytest.raises(BlockingIOError):
        sock.recv(1)
    assert sock.fileno() == 7 and src.calls == 3


@pytest.mark.req("REQ_0905", "REQ_0907")
def test_qos0_only_connections_follow_writes_without_on_publish(broker: Broker) -> None:
    out = mchan("tel", Direction.OUTBOUND, "plant/tel")
    conn = MqttConnector(MqttSettings(port=broker.port, keepalive_s=30), name="q0")
    ctx = RecordingContext([out])
    ctx.open(conn)
    peer = PahoPeer(broker.port, ("plant/tel", 0))
    try:
        assert conn._client.on_publish is None  # type: ignore[union-attr]  # QoS 0 only
        for i in range(50):
            conn.send(out, f"t{i}".encode())
        assert [p for _, p in peer.collect(50)] == [f"t{i}".encode() for i in range(50)]
        assert wait_until(lambda: conn.stats()["queued"] == 0)
        # a stopped broker: the socket fills, paho keeps the rest; a kill drops it, counted
        broker.proc.send_signal(19)  # SIGSTOP  # type: ignore[union-attr]
        big = bytes(256 * 1024)
        for _ in range(60):  # 15 MiB: more than the loopback socket buffers take
            conn.send(out, big)
        assert wait_until(lambda: conn.stats()["queued"] > 0)
        broker.kill()
        assert wait_until(lambda: ctx.reports[-1][0] is HealthState.DOWN)
        stats = conn.stats()
        assert stats["queued"] == 0 and stats["plant/tel|dropped:disconnected"] >= 1
        assert stats["plant/tel|out"] == 110
    finally:
        peer.stop()
        conn.close()
