"""taktora.actors.executor: items, triggers, chains, graphs, timing and the execution monitor.

The data-plane half of ``taktora.actors``: one iceoryx2 WaitSet per executor wakes items on
channel data, intervals, deadlines, requests, responses and file descriptors. Nothing in this
package imports Thespian or the control plane (an import-linter contract holds the rule).
"""

from taktora.actors.executor.context import Context, Stoppable
from taktora.actors.executor.errors import (
    ExecutorConfigError,
    ExecutorError,
    ExecutorTypeError,
    GraphCycleError,
    ItemError,
    ThreadAttributeError,
)
from taktora.actors.executor.execution_monitor import ExecutionMonitor, ItemTiming, MonitorSnapshot
from taktora.actors.executor.executor import Executor
from taktora.actors.executor.graph import Graph
from taktora.actors.executor.item import (
    ConditionalItem,
    Control,
    ErrorPolicy,
    FunctionItem,
    Item,
    item,
    wrap_with_condition,
)
from taktora.actors.executor.observer import LoggingObserver, Observer, OpenTelemetryObserver
from taktora.actors.executor.runner import Runner
from taktora.actors.executor.spec import (
    ChainSpec,
    ChannelPort,
    ExecutorSpec,
    GraphSpec,
    ItemEnv,
    ItemSpec,
    SpecExecutor,
    TriggerSpec,
)
from taktora.actors.executor.stats import ExecutorStats, ItemStats
from taktora.actors.executor.thread_attrs import AppliedAttrs, ThreadAttrs
from taktora.actors.executor.timing import MissedTickPolicy
from taktora.actors.executor.triggers import (
    DataTrigger,
    DeadlineTrigger,
    FdTrigger,
    IntervalTrigger,
    ListenerTrigger,
    Trigger,
    TriggerKind,
    deadline,
    every,
    on_data,
    on_fd,
    on_listener,
    on_request,
    on_response,
)

__all__ = [
    "AppliedAttrs",
    "ChainSpec",
    "ChannelPort",
    "ConditionalItem",
    "Context",
    "Control",
    "DataTrigger",
    "DeadlineTrigger",
    "ErrorPolicy",
    "ExecutionMonitor",
    "Executor",
    "ExecutorConfigError",
    "ExecutorError",
    "ExecutorSpec",
    "ExecutorStats",
    "ExecutorTypeError",
    "FdTrigger",
    "FunctionItem",
    "Graph",
    "GraphCycleError",
    "GraphSpec",
    "IntervalTrigger",
    "Item",
    "ItemEnv",
    "ItemError",
    "ItemSpec",
    "ItemStats",
    "ItemTiming",
    "ListenerTrigger",
    "LoggingObserver",
    "MissedTickPolicy",
    "MonitorSnapshot",
    "Observer",
    "OpenTelemetryObserver",
    "Runner",
    "SpecExecutor",
    "Stoppable",
    "ThreadAttributeError",
    "ThreadAttrs",
    "Trigger",
    "TriggerKind",
    "TriggerSpec",
    "deadline",
    "every",
    "item",
    "on_data",
    "on_fd",
    "on_listener",
    "on_request",
    "on_response",
    "wrap_with_condition",
]
