"""Items: the unit of work the executor runs.

An item declares what wakes it (:meth:`Item.triggers`) and does one step of work per wake
(:meth:`Item.execute`). ``execute`` runs in the executor thread (or a pool worker when the
executor has workers), never concurrently with itself. Its return value steers chains and
graphs: :attr:`Control.CONTINUE` (or ``None``) lets the next step run, :attr:`Control.STOP`
aborts the rest of this run. What happens when it raises is the item's :class:`ErrorPolicy`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from taktora.actors.executor.context import Context
from taktora.actors.executor.triggers import Trigger


class Control(enum.Enum):
    """What ``execute`` tells the chain or graph it runs in."""

    CONTINUE = "continue"
    STOP = "stop"


class ErrorPolicy(enum.Enum):
    """What the executor does when an item's ``execute`` raises.

    - ``PROPAGATE``: stop the executor; ``run()`` (and ``Runner.stop/join``) raises
      :class:`~taktora.actors.executor.errors.ItemError` with the original as ``__cause__``.
    - ``LOG_AND_CONTINUE``: log the traceback (logger ``taktora.actors.executor``), count it,
      keep running.
    - ``COUNT_AND_SKIP``: count it (``Executor.stats()``), skip the rest of this run, keep
      running; nothing is logged per error.

    Under every policy the rest of the chain or graph run is aborted and the observer's
    ``on_item_error`` hook is called.
    """

    PROPAGATE = "propagate"
    LOG_AND_CONTINUE = "log_and_continue"
    COUNT_AND_SKIP = "count_and_skip"


class Item:
    """Base class for items. Subclass it and override :meth:`triggers` and :meth:`execute`.

    Class attributes a subclass may set: ``name`` (unique within an executor; defaults to the
    class name), ``error_policy``, ``budget`` (seconds; the monitor counts runs longer than
    this), ``publishers`` (a mapping of names to transport publishers, reachable through
    ``ctx.publishers``).
    """

    name: str = ""
    error_policy: ErrorPolicy = ErrorPolicy.PROPAGATE
    budget: float | None = None
    publishers: Mapping[str, Any] = {}

    def triggers(self) -> Sequence[Trigger]:
        """What wakes this item; called once, when the item is added (caller's thread).

        Items in a chain or graph other than the head/root may return nothing.
        """
        return ()

    def execute(self, ctx: Context) -> Control | None:
        """One step of work. Runs in the executor thread or a pool worker.

        Raising is handled by :attr:`error_policy`. Return :attr:`Control.STOP` to abort the
        rest of the chain or graph run (it does not stop the executor; ``ctx.stop()`` does).
        """
        raise NotImplementedError

    def on_stop(self) -> None:
        """Release resources; called once in the executor thread when its run loop ends.

        An exception here is logged and counted, and does not hide an item error.
        """

    def item_name(self) -> str:
        """The name the executor, monitor and observer know this item by."""
        return self.name or type(self).__name__


class FunctionItem(Item):
    """An item made from a plain function (see :func:`item`)."""

    def __init__(self, fn: Callable[[Context], Control | None], triggers: Sequence[Trigger], *,
                 name: str, error_policy: ErrorPolicy, budget: float | None,
                 publishers: Mapping[str, Any]) -> None:
        self._fn = fn
        self._triggers = tuple(triggers)
        self.name = name
        self.error_policy = error_policy
        self.budget = budget
        self.publishers = dict(publishers)

    def triggers(self) -> Sequence[Trigger]:
        return self._triggers

    def execute(self, ctx: Context) -> Control | None:
        return self._fn(ctx)


def item(fn: Callable[[Context], Control | None], triggers: Sequence[Trigger] = (), *,
         name: str | None = None, error_policy: ErrorPolicy = ErrorPolicy.PROPAGATE,
         budget: float | None = None, publishers: Mapping[str, Any] | None = None) -> Item:
    """Wrap ``fn(ctx)`` as an item; ``name`` defaults to the function's name."""
    fn_name = name if name is not None else str(getattr(fn, "__name__", "item"))
    return FunctionItem(fn, triggers, name=fn_name, error_policy=error_policy, budget=budget,
                        publishers=publishers or {})


class ConditionalItem(Item):
    """An item gated by a predicate (see :func:`wrap_with_condition`)."""

    def __init__(self, inner: Item, predicate: Callable[[Context], bool]) -> None:
        self.inner = inner
        self.predicate = predicate
        self.name = inner.item_name()
        self.error_policy = inner.error_policy
        self.budget = inner.budget
        self.publishers = inner.publishers
        self.skipped = 0

    def triggers(self) -> Sequence[Trigger]:
        return self.inner.triggers()

    def execute(self, ctx: Context) -> Control | None:
        if not self.predicate(ctx):
            self.skipped += 1
            return Control.STOP
        return self.inner.execute(ctx)

    def on_stop(self) -> None:
        self.inner.on_stop()


def wrap_with_condition(inner: Item, predicate: Callable[[Context], bool]) -> ConditionalItem:
    """Run ``inner`` only when ``predicate(ctx)`` is true.

    The predicate runs in the same thread as the item, just before it. When it is false the
    item is not run, the wrapper counts it in ``.skipped`` and returns :attr:`Control.STOP`, so
    the rest of a chain is skipped too. A raising predicate is handled like a raising item.
    """
    return ConditionalItem(inner, predicate)
