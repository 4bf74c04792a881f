"""Validator factories for the project's frozen attrs classes, on top of ``attrs.validators``.

Every layer validates its messages, settings and descriptors with the same few checks; this
module holds them once. A :class:`Checks` is bound to the error class of the layer that uses
it, so a bad value fails at construction with that layer's exception and a message that names
the class, the field, what was expected and what was given::

    from taktora.transport.validators import Checks

    v = Checks(ControlError)

    @attrs.frozen
    class Pause:
        timeout_s: float = attrs.field(default=1.0, validator=v.positive())

    Pause(timeout_s=-1)
    # ControlError: invalid Pause field 'timeout_s': expected a finite number > 0, got -1

Numbers are never bools (``True`` is not a period) and are finite unless ``finite=False``:
NaN and infinity pass ``> 0`` in IEEE arithmetic or break the loops they configure, so every
number check rejects them by default.

Where a layer's messages read ``<Class>.<field>=<value>: ...`` instead (the transport's channel
descriptions, the connector model), bind :class:`AssignChecks`: the same factories, that form.

The validators run on the thread that constructs the instance and raise only the bound error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]

_IDENTIFIER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")


def _owner(inst: Any) -> str:
    return type(inst).__name__


class Checks:
    """Validator factories that raise ``error`` (one instance per layer or class family).

    Each factory returns a plain attrs validator; combine them with ``attrs.validators.and_``
    or wrap one in :meth:`optional`.
    """

    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    # ------------------------------------------------------------------ core
    def fail(self, inst: Any, field: str, expected: str, value: Any) -> Exception:
        """The error for ``value`` in ``field`` of ``inst`` (to raise from a custom check)."""
        return self.problem(inst, field, f"expected {expected}, got {value!r}")

    def problem(self, inst: Any, field: str, why: str) -> Exception:
        """The error for ``field`` of ``inst`` with a free-form reason (cross-field checks)."""
        return self.error(f"invalid {_owner(inst)} field {field!r}: {why}")

    def wrap(self, check: Validator, expected: str) -> Validator:
        """Turn an ``attrs.validators`` validator into one raising this layer's error."""

        def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
            try:
                check(inst, attribute, value)
            except (TypeError, ValueError):
                raise self.fail(inst, attribute.name, expected, value) from None

        return validate

    def predicate(self, test: Callable[[Any], bool], expected: str) -> Validator:
        """A validator from a predicate on the value."""

        def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
            if not test(value):
                raise self.fail(inst, attribute.name, expected, value)

        return validate

    def optional(self, check: Validator) -> Validator:
        """``check``, or None."""
        return attrs.validators.optional(check)

    # ------------------------------------------------------------------ numbers
    def number(self, *, gt: float | None = None, ge: float | None = None,
               lt: float | None = None, le: float | None = None, finite: bool = True) -> Validator:
        """An int or float (never a bool), finite unless told, within the given bounds."""
        bounds = [(op, lim) for op, lim in (("> ", gt), (">= ", ge), ("< ", lt), ("<= ", le))
                  if lim is not None]
        expected = ("a finite number" if finite else "a number") + "".join(
            f" {op}{lim:g}" if i == 0 else f" and {op}{lim:g}" for i, (op, lim) in enumerate(bounds))
        limits: list[Validator] = [attrs.validators.instance_of((int, float))]
        for name, lim in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le)):
            if lim is not None:
                limits.append(getattr(attrs.validators, name)(lim))
        combined = self.wrap(attrs.validators.and_(*limits), expected)

        def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
            if isinstance(value, bool) or (finite and isinstance(value, float)
                                           and not math.isfinite(value)):
                raise self.fail(inst, attribute.name, expected, value)
            combined(inst, attribute, value)

        return validate

    def positive(self) -> Validator:
        """A finite number > 0."""
        return self.number(gt=0)

    def non_negative(self) -> Validator:
        """A finite number >= 0."""
        return self.number(ge=0)

    def unit(self) -> Validator:
        """A finite number in [0, 1] (a fraction, a jitter factor)."""
        return self.number(ge=0, le=1)

    def integer(self, *, ge: int | None = None, le: int | None = None) -> Validator:
        """An int (never a bool) within ``ge`` .. ``le``."""
        parts = [f">= {ge}" if ge is not None else "", f"<= {le}" if le is not None else ""]
        expected = "an int" + (" " + " and ".join(p for p in parts if p) if any(parts) else "")
        limits: list[Validator] = [attrs.validators.instance_of(int)]
        if ge is not None:
            limits.append(attrs.validators.ge(ge))
        if le is not None:
            limits.append(attrs.validators.le(le))
        combined = self.wrap(attrs.validators.and_(*limits), expected)

        def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
            if isinstance(value, bool):
                raise self.fail(inst, attribute.name, expected, value)
            combined(inst, attribute, value)

        return validate

    def int_range(self, low: int, high: int) -> Validator:
        """An int (never a bool) in ``low`` .. ``high`` inclusive; the message reads
        ``an int in low..high``."""
        return self.predicate(
            lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
            f"an int in {low}..{high}")

    def positive_int(self) -> Validator:
        """An int >= 1."""
        return self.integer(ge=1)

    def non_negative_int(self) -> Validator:
        """An int >= 0."""
        return self.integer(ge=0)

    # ------------------------------------------------------------------ strings, choices, types
    def string(self, *, nonempty: bool = False) -> Validator:
        """A str (non-empty if told)."""
        if nonempty:
            return self.predicate(lambda v: isinstance(v, str) and bool(v), "a non-empty str")
        return self.wrap(attrs.validators.instance_of(str), "a str")

    def matches(self, pattern: str | re.Pattern[str], expected: str) -> Validator:
        """A str that ``pattern`` matches in full (``re.fullmatch``); ``expected`` describes
        the form for the message."""
        return self.wrap(attrs.validators.and_(attrs.validators.instance_of(str),
                                               attrs.validators.matches_re(pattern)), expected)

    def identifier(self) -> Validator:
        """A name of 1-64 letters, digits, ``_ . -`` that does not start with ``.`` or ``-``."""
        return self.wrap(attrs.validators.and_(attrs.validators.instance_of(str),
                                               attrs.validators.matches_re(_IDENTIFIER)),
                         "1-64 characters of [A-Za-z0-9_.-], not starting with '.' or '-'")

    def one_of(self, choices: Iterable[Any]) -> Validator:
        """One of ``choices`` (the message lists them)."""
        options = tuple(choices)
        shown = ", ".join(repr(c.value if hasattr(c, "value") else c) for c in options)
        return self.wrap(attrs.validators.in_(options), f"one of {shown}")

    def instance(self, kind: type | tuple[type, ...]) -> Validator:
        """An instance of ``kind``."""
        kinds = kind if isinstance(kind, tuple) else (kind,)
        return self.wrap(attrs.validators.instance_of(kinds),
                         "an instance of " + " or ".join(k.__name__ for k in kinds))

    def tuple_of(self, member: Validator, what: str) -> Validator:
        """A tuple whose every member passes ``member`` (``what`` describes a member)."""
        outer = self.wrap(attrs.validators.instance_of(tuple), f"a tuple of {what}")

        def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
            outer(inst, attribute, value)
            for item in value:
                member(inst, attribute, item)

        return validate

    def str_keys(self) -> Validator:
        """A mapping whose keys are all str."""
        return self.predicate(lambda v: isinstance(v, Mapping) and all(isinstance(k, str) for k in v),
                              "a mapping with str keys")

    def mapping_of(self, test: Callable[[Any], bool], what: str) -> Validator:
        """A mapping with non-empty str keys whose every value passes ``test`` (``what``
        describes a value); a bad value is reported in the field ``name['key']``."""

        def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
            if not isinstance(value, Mapping):
                raise self.fail(inst, attribute.name, f"a mapping of str to {what}", value)
            for key, item in value.items():
                if not isinstance(key, str) or not key:
                    raise self.fail(inst, attribute.name, "non-empty str keys", key)
                if not test(item):
                    raise self.fail(inst, f"{attribute.name}[{key!r}]", what, item)

        return validate


class AssignChecks(Checks):
    """:class:`Checks` whose messages read ``<Class>.<field>=<value>: expected ...``.

    The transport's channel descriptions and the connector model report errors in this form
    (``QoS.priority=9: expected an int in 1..7``); callers match on it and ``system.config``
    takes the field name from it. Only :meth:`fail` differs; :meth:`problem` (a reason without
    a single value) keeps the ``invalid <Class> field`` form.
    """

    def fail(self, inst: Any, field: str, expected: str, value: Any) -> Exception:
        """The error for ``value`` in ``field`` of ``inst``, as ``Class.field=value: ...``."""
        return self.error(f"{_owner(inst)}.{field}={value!r}: expected {expected}")


def to_tuple(value: Any) -> Any:
    """Converter: a list or tuple becomes a tuple; anything else is left for the validator."""
    return tuple(value) if isinstance(value, list | tuple) else value


def to_bytes(value: Any) -> Any:
    """Converter: bytearray and memoryview become bytes; anything else is left as it is."""
    return bytes(value) if isinstance(value, bytearray | memoryview) else value
