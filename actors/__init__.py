"""taktora.actors: the executor (items, triggers, chains, graphs) and the control-plane actors."""

# --- executor ----------------------------------------------------------------------------------
from taktora.actors.context import Context, Stoppable
from taktora.actors.executor import Executor, ExecutorStats, ItemStats
from taktora.actors.graph import Graph
from taktora.actors.item import (
    ConditionalItem,
    Control,
    ErrorPolicy,
    FunctionItem,
    Item,
    item,
    wrap_with_condition,
)
from taktora.actors.monitor import ExecutionMonitor, ItemTiming, MonitorSnapshot
from taktora.actors.observer import LoggingObserver, Observer, OpenTelemetryObserver
from taktora.actors.runner import Runner
from taktora.actors.thread_attrs import AppliedAttrs, ThreadAttrs
from taktora.actors.timing import MissedTickPolicy
from taktora.actors.triggers import (
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
from taktora.transport.errors import (
    ExecutorError,
    GraphCycleError,
    ItemError,
    ThreadAttributeError,
)

# --- end executor ------------------------------------------------------------------------------

__all__ = [
    # executor
    "AppliedAttrs",
    "ConditionalItem",
    "Context",
    "Control",
    "DataTrigger",
    "DeadlineTrigger",
    "ErrorPolicy",
    "ExecutionMonitor",
    "Executor",
    "ExecutorError",
    "ExecutorStats",
    "FdTrigger",
    "FunctionItem",
    "Graph",
    "GraphCycleError",
    "IntervalTrigger",
    "Item",
    "ItemError",
    "ItemStats",
    "ItemTiming",
    "ListenerTrigger",
    "LoggingObserver",
    "MissedTickPolicy",
    "MonitorSnapshot",
    "Observer",
    "OpenTelemetryObserver",
    "Runner",
    "Stoppable",
    "ThreadAttributeError",
    "ThreadAttrs",
    "Trigger",
    "TriggerKind",
    "deadline",
    "every",
    "item",
    "on_data",
    "on_fd",
    "on_listener",
    "on_request",
    "on_response",
    "wrap_with_condition",
    # end executor
]

# --- control plane (actors) --------------------------------------------------------------------
# Values (messages, specs) import eagerly; the actor classes import Thespian, so they load on
# first access (module __getattr__) and `import taktora.actors` stays free of Thespian.
from taktora.actors.messages import (
    Ack,
    ChildInfo,
    Configure,
    ControlMessage,
    ErrorKind,
    ErrorReply,
    GetHealth,
    GetStats,
    GetTree,
    HealthEvent,
    HealthReply,
    HealthState,
    Pause,
    Reconnect,
    Reply,
    Resume,
    Route,
    Shutdown,
    StatsReply,
    TreeReply,
)
from taktora.actors.supervision import (
    Backoff,
    ChildSpec,
    Restart,
    Strategy,
    SupervisorSpec,
)
from taktora.transport.errors import (
    ActorError,
    AttachError,
    ControlError,
    SupervisorError,
)

_LAZY = {
    "TaktoraActor": "taktora.actors.base",
    "handles": "taktora.actors.base",
    "Supervisor": "taktora.actors.supervisor",
    "AddChild": "taktora.actors.supervisor",
    "HealthMachine": "taktora.actors.health",
    "HealthMonitor": "taktora.actors.health",
    "ReportHealth": "taktora.actors.health",
    "Subscribe": "taktora.actors.health",
    "Unsubscribe": "taktora.actors.health",
    "worst_of": "taktora.actors.health",
    "ReconnectPolicy": "taktora.actors.reconnect",
    "ReconnectPolicySettings": "taktora.actors.reconnect",
    "ReconnectPolicyActor": "taktora.actors.reconnect",
    "ItemHost": "taktora.actors.item_host",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taktora.actors' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ += [
    "Ack",
    "ActorError",
    "AddChild",
    "AttachError",
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "Configure",
    "ControlError",
    "ControlMessage",
    "ErrorKind",
    "ErrorReply",
    "GetHealth",
    "GetStats",
    "GetTree",
    "HealthEvent",
    "HealthMachine",
    "HealthMonitor",
    "HealthReply",
    "HealthState",
    "ItemHost",
    "Pause",
    "Reconnect",
    "ReconnectPolicy",
    "ReconnectPolicyActor",
    "ReconnectPolicySettings",
    "Reply",
    "ReportHealth",
    "Restart",
    "Resume",
    "Route",
    "Shutdown",
    "StatsReply",
    "Strategy",
    "Subscribe",
    "Supervisor",
    "SupervisorError",
    "SupervisorSpec",
    "TaktoraActor",
    "TreeReply",
    "Unsubscribe",
    "handles",
    "worst_of",
]
# --- end control plane -------------------------------------------------------------------------
