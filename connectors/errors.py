"""The connector framework's errors (``taktora.connectors``); each protocol package derives its
own from :class:`ConnectorError` in its ``errors`` module."""

from __future__ import annotations

from taktora.transport.errors import TaktoraError


class ConnectorError(TaktoraError):
    """A failure of a connector or gateway."""


class CodecError(ConnectorError, ValueError):
    """A payload could not be encoded or decoded; the message names the channel and codec."""


class DescriptorError(ConnectorError, ValueError):
    """A connector model value (routing, QoS, channel descriptor, gateway config) is invalid; the
    message names the field and the fix."""


class LinkDownError(ConnectorError):
    """A connector could not send because its link is down (counted as ``link_down``)."""


class NoPeerError(LinkDownError):
    """A connector did not send because nobody could receive the frame (no peer, or no
    subscriber matching its key): counted as :attr:`cause` (``no_peer``) by a dispatcher that
    reads it, as ``link_down`` (the base class) by one that does not."""

    cause = "no_peer"
