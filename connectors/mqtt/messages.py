"""What an inbound MQTT channel with ``with_topic = true`` carries: the message and its topic.

A channel subscribed with a wildcard filter (``plant/+/state``) loses, as plain payloads, which
topic each message came on. With the routing option ``with_topic = true`` the connector delivers
an :class:`MqttMessage` instead, encoded with the channel's codec, which must then be
``cattrs-msgpack:taktora.connectors.mqtt.messages.MqttMessage`` (or the ``cattrs-json`` one):
the application's ``ChannelReader`` decodes it (the codec registry builds attrs codecs named
that way on first use).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
from taktora.connectors.mqtt.errors import MqttSettingsError
from taktora.transport.validators import Checks

_v = Checks(MqttSettingsError)

#: the codecs a ``with_topic`` channel may declare
MESSAGE_CODECS = tuple(f"{family}:{__name__}.MqttMessage"
                       for family in ("cattrs-msgpack", "cattrs-json"))


def _pairs(value: Iterable[tuple[Any, Any]]) -> tuple[tuple[str, str], ...]:
    """User properties as a tuple of ``(name, value)`` string pairs (paho gives a list)."""
    return tuple((str(k), str(v)) for k, v in value)


@attrs.frozen(kw_only=True)
class MqttMessage:
    """One inbound MQTT message: the topic it came on, its payload, QoS, the retain flag, and
    (MQTT 5) its user properties and content type."""

    topic: str = attrs.field(validator=_v.string(nonempty=True))
    payload: bytes = attrs.field(validator=_v.instance(bytes))
    qos: int = attrs.field(default=0, validator=_v.int_range(0, 2))
    retain: bool = attrs.field(default=False, validator=_v.instance(bool))
    user_properties: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    content_type: str | None = None
