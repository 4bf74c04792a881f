"""Run-time parameters of a gateway: :class:`Configure` and :class:`GetConfig` (spec/params.rst).

:class:`ParamsMixin` gives a gateway actor two control handlers:

- :class:`GetConfig` answers :class:`ConfigReply` with the connector's current settings as a
  plain nested table (unstructured with the project's converter, secrets redacted);
- :class:`Configure` takes a *partial* update. :func:`plan_change` merges it into the current
  table (keys are top-level settings keys or dotted paths, ``"buses.0.bitrate"``; a table
  value is merged into the table it replaces, anything else replaces the value), structures
  the result into the connector's ``settings_class`` and checks every channel against it
  (``check_channel``). Any problem is a :class:`ControlError` naming ``settings.<key>`` and
  the reason, and nothing is applied. An update that changes nothing answers ``unchanged``.
  Otherwise the running connector is offered the new settings (``Connector.configure``): True
  means applied ``live``; False means the gateway builds a new connector from the new config
  and calls ``self.reconnect_for_settings(reason)`` (``reconnect``).

The mixin needs ``self.config`` (the :class:`GatewayConfig`, replaced by a new frozen one on
success), ``self.connector`` and ``reconnect_for_settings``; the gateway provides them.
Settings changed at run time last as long as this incarnation: a restarted gateway starts
from the config its supervisor holds.

Threads: the handlers run on the actor thread. :func:`plan_change` and :func:`merge_update`
are pure and run on the caller's thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
from taktora.actors.control.base import handles
from taktora.actors.control.messages import ConfigReply, Configure, GetConfig
from taktora.actors.errors import ControlError
from taktora.connectors.connector import Connector
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.settings import converter, structure_settings
from taktora.transport.errors import TaktoraError

log = logging.getLogger(__name__)

#: Keys whose values a :class:`ConfigReply` never shows (at any depth).
SECRET_KEYS = frozenset({"password", "secret", "token", "key_password"})
REDACTED = "<redacted>"

_INDEX = re.compile(r"\[(\d+)\]")
_ASSIGN = re.compile(r"^\w+\.(\w+)=")  # AssignChecks: Class.field=value: expected ...
_INVALID = re.compile(r"^invalid [\w ]+? (?:setting|field) '([\w\[\].]+)': ?")  # Checks.problem


@attrs.frozen
class SettingsChange:
    """What :func:`plan_change` found: the new ``settings`` (an instance of the connector's
    settings class, or a plain dict for a connector without one), the new plain ``table``,
    and the dotted key paths that ``changed`` (empty: the update changes nothing)."""

    settings: Any
    table: dict[str, Any]
    changed: tuple[str, ...]


# --- pure functions -----------------------------------------------------------------------------
def current_table(config: GatewayConfig) -> dict[str, Any]:
    """The gateway's current settings as a plain nested table (ControlError if they do not
    even structure, which a running gateway's never do)."""
    try:
        settings = config.connector_settings()
    except TaktoraError as exc:
        raise ControlError(str(exc)) from exc
    table = converter.unstructure(settings)
    if not isinstance(table, dict):
        raise ControlError(f"gateway {config.name!r}: settings unstructure to a "
                           f"{type(table).__name__}, not a table")
    return table


def merge_update(current: Mapping[str, Any], update: Mapping[str, Any],
                 valid: frozenset[str] | None = None) -> dict[str, Any]:
    """``current`` with ``update`` merged in (new dicts and lists; the inputs are unchanged).

    Each key of ``update`` is a top-level key or a dotted path (``buses.0.bitrate``: list
    elements by index). The first segment must be in ``valid`` (None: any key); deeper keys
    are left to the structuring (a free-form table may take new keys, a settings class
    refuses them). A table merged into a table merges key by key; anything else replaces.
    Raises ControlError naming ``settings.<key>``.
    """
    merged: dict[str, Any] = _copy(current)
    for key, value in update.items():
        parts = key.split(".")
        if not all(parts):
            raise ControlError(f"settings.{key}: empty key segment (write keys as a, a.b or "
                               "a.0.b)")
        if valid is not None and parts[0] not in valid:
            raise ControlError(f"settings.{parts[0]}: unknown key (valid keys: "
                               f"{', '.join(sorted(valid))})")
        node: Any = merged
        for depth, part in enumerate(parts[:-1]):
            node = _step(node, part, ".".join(parts[:depth + 1]))
        _assign(node, parts[-1], value, key)
    return merged


