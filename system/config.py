"""System configuration: a TOML file declaring the supervision tree, gateways, channels and
policies, structured by cattrs straight into the runtime's own frozen attrs types.

Document layout (every table optional, but at least one ``[[gateways]]`` or ``[[hosts]]``;
unknown keys are errors)::

    name = "demo"                                 # the system's name (1-64 of [A-Za-z0-9_.-])

    [supervision]                                 # the gateways' supervisor: a SupervisorSpec
    strategy = "one_for_one"                      # one_for_one | one_for_all | rest_for_one
    intensity = 1                                 # restarts allowed within period_s
    period_s = 5.0
    [supervision.backoff]                         # optional restart backoff: a Backoff
    initial_s = 0.1
    max_s = 2.0

    [policies]                                    # defaults of every [[gateways]] table's keys
    shutdown_timeout_s = 5.0
    health_poll_s = 0.1
    [policies.reconnect]                          # a Backoff
    initial_s = 0.2

    [[gateways]]                                  # a GatewayConfig
    name = "left"
    connector = "udp"                             # a registered connector (entry point)
    settings = { name = "udp-left" }              # structured into the connector's settings class
    [[gateways.channels]]                         # ChannelDescriptor documents
    name = "demo/cmd"
    direction = "outbound"
    codec = "json"
    routing = { kind = "udp", address = "127.0.0.1:47101" }

    [[channels]]                                  # the application's own channels (optional)
    [[hosts]]                                     # item hosts: a HostSpec each, items as
    [[hosts.items]]                               # [[hosts.items]] (taktora.system.app_config)

One type per idea: ``[supervision]`` is a
:class:`~taktora.actors.control.supervision.SupervisorSpec` (its children are the gateways, so
it declares none), each ``[[gateways]]`` table is a
:class:`~taktora.connectors.gateway.config.GatewayConfig`, and ``[policies]`` holds default
values of the gateway keys in :data:`POLICY_KEYS`: a gateway table that does not set one of
them takes the policy's value (a whole ``reconnect`` table replaces the policy's, it is not
merged key by key). Defaults are those of the types themselves, documented there.

:func:`load` / :func:`loads` check everything before anything starts: TOML syntax, types
(strict: no string-to-number coercion), each value's validators, then cross-field rules (unique
gateway names, a connector that resolves, settings that fit its settings class, a known codec
and a routing the connector accepts on every channel). A problem raises
:class:`~taktora.system.errors.ConfigError` whose message names the key path
(``gateways[0].channels[1].qos.priority``; a bad inherited policy is named under
``policies``) and the reason; nothing else escapes. Pure functions of the document: no
threads, no I/O besides reading the file.
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
from taktora.actors.control.supervision import ChildSpec, SupervisorSpec
from taktora.connectors import settings
from taktora.connectors.codecs import codec_id_for
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.model import ChannelDescriptor
from taktora.system import app_config
from taktora.system.app_config import HostSpec
from taktora.system.errors import ConfigError
from taktora.transport.errors import TaktoraError
from taktora.transport.validators import Checks

_v = Checks(ConfigError)

#: Gateway keys a ``[policies]`` table may give a default for.
POLICY_KEYS = frozenset({"reconnect", "shutdown_timeout_s", "health_poll_s", "poll_s"})


@attrs.frozen(kw_only=True)
class SystemConfig:
    """A whole system file: its name, the supervisor of the gateways (and of the hosts), the
    gateways, the application's own channels and its item hosts."""

    name: str = attrs.field(default="taktora", validator=_v.identifier())
    supervision: SupervisorSpec = attrs.field(factory=SupervisorSpec)
    gateways: tuple[GatewayConfig, ...] = ()
    channels: tuple[ChannelDescriptor, ...] = ()
    hosts: tuple[HostSpec, ...] = ()

    def gateway_configs(self, iox_prefix: str | None = None) -> list[GatewayConfig]:
        """The gateways, each serving applications under ``iox_prefix`` (None: the
        ``TAKTORA_IOX_PREFIX`` of the process that runs it)."""
        return [attrs.evolve(g, iox_prefix=iox_prefix) for g in self.gateways]


