"""Zenoh's errors (``taktora.connectors.zenoh``)."""

from __future__ import annotations

from taktora.connectors.errors import ConnectorError


class ZenohError(ConnectorError):
    """A Zenoh session or connector operation failed."""


class ZenohConfigError(ZenohError, ValueError):
    """A Zenoh setting is invalid or zenoh rejected it; the message names the setting."""
