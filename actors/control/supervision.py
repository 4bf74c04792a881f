"""Supervision as data: :class:`SupervisorSpec` and its ordered :class:`ChildSpec` list.

The vocabulary and defaults are Erlang/OTP's:

- ``strategy``: ``one_for_one`` (restart the failed child), ``one_for_all`` (stop every other
  child in reverse start order, then start all in order), ``rest_for_one`` (stop the children
  started after the failed one in reverse order, then start the failed one and those after it);
- ``intensity`` / ``period_s``: more than ``intensity`` restarts within ``period_s`` seconds and
  the supervisor stops all its children (reverse order) and exits, escalating to its parent;
- ``restart`` per child: ``permanent`` (always restarted), ``transient`` (restarted only after
  an abnormal exit), ``temporary`` (never restarted, removed from the supervisor);
- ``shutdown_s``: how long a child gets to stop before it is killed.

Optional :class:`~taktora.actors.models.backoff.Backoff` delays each restart exponentially per
child (the same backoff type the reconnect policy uses: initial, max, multiplier, jitter, reset
after a stable period).

Everything validates at construction and raises :class:`SupervisorError` naming the field.
Pure data: no Thespian import; ``start`` may name an actor class as ``"module:Class"``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs
from taktora.actors.errors import SupervisorError
from taktora.actors.models.backoff import Backoff


class Strategy(enum.Enum):
    """Which children a failure takes down with it."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.Enum):
    """When a child that exited is restarted."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


def _fail(field: str, why: str) -> None:
    raise SupervisorError(f"invalid supervision spec field {field!r}: {why}")


def _positive_number(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        _fail(attribute.name, f"expected a number > 0, got {value!r}")


def _to_enum(kind: type[enum.Enum], field: str, value: Any) -> Any:
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in kind)
        raise SupervisorError(f"invalid supervision spec field {field!r}: {value!r} is not one "
                              f"of {choices}") from None


def _to_restart(value: Any) -> Restart:
    result: Restart = _to_enum(Restart, "restart", value)
    return result


def _to_strategy(value: Any) -> Strategy:
    result: Strategy = _to_enum(Strategy, "strategy", value)
    return result


@attrs.frozen(kw_only=True)
class ChildSpec:
    """One child: ``id`` unique within its supervisor, what to ``start`` and how to restart it.

    ``start`` is a ``TaktoraActor`` subclass, a ``"module:Class"`` string naming one, or a
    :class:`SupervisorSpec` (a nested supervisor). ``args`` reach the child as ``self.args``
    before its ``on_start``; they must pickle on multi-process bases.
    """

    id: str = attrs.field()
    start: type | str | SupervisorSpec = attrs.field()
    args: Mapping[str, Any] = attrs.field(factory=dict)
    restart: Restart = attrs.field(default=Restart.PERMANENT, converter=_to_restart)
    shutdown_s: float = attrs.field(default=5.0, validator=_positive_number)

    @id.validator
    def _check_id(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, str) or not value or "/" in value or value.strip() != value:
            _fail(attribute.name, f"expected a non-empty id without '/' or spaces, got {value!r}")

    @start.validator
    def _check_start(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, SupervisorSpec | type):
            return
        if isinstance(value, str) and value.count(":") == 1 and all(value.split(":")):
            return
        _fail(attribute.name, f"expected an actor class, 'module:Class' or a SupervisorSpec, "
                              f"got {value!r}")

    @args.validator
    def _check_args(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            _fail(attribute.name, "expected a mapping with str keys")

    @property
    def is_supervisor(self) -> bool:
        """True when this child is a nested supervisor."""
        return isinstance(self.start, SupervisorSpec)



def _children_converter(value: Any) -> tuple[ChildSpec, ...]:
    if isinstance(value, ChildSpec) or not isinstance(value, list | tuple):
        _fail("children", "expected a sequence of ChildSpec")
    return tuple(value)


@attrs.frozen(kw_only=True)
class SupervisorSpec:
    """A supervisor: strategy, restart intensity per period, optional backoff, children."""

    strategy: Strategy = attrs.field(default=Strategy.ONE_FOR_ONE,
                                     converter=_to_strategy)
    intensity: int = attrs.field(default=1)
    period_s: float = attrs.field(default=5.0, validator=_positive_number)
    backoff: Backoff | None = attrs.field(default=None)
    children: tuple[ChildSpec, ...] = attrs.field(default=(), converter=_children_converter)

    @intensity.validator
    def _check_intensity(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            _fail(attribute.name, f"expected an int >= 0, got {value!r}")

    @backoff.validator
    def _check_backoff(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not isinstance(value, Backoff):
            _fail(attribute.name, f"expected a Backoff or None, got {value!r}")

    @children.validator
    def _check_children(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        seen: set[str] = set()
        for child in value:
            if not isinstance(child, ChildSpec):
                _fail(attribute.name, f"expected ChildSpec items, got {child!r}")
            if child.id in seen:
                _fail(attribute.name, f"duplicate child id {child.id!r}")
            seen.add(child.id)
