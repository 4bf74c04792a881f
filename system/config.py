"""System configuration: a TOML file declaring the supervision tree, gateways, channels and
policies, structured by cattrs into frozen attrs values.

Document layout (every table optional except ``gateways``; unknown keys are errors)::

    name = "demo"                                 # the system's name

    [supervision]                                 # the gateways' supervisor
    strategy = "one_for_one"                      # one_for_one | one_for_all | rest_for_one
    intensity = 3                                 # restarts allowed within period_s
    period_s = 5.0
    [supervision.backoff]                         # optional restart backoff
    min_s = 0.1
    max_s = 2.0

    [policies]                                    # defaults of every gateway
    shutdown_timeout_s = 5.0
    health_poll_s = 0.1
    [policies.reconnect]                          # Backoff
    initial_s = 0.2

    [[gateways]]
    name = "left"
    connector = "taktora.connectors.udp:UdpConnector"
    settings = { name = "udp-left" }              # keyword arguments of the connector class
    [[gateways.channels]]                         # ChannelDescriptor documents
    name = "demo/cmd"
    direction = "outbound"
    codec = "json"
    routing = { kind = "udp", address = "127.0.0.1:47101" }

:func:`load` / :func:`loads` check everything before anything starts: TOML syntax, types
(strict: no string-to-number coercion), each value's validators, then cross-field rules (unique
gateway names, importable connector classes that accept their settings). A problem raises
:class:`~taktora.system.errors.ConfigError` whose message names the key path
(``gateways[0].channels[1].qos.priority``) and the reason; nothing else escapes. Pure
functions of the document: no threads, no I/O besides reading the file.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import attrs
import cattrs
from taktora.actors.control.supervision import Strategy, SupervisorSpec
from taktora.actors.models.backoff import Backoff
from taktora.connectors import model
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.model import ChannelDescriptor
from taktora.system.errors import ConfigError
from taktora.transport.errors import TaktoraError


def _fail(cls: str, field: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"{cls}.{field}={value!r}: {why}")


def _positive(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail(type(inst).__name__, attribute.name, value, "must be a number > 0")


def _opt_positive(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _positive(inst, attribute, value)


def _nonneg_int(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(type(inst).__name__, attribute.name, value, "must be an integer >= 0")


def _ident(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", value):
        raise _fail(type(inst).__name__, attribute.name, value,
                    "use 1-64 characters of [A-Za-z0-9_.-]")


@attrs.frozen(kw_only=True)
class SupervisionConfig:
    """The gateways' supervisor: strategy, restart intensity per period, optional backoff."""

    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = attrs.field(default=3, validator=_nonneg_int)
    period_s: float = attrs.field(default=5.0, validator=_positive)
    backoff: Backoff | None = None

    def spec(self) -> SupervisorSpec:
        return SupervisorSpec(strategy=self.strategy, intensity=self.intensity,
                              period_s=self.period_s, backoff=self.backoff)


@attrs.frozen(kw_only=True)
class PoliciesConfig:
    """Defaults every gateway inherits unless it sets its own."""

    reconnect: Backoff = attrs.field(factory=Backoff)
    shutdown_timeout_s: float = attrs.field(default=5.0, validator=_positive)
    health_poll_s: float = attrs.field(default=0.1, validator=_positive)


@attrs.frozen(kw_only=True)
class GatewayEntry:
    """One gateway as declared; :meth:`SystemConfig.gateway_configs` merges the policies."""

    name: str = attrs.field(validator=_ident)
    connector: str
    channels: tuple[ChannelDescriptor, ...]
    settings: dict[str, Any] = attrs.field(factory=dict)
    reconnect: Backoff | None = None
    shutdown_timeout_s: float | None = attrs.field(default=None, validator=_opt_positive)
    health_poll_s: float | None = attrs.field(default=None, validator=_opt_positive)


@attrs.frozen(kw_only=True)
class SystemConfig:
    """A whole system file."""

    name: str = attrs.field(default="taktora", validator=_ident)
    supervision: SupervisionConfig = attrs.field(factory=SupervisionConfig)
    policies: PoliciesConfig = attrs.field(factory=PoliciesConfig)
    gateways: tuple[GatewayEntry, ...] = ()

    def gateway_configs(self, iox_prefix: str | None = None) -> list[GatewayConfig]:
        """One :class:`GatewayConfig` per gateway, policies merged in."""
        p = self.policies
        return [GatewayConfig(
            name=g.name, connector=g.connector, channels=g.channels, settings=dict(g.settings),
            reconnect=g.reconnect or p.reconnect,
            shutdown_timeout_s=g.shutdown_timeout_s or p.shutdown_timeout_s,
            health_poll_s=g.health_poll_s or p.health_poll_s, iox_prefix=iox_prefix,
        ) for g in self.gateways]


# --- strict structuring -----------------------------------------------------------------------
converter = model.converter.copy()
"""The model's converter (enums by value, FrozenMap, extra keys forbidden) with strict scalars."""


def _strict(kind: type, *accepted: type) -> Any:
    def hook(value: Any, _type: Any) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {kind.__name__}, got a boolean")
        if not isinstance(value, accepted):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value)

    return hook


