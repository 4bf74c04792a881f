"""MQTT in a system file: the example loads, bad settings and routings are rejected at load
with a key path (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mqtt_harness import mchan
from taktora.connectors import Direction
from taktora.connectors.mqtt import MqttConnector, MqttSettings, MqttSettingsError
from taktora.system.config import load, loads
from taktora.system.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mqtt.toml"

DOC = """
name = "m"
[[gateways]]
name = "mq"
connector = "mqtt"
settings = { port = 1883, client_id = "c1" }
[[gateways.channels]]
name = "a/cmd"
direction = "outbound"
routing = { kind = "mqtt", address = "a/cmd", options = { qos = 1 } }
[[gateways.channels]]
name = "a/state"
direction = "inbound"
routing = { kind = "mqtt", address = "a/+/state", options = { qos = 1 } }
"""


@pytest.mark.req("REQ_0908")
def test_the_example_and_a_document_load_with_the_registered_name() -> None:
    for config in (load(EXAMPLE), loads(DOC)):
        g = config.gateway_configs()[0]
        assert g.connector_class() is MqttConnector
        assert isinstance(g.connector_settings(), MqttSettings)


BAD = [
    ("port = 1883", "port = 70000", "gateways[0].settings.port", "1..65535"),
    ("port = 1883", 'port = "1883"', "gateways[0].settings.port", "expected int"),
    ('client_id = "c1"', 'client_id = "c1", colour = 1', "gateways[0].settings", "colour"),
    ('client_id = "c1"', 'client_id = "c1", protocol = "4"', "gateways[0].settings.protocol", "3.1.1"),
    ('client_id = "c1"', 'client_id = "c1", keepalive_s = 0', "gateways[0].settings.keepalive_s", ""),
    ('client_id = "c1"', 'client_id = "c1", clean_start = false',
     "gateways[0].settings.session_expiry_s", "session_expiry_s > 0"),
    ('client_id = "c1"', 'client_id = "c1", tls_cert = "c.pem"', "gateways[0].settings.tls_cert",
     "tls_key"),
    ('client_id = "c1"', 'client_id = "c1", overflow = "drop_random"',
     "gateways[0].settings.overflow", ""),
    ('address = "a/cmd"', 'address = "a/#"', "gateways[0].channels[0].routing", "wildcards"),
    ('address = "a/+/state"', 'address = "a/#/state"', "gateways[0].channels[1].routing", "last"),
    ('address = "a/+/state"', 'address = "a/x+/state"', "gateways[0].channels[1].routing", "whole"),
    ("options = { qos = 1 } }\n[[", "options = { qos = 3 } }\n[[", "gateways[0].channels[0].routing",
     "0, 1 or 2"),
    ('kind = "mqtt", address = "a/cmd"', 'kind = "udp", address = "a/cmd"',
     "gateways[0].channels[0].routing", "not 'mqtt'"),
    ('options = { qos = 1 } }\n', 'options = { qos = 1, retain = true } }\n',
     "gateways[0].channels[1].routing", "outbound channels only"),
    ("options = { qos = 1 } }\n[[", "options = { qos = 1, expiry_s = 0 } }\n[[",
     "gateways[0].channels[0].routing", "1..4294967295"),
    ("options = { qos = 1 } }\n[[", "options = { qos = 1, prio = 0 } }\n[[",
     "gateways[0].channels[0].routing", "unknown routing option"),
]


@pytest.mark.req("REQ_0908")
@pytest.mark.parametrize(("old", "new", "path", "reason"), BAD)
def test_bad_settings_and_routings_fail_at_load_with_a_key_path(old: str, new: str, path: str,
                                                                  reason: str) -> None:
    head, _, tail = DOC.rpartition(old)
    doc = head + new + tail
    assert doc != DOC
    with pytest.raises(ConfigError) as info:
        loads(doc)
    problems = dict(info.value.problems)  # type: ignore[attr-defined]
    assert path in problems, problems
    assert reason in problems[path]


@pytest.mark.req("REQ_0908")
def test_settings_validate_at_construction() -> None:
    with pytest.raises(MqttSettingsError, match="password"):
        MqttSettings(password="x")
    with pytest.raises(MqttSettingsError, match="high_water"):
        MqttSettings(high_water=float("nan"))
    assert MqttSettings(protocol="3.1.1", clean_start=False).session_expiry_s == 0
    with pytest.raises(MqttSettingsError, match="qos"):
        MqttConnector.check_channel(None, mchan("x", Direction.OUTBOUND, "x", qos=True))  # type: ignore[arg-type]
