"""The dispatcher's outbound side: its channels, the outbound thread, and forwarding a frame.

:class:`OutboundChannel` is one channel: its subscriber, counters and the writers it follows
across gateway restarts. Each writer (transport publisher id) has a slot in the gateway's
counter block holding the last sequence the gateway took from it; the block outlives the
gateway's process, so a restarted gateway (crash, ``kill -9``) knows where each writer stood:
what a writer sent that no incarnation took is counted once, as ``restart``.

:class:`Outbound` runs the outbound thread (``<name>-out``) and forwards each frame to the
connected connector (or to the handler of a connector that drains its channels itself). Per
frame: one receive, the header's sanity checks (no CRC: the bytes never left shared memory),
the outcome counted with the writer's sequence stored next to it, then the send. Envelope
channels take the sample as one private copy (the renumbered envelope is a new frame anyway);
payload channels hand the connector a read-only view: of a private copy for small frames (at
most ``SMALL_FRAME`` bytes: cheaper than a view of shared memory), of shared memory itself
for larger ones (no copy). See the
dispatcher's module docstring for the threads and the loss accounting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
from collections.abc import Callable
from typing import Any

import iceoryx2 as iox
from taktora.connectors.channel import SMALL_FRAME
from taktora.connectors.connector import Connector
from taktora.connectors.context import Frame
from taktora.connectors.errors import ConnectorError, LinkDownError
from taktora.connectors.gateway.counters import WRITER_SLOTS, ChannelCounts, Counts, Storage
from taktora.connectors.model import ChannelDescriptor
from taktora.transport import envelope
from taktora.transport.envelope import EnvelopeCounters
from taktora.transport.errors import EnvelopeError
from taktora.transport.pubsub import Subscriber

log = logging.getLogger("taktora.connectors.gateway.dispatcher")

Handler = Callable[[ChannelDescriptor, Frame], None]
Receive = Callable[[], "tuple[Any, int, int] | None"]
"""Takes the next frame of a channel: ``(frame, publisher, sequence)``, or None."""
Forward = Callable[["OutboundChannel", Any, int, int, "Handler | None"], None]
"""Forwards (or counts) one frame: ``(channel, frame, writer slot, sequence, handler)``."""

OUTBOUND_WAKE_S = 0.5
"""Longest the outbound thread sleeps without a wake-up (a safety net for a lost wake-up)."""

_pack_sequence = struct.Struct("<Q").pack
_SEQ_AT, _SEQ_END = envelope.SEQUENCE_OFFSET, envelope.SEQUENCE_OFFSET + 8
_frame_size, _split, _bounds = envelope.frame_size, envelope.split, envelope.bounds


class OutboundChannel:
    """One outbound channel of the outbound thread: its subscriber, counters and the writers
    it follows (publisher id -> slot of the writer's last sequence in the counter block)."""

    __slots__ = ("counts", "descriptor", "envelope", "ids", "lock", "lost_seen",
                 "overflow_base", "path", "seqs", "small", "sub", "writers")

    def __init__(self, descriptor: ChannelDescriptor, sub: Subscriber, counts: ChannelCounts,
                 storage: Storage) -> None:
        self.descriptor, self.sub, self.counts = descriptor, sub, counts
        prefix = f"ch.{descriptor.name}.out.writer"
        self.ids = [storage.index(f"{prefix}{k}.id") for k in range(WRITER_SLOTS)]
        self.seqs = [storage.index(f"{prefix}{k}.seq") for k in range(WRITER_SLOTS)]
        self.writers: dict[int, int] = {}
        self.overflow_base = counts.overflow  # what earlier incarnations' queues lost
        self.envelope = True  # the connector's Connector.envelope_on(descriptor), at connect
        self.lock = threading.Lock()  # one drainer at a time (thread, or a taking connector)
        self.small = descriptor.max_frame <= SMALL_FRAME and not descriptor.growable
        self.path: tuple[Receive, Forward] | None = None  # Outbound.path: chosen at connect
        self.lost_seen = -1  # the transport queue's overflow last copied into the block

    def adopt_writer(self, publisher: int, sequence: int, counts: Counts) -> int:
        """The block slot of ``publisher``'s last sequence (outbound thread). A writer an
        earlier incarnation of the gateway followed continues from its last sequence there:
        what it sent that no incarnation took (queued in the dead one, sent while it
        restarted) is counted as ``restart``. A writer never seen takes a free (or the
        oldest) slot and starts from ``sequence``."""
        values = self.counts.values
        for id_at, seq_at in zip(self.ids, self.seqs, strict=True):
            if values[id_at] == publisher:
                missing = sequence - values[seq_at] - 1
                if missing > 0:
                    counts.drop("restart", self.counts, missing)
                    log.info("outbound %r: %d frame(s) of writer %x sent while the gateway "
                             "restarted", self.descriptor.name, missing, publisher)
                self.writers[publisher] = seq_at
                return seq_at
        # a free slot, else one of a writer this incarnation has not seen (an earlier one's)
        free = [k for k, id_at in enumerate(self.ids) if not values[id_at]]
        stale = [k for k, id_at in enumerate(self.ids) if values[id_at] not in self.writers]
        k = (free or stale or [len(self.writers) % WRITER_SLOTS])[0]
        values[self.ids[k]] = publisher
        self.writers = {p: at for p, at in self.writers.items() if at != self.seqs[k]}
        self.writers[publisher] = self.seqs[k]
        return self.seqs[k]

    def count_leftovers(self, counts: Counts) -> None:
        """Take what is still queued (the outbound thread has stopped) and count it ``down``,
        each sample recorded as taken: else the next incarnation counts it again."""
        while (sample := self.sub.receive()) is not None:
            slot = self.writers.get(sample.publisher)
            if slot is None:
                slot = self.adopt_writer(sample.publisher, sample.sequence, counts)
            sample.release()
            counts.drop("down", self.counts)
            self.counts.values[slot] = sample.sequence

    def copy_overflow(self) -> None:
        """Copy the transport queue's overflow of this incarnation into the block (a store
        only when it changed)."""
        lost = self.sub.lost
        if lost != self.lost_seen:
            self.lost_seen = lost
            self.counts.values[self.counts.i_overflow] = self.overflow_base + lost


class Outbound:
    """The outbound thread and the forwarding of frames (see the module docstring).

    ``channels``: one :class:`OutboundChannel` per OUTBOUND channel; ``counts``: their
    counters; ``on_failure``: called on the outbound thread if it dies. The owner (the
    dispatcher) sets :attr:`live` under :attr:`send_lock` when a connector connects and takes
    it away to disconnect; :attr:`paused` from any thread; :meth:`hand` gives the channels to
    a connector that drains them itself, or back. :meth:`start` once, :meth:`stop` once.
    """

    def __init__(self, name: str, channels: list[OutboundChannel], counts: Counts,
                 on_failure: Callable[[], None]) -> None:
        self.name = name
        self.channels = channels
        self.counts = counts
        self.malformed = EnvelopeCounters()
        self.paused = False
        self.live: Connector | None = None
        """The connected connector (None while down: frames count ``down``)."""
        self.send_lock = threading.Lock()
        self.taken = False  # the connected connector drains the channels itself
        self.stopping = False
        self.thread: threading.Thread | None = None
        self._on_failure = on_failure
        self._handed = threading.Event()  # the thread let go of the channels (hand(True))
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def start(self) -> None:
        """Start the outbound thread (if there is a channel)."""
        if self.channels:
            self.thread = threading.Thread(target=self._run, name=f"{self.name}-out",
                                           daemon=True)
            self.thread.start()

    def hand(self, taken: bool, timeout: float = 2.0) -> None:
        """Give the channels to the connector's own loop (True) or back to the outbound
        thread (False), which notices at its next wake: woken here. Giving them away waits
        (up to ``timeout``) until the thread has let go of them, so that it never sends to a
        connector that takes its frames itself: call it before making that connector
        :attr:`live` (owner's thread)."""
        self._handed.clear()
        self.taken = taken
        self._wake()
        if taken and self.thread is not None and self.thread.is_alive() \
                and not self._handed.wait(timeout):
            log.warning("dispatcher %r: the outbound thread did not let go of its channels "
                        "within %.1f s", self.name, timeout)

    def stop(self) -> None:
        """Ask the outbound thread to end (it ends within one frame; join it yourself)."""
        self.stopping = True
        self._wake()

    def release(self) -> None:
        """Close the wake-up fd (after the thread ended)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.eventfd_write(self._fd, 1)

    # -- the outbound thread ---------------------------------------------------------------
    def _run(self) -> None:
        ws: Any = (iox.WaitSetBuilder.new().signal_handling_mode(iox.SignalHandlingMode.Disabled)
                   .create(iox.ServiceType.Ipc))
        stop_guard = ws.attach_notification_fd(iox.FileDescriptor.non_owning_new(self._fd))
        stop_id = iox.WaitSetAttachmentId.from_guard(stop_guard)
        guards: list[Any] = []
        table: dict[Any, OutboundChannel] = {}
        wake = iox.Duration.from_secs_f64(OUTBOUND_WAKE_S)
        everything = list(self.channels)
        attached: bool | None = None
        woke: list[OutboundChannel] = []
        try:
            while not self.stopping:
                want = not self.taken
                if attached is not want:  # handed to the connector, or back (or the start)
                    for guard in guards:
                        guard.delete()
                    guards, table, attached = [], {}, want
                    if attached:
                        for out in self.channels:
                            guard = ws.attach_notification(out.sub.listener)
                            guards.append(guard)
                            table[iox.WaitSetAttachmentId.from_guard(guard)] = out
                    woke = everything if attached else []  # what came meanwhile
                else:
                    ids, _ = ws.wait_and_process_with_timeout(wake)
                    if stop_id in ids:  # a stop or a hand-over: noticed above
                        with contextlib.suppress(BlockingIOError):
                            os.eventfd_read(self._fd)
                        ids = [i for i in ids if i != stop_id] or [stop_id]
                    # only the channels that woke: a gateway with many channels touches one
                    # per message; a wake without ids (the safety-net timeout) looks at all
                    woke = ([table[i] for i in ids if i in table] if ids else everything
                            ) if attached else []
                if not attached:  # not draining: a hand(True) waiting for that may go on
                    self._handed.set()
                for out in woke:
                    out.sub.consume_wakeups()
                    self.drain(out)
                    out.copy_overflow()
        except Exception:
            log.exception("dispatcher %r: outbound thread failed", self.name)
            self._on_failure()
            raise
        finally:
            for guard in [*guards, stop_guard]:
                guard.delete()
            ws.delete()

    # -- forwarding --------------------------------------------------------------------------
    def drain(self, out: OutboundChannel, handler: Handler | None = None) -> int:
        """Forward (to ``handler``, default the connector's ``send``) or count everything
        queued on ``out``; returns how many frames were taken. The outbound thread, or the
        loop of a connector that drains its channels itself (one drainer at a time: the
        channel's lock)."""
        receive, forward = out.path or self.path(out)
        n = 0
        own = handler is None  # the outbound thread: it lets go once the connector takes over
        with out.lock:
            while not self.stopping:
                if own and self.taken:
                    return n
                try:
                    got = receive()
                except Exception:
                    self._internal(out, None, "receiving")
                    return n
                if got is None:
                    return n
                n += 1
                data, publisher, taken = got
                slot = out.writers.get(publisher)
                if slot is None:  # a writer this incarnation has not seen yet
                    slot = out.adopt_writer(publisher, taken, self.counts)
                try:
                    forward(out, data, slot, taken, handler)
                except Exception:
                    self._internal(out, (slot, taken), "forwarding")
        return n

    def path(self, out: OutboundChannel) -> tuple[Receive, Forward]:
        """Choose (and keep on ``out``) how its frames are received and forwarded, from
        whether they are envelopes and small (the owner calls it again at each connect, after
        setting :attr:`OutboundChannel.envelope`)."""
        if out.envelope:  # one private copy: the renumbered envelope is a new frame anyway
            out.path = (out.sub.receive_bytes, self._forward_envelope)
        elif out.small:  # one private copy, its payload a bytes slice
            out.path = (out.sub.receive_bytes, self._forward_small)
        else:  # read in place
            out.path = (self._receive_sample(out), self._forward_sample)
        return out.path

    @staticmethod
    def _receive_sample(out: OutboundChannel) -> Callable[[], tuple[Any, int, int] | None]:
        """``receive`` for large payload frames: the sample itself (read in place)."""
        receive = out.sub.receive

        def take() -> tuple[Any, int, int] | None:
            sample = receive()
            return None if sample is None else (sample, sample.publisher, sample.sequence)

        return take

    def _forward_sample(self, out: OutboundChannel, sample: Any, slot: int, taken: int,
                        handler: Handler | None) -> None:
        try:
            self._forward_payload(out, sample.payload, slot, taken, handler)
        finally:
            sample.release()

    def _internal(self, out: OutboundChannel, taken: tuple[int, int] | None, what: str) -> None:
        self.counts.drop("internal_error", out.counts)
        if taken is not None:
            out.counts.values[taken[0]] = taken[1]
        log.exception("dispatcher %r: %s on %r failed", self.name, what, out.descriptor.name)

    def _skip(self, out: OutboundChannel, slot: int, taken: int, cause: str) -> None:
        self.counts.drop(cause, out.counts)
        out.counts.values[slot] = taken

    def _forward_envelope(self, out: OutboundChannel, data: bytes, slot: int, taken: int,
                          handler: Handler | None) -> None:
        """An envelope channel's frame: renumbered with the channel's link sequence (see
        :meth:`_send`)."""
        if self.paused:
            self._skip(out, slot, taken, "paused")
            return
        try:
            size, _ = _frame_size(data, self.malformed)
        except EnvelopeError as exc:
            self._malformed(out, slot, taken, exc)
            return
        self._hand(out, data, slot, taken, handler, size)

    def _forward_small(self, out: OutboundChannel, data: bytes, slot: int, taken: int,
                       handler: Handler | None) -> None:
        """A small payload channel's frame: the payload as a bytes slice of the private copy."""
        if self.paused:
            self._skip(out, slot, taken, "paused")
            return
        try:
            start, end, _ = _bounds(data, self.malformed)
        except EnvelopeError as exc:
            self._malformed(out, slot, taken, exc)
            return
        self._hand(out, data[start:end], slot, taken, handler)

    def _forward_payload(self, out: OutboundChannel, data: memoryview, slot: int,
                         taken: int, handler: Handler | None) -> None:
        """A large payload channel's frame: the payload, a read-only view of shared memory."""
        if self.paused:
            self._skip(out, slot, taken, "paused")
            return
        try:
            _, payload = _split(data, self.malformed, verify_crc=False)
        except EnvelopeError as exc:
            self._malformed(out, slot, taken, exc)
            return
        self._hand(out, payload, slot, taken, handler)

    def _hand(self, out: OutboundChannel, frame: Frame, slot: int, taken: int,
              handler: Handler | None, envelope_size: int = -1) -> None:
        """Send ``frame`` under the send lock (see :meth:`_send`), or count it ``down``. With
        ``envelope_size`` (an envelope channel's frame, as bytes) the envelope up to that size,
        renumbered with the channel's link sequence."""
        with self.send_lock:
            conn = self.live
            if conn is None:
                self._skip(out, slot, taken, "down")
                return
            counts = out.counts
            link_seq = counts.values[counts.i_forwarded] + 1  # the drainer alone bumps it
            if envelope_size >= 0:
                data = frame
                assert isinstance(data, bytes)
                frame = data[:_SEQ_AT] + _pack_sequence(link_seq) + data[_SEQ_END:envelope_size]
            self._send(out, conn, handler, frame, slot, taken, link_seq)

    def _send(self, out: OutboundChannel, conn: Connector, handler: Handler | None,
              frame: Frame, slot: int, taken: int, link_seq: int) -> None:
        """Count, then send (under the send lock). The outcome is counted and the writer's
        ``taken`` sequence stored in ``slot`` (the counter block) in two adjacent stores, and
        a frame is counted as forwarded *before* it is sent: a ``kill -9`` at any point leaves
        each frame counted once (not taken: ``restart`` at the next incarnation; counted
        forwarded but not sent: its link sequence missing at the far side, ``link.lost``)."""
        counts = out.counts
        values, at = counts.values, counts.i_forwarded
        values[at] = link_seq
        values[slot] = taken
        try:
            (handler or conn.send)(out.descriptor, frame)
        except LinkDownError as exc:
            values[at] = link_seq - 1  # not sent after all: the next frame takes its number
            self.counts.drop(getattr(exc, "cause", "link_down"), counts)  # e.g. no_peer
            log.debug("dispatcher %r: %r frame dropped: %s", self.name, out.descriptor.name,
                      str(exc))
        except ConnectorError as exc:
            values[at] = link_seq - 1
            self.counts.drop("send_error", counts)
            log.warning("dispatcher %r: sending %r failed: %s", self.name,
                        out.descriptor.name, str(exc))

    def _malformed(self, out: OutboundChannel, slot: int, taken: int,
                   exc: EnvelopeError) -> None:
        self._skip(out, slot, taken, "malformed")
        log.warning("dispatcher %r: %r carries a malformed envelope: %s", self.name,
                    out.descriptor.name, str(exc))
