"""The MQTT connector's outbound messages between ``publish`` and their completion.

A message is *in flight* from the moment paho takes it (``Client.publish``) until paho
completes it: written to the socket for QoS 0, acknowledged (PUBACK / PUBCOMP) for QoS >= 1.
What is in flight counts against ``max_queue``, shows in ``stats()`` (``TOPIC|in_flight``,
``queued``, ``unacked``) and, for QoS 0 messages paho had not written when the connection
dropped, is counted ``dropped:disconnected``.

Two ways of learning that a message completed, chosen per connection by
:attr:`InFlight.watch_qos0`:

- paho's ``on_publish`` callback for every message (the default). paho builds a ReasonCode
  and a ``Properties`` object for each QoS 0 message it writes before calling it, about half
  of the network thread's cost of a QoS 0 publish;
- when every outbound route has QoS 0, the connector leaves ``on_publish`` unset and follows
  each message's ``MQTTMessageInfo`` instead (paho marks it published once written): kept in
  publish order and retired from the front as they are found written (at each ``add``, in
  ``topics`` and at a disconnect).

Thread-safety: one lock; ``add`` runs on the outbound thread, ``complete`` and
``disconnected`` on paho's network thread, ``topics`` on any. paho calls ``on_publish``
holding its own message lock, so :meth:`add` is called after ``publish`` returned, never
around it; a completion that comes first is remembered (``_early``) and matched in ``add``.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from taktora.connectors.mqtt.settings import Route


class InFlight:
    """Messages published and not yet completed (see the module doc)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.unacked = 0  # QoS >= 1 among them (read without the lock: one int)
        self.watch_qos0 = False
        self._pending: dict[int, Route] = {}  # mid -> route, completed by on_publish
        self._early: set[int] = set()  # completed before add() registered them
        self._written: deque[tuple[Any, Route]] = deque()  # QoS 0, watched: (info, route)

    def __len__(self) -> int:
        return len(self._pending) + len(self._written)

    def _trim(self) -> None:
        written = self._written
        while written and written[0][0].is_published():
            written.popleft()

    def add(self, info: Any, route: Route) -> None:
        """Follow the message paho took as ``info`` (``MQTTMessageInfo``) for ``route``."""
        with self.lock:
            if route.qos == 0 and self.watch_qos0:
                self._trim()
                self._written.append((info, route))
            elif info.mid in self._early:
                self._early.discard(info.mid)
            else:
                self._pending[info.mid] = route
                if route.qos:
                    self.unacked += 1

    def complete(self, mid: int) -> Route | None:
        """paho completed ``mid`` (``on_publish``): its route, None if ``add`` has not seen it
        yet (then ``add`` retires it)."""
        with self.lock:
            route = self._pending.pop(mid, None)
            if route is None:
                self._early.add(mid)
            elif route.qos:
                self.unacked -= 1
        return route

    def disconnected(self) -> list[Route]:
        """The connection dropped: the routes of the QoS 0 messages paho had not written (gone
        with the socket; QoS >= 1 ones stay, paho sends them again)."""
        with self.lock:
            lost = [mid for mid, r in self._pending.items() if r.qos == 0]
            routes = [self._pending.pop(mid) for mid in lost]
            routes += [r for info, r in self._written if not info.is_published()]
            self._written.clear()
        return routes

    def topics(self) -> list[str]:
        """The topic of every message in flight (one entry per message)."""
        with self.lock:
            self._trim()
            return [r.topic for r in self._pending.values()] + [r.topic for _, r in self._written]
