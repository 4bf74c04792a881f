"""Frozen snapshots of an executor's counters (:meth:`Executor.stats`)."""

from __future__ import annotations

import attrs
from taktora.actors.executor.errors import ExecutorConfigError
from taktora.transport.validators import Checks

_v = Checks(ExecutorConfigError)


@attrs.frozen
class ItemStats:
    """Counters of one item: runs, STOP returns, errors by policy, deadline misses, missed
    interval ticks."""

    name: str
    runs: int = attrs.field(validator=_v.non_negative_int())
    stops: int = attrs.field(validator=_v.non_negative_int())
    errors: int = attrs.field(validator=_v.non_negative_int())
    logged_errors: int = attrs.field(validator=_v.non_negative_int())
    skipped_errors: int = attrs.field(validator=_v.non_negative_int())
    deadline_misses: int = attrs.field(validator=_v.non_negative_int())
    missed_ticks: int = attrs.field(validator=_v.non_negative_int())


@attrs.frozen
class ExecutorStats:
    """Counters of an executor at one moment (see :meth:`Executor.stats`)."""

    name: str
    wakes: int = attrs.field(validator=_v.non_negative_int())
    items: tuple[ItemStats, ...]
    observer_errors: int = attrs.field(validator=_v.non_negative_int())
    on_stop_errors: int = attrs.field(validator=_v.non_negative_int())

    def item(self, name: str) -> ItemStats:
        """The counters of the item called ``name``."""
        for it in self.items:
            if it.name == name:
                return it
        raise KeyError(f"no item {name!r}; items: {[i.name for i in self.items]}")
