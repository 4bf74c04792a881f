"""Contexts for driving the EtherCAT connector without a gateway: a RecordingContext whose
outbound channels the test writes (:meth:`TakingContext.write`) and the cycle drains, with
the drain's accounting (taken, refused) kept so the loss equation can be checked."""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence

from taktora.connectors.context import Frame, Handler
from taktora.connectors.errors import ConnectorError, LinkDownError
from taktora.connectors.model import ChannelDescriptor
from taktora.connectors.testing import RecordingContext


class TakingContext(RecordingContext):
    """A RecordingContext that also serves ``drain`` (as the gateway's dispatcher does for a
    connector with ``takes_outbound``): frames written with :meth:`write` wait per channel and
    go to the drain handler oldest first; ``taken`` counts what reached the handler,
    ``refused`` what it refused (LinkDownError / ConnectorError, as the dispatcher counts)."""

    def __init__(self, channels: Sequence[ChannelDescriptor]) -> None:
        super().__init__(channels)
        self._queued: dict[str, collections.deque[bytes]] = {d.name: collections.deque()
                                                             for d in self.outbound}
        self._by_name = {d.name: d for d in self.outbound}
        self.taken = 0
        self.refused = 0
        self._count = threading.Lock()

    def write(self, channel: str, frame: bytes) -> None:
        """Queue ``frame`` on the outbound ``channel`` (any thread)."""
        self._queued[channel].append(bytes(frame))

    def drain(self, channel: str, handler: Handler) -> int:
        if channel not in self._by_name:
            raise ConnectorError(f"drain({channel!r}): not an outbound channel")
        descriptor, queued, n = self._by_name[channel], self._queued[channel], 0
        while queued:
            frame: Frame = memoryview(queued.popleft())
            n += 1
            with self._count:
                self.taken += 1
            try:
                handler(descriptor, frame)
            except (LinkDownError, ConnectorError):
                with self._count:
                    self.refused += 1
        return n
