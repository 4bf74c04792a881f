"""Structuring connector settings: a system file's ``settings`` table becomes the connector's
own attrs settings class (cattrs, strict: no string-to-number coercion, unknown keys are
errors).

:data:`converter` is the one converter of configuration documents: the connector model's
(enums by value, ``FrozenMap``, extra keys forbidden) with strict scalars. ``taktora.system``
structures whole system files with it; the gateway structures a connector's settings with it
when it builds the connector.

Pure functions; they run on the caller's thread and raise cattrs' validation errors (whose
paths ``taktora.system.config`` turns into key paths) or :class:`ConnectorError`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, TypeVar

import cattrs
from taktora.connectors import model
from taktora.connectors.errors import ConnectorError
from taktora.transport.errors import TaktoraError

T = TypeVar("T")

converter = model.converter.copy()


def _strict(kind: type, *accepted: type) -> Any:
    def hook(value: Any, _type: Any) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {kind.__name__}, got a boolean")
        if not isinstance(value, accepted):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value)

    return hook


def _table(value: Any, _type: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a table, got {type(value).__name__}")
    return dict(value)


converter.register_structure_hook(str, _strict(str, str))
converter.register_structure_hook(int, _strict(int, int))
converter.register_structure_hook(float, _strict(float, int, float))
converter.register_structure_hook(bool, _strict(bool, bool))
converter.register_structure_hook_func(lambda t: t in (dict[str, Any], Mapping[str, Any]), _table)


def _is_enum(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, enum.Enum)


def _enum(value: Any, kind: type[enum.Enum]) -> enum.Enum:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in kind)
        raise ValueError(f"{value!r} is not one of {choices}") from None


converter.register_structure_hook_func(_is_enum, _enum)


def structure_settings(settings_class: type[T], raw: Mapping[str, Any]) -> T:
    """``raw`` structured into ``settings_class``. Raises cattrs' ``BaseValidationError`` (or
    the class's own validator error) for a bad table; the caller names the key path."""
    return converter.structure(dict(raw), settings_class)


def describe(exc: BaseException) -> str:
    """One line per problem of a structuring error: ``path: reason``."""
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, path="settings",
                                                format_exception=_format_leaf))
    return str(exc)


def _format_leaf(exc: BaseException, type_: Any) -> str:
    # the project's own errors already say what was wrong; cattrs' default would drop that
    if isinstance(exc, TaktoraError | ValueError | TypeError):
        return str(exc)
    return str(cattrs.v.format_exception(exc, type_))


def settings_error(gateway: str, connector: str, exc: BaseException) -> ConnectorError:
    """The ConnectorError for settings of ``gateway`` that do not fit ``connector``."""
    return ConnectorError(f"gateway {gateway!r}: settings do not fit {connector}: {describe(exc)}")
