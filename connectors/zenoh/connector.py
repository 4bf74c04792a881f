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
``send`` raises LinkDownError (the dispatcher counts ``link_down``).

Reachability per key (spec/zenoh.rst, REQ_0617): every publisher has a zenoh matching listener
(:class:`Matching`) that keeps one flag - is a subscriber matching its key expression known to
this session (local or remote)? - so ``send`` reads a bool instead of asking zenoh per frame.
While the session is not Down but the flag is False (no peer yet, or peers without a matching
subscriber), ``send`` puts nothing and raises :class:`~taktora.connectors.errors.NoPeerError`
(counted ``KEY|dropped:no_peer`` here, ``no_peer`` by the dispatcher): one cause per frame,
never "forwarded" to nobody. What remains uncountable is zenoh's own window: a subscriber that
vanishes (its peer killed) is matched until zenoh notices the closed link, and puts in that
window are counted forwarded. A missing subscriber does not change the health (REQ_0618): it
is an ordinary state of pub/sub, not a link fault, and the gateway acts on health.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import zenoh
from taktora.actors.models.health import HealthEvent, HealthState
from taktora.connectors.connector import Connector
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.errors import ConnectorError, LinkDownError, NoPeerError
from taktora.connectors.model import ChannelDescriptor, Direction, FrozenMap
from taktora.connectors.zenoh.config import ZenohConfig, publisher_options
from taktora.connectors.zenoh.session import ZenohSession

log = logging.getLogger(__name__)

_DOWN = HealthState.DOWN


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


