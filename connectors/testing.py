"""A context for driving a connector without iceoryx2 or a gateway: unit tests of a connector,
and a quick look at what a protocol delivers.

:class:`RecordingContext` collects every delivered frame in a queue (read it with
:meth:`RecordingContext.next`) and every health report in :attr:`RecordingContext.reports`::

    ctx = RecordingContext([descriptor])
    ctx.open(connector)                # bind + open, as the framework does
    channel, frame = ctx.next(timeout=1.0)

Like the real sink it accepts frames only for its INBOUND channels (by name or routing); any
other is refused (False) and counted in :attr:`RecordingContext.unknown`.

Thread-safe like the real context: the connector's threads deliver and report concurrently.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

from taktora.actors.models.health import HealthState
from taktora.connectors.connector import Connector, Inbound
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.model import ChannelDescriptor, Routing


class RecordingContext(ConnectorContext):
    """A :class:`ConnectorContext` that records instead of publishing."""

    def __init__(self, channels: Sequence[ChannelDescriptor], name: str = "test") -> None:
        super().__init__(name, channels, deliver=self._record, report=self._note)
        self.frames: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self.reports: list[tuple[HealthState, str]] = []
        self.unknown = 0
        self._lock = threading.Lock()
        self._names = {d.name for d in self.inbound}
        self._routings = {d.routing for d in self.inbound}

    def open(self, connector: Connector) -> None:
        """``connector.bind(self)`` then ``connector.open(self)`` (what the dispatcher does)."""
        connector.bind(self)
        connector.open(self)

    def _record(self, channel: str | Routing, frame: Frame) -> bool:
        known = channel in self._routings if isinstance(channel, Routing) else channel in self._names
        if self.revoked or not known:
            with self._lock:
                self.unknown += 1
            return False
        self.frames.put((channel, bytes(frame)))
        return True

    def _note(self, state: HealthState, reason: str) -> None:
        with self._lock:
            self.reports.append((state, reason))

    def next(self, timeout: float) -> Inbound | None:
        """The next delivered ``(channel, frame)``, waiting up to ``timeout`` s (None: none)."""
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            return None