def changed_paths(old: Any, new: Any, prefix: str = "") -> tuple[str, ...]:
    """Dotted paths of the leaves that differ between two plain tables (arrays of the same
    length element by element, ``buses.0.bitrate``; an array that changed length is one leaf)."""
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return tuple(p for i, (a, b) in enumerate(zip(old, new, strict=True))
                     for p in changed_paths(a, b, f"{prefix}.{i}" if prefix else str(i)))
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out.extend(changed_paths(old[key], new[key], path))
        return tuple(out)
    return () if old == new and type(old) is type(new) else (prefix,)


def plan_change(config: GatewayConfig, update: Mapping[str, Any]) -> SettingsChange:
    """Merge ``update`` into ``config``'s settings, structure and check the result.

    Raises ControlError naming ``settings.<key>`` and the reason (unknown key, wrong type,
    out of range, a channel the new settings cannot serve); then nothing may be applied.
    """
    if not isinstance(update, Mapping) or not update:
        raise ControlError("Configure needs at least one setting (key = value)")
    current = current_table(config)  # resolves the connector class, or ControlError
    cls = config.connector_class()
    settings_class = cls.settings_class
    valid = frozenset(current) if settings_class is not None else None
    try:
        merged = merge_update(current, update, valid)
    except ControlError as exc:
        raise ControlError(f"gateway {config.name!r}: {exc} (nothing applied)") from exc
    if settings_class is None:
        settings: Any = merged
    else:
        try:
            settings = structure_settings(settings_class, merged)
        except Exception as exc:  # cattrs' validation errors and the class's own validators
            raise ControlError(f"gateway {config.name!r}: {describe_refusal(exc)} (nothing "
                               "applied)") from exc
    for descriptor in config.channels:
        try:
            cls.check_channel(settings, descriptor)
        except TaktoraError as exc:
            raise ControlError(f"gateway {config.name!r}: the new settings cannot serve "
                               f"channel {descriptor.name!r}: {exc} (nothing applied)") from exc
    table = converter.unstructure(settings) if settings_class is not None else merged
    return SettingsChange(settings, table, changed_paths(current, table))


def describe_refusal(exc: BaseException) -> str:
    """``settings.<key path>: reason`` for each problem of a structuring error."""
    if not isinstance(exc, cattrs.BaseValidationError):
        return f"settings: {_rewrite('settings', str(exc))}"
    out = []
    for line in cattrs.transform_error(exc, path="settings", format_exception=_leaf):
        reason, _, path = line.rpartition(" @ ")
        out.append(_rewrite(path, reason))
    return "; ".join(dict.fromkeys(out))


