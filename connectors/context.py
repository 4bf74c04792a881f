"""What the framework hands a connector when it opens: the channels, the inbound sink, the
health reporter and a logger (:class:`ConnectorContext`).

A connector pushes; the framework never pulls from it or polls its health:

- **inbound**: the protocol's own thread (a socket reader, a Zenoh callback, a CAN receive
  thread, the EtherCAT cycle) calls :meth:`ConnectorContext.deliver` with the channel and the
  frame. The call publishes into the channel's iceoryx2 service *on the calling thread*:
  loaned and written once, with the channel's overflow policy, and every frame that cannot be
  published is counted by cause (``paused``, ``unknown_channel``, ``malformed``,
  ``too_large``, ``publish_error``). A protocol that must be pulled implements
  :meth:`~taktora.connectors.connector.Connector.poll` instead, and only then does the
  framework run a reader thread for it.
- **health**: :meth:`ConnectorContext.report` with ``Up`` / ``Degraded`` / ``Down`` /
  ``Connecting`` and a reason, from any thread, whenever the link changes. The gateway turns
  reports into its health state machine's transitions and reconnects on ``Down``.

Both methods are safe to call from any thread, concurrently, and never block for long (a
publish is a shared-memory write and an event notification).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from taktora.actors.models.health import HealthState
from taktora.connectors.model import ChannelDescriptor, Direction, Routing

Frame = bytes | bytearray | memoryview
"""A frame handed to or by a connector: any bytes-like object (a view is valid only during the
call it is passed to)."""

Deliver = Callable[[str | Routing, Frame], bool]
Report = Callable[[HealthState, str], None]


class ConnectorContext:
    """The framework's side of one open connection (see the module docstring).

    ``deliver(channel, frame)``: publish ``frame`` on the INBOUND channel named by descriptor
    name or by its :class:`Routing`; True when published, False when dropped (counted).
    ``report(state, reason)``: the link's health changed. ``channels``: every descriptor the
    connector serves; ``log``: a logger named after the gateway.
    """

    def __init__(self, name: str, channels: Sequence[ChannelDescriptor], *, deliver: Deliver,
                 report: Report, log: logging.Logger | None = None) -> None:
        self.name = name
        self.channels = tuple(channels)
        self.outbound = tuple(d for d in self.channels if d.direction is Direction.OUTBOUND)
        self.inbound = tuple(d for d in self.channels if d.direction is Direction.INBOUND)
        self.log = log or logging.getLogger(f"taktora.connectors.{name}")
        self._deliver = deliver
        self._report = report
        self._revoke: Callable[[], None] | None = None
        self.revoked = False
        """True once the framework ended this connection: deliveries are dropped (counted as
        ``down``) and reports ignored. A connector must not deliver after its ``close``."""
        self.state = HealthState.CONNECTING
        """The last state reported (Connecting until the connector reports)."""

    def deliver(self, channel: str | Routing, frame: Frame) -> bool:
        """Publish ``frame`` on the inbound ``channel`` from the calling thread (see above)."""
        return self._deliver(channel, frame)

    def report(self, state: HealthState, reason: str = "") -> None:
        """The link is now ``state`` because of ``reason`` (any thread; repeated reports of
        the same state are harmless; ignored once the connection was ended)."""
        if self.revoked:
            return
        self.state = state
        self._report(state, reason)

    def revoke(self) -> None:
        """End this connection (the framework, when it disconnects): from now on deliveries
        are counted as ``down`` and reports are ignored. Idempotent."""
        self.revoked = True

    def __repr__(self) -> str:
        return f"<ConnectorContext {self.name!r}: {len(self.channels)} channel(s), {self.state.value}>"
