"""CAN's errors (``taktora.connectors.can``).

All derive from :class:`~taktora.connectors.errors.ConnectorError`, so ``except ConnectorError``
keeps catching them. A send on an interface that is down raises the framework's
:class:`~taktora.connectors.errors.LinkDownError` (the dispatcher counts it as ``link_down``).
"""

from __future__ import annotations

from taktora.connectors.errors import ConnectorError


class CanError(ConnectorError):
    """A CAN connector failed; the message names the connector and the interface or channel.
    Raised as such for misuse: an unknown interface name, opening twice, sending on a channel
    that is not open or a payload the channel's frame format cannot carry."""


class CanConfigError(CanError):
    """A CAN setting is invalid: a :class:`~taktora.connectors.can.config.CanBusConfig` or
    :class:`~taktora.connectors.can.config.CanRouting` field (the message starts with
    ``<Class>.<field>=<value>``), a channel's routing (the message names the channel), a
    connector argument or a DBC file that cannot be loaded."""


class CanBusError(CanError):
    """python-can failed on an interface: it could not be opened, take its filter, or send a
    frame. The python-can exception is the ``__cause__``."""
