"""The Zenoh pub/sub connector: iceoryx2 channels <-> zenoh key expressions, raw payloads.

Routing: ``Routing(kind="zenoh", address=KEY_EXPR)``. An OUTBOUND channel gets a zenoh
publisher on the key expression with the descriptor's QoS (priority, congestion control,
express, reliability; :func:`~taktora.connectors.zenoh.config.publisher_options`); an INBOUND
channel gets a subscriber. The zenoh wire carries the application payload only
(``carries_envelope = False``): the dispatcher strips the taktora envelope on the way out and
wraps received payloads in a fresh one, so plain zenoh programs interoperate.

Threads: ``send`` runs on the dispatcher's outbound thread (``Publisher.put``; blocks only
under congestion control BLOCK). Subscriber callbacks run on zenoh's own threads
(``indirect=False``: no extra Python thread per subscriber) and only copy the payload into a
bounded queue (``ZenohConfig.inbound_queue``; full: the newest frame is dropped and counted as
``queue_full`` for its key expression); ``receive`` runs on the dispatcher's inbound thread and
waits on that queue.

Health comes from the shared :class:`~taktora.connectors.zenoh.session.ZenohSession` (peer
count). While it is Down, ``send`` raises LinkDownError (the dispatcher counts ``link_down``):
nothing leaves uncounted when no peer can receive it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import zenoh
from taktora.actors.models.health import HealthState
from taktora.connectors.connector import Connector, Frame, Inbound
from taktora.connectors.errors import ConnectorError, LinkDownError
from taktora.connectors.model import ChannelDescriptor, Direction, FrozenMap
from taktora.connectors.zenoh.config import ZenohConfig, publisher_options
from taktora.connectors.zenoh.session import ZenohSession

log = logging.getLogger(__name__)


def key_expr(descriptor: ChannelDescriptor) -> str:
    """The key expression of a zenoh routing; ConnectorError naming the channel otherwise."""
    routing = descriptor.routing
    if routing.kind != "zenoh":
        raise ConnectorError(f"channel {descriptor.name!r}: routing kind {routing.kind!r} is not "
                             "'zenoh' (the zenoh connectors serve zenoh routings only)")
    try:
        return str(zenoh.KeyExpr(routing.address))
    except Exception as exc:
        raise ConnectorError(f"channel {descriptor.name!r}: {routing.address!r} is not a zenoh "
                             f"key expression: {exc}") from exc


class Cell:
    """One counter written by a single thread (no lock on the hot path), read by any."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class KeyCounts:
    """Per key expression counters: ``in``, ``out`` and ``dropped:<cause>``.

    :meth:`add` is thread-safe; a :meth:`cell` is for a counter that one thread only writes
    (the outbound thread's ``out``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._cells: dict[str, Cell] = {}

    def cell(self, key: str, what: str) -> Cell:
        with self._lock:
            return self._cells.setdefault(f"{key}|{what}", Cell())

    def add(self, key: str, what: str, n: int = 1) -> None:
        name = f"{key}|{what}"
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._counts)
            for name, cell in self._cells.items():
                if cell.n:
                    out[name] = out.get(name, 0) + cell.n
            return out


class _Base(Connector):
    """What both zenoh connectors share: the session, the inbound queue, counters."""

    settings_class = ZenohConfig

    @classmethod
    def from_settings(cls, name: str, settings: Any) -> _Base:
        """The connector of gateway ``name`` on its own session (``settings``: the
        :class:`ZenohConfig` of that session)."""
        return cls(settings, name=name)

    @classmethod
    def check_channel(cls, settings: Any, descriptor: ChannelDescriptor) -> None:
        """Routing kind ``zenoh`` whose address is a valid key expression."""
        key_expr(descriptor)

    def __init__(self, session: ZenohSession | ZenohConfig | None, name: str) -> None:
        self.name = name
        self.zsession = (session if isinstance(session, ZenohSession)
                         else ZenohSession(session, name=f"{name}-session"))
        self.counts = KeyCounts()
        # SimpleQueue (C, fast wake-ups) bounded by a size check: the bound may be overshot by
        # the number of zenoh threads pushing at the same instant, never more
        self._queue: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self._bound = self.zsession.config.inbound_queue
        self._descriptors: tuple[ChannelDescriptor, ...] = ()
        self._state = "new"

    def open(self, descriptors: Sequence[ChannelDescriptor]) -> None:
        """Check the routings, attach to the session (opening it if first) and declare.

        Raises ConnectorError for a bad routing or a session zenoh cannot open."""
        if self._state == "open":
            raise ConnectorError(f"connector {self.name!r} is already open")
        self._check(descriptors)
        self._descriptors = tuple(descriptors)
        self.zsession.attach(self)
        self._state = "open"

    def close(self) -> None:
        """Undeclare and detach (the last connector closes the session); idempotent."""
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        self.zsession.detach(self)

    def _check(self, descriptors: Sequence[ChannelDescriptor]) -> None:
        for d in descriptors:
            key_expr(d)

    def declare(self, session: zenoh.Session) -> None:
        raise NotImplementedError

    def undeclare(self) -> None:
        raise NotImplementedError

    def _push(self, key: str, item: Inbound) -> None:
        """Hand one inbound frame to the dispatcher (zenoh's thread; never blocks)."""
        if self._queue.qsize() >= self._bound:
            self.counts.add(key, "dropped:queue_full")
            return
        self._queue.put_nowait(item)

    def receive(self, timeout: float) -> Inbound | None:
        """The next inbound frame, waiting at most ``timeout`` seconds (inbound thread)."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def health(self) -> HealthState:
        """The session's state: Connecting before open, then from the peer count."""
        if self._state == "new":
            return HealthState.CONNECTING
        if self._state != "open":
            return HealthState.DOWN
        return self.zsession.health()

    def reconnect(self) -> None:
        """Close and reopen the shared session now (the Reconnect control message)."""
        self.zsession.reconnect()

    def stats(self) -> Mapping[str, int]:
        """Per key expression ``KEY|in``, ``KEY|out``, ``KEY|dropped:CAUSE`` plus the session's
        ``peers``, ``reopens``, ``reopen_failures``, ``health_errors``."""
        counts = self.counts.snapshot()
        counts.update(self.zsession.stats())
        return FrozenMap(counts)


class ZenohConnector(_Base):
    """Zenoh pub/sub for the dispatcher (see the module doc).

    ``session``: a shared :class:`ZenohSession` (e.g. with a
    :class:`~taktora.connectors.zenoh.query.ZenohQueryConnector`), or a :class:`ZenohConfig`
    (or None for the defaults) to own one.
    """

    carries_envelope = False

    def __init__(self, session: ZenohSession | ZenohConfig | None = None, *,
                 name: str = "zenoh") -> None:
        super().__init__(session, name)
        self._pubs: dict[str, tuple[str, Any, Cell]] = {}
        self._subs: list[Any] = []

    def declare(self, session: zenoh.Session) -> None:
        """Declare a publisher per OUTBOUND and a subscriber per INBOUND channel."""
        pubs: dict[str, tuple[str, Any, Cell]] = {}
        subs: list[Any] = []
        for d in self._descriptors:
            key = key_expr(d)
            if d.direction is Direction.OUTBOUND:
                pubs[d.name] = (key, session.declare_publisher(key, **publisher_options(d.qos)),
                                self.counts.cell(key, "out"))
            else:
                handler = zenoh.handlers.Callback(self._on_sample(d.name, key), indirect=False)
                subs.append(session.declare_subscriber(key, handler))
        self._pubs, self._subs = pubs, subs

    def undeclare(self) -> None:
        self._pubs, subs, self._subs = {}, self._subs, []
        for sub in subs:
            try:
                sub.undeclare()
            except Exception as exc:  # the session is already gone
                log.debug("zenoh %r: undeclare failed: %s", self.name, str(exc))

    def _on_sample(self, channel: str, key: str) -> Any:
        def on_sample(sample: zenoh.Sample) -> None:
            self.counts.add(key, "in")
            self._push(key, (channel, sample.payload.to_bytes()))

        return on_sample

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        """Put ``frame`` (the raw payload) on the channel's key expression (outbound thread).

        Raises LinkDownError while the session is Down (or being reopened), ConnectorError for
        an unknown channel or a put zenoh refuses."""
        entry = self._pubs.get(descriptor.name)
        if entry is None:
            if self._state == "open" and any(d.name == descriptor.name for d in self._descriptors
                                             if d.direction is Direction.OUTBOUND):
                self.counts.add(descriptor.routing.address, "dropped:link_down")
                raise LinkDownError(f"zenoh {self.name!r}: session is being reopened")
            raise ConnectorError(f"zenoh {self.name!r}: {descriptor.name!r} is not an open "
                                 "outbound channel")
        key, pub, out = entry
        if self.zsession.machine.state is HealthState.DOWN:
            self.counts.add(key, "dropped:link_down")
            raise LinkDownError(f"zenoh {self.name!r}: no peer (session Down)")
        try:
            pub.put(bytes(frame))
        except Exception as exc:
            self.counts.add(key, "dropped:put_error")
            raise LinkDownError(f"zenoh {self.name!r}: put on {key!r} failed: {exc}") from exc
        out.n += 1
