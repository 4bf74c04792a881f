"""taktora.connectors.mqtt: MQTT publish/subscribe through a broker (paho-mqtt 2, MQTT 5 or 3.1.1).

- :class:`MqttConnector`: iceoryx2 channels <-> MQTT topics (raw payloads on the wire, QoS and
  retain per route, ``+``/``#`` filters inbound), reconnects driven by the gateway.
- :class:`MqttSettings`: the broker, session, TLS and queue settings of a system file.
- :class:`MqttMessage`: what an inbound ``with_topic`` channel carries (topic, payload, QoS,
  retain, MQTT 5 user properties and content type).
- :func:`request_channels`: the channel pair of an MQTT 5 requester or responder endpoint
  (request/response frames: envelope kind and correlation id).
"""

from taktora.connectors.mqtt.connector import MqttConnector
from taktora.connectors.mqtt.errors import MqttError, MqttSettingsError
from taktora.connectors.mqtt.messages import MqttMessage
from taktora.connectors.mqtt.requests import RequestChannels, correlation_data, request_channels
from taktora.connectors.mqtt.settings import MqttSettings, Overflow, Route, route_of

__all__ = [
    "MqttConnector",
    "MqttError",
    "MqttMessage",
    "MqttSettings",
    "MqttSettingsError",
    "Overflow",
    "RequestChannels",
    "Route",
    "correlation_data",
    "request_channels",
    "route_of",
]
