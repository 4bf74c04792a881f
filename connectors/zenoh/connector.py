"""The Zenoh pub/sub connector: iceoryx2 channels <-> zenoh key expressions, raw payloads.

Routing: ``Routing(kind="zenoh", address=KEY_EXPR)``. An OUTBOUND channel gets a zenoh
publisher on the key expression with the descriptor's QoS (priority, congestion control,
express, reliability; :func:`~taktora.connectors.zenoh.config.publisher_options`); an INBOUND
channel gets a subscriber. The zenoh wire carries the application payload only
(``carries_envelope = False``): the dispatcher strips the taktora envelope on the way out and
wraps received payloads in a fresh one, so plain zenoh programs interoperate.

Threads: ``send`` runs on the dispatcher's outbound thread (``Publisher.put``; blocks only
under congestion control BLOCK). Subscriber callbacks run on zenoh's own threads
(``indirect=False``: no extra Python thread per subscriber) and publish the payload into
iceoryx2 right there through ``ctx.deliver`` (no queue, no reader thread): the channel's
overflow policy applies, and what the gateway's sink cannot publish it counts by cause.

Health comes from the shared :class:`~taktora.connectors.zenoh.session.ZenohSession` (peer
count); every transition of its machine is reported to the context. While it is Down,
``send`` raises LinkDownError (the dispatcher counts ``link_down``): nothing leaves uncounted
when no peer can receive it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import zenoh
from taktora.actors.models.health import HealthEvent, HealthState
from taktora.connectors.connector import Connector
from taktora.connectors.context import ConnectorContext, Frame
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
    """What both zenoh connectors share: the session, the context, counters."""

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
        self._ctx: ConnectorContext | None = None
        self._descriptors: tuple[ChannelDescriptor, ...] = ()
        self._state = "new"

    def open(self, ctx: ConnectorContext) -> None:
        """Check the routings, attach to the session (opening it if first) and declare; from
        then on the session's health transitions are reported to ``ctx``.

        Raises ConnectorError for a bad routing or a session zenoh cannot open."""
        if self._state == "open":
            raise ConnectorError(f"connector {self.name!r} is already open")
        self._check(ctx.channels)
        self._descriptors = ctx.channels
        self._ctx = ctx
        self.zsession.attach(self)
        self._state = "open"
        self.zsession.machine.subscribe(self._on_health)
        ctx.report(self.zsession.health(), "session attached")

    def close(self) -> None:
        """Undeclare and detach (the last connector closes the session); idempotent."""
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        self.zsession.machine.unsubscribe(self._on_health)
        self.zsession.detach(self)

    def _on_health(self, event: HealthEvent) -> None:
        """The session's machine moved (on the thread that moved it): report it."""
        ctx = self._ctx
        if ctx is not None and self._state == "open":
            ctx.report(event.state, f"session: {event.reason}")

    def _check(self, descriptors: Sequence[ChannelDescriptor]) -> None:
        for d in descriptors:
            key_expr(d)

    def declare(self, session: zenoh.Session) -> None:
        raise NotImplementedError

    def undeclare(self) -> None:
        raise NotImplementedError

    def _push(self, key: str, channel: str, frame: Frame) -> bool:
        """Publish one inbound frame into iceoryx2 from zenoh's callback thread (never blocks
        for long); what cannot be published is counted by the gateway's sink."""
        ctx = self._ctx
        if ctx is None:
            self.counts.add(key, "dropped:closed")
            return False
        return ctx.deliver(channel, frame)

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
            self._push(key, channel, sample.payload.to_bytes())

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
