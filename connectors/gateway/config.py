"""The gateway's configuration: which connector, which channels, backoff and time bounds."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import attrs
from taktora.actors.models.backoff import Backoff
from taktora.connectors.connector import Connector
from taktora.connectors.errors import ConnectorError
from taktora.connectors.model import ChannelDescriptor
from taktora.transport import isolation


def _fail(field: str, value: Any, why: str) -> ConnectorError:
    return ConnectorError(f"GatewayConfig.{field}={value!r}: {why}")


def _positive(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail(attribute.name, value, "must be a number > 0")


def _name(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value or "/" in value or value.strip() != value:
        raise _fail(attribute.name, value, "must be a non-empty id without '/' or spaces")


def _class_path(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not (isinstance(value, str) and value.count(":") == 1 and all(value.split(":"))):
        raise _fail(attribute.name, value, "must name a Connector class as 'module:Class'")


def _settings(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k.isidentifier()
                                                 for k in value):
        raise _fail(attribute.name, value, "must be a mapping of keyword-argument names")


def _channels(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, tuple) or not value:
        raise _fail(attribute.name, value, "must be a non-empty tuple of ChannelDescriptor")
    names = []
    for d in value:
        if not isinstance(d, ChannelDescriptor):
            raise _fail(attribute.name, d, "items must be ChannelDescriptor values")
        names.append((d.name, d.direction))
    dupes = sorted({n for n, _ in names if names.count((n, _)) > 1})
    if dupes:
        raise _fail(attribute.name, dupes, "channel names must be unique per direction")


def _reconnect(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, Backoff):
        raise _fail(attribute.name, value, "must be a Backoff")


def _opt_prefix(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        try:
            isolation.validate_prefix(value)
        except Exception as exc:
            raise _fail(attribute.name, value, str(exc)) from None


def _to_channels(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@attrs.frozen(kw_only=True)
class GatewayConfig:
    """Everything a gateway needs; frozen, validated (ConnectorError naming the field), picklable.

    ``connector``: ``"module:Class"`` of a :class:`Connector` subclass, built as
    ``Class(**settings)``. ``channels``: the descriptors it serves. ``reconnect``: the backoff.
    ``shutdown_timeout_s``: bound of an orderly stop (ARCH_0530). ``health_poll_s``: how often
    the link is checked. ``poll_s``: the dispatcher's receive poll. ``iox_prefix``: the
    iceoryx2 prefix of the applications it serves (None: ``TAKTORA_IOX_PREFIX`` inside the
    actor).
    """

    name: str = attrs.field(validator=_name)
    connector: str = attrs.field(validator=_class_path)
    channels: tuple[ChannelDescriptor, ...] = attrs.field(converter=_to_channels,
                                                          validator=_channels)
    settings: Mapping[str, Any] = attrs.field(factory=dict, validator=_settings)
    reconnect: Backoff = attrs.field(factory=Backoff,
                                                     validator=_reconnect)
    shutdown_timeout_s: float = attrs.field(default=5.0, validator=_positive)
    health_poll_s: float = attrs.field(default=0.1, validator=_positive)
    poll_s: float = attrs.field(default=0.05, validator=_positive)
    iox_prefix: str | None = attrs.field(default=None, validator=_opt_prefix)

    def connector_class(self) -> type[Connector]:
        """Import the connector class; ConnectorError naming the config if that fails."""
        module, _, name = self.connector.partition(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ConnectorError(f"gateway {self.name!r}: cannot import connector "
                                 f"{self.connector!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise ConnectorError(f"gateway {self.name!r}: {self.connector!r} is not a "
                                 "Connector subclass")
        return cls

    def build_connector(self) -> Connector:
        """``Class(**settings)``; ConnectorError naming the gateway if the settings do not fit."""
        cls = self.connector_class()
        try:
            return cls(**dict(self.settings))
        except TypeError as exc:
            raise ConnectorError(f"gateway {self.name!r}: settings {dict(self.settings)!r} do "
                                 f"not fit {self.connector}: {exc}") from exc
