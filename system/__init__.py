"""taktora.system: starting actor systems, declarative system config, the ``taktora`` CLI."""

from taktora.system.bootstrap import (
    ActorSystemHandle,
    attach,
    detach,
    port_listening,
    start_system,
)
from taktora.system.config import SystemConfig, load, loads
from taktora.system.errors import ConfigError, SecurityError, SystemError_
from taktora.system.launch import start_host
from taktora.system.security import apply_bind_policy
from taktora.transport.net import is_loopback

__all__ = [
    "ActorSystemHandle",
    "ConfigError",
    "SecurityError",
    "SystemConfig",
    "SystemError_",
    "apply_bind_policy",
    "attach",
    "detach",
    "is_loopback",
    "load",
    "loads",
    "port_listening",
    "start_host",
    "start_system",
]
