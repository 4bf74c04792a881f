"""The executor's errors (``taktora.actors.executor``): bad composition, item failures, thread
attributes the OS refused.

The configuration errors also derive from the builtin they replace (``ValueError`` /
``TypeError``), so an ``except ValueError`` written against an earlier version keeps working.
"""

from __future__ import annotations

from taktora.transport.errors import TaktoraError


class ExecutorError(TaktoraError):
    """A failure of the executor: item errors under the propagate policy, bad composition."""


class ExecutorConfigError(ExecutorError, ValueError):
    """A value handed to the executor is out of range or inconsistent (a trigger's period, a pool
    size, a chain without items); the message names the argument and the fix."""


class ExecutorTypeError(ExecutorError, TypeError):
    """An object handed to the executor has the wrong type (not an item, not a trigger, no
    ``fileno()``); the message names what was expected."""


class ItemError(ExecutorError):
    """An item raised under the propagate policy; ``__cause__`` holds the original exception."""


class GraphCycleError(ExecutorConfigError):
    """A graph passed to ``add_graph`` has a cycle; the message names the vertices in it."""


class ThreadAttributeError(ExecutorError):
    """The OS refused a requested thread attribute (affinity, SCHED_FIFO priority)."""
