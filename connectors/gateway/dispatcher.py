"""The gateway's data plane: iceoryx2 ports, the outbound thread, the inbound sink.

Data never passes through an actor mailbox. A gateway actor owns a :class:`Dispatcher` and
calls it (``connect``, ``disconnect``, ``pause``, ``resume``, ``stats``); the payload bytes move
on the dispatcher's and the protocol's own threads:

- **ports** (:meth:`Dispatcher.open_ports`): one subscriber per OUTBOUND channel
  (``{name}.out``) and one publisher per INBOUND channel (``{name}.in``, in the
  :class:`~taktora.connectors.gateway.sink.InboundSink`). They live as long as the
  dispatcher: a reconnect reopens only the protocol side.
- **outbound thread** (``<name>-out``, runs from ``open_ports`` to ``close``;
  :class:`~taktora.connectors.gateway.outbound.Outbound`): blocks in an iceoryx2 WaitSet on
  the listeners of every outbound subscriber (and a wake-up eventfd); per wake it drains the
  subscribers whose listener woke (everything available on each), checks each envelope's
  header (sanity only, no CRC: the bytes never left shared memory) and hands the frame to
  ``connector.send``: on an envelope channel the envelope renumbered with the channel's *link
  sequence* (the n-th frame this channel forwarded carries n, so the far gateway sees a gap
  only for frames lost on the link - never for frames this gateway dropped and counted);
  otherwise the payload only, as a read-only view (nothing re-encoded). While no connector is
  connected (the gateway is Down or reconnecting) each frame is counted as dropped with cause
  ``down``.
- **taken outbound** (a connector with ``takes_outbound``, e.g. the EtherCAT cycle): while
  it is connected the outbound thread detaches from the outbound listeners (no wake per
  frame) and the connector drains each channel from its own loop with
  :meth:`ConnectorContext.drain`, which runs the same checks and counts on the calling thread;
  once it is disconnected the outbound thread attaches again and drains (counting ``down``).
- **inbound**: the connector delivers through the :class:`ConnectorContext` it got in
  ``open`` (its own threads publish into iceoryx2; ``deliver_many`` wakes the readers once
  per burst); only for a pull connector (one that implements ``poll``) does the dispatcher run
  a reader thread (``<name>-in``) per connection.
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

import logging
import threading
import time
from collections.abc import Callable, Sequence

from taktora.actors.models.health import HealthState
from taktora.connectors.codecs import CodecRegistry
from taktora.connectors.connector import Connector
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.errors import ConnectorError
from taktora.connectors.gateway.counters import (
    OUT,
    Counts,
    DispatcherStats,
    LocalCounters,
    Storage,
    counter_names,
)
from taktora.connectors.gateway.outbound import Outbound, OutboundChannel
from taktora.connectors.gateway.reports import StopReport
from taktora.connectors.gateway.sink import InboundSink
from taktora.connectors.model import ChannelDescriptor, Direction, FrozenMap
from taktora.transport.node import Node

log = logging.getLogger(__name__)

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
        self._receive_errors = 0
        self._in_paused = False
        self._closing = False
        self._node: Node | None = None
        self._subs: list[OutboundChannel] = []
        self._out_by_name: dict[str, OutboundChannel] = {}
        self._ob: Outbound | None = None  # the outbound thread and forwarding (open_ports)
        self._sink: InboundSink | None = None
        self._poll_thread: threading.Thread | None = None
        self._poll_stop = threading.Event()
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
            self._out_by_name = {out.descriptor.name: out for out in self._subs}
            self._ob = Outbound(self.name, self._subs, self._out, self._outbound_died)
        except BaseException:
            self._release()
            self._state = "failed"
            raise
        self._ob.start()
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
        ob = self._ob
        assert ob is not None
        if ob.live is not None:
            raise ConnectorError(f"dispatcher {self.name!r}: already connected")
        sink = self._sink
        assert sink is not None
        self.connector = conn
        sink.use(conn)  # whole envelopes or payloads, per channel
        for out in self._subs:
            out.envelope = conn.envelope_on(out.descriptor)
            ob.path(out)  # how its frames are received and forwarded, for this connector
        self.connection += 1
        number = self.connection
        ctx = ConnectorContext(self.name, self.descriptors, deliver=sink.deliver,
                               report=lambda state, reason: self._report(number, state, reason),
                               log=logging.getLogger(f"taktora.connectors.gateway.{self.name}"),
                               drain=(lambda channel, handler: self._take(number, channel,
                                                                          handler))
                               if conn.takes_outbound else None)
        ctx._deliver, ctx._deliver_many = sink.context_deliver(ctx)  # revoked: 'down'
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
        if conn.takes_outbound:  # before it is live: the outbound thread never sends to it
            ob.hand(True)
        with ob.send_lock:
            ob.live = conn
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
        ob = self._ob
        assert ob is not None
        self._closing = True
        ob.stop()
        stopped, stuck = self._join([ob.thread, self._poll_thread, *self._stale_readers],
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
        ob = self._ob
        if ob is None:
            return None
        locked = ob.send_lock.acquire(timeout=timeout)
        try:
            conn, ob.live = ob.live, None
        finally:
            if locked:
                ob.send_lock.release()
            else:
                log.warning("dispatcher %r: a send did not finish within %.3f s: closing the "
                            "connector under it", self.name, timeout)
        self._poll_stop.set()
        self.link = HealthState.DOWN
        if ob.taken:
            ob.hand(False)
        return conn

    def _outbound_died(self) -> None:
        self._report(self.connection, HealthState.DOWN, "outbound thread failed")

    def _take(self, connection: int, channel: str, handler: Callable[[ChannelDescriptor, Frame],
                                                                      None]) -> int:
        """ConnectorContext.drain of connection number ``connection`` (the connector's loop):
        nothing once that connection ended (the outbound thread takes over)."""
        ctx, ob = self._ctx, self._ob
        if connection != self.connection or ctx is None or ctx.revoked or ob is None:
            return 0
        out = self._out_by_name.get(channel)
        if out is not None:
            return ob.drain(out, handler)
        raise ConnectorError(f"dispatcher {self.name!r}: drain({channel!r}): not an outbound "
                             f"channel (outbound: {[d.name for d in self._outbound]})")

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
        if self._ob is not None:
            self._ob.release()

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
        if outbound and self._ob is not None:
            self._ob.paused = True
        if inbound:
            self._in_paused = True
            if self._sink is not None:
                self._sink.paused = True

    def resume(self, *, outbound: bool = True, inbound: bool = True) -> None:
        """Forward again in the given directions."""
        if outbound and self._ob is not None:
            self._ob.paused = False
        if inbound:
            self._in_paused = False
            if self._sink is not None:
                self._sink.paused = False

    @property
    def paused(self) -> bool:
        """True when either direction is paused."""
        return self._out_paused() or self._in_paused

    @property
    def connected(self) -> bool:
        """True while a connector is connected."""
        return self._ob is not None and self._ob.live is not None

    def _out_paused(self) -> bool:
        return self._ob is not None and self._ob.paused

    def outbound_alive(self) -> bool:
        """True unless the outbound thread (which lives as long as the ports) has died."""
        thread = self._ob.thread if self._ob is not None else None
        return thread is None or thread.is_alive()

    def threads_alive(self) -> bool:
        """True when every thread that should run runs (outbound while the ports are open,
        the reader while a pull connector is connected)."""
        if self._state != "open":
            return False
        if not self.outbound_alive():
            return False
        live = self._ob.live if self._ob is not None else None
        return not (live is not None and live.pulls() and self._inbound
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
            outbound_paused=self._out_paused(), inbound_paused=self._in_paused,
            running=self.threads_alive(), channels=FrozenMap(channels))

    # -- reader thread (pull connectors only) ------------------------------------------------
    def _run_poll(self, conn: Connector, stop: threading.Event, number: int) -> None:
        ctx = self._ctx
        assert ctx is not None
        deliver = ctx.deliver  # this connection's: counted 'down' once it is revoked
        try:
            while not stop.is_set() and not self._closing:
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
