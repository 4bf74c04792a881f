"""The system layer's errors (``taktora.system``): starting, configuring, attaching, security."""

from __future__ import annotations

from taktora.transport.errors import TaktoraError


class SystemError_(TaktoraError):  # noqa: N801, N818 - SystemError is a builtin
    """A failure to start, attach to or stop an actor system."""


class ConfigError(SystemError_, ValueError):
    """A system configuration is invalid; the message names the key path and the reason."""


class SecurityError(SystemError_):
    """A listener would open beyond loopback without the explicit opt-in."""
