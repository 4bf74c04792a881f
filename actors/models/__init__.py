"""taktora.actors.models: the control plane's pure models (health state machine, backoff).

Plain Python: no Thespian, no threads of their own. Connectors, gateways, supervisors and the
actors all use these same types.
"""

from taktora.actors.models.backoff import Backoff, ReconnectPolicy
from taktora.actors.models.health import (
    TRANSITIONS,
    HealthEvent,
    HealthMachine,
    HealthState,
    check_transition,
    worst_of,
)

__all__ = [
    "TRANSITIONS",
    "Backoff",
    "HealthEvent",
    "HealthMachine",
    "HealthState",
    "ReconnectPolicy",
    "check_transition",
    "worst_of",
]
