"""The project's exception hierarchy, in one module.

Every error taktora raises on purpose derives from :class:`TaktoraError`, with one subclass per
layer. Each message names what was wrong and what to do about it. This module lives in the
lowest layer (transport) so that every other layer can import it without a cycle; each layer's
package re-exports its own branch.
"""

from __future__ import annotations


class TaktoraError(Exception):
    """Root of every error taktora raises on purpose."""


# --- transport (taktora.transport) -------------------------------------------------------------
class TransportError(TaktoraError):
    """A failure of the iceoryx2 data plane."""


class ChannelConfigError(TransportError, ValueError):
    """A channel, event or service description is invalid (the message names the field)."""


class ServiceOpenError(TransportError):
    """iceoryx2 refused to create or open a service or port (incompatible peer, limits hit)."""


class PayloadError(TransportError, ValueError):
    """A payload does not fit its channel: too large, wrong type or wrong size."""


class LoanError(TransportError):
    """Shared memory could not be loaned (all samples in flight, or the segment is exhausted)."""


class SampleReleasedError(TransportError):
    """A received sample or its zero-copy view was used after it was released."""


class EnvelopeError(TransportError, ValueError):
    """A connector envelope is malformed: bad magic, unknown version, or a length past the buffer."""


class RequestError(TransportError):
    """A request/response exchange failed (no server, server gone, or response out of place)."""


# --- executor (taktora.actors executor modules) ------------------------------------------------
class ExecutorError(TaktoraError):
    """A failure of the executor: item errors under the propagate policy, bad composition."""


class ItemError(ExecutorError):
    """An item raised under the propagate policy; ``__cause__`` holds the original exception."""


class GraphCycleError(ExecutorError, ValueError):
    """A graph passed to ``add_graph`` has a cycle; the message names the vertices in it."""


class ThreadAttributeError(ExecutorError):
    """The OS refused a requested thread attribute (affinity, SCHED_FIFO priority)."""


# --- actors (taktora.actors control plane) -----------------------------------------------------
class ActorError(TaktoraError):
    """A failure of the Thespian control plane."""


class SupervisorError(ActorError):
    """A supervisor gave up (restart intensity exceeded) or a child spec is invalid."""


class ControlError(ActorError):
    """A control message was rejected, unknown, or got no reply in time."""


class AttachError(ActorError):
    """Attaching to a running actor system failed (nothing listens on the port)."""


# --- connectors (taktora.connectors) -----------------------------------------------------------
class ConnectorError(TaktoraError):
    """A failure of a connector or gateway."""


class CodecError(ConnectorError, ValueError):
    """A payload could not be encoded or decoded; the message names the channel and codec."""


class DescriptorError(ConnectorError, ValueError):
    """A connector model value (routing, QoS, channel descriptor) is invalid; the message names
    the field and the fix."""


class LinkDownError(ConnectorError):
    """A connector could not send because its link is down (counted as ``link_down``)."""


class EthercatError(ConnectorError):
    """An EtherCAT bus operation failed (taktora.connectors.ethercat)."""


class BringUpError(EthercatError):
    """EtherCAT bring-up failed; names the SubDevice, the state it reached and its AL status
    code (attributes ``subdevice``, ``state``, ``al_status_code``)."""

    def __init__(self, message: str, subdevice: int = 0, state: int = 0, al_status_code: int = 0) -> None:
        super().__init__(message)
        self.subdevice = subdevice
        self.state = state
        self.al_status_code = al_status_code


class SdoAbortError(EthercatError):
    """A SubDevice aborted an SDO transfer (attributes ``subdevice``, ``index``, ``subindex``,
    ``abort_code``: the ETG abort code)."""

    def __init__(self, message: str, subdevice: int = 0, index: int = 0, subindex: int = 0,
                 abort_code: int = 0) -> None:
        super().__init__(message)
        self.subdevice = subdevice
        self.index = index
        self.subindex = subindex
        self.abort_code = abort_code


# --- system (taktora.system) -------------------------------------------------------------------
class SystemError_(TaktoraError):  # noqa: N801, N818 - SystemError is a builtin
    """A failure to start, attach to or stop an actor system."""


class ConfigError(SystemError_, ValueError):
    """A system configuration is invalid; the message names the key path and the reason."""


class SecurityError(SystemError_):
    """A listener would open beyond loopback without the explicit opt-in."""
