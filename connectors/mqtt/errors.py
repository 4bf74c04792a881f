"""MQTT's errors (``taktora.connectors.mqtt``)."""

from __future__ import annotations

from taktora.connectors.errors import ConnectorError


class MqttError(ConnectorError):
    """An MQTT connection, subscription or publish failed."""


class MqttSettingsError(MqttError, ValueError):
    """An MQTT setting or routing is invalid; the message names the field and the fix."""
