"""The gateway's configuration: which connector, which channels, backoff and time bounds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from taktora.actors.models.backoff import Backoff
from taktora.connectors import registry
from taktora.connectors.connector import Connector
from taktora.connectors.errors import ConnectorError, DescriptorError
from taktora.connectors.model import ChannelDescriptor
from taktora.connectors.settings import settings_error, structure_settings
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


def _connector(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not registry.is_reference(value):
        names = ", ".join(repr(n) for n in sorted(registry.known()))
        raise _v.fail(inst, attribute.name, f"a registered connector name ({names}) or a "
                                            f"Connector class as 'module:Class'", value)


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
    - ``connector``: a registered short name (``udp``, ``zenoh``, ``zenoh-query``, ``can``,
      ``ethercat``; entry-point group ``taktora.connectors``) or ``"module:Class"`` of a
      :class:`Connector` subclass; ``settings``: the table structured into the connector's
      ``settings_class`` (or its keyword arguments when it has none), or, from code, an
      instance of that class.
    - ``channels``: the descriptors it serves (names unique per direction).
    - ``reconnect``: the backoff between reconnect attempts.
    - ``shutdown_timeout_s``: bound of an orderly stop (ARCH_0530), > 0 and <= 300.
    - ``health_poll_s``: how often the gateway checks its dispatcher's threads and reports
      its counters to the loss ledger (the most a ``kill -9`` can lose of them);
      ``poll_s``: the reader thread's poll of a pull connector; both 0.001 .. 60.
    - ``iox_prefix``: the iceoryx2 prefix of the applications it serves (None:
      ``TAKTORA_IOX_PREFIX`` inside the actor).
    """

    name: str = attrs.field(validator=_v.identifier())
    connector: str = attrs.field(validator=_connector)
    channels: tuple[ChannelDescriptor, ...] = attrs.field(converter=to_tuple, validator=_channels)
    settings: Any = attrs.field(factory=dict, validator=_v.predicate(
        lambda v: attrs.has(type(v)) or (isinstance(v, Mapping) and all(
            isinstance(k, str) and k.isidentifier() for k in v)),
        "a settings table (a mapping of key names) or a connector's settings instance"))
    reconnect: Backoff = attrs.field(factory=Backoff, validator=_v.instance(Backoff))
    shutdown_timeout_s: float = attrs.field(default=5.0, validator=_v.number(
        gt=0, le=SHUTDOWN_TIMEOUT_MAX_S))
    health_poll_s: float = attrs.field(default=0.1, validator=_v.number(ge=POLL_MIN_S, le=POLL_MAX_S))
    poll_s: float = attrs.field(default=0.05, validator=_v.number(ge=POLL_MIN_S, le=POLL_MAX_S))
    iox_prefix: str | None = attrs.field(default=None, validator=_prefix)

    def connector_class(self) -> type[Connector]:
        """The connector class (a registered short name or ``module:Class``, see
        :mod:`taktora.connectors.registry`); ConnectorError naming the gateway if that fails."""
        try:
            return registry.resolve(self.connector)
        except ConnectorError as exc:
            raise ConnectorError(f"gateway {self.name!r}: {exc}") from exc

    def connector_settings(self) -> Any:
        """The settings structured into the connector's ``settings_class`` (the raw mapping
        when it has none); ConnectorError naming the gateway and the key if they do not fit."""
        cls = self.connector_class()
        if cls.settings_class is None:
            if not isinstance(self.settings, Mapping):
                raise ConnectorError(f"gateway {self.name!r}: {self.connector} has no settings "
                                     f"class; pass its keyword arguments as a mapping")
            return dict(self.settings)
        if isinstance(self.settings, cls.settings_class):
            return self.settings
        if not isinstance(self.settings, Mapping):
            raise ConnectorError(f"gateway {self.name!r}: settings are a "
                                 f"{type(self.settings).__name__}, {self.connector} takes a "
                                 f"{cls.settings_class.__name__} or a table of its keys")
        try:
            return structure_settings(cls.settings_class, self.settings)
        except Exception as exc:  # cattrs' validation errors and the class's own validators
            raise settings_error(self.name, self.connector, exc) from exc

    def build_connector(self) -> Connector:
        """The connector, built from its settings; ConnectorError naming the gateway if the
        settings do not fit (the actor's ``on_start`` calls it; no I/O)."""
        cls = self.connector_class()
        settings = self.connector_settings()
        try:
            return cls.from_settings(self.name, settings)
        except TypeError as exc:
            raise ConnectorError(f"gateway {self.name!r}: settings {self.settings!r} do "
                                 f"not fit {self.connector}: {exc}") from exc