def _leaf(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown key(s) {', '.join(sorted(exc.extra_fields))}"
    if isinstance(exc, KeyError):
        return f"required key {exc.args[0] if exc.args else ''} is missing"
    if isinstance(exc, TaktoraError | ValueError | TypeError):
        return str(exc)
    return str(cattrs.v.format_exception(exc, _type))


def _rewrite(path: str, reason: str) -> str:
    """``path: reason`` with a field named in the reason moved into the path."""
    path = _INDEX.sub(r".\1", path)
    m = _ASSIGN.match(reason)
    if m:  # "Class.field=value: why" -> "path.field=value: why"
        return f"{path}.{reason[m.start(1):]}"
    m = _INVALID.match(reason)
    if m:
        return f"{path}.{m.group(1)}: {reason[m.end():]}"
    return f"{path}: {reason}"


def redact(table: Any) -> Any:
    """``table`` with the values of :data:`SECRET_KEYS` (set ones) replaced by ``<redacted>``."""
    if isinstance(table, Mapping):
        return {k: REDACTED if k in SECRET_KEYS and v is not None else redact(v)
                for k, v in table.items()}
    if isinstance(table, list):
        return [redact(v) for v in table]
    return table


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _step(node: Any, part: str, where: str) -> Any:
    """The child ``part`` of ``node`` (a table or an array) for a dotted path."""
    if isinstance(node, dict):
        if node.get(part) is None:  # an absent or unset table: a new one
            node[part] = {}
        child = node[part]
    elif isinstance(node, list):
        child = node[_index(node, part, where)]
    else:
        raise ControlError(f"settings.{where}: {type(node).__name__} value has no keys")
    if not isinstance(child, dict | list):
        raise ControlError(f"settings.{where}: is a {type(child).__name__}, not a table or "
                           "array (it has no keys)")
    return child


def _index(node: list[Any], part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ControlError(f"settings.{where}: no element {part!r} (an index 0.."
                           f"{len(node) - 1})" if node else f"settings.{where}: the array is empty")
    return int(part)


def _assign(node: Any, part: str, value: Any, key: str) -> None:
    if isinstance(node, list):
        node[_index(node, part, key)] = _merged(node[_index(node, part, key)], value)
    elif isinstance(node, dict):
        node[part] = _merged(node.get(part), value)
    else:  # pragma: no cover - _step only returns tables and arrays
        raise ControlError(f"settings.{key}: cannot be set")


def _merged(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, Mapping):
        out = dict(old)
        for k, v in new.items():
            out[str(k)] = _merged(old.get(k), v)
        return out
    return _copy(new)


# --- the mixin ----------------------------------------------------------------------------------
class ParamsMixin:
    """``Configure`` / ``GetConfig`` handlers for a gateway actor (see the module docstring).

    Inherit it before :class:`~taktora.actors.control.base.TaktoraActor`
    (``class Gateway(ParamsMixin, TaktoraActor)``) and override :meth:`reconnect_for_settings`.
    """

    config: GatewayConfig
    connector: Connector

    def reconnect_for_settings(self, reason: str) -> None:
        """Drop the current connection and connect ``self.connector`` (already rebuilt from
        ``self.config``), giving ``reason`` to the health transitions; the actor thread.

        The gateway overrides this. A failed connect is the gateway's business (Down and its
        backoff), not an exception. Raise ControlError only to refuse before anything was
        touched (e.g. the gateway was shut down): the mixin then puts the old config and
        connector back and the caller gets ``ErrorReply(REJECTED)``. Without an override a
        change that needs a reconnect is refused.
        """
        raise NotImplementedError

    def settings_applied(self) -> None:
        """``self.config`` now holds applied settings (actor thread). The gateway overrides it
        to hand them to its group, so a restart keeps them. Default: nothing."""

    def _config_reply(self, correlation_id: str, table: Mapping[str, Any],
                      applied: tuple[str, ...] = (), how: str = "unchanged") -> ConfigReply:
        return ConfigReply(correlation_id=correlation_id, gateway=self.config.name,
                           connector=self.config.connector, settings=redact(table),
                           applied=applied, how=how)

    @handles(GetConfig)
    def _get_config(self, msg: GetConfig, sender: Any) -> ConfigReply:
        """The current settings (actor thread; never blocks)."""
        return self._config_reply(msg.correlation_id, current_table(self.config))

    @handles(Configure)
    def _configure(self, msg: Configure, sender: Any) -> ConfigReply:
        """Validate and apply a partial settings update (actor thread).

        Blocks while the connector applies it live, or while the gateway reconnects (bounded
        by the connector's open and the shutdown timeout). A refusal (ControlError: the
        caller gets ``ErrorReply(REJECTED)``) leaves config and connector as they were. Any
        other exception of ``reconnect_for_settings`` is a crash of the gateway (its
        supervisor restarts it from the last config it was told of, see
        :meth:`settings_applied`).
        """
        change = plan_change(self.config, msg.settings)
        name = self.config.name
        if not change.changed:
            return self._config_reply(msg.correlation_id, change.table)
        new_config = attrs.evolve(self.config, settings=change.settings)
        try:
            live = self.connector.configure(change.settings)
        except TaktoraError as exc:
            raise ControlError(f"gateway {name!r}: the connector refused the settings: {exc} "
                               "(nothing applied)") from exc
        if live:
            self.config = new_config
            how = "live"
        else:
            if type(self).reconnect_for_settings is ParamsMixin.reconnect_for_settings:
                raise ControlError(f"gateway {name!r}: {', '.join(change.changed)} need a "
                                   "reconnect, which this actor cannot do (nothing applied)")
            try:
                connector = new_config.build_connector()
            except TaktoraError as exc:
                raise ControlError(f"gateway {name!r}: {exc} (nothing applied)") from exc
            old_config, old_connector = self.config, self.connector
            self.config, self.connector = new_config, connector
            how = "reconnect"
            try:
                self.reconnect_for_settings(f"settings changed: {', '.join(change.changed)}")
            except ControlError:  # refused before it touched anything: put the old ones back
                self.config, self.connector = old_config, old_connector
                raise
        log.info("gateway %s: settings %s applied (%s)", name, list(change.changed), how)
        self.settings_applied()
        return self._config_reply(msg.correlation_id, change.table, change.changed, how)
