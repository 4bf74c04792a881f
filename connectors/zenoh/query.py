"""Zenoh query/reply (ARCH_0043 of the seed) on top of the generic dispatcher.

Channels: a query endpoint ``NAME`` is a pair of descriptors (:func:`query_channels`), both
routed to the same key expression with the routing option ``role``:

=============  ====================================  =====================================
side           app -> gateway (OUTBOUND)             gateway -> app (INBOUND)
=============  ====================================  =====================================
querier        ``NAME/query.out``: queries           ``NAME/reply.in``: reply frames
queryable      ``NAME/reply.out``: reply frames      ``NAME/query.in``: queries
=============  ====================================  =====================================

(ARCH_0043 names them ``{name}.query.out`` ...; descriptor names cannot hold dots, so the
separator is ``/``.) Every frame is a taktora envelope whose ``correlation_id`` is the QueryId
and whose ``kind`` says what it is: QUERY (4), REPLY_DATA (1), REPLY_END (2), REPLY_TIMEOUT (3)
- the same values as the seed's payload markers 0x01/0x02/0x03, carried in the header so the
payload stays the application's bytes. On the zenoh wire only the payloads travel: a query is
a plain ``get`` with the query payload, a reply a plain ``reply``, so plain zenoh programs
interoperate. This connector therefore carries envelopes (``carries_envelope = True``): it
strips them itself on the way out and builds them on the way in, keeping kind and QueryId.

Querier side: the app mints a QueryId (:class:`ZenohQuerier`) and writes the query; the
gateway issues ``session.get`` and forwards each reply as REPLY_DATA, then exactly one
REPLY_END (zenoh finished the query) or REPLY_TIMEOUT (the query's ``timeout_s`` passed first,
or the session was not open). After that the query is *sealed*: replies still arriving within
``late_grace_s`` are dropped and counted as ``KEY|dropped:late_reply``.

Queryable side: the gateway declares a queryable; each zenoh query gets a fresh QueryId and is
forwarded as a QUERY frame; the app answers with REPLY_DATA frames and one REPLY_END
(:class:`ZenohQueryable`), which the gateway turns into ``query.reply`` and the end of the
query. A query the app leaves open longer than ``timeout_s + late_grace_s`` is ended by the
gateway (``KEY|dropped:expired``); replies to an unknown or ended QueryId are counted as
``KEY|dropped:late_reply`` and refused (ConnectorError, the dispatcher counts ``send_error``).

Threads: ``send`` on the dispatcher's outbound thread (``get`` and ``reply`` do not block);
reply, drop and query callbacks on zenoh's threads build a frame and publish it into iceoryx2
right there (``ctx.deliver``); the deadlines are checked by ``poll`` on the dispatcher's reader
thread, which wakes at the next deadline at the latest (``poll`` returns no frames: it is this
connector's clock). A frame the gateway's sink cannot publish is counted there by cause.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import attrs
import zenoh
from taktora.connectors.channel import ChannelReader, ChannelWriter, Received
from taktora.connectors.codecs import codec_id_for
from taktora.connectors.connector import Inbound
from taktora.connectors.context import Frame
from taktora.connectors.errors import ConnectorError, LinkDownError
from taktora.connectors.model import ChannelDescriptor, ChannelPair, Direction, QoS, Routing
from taktora.connectors.zenoh.config import ZenohConfig
from taktora.connectors.zenoh.connector import _Base, key_expr
from taktora.connectors.zenoh.session import ZenohSession
from taktora.transport import envelope
from taktora.transport.envelope import FrameKind
from taktora.transport.errors import EnvelopeError
from taktora.transport.node import Node

log = logging.getLogger(__name__)

QUERIER = "querier"
QUERYABLE = "queryable"


QueryChannels = ChannelPair
"""The descriptor pair of one endpoint (:class:`~taktora.connectors.model.ChannelPair`)."""


def query_channels(name: str, key: str, *, side: str = QUERIER, timeout_s: float | None = None,
                   max_payload: int = 1024, buffer_size: int = 64,
                   qos: QoS | None = None) -> QueryChannels:
    """The descriptor pair of query endpoint ``name`` on key expression ``key``.

    ``side`` is ``"querier"`` (the app sends queries) or ``"queryable"`` (the app answers).
    The channels use the ``raw`` codec: end and timeout frames have an empty payload, which
    only raw decodes; applications encode their queries and replies themselves.
    ``timeout_s`` overrides ``ZenohConfig.query_timeout_s``. Raises ConnectorError for an
    unknown side (DescriptorError for a bad name or sizes)."""
    if side not in (QUERIER, QUERYABLE):
        raise ConnectorError(f"query_channels({name!r}): side {side!r} must be "
                             f"{QUERIER!r} or {QUERYABLE!r}")
    options: dict[str, str | float] = {"role": side}
    if timeout_s is not None:
        options["timeout_s"] = float(timeout_s)
    routing = Routing("zenoh", key, options)

    def make(suffix: str, direction: Direction) -> ChannelDescriptor:
        return ChannelDescriptor(f"{name}/{suffix}", direction, codec="raw",
                                 max_payload=max_payload, buffer_size=buffer_size,
                                 qos=qos or QoS(), routing=routing)

    if side == QUERIER:
        return QueryChannels(side, make("query", Direction.OUTBOUND), make("reply", Direction.INBOUND))
    return QueryChannels(side, make("reply", Direction.OUTBOUND), make("query", Direction.INBOUND))


def _role(d: ChannelDescriptor) -> str:
    role = d.routing.option("role", "")
    if role not in (QUERIER, QUERYABLE):
        raise ConnectorError(f"channel {d.name!r}: a query channel needs routing option role="
                             f"{QUERIER!r} or {QUERYABLE!r}, got {role!r} (use query_channels)")
    return str(role)


@attrs.define
class _Pending:
    """One query this gateway issued (querier side)."""

    key: str
    channel: str
    deadline: float
    sealed: bool = False


@attrs.define
class _Served:
    """One zenoh query delivered to the app (queryable side)."""

    key: str
    query: Any
    deadline: float


class ZenohQueryConnector(_Base):
    """Query/reply for the dispatcher (see the module doc); shares a :class:`ZenohSession`
    with a :class:`~taktora.connectors.zenoh.connector.ZenohConnector` or owns one."""

    carries_envelope = True

    def __init__(self, session: ZenohSession | ZenohConfig | None = None, *,
                 name: str = "zenoh-query") -> None:
        super().__init__(session, name)
        self._qlock = threading.Lock()
        self._clock = threading.Event()  # never set: poll() sleeps on it with a timeout
        self._pending: dict[int, _Pending] = {}
        self._served: dict[int, _Served] = {}
        self._ids = itertools.count(1)
        self._seq: dict[str, int] = {}
        self._inbound_of: dict[str, ChannelDescriptor] = {}  # key+role -> INBOUND descriptor
        self._queryables: list[Any] = []
        self._session: zenoh.Session | None = None

    def _check(self, descriptors: Sequence[ChannelDescriptor]) -> None:
        pairs: dict[tuple[str, str], list[Direction]] = {}
        for d in descriptors:
            key = key_expr(d)
            pairs.setdefault((key, _role(d)), []).append(d.direction)
        for (key, role), directions in pairs.items():
            if sorted(x.value for x in directions) != ["inbound", "outbound"]:
                raise ConnectorError(f"zenoh {self.name!r}: {role} endpoint {key!r} needs exactly "
                                     "one OUTBOUND and one INBOUND channel (use query_channels)")
        self._inbound_of = {f"{key_expr(d)}|{_role(d)}": d for d in descriptors
                            if d.direction is Direction.INBOUND}

    def _timeout(self, d: ChannelDescriptor) -> float:
        return float(d.routing.option("timeout_s", self.zsession.config.query_timeout_s))

    # -- declarations (the session's opening thread) -------------------------------------------
    def declare(self, session: zenoh.Session) -> None:
        """Declare one queryable per queryable endpoint."""
        queryables = []
        for d in self._descriptors:
            if _role(d) == QUERYABLE and d.direction is Direction.INBOUND:
                key = key_expr(d)
                handler = zenoh.handlers.Callback(self._on_query(d, key), indirect=False)
                queryables.append(session.declare_queryable(key, handler, complete=False))
        self._queryables = queryables
        self._session = session

    def undeclare(self) -> None:
        self._session, queryables, self._queryables = None, self._queryables, []
        for q in queryables:
            try:
                q.undeclare()
            except Exception as exc:
                log.debug("zenoh %r: undeclare failed: %s", self.name, str(exc))
        with self._qlock:
            served, self._served = self._served, {}
        for entry in served.values():
            self.counts.add(entry.key, "dropped:session_closed")
            self._end(entry.query)

    # -- frames to the app (any thread) --------------------------------------------------------
    def _emit(self, d: ChannelDescriptor, key: str, qid: int, kind: int, payload: bytes) -> bool:
        """Queue one envelope for the INBOUND channel ``d``; False (and counted) when full.
        Called with ``_qlock`` held, so each channel's sequence follows queue order."""
        seq = self._seq.get(d.name, 0) + 1
        frame = envelope.encode(payload, codec_id=codec_id_for(d.codec), sequence=seq,
                                correlation_id=qid, kind=kind, with_crc=d.crc)
        if not self._push(key, d.name, frame):
            return False
        self._seq[d.name] = seq
        self.counts.add(key, "in")
        return True

    # -- querier side --------------------------------------------------------------------------
    def _get(self, d: ChannelDescriptor, key: str, qid: int, payload: bytes) -> None:
        reply_channel = self._inbound_of[f"{key}|{QUERIER}"]
        timeout = self._timeout(d)
        with self._qlock:
            if qid in self._pending:
                self.counts.add(key, "dropped:duplicate_query")
                raise ConnectorError(f"zenoh {self.name!r}: QueryId {qid} is already in flight")
            session = self._session
            if session is None:
                self._emit(reply_channel, key, qid, FrameKind.REPLY_TIMEOUT, b"")
                raise LinkDownError(f"zenoh {self.name!r}: session is being reopened")
            self._pending[qid] = _Pending(key, reply_channel.name, time.monotonic() + timeout)
        handler = zenoh.handlers.Callback(self._on_reply(reply_channel, key, qid),
                                          self._on_done(reply_channel, key, qid), indirect=False)
        try:
            session.get(key, handler, payload=payload,
                        timeout=timeout + self.zsession.config.late_grace_s,
                        consolidation=zenoh.ConsolidationMode.NONE)
        except Exception as exc:
            with self._qlock:
                self._pending.pop(qid, None)
                self._emit(reply_channel, key, qid, FrameKind.REPLY_TIMEOUT, b"")
            raise LinkDownError(f"zenoh {self.name!r}: get on {key!r} failed: {exc}") from exc
        self.counts.add(key, "out")

    def _on_reply(self, d: ChannelDescriptor, key: str, qid: int) -> Any:
        def on_reply(reply: zenoh.Reply) -> None:
            ok = reply.ok
            with self._qlock:
                pending = self._pending.get(qid)
                if pending is None or pending.sealed:
                    self.counts.add(key, "dropped:late_reply")
                    return
                if ok is not None:
                    self._emit(d, key, qid, FrameKind.REPLY_DATA, ok.payload.to_bytes())
                    return
                err = reply.err
                text = err.payload.to_bytes() if err is not None else b""
                if text == b"Timeout":  # zenoh's own timeout came first
                    pending.sealed = True
                    self._emit(d, key, qid, FrameKind.REPLY_TIMEOUT, b"")
                else:
                    self.counts.add(key, "dropped:reply_error")
                    log.warning("zenoh %r: query %d on %r got an error reply: %r", self.name,
                                qid, key, text[:200])

        return on_reply

    def _on_done(self, d: ChannelDescriptor, key: str, qid: int) -> Any:
        def on_done() -> None:
            with self._qlock:
                pending = self._pending.pop(qid, None)
                if pending is not None and not pending.sealed:
                    self._emit(d, key, qid, FrameKind.REPLY_END, b"")

        return on_done

    def _expire(self, now: float) -> float | None:
        """Seal overdue queries (timeout frame) and end overdue served queries; return the
        next deadline (inbound thread)."""
        nearest: float | None = None
        ended: list[Any] = []
        with self._qlock:
            for qid, pending in self._pending.items():
                if pending.sealed:
                    continue
                if now >= pending.deadline:
                    pending.sealed = True
                    d = self._inbound_by_name(pending.channel)
                    self._emit(d, pending.key, qid, FrameKind.REPLY_TIMEOUT, b"")
                elif nearest is None or pending.deadline < nearest:
                    nearest = pending.deadline
            for qid in [q for q, s in self._served.items() if now >= s.deadline]:
                entry = self._served.pop(qid)
                self.counts.add(entry.key, "dropped:expired")
                ended.append(entry.query)
        for query in ended:
            self._end(query)
        return nearest

    def _inbound_by_name(self, name: str) -> ChannelDescriptor:
        return next(d for d in self._inbound_of.values() if d.name == name)

    # -- queryable side ------------------------------------------------------------------------
    def _on_query(self, d: ChannelDescriptor, key: str) -> Any:
        limit = self._timeout(d) + self.zsession.config.late_grace_s

        def on_query(query: zenoh.Query) -> None:
            payload = query.payload.to_bytes() if query.payload is not None else b""
            qid = next(self._ids)
            with self._qlock:
                self._served[qid] = _Served(key, query, time.monotonic() + limit)
                if not self._emit(d, key, qid, FrameKind.QUERY, payload):
                    self._served.pop(qid, None)
                    ended = True
                else:
                    ended = False
            if ended:
                self._end(query)

        return on_query

    def _answer(self, key: str, qid: int, kind: int, payload: memoryview) -> None:
        with self._qlock:
            entry = self._served.get(qid)
            if entry is not None and kind != FrameKind.REPLY_DATA:
                del self._served[qid]
        if entry is None:
            self.counts.add(key, "dropped:late_reply")
            raise ConnectorError(f"zenoh {self.name!r}: reply for unknown or ended QueryId {qid}")
        if kind == FrameKind.REPLY_DATA:
            try:
                entry.query.reply(entry.query.key_expr, bytes(payload))
            except Exception as exc:
                self.counts.add(key, "dropped:reply_error")
                raise LinkDownError(f"zenoh {self.name!r}: reply to {qid} failed: {exc}") from exc
        elif kind in (FrameKind.REPLY_END, FrameKind.REPLY_TIMEOUT):
            self._end(entry.query)
        else:
            self.counts.add(key, "dropped:bad_kind")
            raise ConnectorError(f"zenoh {self.name!r}: frame kind {kind} on a reply channel")
        self.counts.add(key, "out")

    def _end(self, query: Any) -> None:
        try:
            query.drop()
        except Exception as exc:
            log.debug("zenoh %r: ending a query failed: %s", self.name, str(exc))

    # -- the dispatcher's calls ----------------------------------------------------------------
    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        """A query (querier side) or a reply frame (queryable side) from the app (outbound
        thread). Raises ConnectorError for a bad frame or QueryId, LinkDownError when zenoh
        refuses."""
        key = key_expr(descriptor)
        try:
            header, payload = envelope.decode(frame, verify_crc=False)
        except EnvelopeError as exc:
            self.counts.add(key, "dropped:malformed")
            raise ConnectorError(f"zenoh {self.name!r}: {exc}") from exc
        qid = header.correlation_id
        if qid == 0:
            self.counts.add(key, "dropped:no_query_id")
            raise ConnectorError(f"zenoh {self.name!r}: frame on {descriptor.name!r} has no "
                                 "QueryId (envelope correlation_id 0)")
        if _role(descriptor) == QUERIER:
            if header.kind not in (FrameKind.QUERY, FrameKind.DATA):
                self.counts.add(key, "dropped:bad_kind")
                raise ConnectorError(f"zenoh {self.name!r}: frame kind {header.kind} on a "
                                     "query channel")
            self._get(descriptor, key, qid, bytes(payload))
        else:
            self._answer(key, qid, header.kind, payload)

    def poll(self, timeout: float) -> Inbound | None:
        """The query clock (the dispatcher's reader thread): seals overdue queries, then
        sleeps until the next deadline or ``timeout``. Frames never come from here: zenoh's
        callbacks publish them straight into iceoryx2. Returns None."""
        now = time.monotonic()
        nearest = self._expire(now)
        wait = timeout if nearest is None else max(0.0, min(timeout, nearest - now))
        if wait > 0:
            self._clock.wait(wait)
        return None

    def in_flight(self) -> int:
        """Queries issued and not yet finished by zenoh (sealed ones included)."""
        with self._qlock:
            return len(self._pending)