converter.register_structure_hook(str, _strict(str, str))
converter.register_structure_hook(int, _strict(int, int))
converter.register_structure_hook(float, _strict(float, int, float))
converter.register_structure_hook(bool, _strict(bool, bool))


def _settings_hook(value: Any, _type: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a table, got {type(value).__name__}")
    return dict(value)


converter.register_structure_hook_func(lambda t: t == dict[str, Any], _settings_hook)

_FIELD_PATTERNS = (
    re.compile(r"^\w+\.(\w+)="),                          # Class.field=value: why
    re.compile(r"^invalid [\w ]+? (?:setting|field) '(\w+)'"),  # ActorError/SupervisorError
    re.compile(r"^invalid message field '(\w+)'"),
)


def _field_of(exc: BaseException) -> str:
    text = str(exc)
    for pattern in _FIELD_PATTERNS:
        m = pattern.match(text)
        if m:
            return m.group(1)
    return ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown key(s) {sorted(exc.extra_fields)}"
    if isinstance(exc, TaktoraError | TypeError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"required key {exc.args[0] if exc.args else ''} is missing"
    return f"{type(exc).__name__}: {exc}"


def _problems(exc: BaseException) -> list[tuple[str, str]]:
    """``(key path, reason)`` for every leaf exception of a cattrs error tree."""
    out: list[tuple[str, str]] = []

    def format_one(leaf: BaseException, _type: Any) -> str:
        field = _field_of(leaf)
        return f"{field}\x1f{_reason(leaf)}"

    for line in cattrs.transform_error(exc, path="$", format_exception=format_one):
        text, _, path = line.rpartition(" @ ")
        field, _, reason = text.partition("\x1f")
        if not reason:  # cattrs' own message (no \x1f): e.g. "extra fields found (x)"
            field, reason = "", text
        key = path[2:] if path.startswith("$.") else ("" if path == "$" else path)
        if field and not key.endswith(field):
            key = f"{key}.{field}" if key else field
        out.append((key or "<document>", reason))
    return out


def _raise(problems: list[tuple[str, str]]) -> NoReturn:
    detail = "; ".join(f"{key}: {why}" for key, why in problems)
    err = ConfigError(f"invalid system config: {detail}")
    err.problems = problems  # type: ignore[attr-defined]
    raise err


def structure(document: Any) -> SystemConfig:
    """Build a :class:`SystemConfig` from a parsed document; ConfigError with key paths."""
    if not isinstance(document, Mapping):
        _raise([("<document>", f"expected a table, got {type(document).__name__}")])
    try:
        config = converter.structure(document, SystemConfig)
    except cattrs.BaseValidationError as exc:
        _raise(_problems(exc))
    except (TaktoraError, TypeError, ValueError, KeyError, AttributeError) as exc:
        field = _field_of(exc)
        _raise([(field or "<document>", _reason(exc))])
    _check(config)
    return config


def _check(config: SystemConfig) -> None:
    """Cross-field rules, each with its key path."""
    problems: list[tuple[str, str]] = []
    if not config.gateways:
        problems.append(("gateways", "declare at least one [[gateways]] table"))
    seen: dict[str, int] = {}
    for i, g in enumerate(config.gateways):
        where = f"gateways[{i}]"
        if g.name in seen:
            problems.append((f"{where}.name", f"duplicate gateway name {g.name!r} "
                                              f"(also gateways[{seen[g.name]}])"))
        seen.setdefault(g.name, i)
        if not g.channels:
            problems.append((f"{where}.channels", "declare at least one channel"))
        keys: dict[tuple[str, Any], int] = {}
        for j, c in enumerate(g.channels):
            if (c.name, c.direction) in keys:
                problems.append((f"{where}.channels[{j}].name",
                                 f"duplicate {c.direction.value} channel {c.name!r}"))
            keys.setdefault((c.name, c.direction), j)
        try:
            GatewayConfig(name=g.name, connector=g.connector, channels=g.channels,
                          settings=g.settings)
        except TaktoraError as exc:
            field = _field_of(exc)
            problems.append((f"{where}.{field}" if field else where, str(exc)))
            continue
        try:
            cls = GatewayConfig(name=g.name, connector=g.connector, channels=g.channels
                                ).connector_class()
        except TaktoraError as exc:
            problems.append((f"{where}.connector", str(exc)))
            continue
        try:
            inspect.signature(cls).bind(**g.settings)
        except TypeError as exc:
            problems.append((f"{where}.settings", f"{g.connector} does not accept "
                                                  f"{sorted(g.settings)}: {exc}"))
    if problems:
        _raise(problems)


def loads(text: Any) -> SystemConfig:
    """Parse and structure a TOML document (``str``; anything else and any problem: ConfigError)."""
    if not isinstance(text, str):
        _raise([("<document>", f"expected TOML text, got {type(text).__name__}")])
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        _raise([("<toml>", f"not valid TOML: {exc}")])
    return structure(document)


def load(path: str | Path) -> SystemConfig:
    """Read and check a system file (ConfigError naming the file on any problem)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read system config {str(p)!r}: {exc}") from exc
    try:
        return loads(text)
    except ConfigError as exc:
        err = ConfigError(f"{p}: {exc}")
        err.problems = getattr(exc, "problems", [])  # type: ignore[attr-defined]
        raise err from None
