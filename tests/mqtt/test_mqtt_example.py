"""examples/mqtt.toml runs with ``taktora run`` against a real mosquitto: what the app writes
reaches a plain MQTT client, what that client publishes reaches the app (REQ_0446)."""

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
from taktora.transport import Node

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mqtt.toml"


@pytest.mark.slow
@pytest.mark.req("REQ_0446")
def test_mqtt_example_runs(broker: Broker, tmp_path: Path, iox_prefix: str) -> None:
    text = EXAMPLE.read_text().replace("port = 1883", f"port = {broker.port}").replace(
        'client_id = "taktora-example"', f'client_id = "tk-{iox_prefix}"')
    path = tmp_path / "mqtt.toml"
    path.write_text(text)
    config = load(path)
    by_name = {c.name: c for c in config.gateways[0].channels}
    peer = PahoPeer(broker.port, ("plant/cmd", 1))
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
            writer.close()
            reader.close()
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
