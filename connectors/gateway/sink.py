"""The inbound sink: frames a connector delivers, published into iceoryx2 on the caller's thread.

One :class:`InboundSink` per gateway owns the publishers of every INBOUND channel (``{name}.in``
services) for the gateway's whole life: a reconnect reopens the protocol, never these ports.
:meth:`InboundSink.deliver` is what :meth:`ConnectorContext.deliver
<taktora.connectors.context.ConnectorContext.deliver>` calls:

1. resolve the channel by descriptor name or by routing (``unknown_channel`` otherwise);
2. paused: count ``paused`` and drop (held data would be stale control data when resumed);
3. envelope-carrying connectors: the bytes crossed a link that can corrupt them, so the
   envelope is checked completely, CRC included (``malformed`` with its cause: short, magic,
   version, header_len, length, crc), its link sequence tracked (``gaps`` / ``lost``), and it
   is published **renumbered**: header and payload as they came (codec id, kind, flags,
   correlation id, CRC and the origin timestamp kept) but with the channel's own shm-hop
   sequence; payload-only connectors: the payload is written once into a loan behind a fresh
   header (the same per-channel sequence, its codec id, CRC if the channel asks for one);
4. a publish that fails is counted as ``too_large`` (larger than the channel allows) or
   ``publish_error``.

Loss accounting (spec/loss.rst): every frame that reaches the sink is counted once - forwarded
or dropped by one cause - per channel (:class:`~taktora.connectors.gateway.counters.Counts`).
The link sequence of arriving envelopes (the sending gateway's, per channel) is tracked for
*every* frame of a channel, the dropped ones included, so a frame counted as ``paused`` or
``down`` never shows up again as ``lost``; a frame whose sequence cannot be read (malformed)
is subtracted from the next gap (never below 0), so it is counted once, as ``malformed``. A
gap is counted when the next frame arrives; losses before the first frame this sink sees are
not visible to it. The link sequence is consumed here (logged with each gap at DEBUG) and not
carried further: the correlation id belongs to query/reply and the reserved header fields to
the wire contract; readers see the sink's sequence, so their ``lost`` counts only the shm hop.

Thread-safety: a protocol may deliver from several threads at once (CAN: one receive thread
per interface; Zenoh: its callback threads); each channel has its own lock around sequence
tracking and its publisher, so channels do not wait for each other. Counters are taken under
a lock; :meth:`InboundSink.counts` snapshots them from any thread.
"""

from __future__ import annotations

import logging
import struct
import threading
import zlib
from collections.abc import Sequence

from taktora.connectors.channel import SMALL_FRAME
from taktora.connectors.codecs import CodecRegistry, codec_id_for
from taktora.connectors.connector import Connector
from taktora.connectors.context import ConnectorContext, Deliver, DeliverMany, Frame
from taktora.connectors.gateway.counters import (
    IN,
    PUBLISHER_FIELDS,
    ChannelCounts,
    Counts,
    Storage,
)
from taktora.connectors.model import ChannelDescriptor, Routing
from taktora.transport import envelope
from taktora.transport.envelope import HEADER_SIZE, EnvelopeCounters
from taktora.transport.errors import EnvelopeError, PayloadError, TransportError
from taktora.transport.node import Node
from taktora.transport.pubsub import Publisher, Resume

log = logging.getLogger("taktora.connectors.gateway.dispatcher")

# the index of the sequence in envelope.split()'s header fields; how it is written into one
_SEQUENCE = 8
_pack_sequence = struct.Struct("<Q").pack
_frame_size = envelope.frame_size
_SEQ_AT, _SEQ_END = envelope.SEQUENCE_OFFSET, envelope.SEQUENCE_OFFSET + 8


class _Channel:
    """One inbound channel: descriptor, publisher, codec id, counters, sequences and lock."""

    __slots__ = ("closed", "codec_id", "counts", "descriptor", "envelope", "first_at",
                 "last_seen", "lock", "publisher", "seq_at", "sequence", "unsequenced")

    def __init__(self, descriptor: ChannelDescriptor, publisher: Publisher, codec_id: int,
                 counts: ChannelCounts, seq_at: int, first_at: int) -> None:
        self.seq_at, self.first_at = seq_at, first_at  # the publisher's slots in the block
        self.descriptor = descriptor
        self.publisher = publisher
        self.codec_id = codec_id
        self.counts = counts
        self.lock = threading.Lock()
        self.closed = False  # set under the lock by InboundSink.close: no publish after it
        self.envelope = True  # frames are whole envelopes (else payloads, wrapped here)
        self.sequence = 0  # last shm-hop sequence published (wrapped or renumbered)
        # last link sequence of an arriving envelope: kept in the counter block, so a restarted
        # gateway counts what the link lost while it was away
        self.last_seen: int | None = counts.seq or None
        self.unsequenced = 0  # frames counted since last_seen whose sequence was unreadable


