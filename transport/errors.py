"""The root of the project's exception hierarchy and the transport layer's branch.

Every error taktora raises on purpose derives from :class:`TaktoraError`. Each layer keeps its
own branch in its own ``errors`` module and imports only downward:

===========================================  ==================================================
module                                       branch
===========================================  ==================================================
``taktora.transport.errors``                 :class:`TaktoraError`, :class:`TransportError`
``taktora.actors.executor.errors``           ``ExecutorError``
``taktora.actors.errors``                    ``ActorError``
``taktora.connectors.errors``                ``ConnectorError``
``taktora.connectors.<protocol>.errors``     that protocol's subclasses of ``ConnectorError``
``taktora.system.errors``                    ``SystemError_``
===========================================  ==================================================

Each message names what was wrong and what to do about it.
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
