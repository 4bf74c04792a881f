"""examples/mqtt.toml runs with ``taktora run`` against a real mosquitto: what the app writes
reaches a plain MQTT client, what that client publishes reaches the app (REQ_0446), and the
app answers that client's MQTT 5 request through the example's responder endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mqtt_harness import Broker, PahoPeer
from taktora.connectors import ChannelReader, ChannelWriter
from taktora.system.config import load
from taktora.transport import FrameKind, Node

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mqtt.toml"


@pytest.mark.slow
@pytest.mark.req("REQ_0446", "REQ_0917")
def test_mqtt_example_runs(broker: Broker, tmp_path: Path, iox_prefix: str) -> None:
    text = EXAMPLE.read_text().replace("port = 1883", f"port = {broker.port}").replace(
        'client_id = "taktora-example"', f'client_id = "tk-{iox_prefix}"')
    path = tmp_path / "mqtt.toml"
    path.write_text(text)
    config = load(path)
    by_name = {c.name: c for c in config.gateways[0].channels}
    peer = PahoPeer(broker.port, ("plant/cmd", 1), ("my/answers", 1))
    env = dict(os.environ, PYTHONIOENCODING="utf-8", COLUMNS="120")
    proc = subprocess.Popen([sys.executable, "-m", "taktora.system.cli", "run", str(path),
                             "--for", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        with Node("mqtt-example-app", prefix=iox_prefix) as node:
            writer: ChannelWriter[Any] = ChannelWriter(node, by_name["plant/cmd"])
            reader: ChannelReader[Any] = ChannelReader(node, by_name["plant/state"])
            sent = got = None
            deadline = time.monotonic() + 15
            while proc.poll() is None and time.monotonic() < deadline and not (sent and got):
                if not sent:
                    writer.send({"start": 1})
                    sent = peer.collect(1, timeout=0.2)
                if not got:
                    peer.publish("plant/m1/state", json.dumps({"temp": 21.5}).encode(), qos=1)
                    received = reader.recv(0.2)
                    got = received.value if received is not None else None
            answered = _answer_a_request(node, peer, by_name)
            writer.close()
            reader.close()
        assert answered == [("my/answers", b"all good")], answered
        assert sent and sent[0][0] == "plant/cmd" and json.loads(sent[0][1]) == {"start": 1}, sent
        assert got == {"temp": 21.5}, got
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, out + err
        assert "mqtt: connecting -> up" in out, out
    finally:
        peer.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _answer_a_request(node: Node, peer: PahoPeer, by_name: dict[str, Any]) -> Any:
    """The peer asks on plant/ask/status (response topic my/answers); the app answers."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    requests: ChannelReader[bytes] = ChannelReader(node, by_name["svc/request"])
    answers: ChannelWriter[bytes] = ChannelWriter(node, by_name["svc/response"])
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "my/answers"
    props.CorrelationData = b"req-1"
    peer.publish("plant/ask/status", b"?", qos=1, properties=props)
    query = requests.recv(10.0)
    assert query is not None and query.header.kind == FrameKind.QUERY and query.value == b"?"
    answers.send(b"all good", correlation_id=query.header.correlation_id,
                 kind=FrameKind.REPLY_DATA)
    got: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:  # skip plant/cmd copies still arriving
        got = [m for m in peer.collect(1, timeout=0.2) if m[0] == "my/answers"]
    requests.close()
    answers.close()
    return got
