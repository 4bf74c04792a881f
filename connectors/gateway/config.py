"""The gateway's configuration: which connector, which channels, backoff and time bounds."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import attrs
from taktora.actors.models.backoff import Backoff
from taktora.connectors.connector import Connector
from taktora.connectors.errors import ConnectorError, DescriptorError
from taktora.connectors.model import ChannelDescriptor
from taktora.transport import isolation
from taktora.transport.errors import TaktoraError
from taktora.transport.validators import AssignChecks, to_tuple

_v = AssignChecks(DescriptorError)

#: Bounds of the gateway's time settings in seconds (spec/connectors.rst states them).
SHUTDOWN_TIMEOUT_MAX_S = 300.0
POLL_MIN_S = 0.001
POLL_MAX_S = 60.0


def _channels(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, tuple) or not value:
        raise _v.fail(inst, attribute.name, "a non-empty tuple of ChannelDescriptor", value)
    seen: dict[tuple[str, Any], int] = {}
    for i, d in enumerate(value):
        if not isinstance(d, ChannelDescriptor):
            raise _v.fail(inst, f"channels[{i}]", "a ChannelDescriptor", d)
        first = seen.setdefault((d.name, d.direction), i)
        if first != i:
            raise _v.problem(inst, f"channels[{i}].name", f"duplicate {d.direction.value} channel "
                                                          f"{d.name!r} (also channels[{first}])")


def _prefix(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        try:
            isolation.validate_prefix(value)
        except TaktoraError as exc:
            raise _v.problem(inst, attribute.name, str(exc)) from None


@attrs.frozen(kw_only=True)
class GatewayConfig:
    """Everything a gateway needs; frozen, validated (DescriptorError naming the field),
    picklable. A system file's ``[[gateways]]`` table is structured straight into it.

    - ``name``: 1-64 characters of ``[A-Za-z0-9_.-]`` (the gateway's child id).
    - ``connector``: ``"module:Class"`` of a :class:`Connector` subclass, built as
      ``Class(**settings)``; ``settings``: its keyword arguments.
    - ``channels``: the descriptors it serves (names unique per direction).
    - ``reconnect``: the backoff between reconnect attempts.
    - ``shutdown_timeout_s``: bound of an orderly stop (ARCH_0530), > 0 and <= 300.
    - ``health_poll_s``: how often the link is checked; ``poll_s``: the dispatcher's receive
      poll; both 0.001 .. 60.
    - ``iox_prefix``: the iceoryx2 prefix of the applications it serves (None:
      ``TAKTORA_IOX_PREFIX`` inside the actor).
    """

    name: str = attrs.field(validator=_v.identifier())
    connector: str = attrs.field(validator=_v.predicate(
        lambda v: isinstance(v, str) and v.count(":") == 1 and all(v.split(":")),
        "a Connector class as 'module:Class'"))
    channels: tuple[ChannelDescriptor, ...] = attrs.field(converter=to_tuple, validator=_channels)
    settings: Mapping[str, Any] = attrs.field(factory=dict, validator=_v.predicate(
        lambda v: isinstance(v, Mapping) and all(isinstance(k, str) and k.isidentifier() for k in v),
        "a mapping of keyword-argument names"))
    reconnect: Backoff = attrs.field(factory=Backoff, validator=_v.instance(Backoff))
    shutdown_timeout_s: float = attrs.field(default=5.0, validator=_v.number(
        gt=0, le=SHUTDOWN_TIMEOUT_MAX_S))
    health_poll_s: float = attrs.field(default=0.1, validator=_v.number(ge=POLL_MIN_S, le=POLL_MAX_S))
    poll_s: float = attrs.field(default=0.05, validator=_v.number(ge=POLL_MIN_S, le=POLL_MAX_S))
    iox_prefix: str | None = attrs.field(default=None, validator=_prefix)

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
