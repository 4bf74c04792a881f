"""Supervision as data: :class:`SupervisorSpec` and its ordered :class:`ChildSpec` list.

The vocabulary and defaults are Erlang/OTP's:

- ``strategy``: ``one_for_one`` (restart the failed child), ``one_for_all`` (stop every other
  child in reverse start order, then start all in order), ``rest_for_one`` (stop the children
  started after the failed one in reverse order, then start the failed one and those after it);
- ``intensity`` / ``period_s``: more than ``intensity`` restarts within ``period_s`` seconds and
  the supervisor stops all its children (reverse order) and exits, escalating to its parent;
- ``restart`` per child: ``permanent`` (always restarted), ``transient`` (restarted only after
  an abnormal exit), ``temporary`` (never restarted, removed from the supervisor);
- ``shutdown_s``: how long a child gets to stop before it is killed; ``brutal_kill=True``
  (OTP's ``shutdown => brutal_kill``) kills a worker's process at once instead.

The OTP child API (which/count/terminate/restart/delete/start child) on a running supervisor
is :mod:`taktora.actors.control.children`.

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
from taktora.transport.validators import Checks, to_tuple

_v = Checks(SupervisorError)

#: Upper bound of ``shutdown_s`` and ``period_s``: a day. Longer is a configuration mistake (a
#: nested supervisor's ``shutdown_s`` sums its children's, so the bound is generous).
MAX_SUPERVISION_S = 86_400.0


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


def _member(kind: type[enum.Enum], value: Any) -> Any:
    try:
        return kind(value)
    except ValueError:
        return value  # left for the one_of validator, which names the choices


def _to_restart(value: Any) -> Any:
    """Converter: ``"permanent"`` -> ``Restart.PERMANENT``; anything else unchanged."""
    return _member(Restart, value)


def _to_strategy(value: Any) -> Any:
    """Converter: ``"one_for_one"`` -> ``Strategy.ONE_FOR_ONE``; anything else unchanged."""
    return _member(Strategy, value)


def _is_start(value: Any) -> bool:
    if isinstance(value, SupervisorSpec | type):
        return True
    return isinstance(value, str) and value.count(":") == 1 and all(value.split(":"))


@attrs.frozen(kw_only=True)
class ChildSpec:
    """One child: ``id`` unique within its supervisor, what to ``start`` and how to restart it.

    ``start`` is a ``TaktoraActor`` subclass, a ``"module:Class"`` string naming one, or a
    :class:`SupervisorSpec` (a nested supervisor). ``args`` reach the child as ``self.args``
    before its ``on_start``; they must pickle on multi-process bases. ``shutdown_s``: how long
    the child gets to stop before it is killed, > 0 and at most a day (``MAX_SUPERVISION_S``).

    ``brutal_kill`` (a bool, default False): stopping the child does not wait. On a
    multi-process base its process gets SIGKILL at once (its ``on_stop`` does not run; the
    supervisor waits only for Thespian's notice of the exit); in-process it is sent
    ``ActorExitRequest`` and forgotten at once. ``shutdown_s`` then only bounds the wait for a
    child whose pid is not known yet (it is still starting). Workers only: a nested
    supervisor stops its children in order, so ``brutal_kill`` with a ``SupervisorSpec`` is
    rejected (it would orphan their processes).
    """

    id: str = attrs.field(validator=_v.predicate(
        lambda v: isinstance(v, str) and bool(v) and "/" not in v and v.strip() == v,
        "a non-empty id without '/' or surrounding spaces"))
    start: type | str | SupervisorSpec = attrs.field(validator=_v.predicate(
        _is_start, "an actor class, 'module:Class' or a SupervisorSpec"))
    args: Mapping[str, Any] = attrs.field(factory=dict, validator=_v.str_keys())
    restart: Restart = attrs.field(default=Restart.PERMANENT, converter=_to_restart,
                                   validator=_v.one_of(Restart))
    shutdown_s: float = attrs.field(default=5.0, validator=_v.number(gt=0, le=MAX_SUPERVISION_S))
    brutal_kill: bool = attrs.field(default=False, validator=_v.instance(bool))

    @brutal_kill.validator
    def _workers_only(self, attribute: attrs.Attribute[bool], value: bool) -> None:
        if value and self.is_supervisor:
            raise _v.problem(self, attribute.name, "a nested supervisor stops its children in "
                             "order: brutal_kill is for workers (give it a shutdown_s instead)")

    @property
    def is_supervisor(self) -> bool:
        """True when this child is a nested supervisor."""
        return isinstance(self.start, SupervisorSpec)


def _unique_ids(inst: Any, attribute: attrs.Attribute[Any], value: tuple[ChildSpec, ...]) -> None:
    seen: set[str] = set()
    for child in value:
        if child.id in seen:
            raise _v.problem(inst, attribute.name, f"duplicate child id {child.id!r}")
        seen.add(child.id)


@attrs.frozen(kw_only=True)
class SupervisorSpec:
    """A supervisor: strategy, restart intensity per period, optional backoff, children.

    ``period_s`` is > 0 and at most a day (``MAX_SUPERVISION_S``); ``children`` is a list or
    tuple of :class:`ChildSpec` with unique ids.
    """

    strategy: Strategy = attrs.field(default=Strategy.ONE_FOR_ONE, converter=_to_strategy,
                                     validator=_v.one_of(Strategy))
    intensity: int = attrs.field(default=1, validator=_v.non_negative_int())
    period_s: float = attrs.field(default=5.0, validator=_v.number(gt=0, le=MAX_SUPERVISION_S))
    backoff: Backoff | None = attrs.field(default=None, validator=_v.optional(_v.instance(Backoff)))
    children: tuple[ChildSpec, ...] = attrs.field(
        default=(), converter=to_tuple,
        validator=attrs.validators.and_(_v.tuple_of(_v.instance(ChildSpec), "ChildSpec"), _unique_ids))
