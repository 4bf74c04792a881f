"""The control plane's errors (``taktora.actors``): supervision, control messages, attaching."""

from __future__ import annotations

from taktora.transport.errors import TaktoraError


class ActorError(TaktoraError):
    """A failure of the Thespian control plane."""


class ActorConfigError(ActorError, ValueError):
    """A control-plane value (backoff, health transition, message field) is invalid; the message
    names the class, the field and what it expects."""


class SupervisorError(ActorError):
    """A supervisor gave up (restart intensity exceeded) or a child spec is invalid."""


class ControlError(ActorError):
    """A control message was rejected, unknown, or got no reply in time."""


class AttachError(ActorError):
    """Attaching to a running actor system failed (nothing listens on the port)."""