class InboundSink:
    """Publishes delivered frames on the INBOUND channels of ``descriptors`` (see the module).

    ``carries_envelope``: whether frames are whole envelopes (checked, CRC included,
    renumbered) or payloads (wrapped), for every channel until :meth:`use` asks a connector
    per channel. The publishers are opened on ``node`` at construction
    (raises the transport's errors) and released by :meth:`close`.
    """

    def __init__(self, name: str, node: Node, descriptors: Sequence[ChannelDescriptor], *,
                 carries_envelope: bool = True, registry: CodecRegistry | None = None,
                 storage: Storage | None = None) -> None:
        self.name = name
        self.paused = False
        self.counts = Counts(IN, [d.name for d in descriptors], storage)
        self.malformed = EnvelopeCounters()
        self._by_name: dict[str, _Channel] = {}
        self._by_routing: dict[Routing, _Channel] = {}
        store = self.counts.storage
        for d in descriptors:
            at = tuple(store.index(f"ch.{d.name}.in.{f}") for f in PUBLISHER_FIELDS)
            pid, seq, first = (int(store.values[i]) for i in at)
            # an earlier incarnation's publisher: continue it (its readers then count what its
            # queue held when it died as lost), else a fresh one, remembered for the next
            publisher = node.publisher(d.channel_spec(), resume=Resume(pid, seq, first)
                                       if pid else None)
            store.values[at[0]] = publisher.id
            channel = _Channel(d, publisher, codec_id_for(d.codec, registry),
                               self.counts.channel(d.name), at[1], at[2])
            channel.envelope = carries_envelope
            self._by_name[d.name] = channel
            self._by_routing[d.routing] = channel

    def use(self, connector: Connector) -> None:
        """Take from ``connector`` (about to be connected; owner's thread) whether each
        channel's frames are whole envelopes or payloads (:meth:`Connector.envelope_on`)."""
        for channel in self._by_name.values():
            with channel.lock:
                channel.envelope = connector.envelope_on(channel.descriptor)

    def _resolve(self, key: str | Routing) -> _Channel | None:
        return self._by_name.get(key) if isinstance(key, str) else self._by_routing.get(key)

    def context_deliver(self, ctx: ConnectorContext) -> tuple[Deliver, DeliverMany]:
        """The ``deliver`` and ``deliver_many`` of one connection's context: like
        :meth:`deliver` / :meth:`deliver_many`, but once that context is revoked (the
        connection ended) every frame is counted as ``down``."""
        def revoked(key: str | Routing, frames: Sequence[Frame]) -> None:
            channel = self._resolve(key)
            if channel is None:
                self.counts.drop("down", None, len(frames))
                return
            with channel.lock:
                for frame in frames:
                    self._skip(channel, frame, "down")

        def deliver(key: str | Routing, frame: Frame) -> bool:
            if ctx.revoked:
                revoked(key, (frame,))
                return False
            return self.deliver(key, frame)

        def deliver_many(key: str | Routing, frames: Sequence[Frame]) -> int:
            if ctx.revoked:
                revoked(key, frames)
                return 0
            return self.deliver_many(key, frames)

        return deliver, deliver_many

    def deliver(self, key: str | Routing, frame: Frame) -> bool:
        """Publish ``frame`` on the channel ``key`` names; True if published, else the drop
        is counted by cause and False returned. Never raises for a bad frame. Runs on the
        delivering protocol thread; blocks only on the channel's lock."""
        channel = self._resolve(key)
        if channel is None:
            self._unknown(key, 1)
            return False
        with channel.lock:
            return self._one(channel, frame, True)

    def deliver_many(self, key: str | Routing, frames: Sequence[Frame]) -> int:
        """:meth:`deliver` for several frames of one channel, in order, waking the channel's
        readers once at the end (one notification per batch, not per frame); returns how many
        were published. Each frame is counted as :meth:`deliver` counts it."""
        channel = self._resolve(key)
        if channel is None:
            self._unknown(key, len(frames))
            return 0
        published = 0
        with channel.lock:
            for frame in frames:
                published += self._one(channel, frame, False)
            if published and not channel.closed:
                channel.publisher.notify()
        return published

    def _unknown(self, key: object, n: int) -> None:
        self.counts.drop("unknown_channel", None, n)
        log.warning("gateway %r: %d frame(s) for unknown channel %r dropped", self.name, n, key)

    def _one(self, channel: _Channel, frame: Frame, notify: bool) -> bool:
        """Publish (or count) one frame (under the channel's lock)."""
        counts = channel.counts
        try:
            if self.paused:
                self._skip(channel, frame, "paused")
                return False
            if channel.closed:
                self._skip(channel, frame, "down")
                return False
            if channel.envelope:
                self._publish_envelope(channel, frame, notify)
            else:
                self._publish_wrapped(channel, frame, notify)
            counts.values[counts.i_forwarded] += 1  # its one writer: under the lock
            return True
        except EnvelopeError as exc:
            self.counts.drop("malformed", counts)
            log.warning("gateway %r: %r: malformed frame dropped: %s", self.name,
                        channel.descriptor.name, str(exc))
        except PayloadError as exc:  # larger than the channel allows
            self.counts.drop("too_large", counts)
            log.warning("gateway %r: %r: %s", self.name, channel.descriptor.name, str(exc))
        except TransportError as exc:
            self.counts.drop("publish_error", counts)
            log.warning("gateway %r: publishing %r failed: %s", self.name,
                        channel.descriptor.name, str(exc))
        except Exception:
            self.counts.drop("internal_error", counts)
            log.exception("gateway %r: inbound frame for %r failed", self.name,
                          channel.descriptor.name)
        return False

    def _track(self, channel: _Channel, seq: int) -> None:
        """Follow the link sequence (under the channel's lock): a jump is a gap, less the
        frames already counted whose sequence was unreadable; a sequence at or below the last
        one means the sender restarted: follow it."""
        last = channel.last_seen
        if last is not None and seq > last + 1:
            missing = seq - last - 1 - channel.unsequenced
            if missing > 0:
                values, counts = channel.counts.values, channel.counts
                with self.counts.lock:
                    values[counts.i_gaps] += 1
                    values[counts.i_lost] += missing
                log.debug("gateway %r: %r: link sequence %d -> %d: %d frame(s) lost", self.name,
                          channel.descriptor.name, last, seq, missing)
        channel.unsequenced = 0
        channel.last_seen = seq
        channel.counts.values[channel.counts.i_seq] = seq

    def _skip(self, channel: _Channel, frame: Frame, cause: str) -> None:
        """Count ``frame`` dropped for ``cause`` (under the channel's lock) and, for envelope
        frames, still follow its link sequence so that it is not counted again as lost."""
        self.counts.drop(cause, channel.counts)
        if not channel.envelope:
            return
        try:
            fields, _ = envelope.split(frame, None, verify_crc=False)
        except EnvelopeError:
            channel.unsequenced += 1
            return
        self._track(channel, fields[_SEQUENCE])

    def _publish_envelope(self, channel: _Channel, frame: Frame, notify: bool = True) -> None:
        try:  # the bytes crossed a link: every check, the CRC included
            size, link_seq = _frame_size(frame, self.malformed, True)
        except EnvelopeError:
            channel.unsequenced += 1
            raise
        seq = channel.sequence + 1
        raw = frame if type(frame) is bytes else bytes(frame)
        # the renumbered envelope as one bytes object: cheaper here than patching the loan
        # (small frames; a ctypes call costs more than these slices)
        pub = channel.publisher
        try:
            pub.send_copy(raw[:_SEQ_AT] + _pack_sequence(seq) + raw[_SEQ_END:size],
                          notify=notify)
        finally:
            # the link sequence is followed right after the publish (or its failure, which the
            # caller counts): a kill -9 before it leaves this frame to the next incarnation as
            # link.lost, never neither published nor counted
            last = channel.last_seen
            if last is None or link_seq != last + 1 or channel.unsequenced:
                self._track(channel, link_seq)
            else:  # the common case, without the call
                channel.last_seen = link_seq
                counts = channel.counts
                counts.values[counts.i_seq] = link_seq
        channel.sequence = seq
        self._published(channel, pub)

    def _publish_wrapped(self, channel: _Channel, frame: Frame, notify: bool = True) -> None:
        seq = channel.sequence + 1
        pub = channel.publisher
        crc_on = channel.descriptor.crc
        kind = type(frame)
        if (kind is bytes or kind is bytearray) and len(frame) <= SMALL_FRAME:  # one copy
            pub.send_copy(envelope.encode(frame, codec_id=channel.codec_id, sequence=seq,
                                          with_crc=crc_on), notify=notify)
            channel.sequence = seq
            self._published(channel, pub)
            return
        src = memoryview(frame).cast("B")
        size = src.nbytes
        sample, view = pub.loan_bytes(HEADER_SIZE + size)
        try:
            view[HEADER_SIZE:] = src
            crc = zlib.crc32(src) if crc_on else None
            envelope.pack_header(view, codec_id=channel.codec_id, payload_len=size, sequence=seq,
                                 crc32=crc)
        except BaseException:
            pub.discard(sample, view)
            raise
        pub.commit(sample, view, notify=notify)
        channel.sequence = seq
        self._published(channel, pub)

    @staticmethod
    def _published(channel: _Channel, pub: Publisher) -> None:
        """Keep the publisher's place in the counter block (it survives a kill -9)."""
        values = channel.counts.values
        values[channel.seq_at] = pub.sequence
        if not values[channel.first_at]:
            values[channel.first_at] = pub.first_send_ns

    def gaps(self) -> tuple[int, int]:
        """``(gaps, lost)``: sequence jumps of arriving envelopes and the frames they skipped
        (frames lost on the link), summed over the channels."""
        return self.counts.gaps()

    def close(self) -> None:
        """Release the publishers; idempotent. Each channel is closed under its lock, so a
        protocol thread still delivering either finishes its publish first or is counted as
        ``down``: never a publish on a released port."""
        for channel in self._by_name.values():
            with channel.lock:
                if not channel.closed:
                    channel.closed = True
                    channel.publisher.close()