# --- strict structuring -----------------------------------------------------------------------
converter = settings.converter.copy()
"""The configuration converter (strict scalars, enums by value, FrozenMap, extra keys forbidden)
that refuses children of the gateways' supervisor."""


def _no_children(value: Any, _type: Any) -> ChildSpec:
    raise TypeError("the gateways' supervisor declares no children: its children are the "
                    "[[gateways]] tables")


converter.register_structure_hook(ChildSpec, _no_children)
app_config.install(converter)

_FIELD_PATTERNS = (
    re.compile(r"^\w+\.(\w+)="),                             # Class.field=value: why
    re.compile(r"^invalid [\w ]+? (?:setting|field) '([\w\[\].]+)': ?"),  # transport.validators
    re.compile(r"^invalid message field '(\w+)': ?"),
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
    if isinstance(exc, TaktoraError | TypeError | ValueError):
        text = str(exc)
        m = _FIELD_PATTERNS[1].match(text)  # the key path names the field: keep the reason
        return text[m.end():] if m else text
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
        out.append((app_config.tidy_key(key) or "<document>", reason))
    return out


def _raise(problems: list[tuple[str, str]]) -> NoReturn:
    unique = list(dict.fromkeys(problems))
    detail = "; ".join(f"{key}: {why}" for key, why in unique)
    err = ConfigError(f"invalid system config: {detail}")
    err.problems = unique  # type: ignore[attr-defined]
    raise err


def _apply_policies(document: Mapping[str, Any]) -> tuple[dict[str, Any], list[set[str]]]:
    """The document with ``[policies]`` folded into every gateway table that does not set the
    key itself, and per gateway the keys it inherited (to name errors under ``policies``)."""
    doc = dict(document)
    policies = doc.pop("policies", {})
    if not isinstance(policies, Mapping):
        _raise([("policies", f"expected a table, got {type(policies).__name__}")])
    unknown = sorted(str(k) for k in policies if k not in POLICY_KEYS)
    if unknown:
        _raise([(f"policies.{k}", f"not a gateway policy; a policy sets one of "
                                  f"{sorted(POLICY_KEYS)}") for k in unknown])
    inherited: list[set[str]] = []
    gateways = doc.get("gateways")
    if gateways is not None:
        if not isinstance(gateways, list):
            _raise([("gateways", f"expected an array of tables ([[gateways]]), got "
                                 f"{type(gateways).__name__}")])
        bad = [(f"gateways[{i}]", f"expected a table, got {type(g).__name__}")
               for i, g in enumerate(gateways) if not isinstance(g, Mapping)]
        if bad:
            _raise(bad)
    if policies and isinstance(gateways, list):
        merged = []
        for g in gateways:
            if isinstance(g, Mapping):
                keys = {k for k in policies if k not in g}
                merged.append({**{k: policies[k] for k in keys}, **g})
                inherited.append(keys)
            else:
                merged.append(g)
                inherited.append(set())
        doc["gateways"] = merged
    return doc, inherited


_GATEWAY_KEY = re.compile(r"^gateways\[(\d+)\]\.(\w+)")


def _blame_policies(problems: list[tuple[str, str]], inherited: list[set[str]]
                    ) -> list[tuple[str, str]]:
    out = []
    for key, why in problems:
        m = _GATEWAY_KEY.match(key)
        if m and int(m.group(1)) < len(inherited) and m.group(2) in inherited[int(m.group(1))]:
            out.append(("policies" + key[m.start(2) - 1:], why))
        else:
            out.append((key, why))
    return out


def structure(document: Any) -> SystemConfig:
    """Build a :class:`SystemConfig` from a parsed document; ConfigError with key paths."""
    if not isinstance(document, Mapping):
        _raise([("<document>", f"expected a table, got {type(document).__name__}")])
    doc, inherited = _apply_policies(document)
    try:
        config = converter.structure(doc, SystemConfig)
    except cattrs.BaseValidationError as exc:
        _raise(_blame_policies(_problems(exc), inherited))
    except (TaktoraError, TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        field = _field_of(exc)
        _raise([(field or "<document>", _reason(exc))])
    channels = app_config.app_channels(config.gateways, config.channels)
    config = attrs.evolve(config, hosts=app_config.bind(config.hosts, channels))
    _check(config)
    return config


def _check(config: SystemConfig) -> None:
    """Cross-field rules, each with its key path."""
    problems: list[tuple[str, str]] = []
    if not config.gateways and not config.hosts:
        problems.append(("gateways", "declare at least one [[gateways]] or [[hosts]] table"))
    if config.supervision.children:
        problems.append(("supervision.children", "the gateways are the supervisor's children"))
    seen: dict[str, int] = {}
    for i, g in enumerate(config.gateways):
        where = f"gateways[{i}]"
        if g.name in seen:
            problems.append((f"{where}.name", f"duplicate gateway name {g.name!r} "
                                              f"(also gateways[{seen[g.name]}])"))
        seen.setdefault(g.name, i)
        try:
            cls = g.connector_class()
        except TaktoraError as exc:
            problems.append((f"{where}.connector", str(exc)))
            continue
        if cls.settings_class is None:
            try:
                inspect.signature(cls).bind(**g.settings)
            except TypeError as exc:
                problems.append((f"{where}.settings", f"{g.connector} does not accept "
                                                      f"{sorted(g.settings)}: {exc}"))
                continue
            structured: Any = dict(g.settings)
        else:
            try:
                structured = settings.structure_settings(cls.settings_class, g.settings)
            except cattrs.BaseValidationError as exc:
                problems += [(f"{where}.settings.{key}" if key != "<document>" else
                              f"{where}.settings", why) for key, why in _problems(exc)]
                continue
            except (TaktoraError, TypeError, ValueError) as exc:
                field = _field_of(exc)
                problems.append((f"{where}.settings.{field}" if field else f"{where}.settings",
                                 _reason(exc)))
                continue
        for j, channel in enumerate(g.channels):
            try:
                codec_id_for(channel.codec)
            except TaktoraError as exc:
                problems.append((f"{where}.channels[{j}].codec", str(exc)))
            try:
                cls.check_channel(structured, channel)
            except TaktoraError as exc:
                problems.append((f"{where}.channels[{j}].routing", str(exc)))
    problems += app_config.check(config)
    if problems:
        _raise(problems)


def check_factories(config: SystemConfig) -> None:
    """Import every host's item factories (not calling them; module code runs): ConfigError
    naming ``hosts[i].items[j].factory`` for each that cannot be imported."""
    problems = app_config.check_factories(config)
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
    except RecursionError:
        _raise([("<toml>", "nested too deeply (arrays or tables inside each other a few "
                           "hundred levels deep); a system file needs a handful")])
    return structure(document)


def load(path: str | Path) -> SystemConfig:
    """Read and check a system file (ConfigError naming the file on any problem). The hosts'
    factories are imported from the file's directory first (their ``search_path``)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read system config {str(p)!r}: {exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        err = ConfigError(f"{p}: line {line}, column {column}: not UTF-8 (byte "
                          f"{data[exc.start]:#04x}); save the file as UTF-8")
        err.problems = [(f"<toml> line {line}", "not UTF-8")]  # type: ignore[attr-defined]
        raise err from None
    try:
        config = loads(text)
        return attrs.evolve(config, hosts=app_config.bind(
            config.hosts, search_path=(str(p.resolve().parent),)))
    except ConfigError as exc:
        err = ConfigError(f"{p}: {exc}")
        err.problems = getattr(exc, "problems", [])  # type: ignore[attr-defined]
        raise err from None