# --- the application side -------------------------------------------------------------------
def _tag() -> int:
    return (int.from_bytes(os.urandom(3), "little") << 32) | 0


class ZenohQuerier:
    """The app's end of a querier endpoint: :meth:`query` mints a QueryId (a random 24-bit tag
    of this querier in bits 32.. and a counter below) and sends; replies come from :meth:`recv`
    (or :meth:`collect` for one query). One thread at a time; blocks only in recv/collect."""

    def __init__(self, node: Node, channels: QueryChannels) -> None:
        if channels.side != QUERIER:
            raise ConnectorError("ZenohQuerier needs query_channels(..., side='querier')")
        self.writer: ChannelWriter[bytes] = ChannelWriter(node, channels.out)
        self.reader: ChannelReader[bytes] = ChannelReader(node, channels.inbound)
        self._base = _tag()
        self._ids = itertools.count(1)
        self._early: list[Received[bytes]] = []

    def query(self, value: bytes) -> int:
        """Send a query; returns its QueryId (never 0)."""
        qid = self._base | next(self._ids)
        self.writer.send(value, correlation_id=qid, kind=FrameKind.QUERY)
        return qid

    def recv(self, timeout: float | None = None) -> Received[bytes] | None:
        """The next reply frame of any query (header.kind and header.correlation_id say which)."""
        if self._early:
            return self._early.pop(0)
        return self.reader.recv(timeout)

    def collect(self, qid: int, timeout: float = 10.0) -> tuple[list[bytes], FrameKind | None]:
        """The replies of query ``qid`` and how it ended (REPLY_END / REPLY_TIMEOUT; None if
        nothing ended it within ``timeout``). Frames of other queries are kept for recv."""
        replies: list[bytes] = []
        deadline = time.monotonic() + timeout
        others: list[Received[bytes]] = []
        end: FrameKind | None = None
        pool = self._early
        self._early = []
        while end is None:
            if pool:
                got: Received[bytes] | None = pool.pop(0)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                got = self.reader.recv(min(left, 0.2))
            if got is None:
                continue
            if got.header.correlation_id != qid:
                others.append(got)
            elif got.header.kind == FrameKind.REPLY_DATA:
                replies.append(got.value)
            else:
                end = FrameKind(got.header.kind)
        self._early = pool + others
        return replies, end

    def close(self) -> None:
        self.writer.close()
        self.reader.close()


class ZenohQueryable:
    """The app's end of a queryable endpoint: :meth:`recv` gives ``(QueryId, query)``;
    :meth:`reply` sends one reply, :meth:`end` finishes the query. One thread at a time."""

    def __init__(self, node: Node, channels: QueryChannels) -> None:
        if channels.side != QUERYABLE:
            raise ConnectorError("ZenohQueryable needs query_channels(..., side='queryable')")
        self.reader: ChannelReader[bytes] = ChannelReader(node, channels.inbound)
        self.writer: ChannelWriter[bytes] = ChannelWriter(node, channels.out)

    def recv(self, timeout: float | None = None) -> tuple[int, bytes] | None:
        got = self.reader.recv(timeout)
        if got is None:
            return None
        return got.header.correlation_id, got.value

    def reply(self, qid: int, value: bytes) -> None:
        self.writer.send(value, correlation_id=qid, kind=FrameKind.REPLY_DATA)

    def end(self, qid: int) -> None:
        self.writer.send(b"", correlation_id=qid, kind=FrameKind.REPLY_END)

    def close(self) -> None:
        self.writer.close()
        self.reader.close()
