"""Interop with mosquitto's own tools: mosquitto_sub sees what the connector publishes, what
mosquitto_pub publishes reaches the connector (raw payloads, MQTT 5 and 3.1.1)."""

from __future__ import annotations

import pytest
from mqtt_harness import Broker, frames, mchan
from taktora.connectors import Direction
from taktora.connectors.mqtt import MqttConnector, MqttSettings
from taktora.connectors.testing import RecordingContext

OUT, IN = Direction.OUTBOUND, Direction.INBOUND


@pytest.mark.req("REQ_0901", "REQ_0909")
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_mosquitto_pub_and_sub_interoperate(broker: Broker, clients: None, protocol: str) -> None:
    out = mchan("cmd", OUT, "plant/cmd", qos=1)
    inn = mchan("state", IN, "plant/+/state", qos=1)
    conn = MqttConnector(MqttSettings(port=broker.port, protocol=protocol), name=f"io{protocol[0]}")
    ctx = RecordingContext([out, inn])
    conn.open(ctx)
    # a persistent mosquitto_sub session: subscribe (-E: exit on SUBACK), then collect
    session = ("-c", "-i", "sub-tool", "-x", "600", "-q", "1", "-t", "plant/cmd")
    broker.tool("mosquitto_sub", *session, "-E")
    try:
        for i in range(3):
            conn.send(out, f"c{i}".encode())
        got = broker.tool("mosquitto_sub", *session, "-C", "3", "-W", "10", "-v")
        assert got.stdout.splitlines() == [f"plant/cmd c{i}" for i in range(3)]
        broker.tool("mosquitto_pub", "-q", "1", "-t", "plant/m1/state", "-m", '{"t": 1}')
        broker.tool("mosquitto_pub", "-q", "0", "-t", "plant/m2/state", "-m", "raw bytes")
        assert frames(ctx, 2) == [("state", b'{"t": 1}'), ("state", b"raw bytes")]
    finally:
        conn.close()

