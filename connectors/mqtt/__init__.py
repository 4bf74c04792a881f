"""taktora.connectors.mqtt: MQTT publish/subscribe through a broker (paho-mqtt 2, MQTT 5 or 3.1.1).

- :class:`MqttConnector`: iceoryx2 channels <-> MQTT topics (raw payloads on the wire, QoS and
  retain per route, ``+``/``#`` filters inbound), reconnects driven by the gateway.
- :class:`MqttSettings`: the broker, session, TLS and queue settings of a system file.
"""

from taktora.connectors.mqtt.connector import MqttConnector
from taktora.connectors.mqtt.errors import MqttError, MqttSettingsError
from taktora.connectors.mqtt.settings import MqttSettings, Overflow, Route, route_of

__all__ = [
    "MqttConnector",
    "MqttError",
    "MqttSettings",
    "MqttSettingsError",
    "Overflow",
    "Route",
    "route_of",
]