class SharedCell(Cell):
    """One counter that several threads may write (:meth:`add`, under its own lock), read by
    any: for zenoh callbacks, which may run on several of zenoh's threads at once (one per
    link). Bound once per key, so a frame costs no name formatting and no dict lookup."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.n += n


class Matching:
    """Whether a publisher's key has a matching subscriber, kept by its matching listener.

    :meth:`on_status` runs on zenoh's thread (``indirect=False``; on the declaring thread for
    the status at declaration) and only stores a bool: it never blocks and never raises.
    :meth:`seed` (the declaring thread) stores the status read after the listener was declared
    unless a notification came first (that one is newer). :attr:`matched` is read by the
    outbound thread per frame without a lock (one bool, written whole)."""

    __slots__ = ("_heard", "_lock", "matched")

    def __init__(self) -> None:
        self.matched = False
        self._heard = False
        self._lock = threading.Lock()

    def on_status(self, status: zenoh.MatchingStatus) -> None:
        with self._lock:
            self._heard = True
            self.matched = bool(status.matching)

    def seed(self, matched: bool) -> None:
        with self._lock:
            if not self._heard:
                self.matched = matched


class KeyCounts:
    """Per key expression counters: ``in``, ``out`` and ``dropped:<cause>``.

    :meth:`add` is thread-safe; a :meth:`cell` is for a counter that one thread only writes
    (the outbound thread's ``out``), a :meth:`shared_cell` for a per-frame counter that
    several threads write (a subscriber's ``in``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._cells: dict[str, Cell] = {}

    def cell(self, key: str, what: str) -> Cell:
        with self._lock:
            return self._cells.setdefault(f"{key}|{what}", Cell())

    def shared_cell(self, key: str, what: str) -> SharedCell:
        """The :class:`SharedCell` of ``KEY|WHAT`` (made on first use); ConnectorError if that
        counter is already a single-writer :meth:`cell`."""
        with self._lock:
            cell = self._cells.setdefault(f"{key}|{what}", SharedCell())
        if not isinstance(cell, SharedCell):
            raise ConnectorError(f"counter {key}|{what} is written by one thread only")
        return cell

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
        self._machine = self.zsession.machine  # the session's for its life: read per frame
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
        self._pubs: dict[str, tuple[str, Any, Cell, Matching]] = {}
        self._subs: list[Any] = []

    def declare(self, session: zenoh.Session) -> None:
        """Declare a publisher with a matching listener per OUTBOUND and a subscriber per
        INBOUND channel (the session's opening thread)."""
        pubs: dict[str, tuple[str, Any, Cell, Matching]] = {}
        subs: list[Any] = []
        for d in self._descriptors:
            key = key_expr(d)
            if d.direction is Direction.OUTBOUND:
                pub = session.declare_publisher(key, **publisher_options(d.qos))
                matching = Matching()
                subs.append(pub.declare_matching_listener(
                    zenoh.handlers.Callback(matching.on_status, indirect=False)))
                status: Any = pub.matching_status  # a MatchingStatus (1.10; stubs: bool)
                matching.seed(bool(getattr(status, "matching", status)))
                pubs[d.name] = (key, pub, self.counts.cell(key, "out"), matching)
            else:
                handler = zenoh.handlers.Callback(self._on_sample(d.name, key), indirect=False)
                subs.append(session.declare_subscriber(key, handler))
        self._pubs, self._subs = pubs, subs

    def undeclare(self) -> None:
        """Forget the publishers, undeclare the subscribers and matching listeners."""
        self._pubs, subs, self._subs = {}, self._subs, []
        for sub in subs:
            try:
                sub.undeclare()
            except Exception as exc:  # the session is already gone
                log.debug("zenoh %r: undeclare failed: %s", self.name, str(exc))

    def _on_sample(self, channel: str, key: str) -> Any:
        """The subscriber callback of ``channel`` (runs on zenoh's threads). The payload is
        taken as bytes once (``ZBytes`` exports no buffer in zenoh-python 1.x) and handed to
        the sink, which copies it into the loan once; the counter and the context's deliver
        are bound here, not looked up per sample."""
        count = self.counts.shared_cell(key, "in").add
        ctx = self._ctx  # set by open before the session declares (None: counted as closed)
        deliver = ctx.deliver if ctx is not None else functools.partial(self._push, key)

        def on_sample(sample: zenoh.Sample) -> None:
            count()
            deliver(channel, sample.payload.to_bytes())

        return on_sample

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        """Put ``frame`` (the raw payload) on the channel's key expression (outbound thread).

        Raises LinkDownError while the session is Down (or being reopened) or a put fails,
        NoPeerError while no subscriber matches the key (nothing is put), ConnectorError for
        an unknown channel. Each raise is counted once here (``KEY|dropped:CAUSE``)."""
        entry = self._pubs.get(descriptor.name)
        if entry is None:
            if self._state == "open" and any(d.name == descriptor.name for d in self._descriptors
                                             if d.direction is Direction.OUTBOUND):
                self.counts.add(descriptor.routing.address, "dropped:link_down")
                raise LinkDownError(f"zenoh {self.name!r}: session is being reopened")
            raise ConnectorError(f"zenoh {self.name!r}: {descriptor.name!r} is not an open "
                                 "outbound channel")
        key, pub, out, matching = entry
        if self._machine.state is _DOWN:
            self.counts.add(key, "dropped:link_down")
            raise LinkDownError(f"zenoh {self.name!r}: no peer (session Down)")
        if not matching.matched:
            self.counts.add(key, "dropped:no_peer")
            raise NoPeerError(f"zenoh {self.name!r}: no subscriber matches {key!r} "
                              f"({self.zsession.peer_count()} peer(s))")
        try:
            pub.put(bytes(frame))
        except Exception as exc:
            self.counts.add(key, "dropped:put_error")
            raise LinkDownError(f"zenoh {self.name!r}: put on {key!r} failed: {exc}") from exc
        out.n += 1

    def stats(self) -> Mapping[str, int]:
        """:meth:`_Base.stats` plus ``KEY|matching`` per outbound key (1 while a subscriber
        matches it, else 0; a level, not a count)."""
        counts = dict(super().stats())
        for key, _, _, matching in list(self._pubs.values()):
            counts[f"{key}|matching"] = int(matching.matched)
        return FrozenMap(counts)
