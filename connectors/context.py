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
- **outbound, taken**: a connector whose own loop consumes outputs (the EtherCAT cycle)
  sets :attr:`~taktora.connectors.connector.Connector.takes_outbound` and calls
  :meth:`ConnectorContext.drain` from that loop; the framework's outbound thread then neither
  wakes for those channels nor calls ``send`` (the same checks and counters apply).
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
from taktora.connectors.errors import ConnectorError
from taktora.connectors.model import ChannelDescriptor, Direction, Routing

Frame = bytes | bytearray | memoryview
"""A frame handed to or by a connector: any bytes-like object (a view is valid only during the
call it is passed to)."""

Deliver = Callable[[str | Routing, Frame], bool]
DeliverMany = Callable[[str | Routing, Sequence[Frame]], int]
Report = Callable[[HealthState, str], None]
Handler = Callable[[ChannelDescriptor, Frame], None]
"""Takes one outbound frame in :meth:`ConnectorContext.drain` (like ``Connector.send``)."""
Drain = Callable[[str, Handler], int]


def _no_drain(channel: str, handler: Handler) -> int:
    raise ConnectorError(f"drain({channel!r}): this connection's outbound frames go to "
                         "Connector.send (set takes_outbound = True to take them in drain)")


class ConnectorContext:
    """The framework's side of one open connection (see the module docstring).

    ``deliver(channel, frame)``: publish ``frame`` on the INBOUND channel named by descriptor
    name or by its :class:`Routing`; True when published, False when dropped (counted).
    ``report(state, reason)``: the link's health changed. ``channels``: every descriptor the
    connector serves; ``log``: a logger named after the gateway.
    """

    def __init__(self, name: str, channels: Sequence[ChannelDescriptor], *, deliver: Deliver,
                 report: Report, log: logging.Logger | None = None,
                 drain: Drain | None = None, deliver_many: DeliverMany | None = None) -> None:
        self.name = name
        self.channels = tuple(channels)
        self.outbound = tuple(d for d in self.channels if d.direction is Direction.OUTBOUND)
        self.inbound = tuple(d for d in self.channels if d.direction is Direction.INBOUND)
        self.log = log or logging.getLogger(f"taktora.connectors.{name}")
        self._deliver = deliver
        self._deliver_many = deliver_many or self._each
        self._report = report
        self._drain = drain or _no_drain
        self._revoke: Callable[[], None] | None = None
        self.revoked = False
        """True once the framework ended this connection: deliveries are dropped (counted as
        ``down``) and reports ignored. A connector must not deliver after its ``close``."""
        self.state = HealthState.CONNECTING
        """The last state reported (Connecting until the connector reports)."""

    def deliver(self, channel: str | Routing, frame: Frame) -> bool:
        """Publish ``frame`` on the inbound ``channel`` from the calling thread (see above)."""
        return self._deliver(channel, frame)

    def deliver_many(self, channel: str | Routing, frames: Sequence[Frame]) -> int:
        """Publish several frames of one inbound ``channel``, in order, from the calling
        thread, waking its readers once at the end instead of once per frame; returns how
        many were published (each frame counted as :meth:`deliver` counts it). For protocols
        that receive in bursts (a socket drained after a wake-up)."""
        return self._deliver_many(channel, frames)

    def _each(self, channel: str | Routing, frames: Sequence[Frame]) -> int:
        return sum(self._deliver(channel, frame) for frame in frames)

    def drain(self, channel: str, handler: Handler) -> int:
        """Take every frame queued on the OUTBOUND ``channel`` (descriptor name) and hand each
        to ``handler(descriptor, frame)`` on the calling thread, oldest first; returns how many
        were handed over. Only for a connector with ``takes_outbound`` (else ConnectorError).

        Accounting as for ``send``: each frame is counted forwarded before ``handler`` runs,
        or dropped by one cause (``paused``, ``down`` once this connection ended, ``malformed``);
        ``handler`` raising LinkDownError / ConnectorError counts ``link_down`` / ``send_error``.
        ``frame`` is valid only during the call. Never blocks; call it from one thread only
        (the connector's loop)."""
        return self._drain(channel, handler)

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
