"""The gateway's data plane: iceoryx2 ports, the outbound thread, the inbound sink.

Data never passes through an actor mailbox. A gateway actor owns a :class:`Dispatcher` and
calls it (``connect``, ``disconnect``, ``pause``, ``resume``, ``stats``); the payload bytes move
on the dispatcher's and the protocol's own threads:

- **ports** (:meth:`Dispatcher.open_ports`): one subscriber per OUTBOUND channel
  (``{name}.out``) and one publisher per INBOUND channel (``{name}.in``, in the
  :class:`~taktora.connectors.gateway.sink.InboundSink`). They live as long as the
  dispatcher: a reconnect reopens only the protocol side.
- **outbound thread** (``<name>-out``, runs from ``open_ports`` to ``close``): blocks in an
  iceoryx2 WaitSet on the listeners of every outbound subscriber (and a stop eventfd); per
  wake it drains the subscribers whose listener woke (everything available on each), checks
  each envelope's header (sanity only, no CRC: the bytes never left shared memory) and hands
  the frame to ``connector.send``: for a connector that carries envelopes, one private copy of
  the envelope renumbered with the channel's *link sequence* (the n-th frame this channel
  forwarded carries n, so the far gateway sees a gap only for frames lost on the link - never
  for frames this gateway dropped and counted); otherwise the payload only, as a read-only
  view of shared memory (no copy, nothing re-encoded). While no connector is connected (the
  gateway is Down or reconnecting) each frame is counted as dropped with cause ``down``.
- **inbound**: the connector delivers through the :class:`ConnectorContext` it got in
  ``open`` (its own threads publish into iceoryx2); only for a pull connector (one that
  implements ``poll``) does the dispatcher run a reader thread (``<name>-in``) per connection.
- **health**: the connector reports through the context; :meth:`Dispatcher.link` is the last
  report and ``on_report`` (the gateway's) hears every one. A dispatcher thread that dies
  reports ``Down`` itself.

Pause: a paused direction keeps draining its source and counts every frame ``paused``.
Counters are per channel (:class:`~taktora.connectors.gateway.counters.Counts`), each frame
counted once, forwarded or dropped by one cause: the loss equation of spec/loss.rst.
Disconnecting never waits longer than its timeout for a send in progress: the connection is
taken away and the connector closed under it (closing its socket ends a stuck send).

Failures never stop a thread: a send that raises is counted (``link_down`` for
:class:`LinkDownError` or its ``cause``, ``send_error`` otherwise), a poll that raises is counted in
``receive_errors`` and retried after ``poll_s``; an unexpected exception is logged with its
traceback and counted as ``internal_error``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import iceoryx2 as iox
from taktora.actors.models.health import HealthState
from taktora.connectors.codecs import CodecRegistry
from taktora.connectors.connector import Connector
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.errors import ConnectorError, LinkDownError
from taktora.connectors.gateway.counters import (
    OUT,
    Counts,
    DispatcherStats,
    LocalCounters,
    Storage,
    counter_names,
)
from taktora.connectors.gateway.outbound import OutboundChannel
from taktora.connectors.gateway.reports import StopReport
from taktora.connectors.gateway.sink import InboundSink
from taktora.connectors.model import ChannelDescriptor, Direction, FrozenMap
from taktora.transport import envelope
from taktora.transport.envelope import EnvelopeCounters
from taktora.transport.errors import EnvelopeError
from taktora.transport.node import Node

log = logging.getLogger(__name__)

# indices of the envelope.split() header fields read per frame; the link sequence's writer
_HEADER_LEN, _PAYLOAD_LEN, _SEQUENCE = 3, 7, 8
_set_sequence, _SEQ_AT = struct.Struct("<Q").pack_into, envelope.SEQUENCE_OFFSET

OUTBOUND_WAKE_S = 0.5
"""Longest the outbound thread sleeps without a wake-up (a safety net for a lost wake-up)."""

OnReport = Callable[[HealthState, str], None]


class Dispatcher:
    """Moves frames between iceoryx2 and a connector (see the module docstring).

    ``node_prefix``: the iceoryx2 prefix of the application it serves (None: the
    ``TAKTORA_IOX_PREFIX`` environment variable). ``connector``: the one :meth:`start` connects
    (a gateway passes its connector to :meth:`connect` instead). ``registry``: resolves codec
    ids for payload-only connectors. ``on_report``: called with every health report of the
    connector or of a dying dispatcher thread, on the reporting thread (must not block).
    ``counters``: the counter block to count in (a gateway's shared one, which outlives its
    process and carries the link and writer sequences on to the next incarnation; default:
    this process's memory).

    Lifecycle (owner's thread): :meth:`open_ports` once, then :meth:`connect` /
    :meth:`disconnect` any number of times, then :meth:`close`; :meth:`start` / :meth:`stop`
    do ports and connection together. :meth:`pause`, :meth:`resume`, :meth:`stats` and
    :attr:`link` from any thread. Not restartable after :meth:`close`.
    """

    def __init__(self, node_prefix: str | None, connector: Connector | None,
                 descriptors: Sequence[ChannelDescriptor], *, name: str = "dispatcher",
                 poll_s: float = 0.05, registry: CodecRegistry | None = None,
                 on_report: OnReport | None = None, counters: Storage | None = None) -> None:
        names = [(d.name, d.direction) for d in descriptors]
        dupes = sorted({n for n, d in names if names.count((n, d)) > 1})
        if dupes:  # one name may serve both directions (services {name}.out and {name}.in)
            raise ConnectorError(f"dispatcher {name!r}: channel names must be unique per "
                                 f"direction, {dupes} appear more than once")
        if not poll_s > 0:
            raise ConnectorError(f"dispatcher {name!r}: poll_s must be > 0, got {poll_s}")
        self.name = name
        self.node_prefix = node_prefix
        self.connector = connector
        self.descriptors = tuple(descriptors)
        self.poll_s = poll_s
        self.registry = registry
        self.on_report = on_report
        self.link = HealthState.CONNECTING
        """The connector's last reported health (Down while disconnected)."""
        self.link_reason = ""
        """The reason that came with :attr:`link`."""
        self._outbound = [d for d in descriptors if d.direction is Direction.OUTBOUND]
        self._inbound = [d for d in descriptors if d.direction is Direction.INBOUND]
        self._storage: Storage = counters or LocalCounters(counter_names(
            [d.name for d in self._outbound], [d.name for d in self._inbound]))
        self._out = Counts(OUT, [d.name for d in self._outbound], self._storage)
        self._out_malformed = EnvelopeCounters()
        self._receive_errors = 0
        self._out_paused = False
        self._in_paused = False
        self._stop = threading.Event()
        self._stop_fd = -1
        self._node: Node | None = None
        self._subs: list[OutboundChannel] = []
        self._sink: InboundSink | None = None
        self._out_thread: threading.Thread | None = None
        self._poll_thread: threading.Thread | None = None
        self._poll_stop = threading.Event()
        self._send_lock = threading.Lock()
        self._live: Connector | None = None  # the connected connector; None while down
        self._ctx: ConnectorContext | None = None
        self._stale_readers: list[threading.Thread] = []  # readers that outlived a disconnect
        self.connection = 0
        """Number of the current (or last) connection; reports of others are ignored."""
        self._state = "new"

    # -- lifecycle ---------------------------------------------------------------------------
    def open_ports(self) -> Dispatcher:
        """Open the iceoryx2 ports and start the outbound thread (caller's thread). Raises
        ConnectorError if already opened, the transport's errors if a port cannot be opened;
        on failure everything opened so far is closed again."""
        if self._state != "new":
            raise ConnectorError(f"dispatcher {self.name!r}: ports already opened ({self._state})")
        self._state = "opening"
        try:
            self._node = Node(self.name, prefix=self.node_prefix)
            self._subs = [OutboundChannel(d, self._node.subscriber(d.channel_spec()),
                                    self._out.channel(d.name), self._storage)
                          for d in self._outbound]
            self._sink = InboundSink(self.name, self._node, self._inbound,
                                     registry=self.registry, storage=self._storage)
            self._stop_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        except BaseException:
            self._release()
            self._state = "failed"
            raise
        if self._outbound:
            self._out_thread = threading.Thread(target=self._run_outbound,
                                                name=f"{self.name}-out", daemon=True)
            self._out_thread.start()
        self._state = "open"
        return self

    def connect(self, connector: Connector | None = None) -> None:
        """Open ``connector`` (default: the one given at construction) on a fresh context and
        start forwarding to it; starts the reader thread of a pull connector. Blocks while the
        connector opens; raises what its ``open`` raises (nothing stays connected then)."""
        conn = connector or self.connector
        if conn is None:
            raise ConnectorError(f"dispatcher {self.name!r}: no connector to connect")
        if self._state != "open":
            raise ConnectorError(f"dispatcher {self.name!r}: connect needs open ports "
                                 f"({self._state})")
        if self._live is not None:
            raise ConnectorError(f"dispatcher {self.name!r}: already connected")
        sink = self._sink
        assert sink is not None
        self.connector = conn
        sink.use(conn)  # whole envelopes or payloads, per channel
        for out in self._subs:
            out.envelope = conn.envelope_on(out.descriptor)
        self.connection += 1
        number = self.connection
        ctx = ConnectorContext(self.name, self.descriptors, deliver=sink.deliver,
                               report=lambda state, reason: self._report(number, state, reason),
                               log=logging.getLogger(f"taktora.connectors.gateway.{self.name}"))
        ctx._deliver = sink.context_deliver(ctx)  # a revoked context counts 'down'
        self.link = HealthState.CONNECTING
        self._ctx = ctx
        conn.bind(ctx)
        try:
            conn.open(ctx)
        except BaseException:
            ctx.revoke()
            self._close_connector(conn)  # whatever open left half-done
            self.link = HealthState.DOWN
            raise
        with self._send_lock:
            self._live = conn
        if conn.pulls() and self._inbound:
            self._poll_stop = threading.Event()  # per connection: an old reader keeps its own
            self._poll_thread = threading.Thread(target=self._run_poll,
                                                 args=(conn, self._poll_stop, number),
                                                 name=f"{self.name}-in", daemon=True)
            self._poll_thread.start()
        log.info("dispatcher %r connected %r: %d outbound, %d inbound channel(s)", self.name,
                 conn, len(self._outbound), len(self._inbound))

    def disconnect(self, timeout: float = 5.0) -> StopReport:
        """Stop forwarding to the connector (outbound frames count as ``down`` from now on),
        stop its reader thread (bounded by ``timeout``) and close it. Idempotent."""
        began = time.monotonic()
        conn = self._detach(timeout)
        stopped, stuck = self._join([self._poll_thread], began + timeout)
        if self._poll_thread is not None:
            if self._poll_thread.is_alive():  # kept: close() still waits for it
                self._stale_readers.append(self._poll_thread)
            self._poll_thread = None
        self._close_connector(conn)
        return StopReport(stopped, stuck, time.monotonic() - began)

    def close(self, timeout: float = 5.0) -> StopReport:
        """Disconnect, stop the outbound thread (the whole call bounded by ``timeout``), then
        release the ports. Idempotent. A thread that did not stop in time is named in the
        report; its ports stay open until a later ``close()`` finds every thread gone."""
        began = time.monotonic()
        if self._state in ("new", "closed", "failed"):
            self._state = "closed" if self._state == "new" else self._state
            return StopReport((), (), 0.0)
        conn = self._detach(timeout)
        self._stop.set()
        with contextlib.suppress(OSError):
            os.eventfd_write(self._stop_fd, 1)
        stopped, stuck = self._join([self._out_thread, self._poll_thread, *self._stale_readers],
                                    began + timeout)
        self._close_connector(conn)  # may also unblock a reader stuck in the protocol
        self._stale_readers = [t for t in self._stale_readers if t.is_alive()]
        if not stuck:  # frames still queued for the outbound thread: counted ``down``
            for out in self._subs:
                out.count_leftovers(self._out)
        if stuck:
            log.error("dispatcher %r: %s did not stop within %.3f s", self.name, list(stuck),
                      timeout)
            self._state = "closing"  # calling close() again finishes the job
        else:
            self._release()
            self._state = "closed"
        return StopReport(stopped, stuck, time.monotonic() - began)

    def _detach(self, timeout: float = -1) -> Connector | None:
        """End the connection: its context is revoked (late deliveries count as ``down``,
        late reports are ignored), no more frames go to the connector, its reader stops. A
        send still in progress after ``timeout`` seconds (-1: wait) is left to finish on its
        own: the connection is taken away without the send lock (the outbound thread reads it
        afresh for each frame)."""
        if self._ctx is not None:
            self._ctx.revoke()
        locked = self._send_lock.acquire(timeout=timeout)
        try:
            conn, self._live = self._live, None
        finally:
            if locked:
                self._send_lock.release()
            else:
                log.warning("dispatcher %r: a send did not finish within %.3f s: closing the "
                            "connector under it", self.name, timeout)
        self._poll_stop.set()
        self.link = HealthState.DOWN
        return conn

    def _join(self, threads: list[threading.Thread | None], deadline: float
              ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        stopped: list[str] = []
        stuck: list[str] = []
        for thread in threads:
            if thread is None:
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            (stuck if thread.is_alive() else stopped).append(thread.name)
        return tuple(stopped), tuple(stuck)

    def _close_connector(self, conn: Connector | None) -> None:
        if conn is None:
            return
        try:
            conn.close()
        except Exception:
            log.exception("dispatcher %r: closing %r failed", self.name, conn)

    def start(self) -> Dispatcher:
        """:meth:`open_ports` and :meth:`connect` the constructor's connector (on a failure
        to connect the ports are closed again)."""
        self.open_ports()
        try:
            self.connect()
        except BaseException:
            self.close(timeout=1.0)
            raise
        return self

    def stop(self, timeout: float = 5.0) -> StopReport:
        """:meth:`close` (disconnect, threads, ports)."""
        return self.close(timeout)

    def _release(self) -> None:
        if self._sink is not None:
            self._sink.close()  # kept (closed): its counters stay readable after close
        if self._node is not None:
            self._node.close()
            self._node = None
        if self._stop_fd >= 0:
            os.close(self._stop_fd)
            self._stop_fd = -1

    def _report(self, connection: int, state: HealthState, reason: str) -> None:
        ctx = self._ctx
        if connection != self.connection or ctx is None or ctx.revoked:
            return  # a report of an ended connection
        self.link_reason = reason
        self.link = state
        if self.on_report is not None:
            try:
                self.on_report(state, reason)
            except Exception:
                log.exception("dispatcher %r: health report callback failed", self.name)

    def __enter__(self) -> Dispatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control (any thread) ----------------------------------------------------------------
    def pause(self, *, outbound: bool = True, inbound: bool = True) -> None:
        """Stop forwarding in the given directions; frames are drained and counted as
        ``paused`` drops until :meth:`resume`."""
        if outbound:
            self._out_paused = True
        if inbound:
            self._in_paused = True
            if self._sink is not None:
                self._sink.paused = True

    def resume(self, *, outbound: bool = True, inbound: bool = True) -> None:
        """Forward again in the given directions."""
        if outbound:
            self._out_paused = False
        if inbound:
            self._in_paused = False
            if self._sink is not None:
                self._sink.paused = False

    @property
    def paused(self) -> bool:
        """True when either direction is paused."""
        return self._out_paused or self._in_paused

    @property
    def connected(self) -> bool:
        """True while a connector is connected."""
        return self._live is not None

    def outbound_alive(self) -> bool:
        """True unless the outbound thread (which lives as long as the ports) has died."""
        return self._out_thread is None or self._out_thread.is_alive()

    def threads_alive(self) -> bool:
        """True when every thread that should run runs (outbound while the ports are open,
        the reader while a pull connector is connected)."""
        if self._state != "open":
            return False
        if self._out_thread is not None and not self._out_thread.is_alive():
            return False
        return not (self._live is not None and self._live.pulls() and self._inbound
                    and (self._poll_thread is None or not self._poll_thread.is_alive()))

    def stats(self, *, total: bool = False) -> DispatcherStats:
        """A snapshot of the counters of this dispatcher (or, ``total``, of every dispatcher
        that counted in the same counter block: the gateway's earlier incarnations). Any
        thread."""
        for out in self._subs:  # the transport queues' overflow, copied into the block
            out.copy_overflow()
        out_fwd, out_drop = self._out.snapshot(total=total)
        channels = self._out.per_channel(total=total)
        sink = self._sink
        if sink is not None:
            in_fwd, in_drop = sink.counts.snapshot(total=total)
            gaps, lost = sink.counts.gaps(total=total)
            malformed = {k: v for k, v in sink.malformed.snapshot().items() if v}
            channels.update(sink.counts.per_channel(total=total))
        else:
            in_fwd, in_drop, gaps, lost, malformed = 0, {}, 0, 0, {}
        return DispatcherStats(
            outbound_forwarded=out_fwd, outbound_dropped=FrozenMap(out_drop),
            inbound_forwarded=in_fwd, inbound_dropped=FrozenMap(in_drop),
            inbound_malformed=FrozenMap(malformed),
            inbound_gaps=gaps, inbound_lost=lost, receive_errors=self._receive_errors,
            outbound_paused=self._out_paused, inbound_paused=self._in_paused,
            running=self.threads_alive(), channels=FrozenMap(channels))

    # -- outbound thread ---------------------------------------------------------------------
    def _run_outbound(self) -> None:
        ws: Any = (iox.WaitSetBuilder.new().signal_handling_mode(iox.SignalHandlingMode.Disabled)
                   .create(iox.ServiceType.Ipc))
        stop_fd = iox.FileDescriptor.non_owning_new(self._stop_fd)
        guards = []
        table: dict[Any, OutboundChannel] = {}
        for out in self._subs:
            guard = ws.attach_notification(out.sub.listener)
            guards.append(guard)
            table[iox.WaitSetAttachmentId.from_guard(guard)] = out
        guards.append(ws.attach_notification_fd(stop_fd))
        wake = iox.Duration.from_secs_f64(OUTBOUND_WAKE_S)
        everything = list(table.values())
        try:
            while not self._stop.is_set():
                ids, _ = ws.wait_and_process_with_timeout(wake)
                # only the channels that woke: a gateway with many channels touches one per
                # message; a wake without ids (the safety-net timeout) looks at every channel
                woke = [table[i] for i in ids if i in table] if ids else everything
                for out in woke:
                    out.sub.consume_wakeups()
                    self._drain_outbound(out)
                    out.copy_overflow()
        except Exception:
            log.exception("dispatcher %r: outbound thread failed", self.name)
            self._report(self.connection, HealthState.DOWN, "outbound thread failed")
            raise
        finally:
            for guard in guards:
                guard.delete()
            ws.delete()

    def _drain_outbound(self, out: OutboundChannel) -> None:
        sub, counts, writers, values = out.sub, out.counts, out.writers, self._storage.values
        name = out.descriptor.name
        while not self._stop.is_set():
            try:
                sample = sub.receive()
            except Exception:
                self._out.drop("internal_error", counts)
                log.exception("dispatcher %r: receiving on %r failed", self.name, name)
                return
            if sample is None:
                return
            slot = writers.get(sample.publisher)
            if slot is None:  # a writer this incarnation has not seen yet
                slot = out.adopt_writer(sample.publisher, sample.sequence, self._out)
            with sample:
                try:
                    self._forward_outbound(out, sample.payload, slot, sample.sequence)
                except Exception:
                    self._out.drop("internal_error", counts)
                    values[slot] = sample.sequence
                    log.exception("dispatcher %r: outbound %r failed", self.name, name)

    def _forward_outbound(self, out: OutboundChannel, data: memoryview, slot: int,
                          taken: int) -> None:
        """Forward or count one frame. Every outcome is counted and the writer's ``taken``
        sequence stored in ``slot`` (the counter block) in two adjacent stores, and a frame is
        counted as forwarded *before* it is sent: a ``kill -9`` at any point leaves each frame
        counted once (not taken: ``restart`` at the next incarnation; counted forwarded but
        not sent: its link sequence missing at the far side, ``link.lost``)."""
        descriptor, counts, values = out.descriptor, out.counts, out.counts.values
        if self._out_paused:
            self._out.drop("paused", counts)
            values[slot] = taken
            return
        try:
            # split(): decode()'s checks and counts without building an EnvelopeHeader
            fields, payload = envelope.split(data, self._out_malformed, verify_crc=False)
        except EnvelopeError as exc:
            self._out.drop("malformed", counts)
            values[slot] = taken
            log.warning("dispatcher %r: %r carries a malformed envelope: %s", self.name,
                        descriptor.name, str(exc))
            return
        with self._send_lock:
            conn = self._live
            if conn is None:
                self._out.drop("down", counts)
                values[slot] = taken
                return
            at = counts.i_forwarded
            link_seq = values[at] + 1  # only this thread bumps it: it is the link sequence
            frame: Frame
            if out.envelope:  # a private copy carrying the link sequence
                frame = bytearray(data[: fields[_HEADER_LEN] + fields[_PAYLOAD_LEN]])
                _set_sequence(frame, _SEQ_AT, link_seq)
            else:
                frame = payload
            values[at] = link_seq  # counted before the send: see the docstring
            values[slot] = taken
            try:
                conn.send(descriptor, frame)
            except LinkDownError as exc:
                values[at] = link_seq - 1  # not sent after all: the next frame takes its number
                self._out.drop(getattr(exc, "cause", "link_down"), counts)  # e.g. no_peer
                log.debug("dispatcher %r: %r seq %d dropped: %s", self.name, descriptor.name,
                          fields[_SEQUENCE], str(exc))
            except ConnectorError as exc:
                values[at] = link_seq - 1
                self._out.drop("send_error", counts)
                log.warning("dispatcher %r: sending %r seq %d failed: %s", self.name,
                            descriptor.name, fields[_SEQUENCE], str(exc))

    # -- reader thread (pull connectors only) ------------------------------------------------
    def _run_poll(self, conn: Connector, stop: threading.Event, number: int) -> None:
        ctx = self._ctx
        assert ctx is not None
        deliver = ctx.deliver  # this connection's: counted 'down' once it is revoked
        try:
            while not stop.is_set() and not self._stop.is_set():
                try:
                    got = conn.poll(self.poll_s)
                except Exception as exc:
                    self._receive_errors += 1
                    log.warning("dispatcher %r: poll failed: %s", self.name, str(exc))
                    stop.wait(self.poll_s)
                    continue
                if got is not None:
                    deliver(*got)
        except BaseException:
            log.exception("dispatcher %r: reader thread failed", self.name)
            self._report(number, HealthState.DOWN, "reader thread failed")
            raise
