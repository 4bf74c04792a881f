"""The inbound sink: frames a connector delivers, published into iceoryx2 on the caller's thread.

One :class:`InboundSink` per gateway owns the publishers of every INBOUND channel (``{name}.in``
services) for the gateway's whole life: a reconnect reopens the protocol, never these ports.
:meth:`InboundSink.deliver` is what :meth:`ConnectorContext.deliver
<taktora.connectors.context.ConnectorContext.deliver>` calls:

1. resolve the channel by descriptor name or by routing (``unknown_channel`` otherwise);
2. paused: count ``paused`` and drop (held data would be stale control data when resumed);
3. envelope-carrying connectors: the bytes crossed a link that can corrupt them, so the
   envelope is checked completely, CRC included (``malformed`` with its cause: short, magic,
   version, header_len, length, crc), its sequence tracked (``gaps`` / ``lost``), and it is
   published as it came; payload-only connectors: the payload is written once into a loan
   behind a fresh header (the channel's own sequence from 1, its codec id, CRC if the channel
   asks for one);
4. a publish that fails is counted as ``too_large`` (larger than the channel allows) or
   ``publish_error``.

Thread-safety: a protocol may deliver from several threads at once (CAN: one receive thread
per interface; Zenoh: its callback threads); each channel has its own lock around sequence
tracking and its publisher, so channels do not wait for each other. Counters are taken under
a lock; :meth:`InboundSink.counts` snapshots them from any thread.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Sequence

from taktora.connectors.codecs import CodecRegistry, codec_id_for
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.model import ChannelDescriptor, Routing
from taktora.transport import envelope
from taktora.transport.envelope import HEADER_SIZE, EnvelopeCounters
from taktora.transport.errors import EnvelopeError, PayloadError, TransportError
from taktora.transport.node import Node
from taktora.transport.pubsub import Publisher

log = logging.getLogger("taktora.connectors.gateway.dispatcher")

_SEQUENCE = 8  # index of the sequence in envelope.split()'s header fields


class Counts:
    """A ``forwarded`` count and drops by cause, written by any thread under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.forwarded = 0
        self.dropped: dict[str, int] = {}

    def drop(self, cause: str) -> None:
        with self.lock:
            self.dropped[cause] = self.dropped.get(cause, 0) + 1

    def forward(self) -> None:
        with self.lock:
            self.forwarded += 1

    def snapshot(self) -> tuple[int, dict[str, int]]:
        with self.lock:
            return self.forwarded, dict(self.dropped)


class _Channel:
    """One inbound channel: its descriptor, publisher, codec id, sequence state and lock."""

    __slots__ = ("closed", "codec_id", "descriptor", "last_seen", "lock", "publisher",
                 "sequence")

    def __init__(self, descriptor: ChannelDescriptor, publisher: Publisher, codec_id: int) -> None:
        self.descriptor = descriptor
        self.publisher = publisher
        self.codec_id = codec_id
        self.lock = threading.Lock()
        self.closed = False  # set under the lock by InboundSink.close: no publish after it
        self.sequence = 0  # last sequence of a wrapped (payload-only) frame
        self.last_seen: int | None = None  # last sequence of an arriving envelope


class InboundSink:
    """Publishes delivered frames on the INBOUND channels of ``descriptors`` (see the module).

    ``carries_envelope`` is the connector's: whole envelopes (checked, CRC included) or
    payloads (wrapped). The publishers are opened on ``node`` at construction (raises the
    transport's errors) and released by :meth:`close`.
    """

    def __init__(self, name: str, node: Node, descriptors: Sequence[ChannelDescriptor], *,
                 carries_envelope: bool, registry: CodecRegistry | None = None) -> None:
        self.name = name
        self.carries_envelope = carries_envelope
        self.paused = False
        self.counts = Counts()
        self.malformed = EnvelopeCounters()
        self._gaps = 0
        self._lost = 0
        self._by_name: dict[str, _Channel] = {}
        self._by_routing: dict[Routing, _Channel] = {}
        for d in descriptors:
            channel = _Channel(d, node.publisher(d.channel_spec()), codec_id_for(d.codec, registry))
            self._by_name[d.name] = channel
            self._by_routing[d.routing] = channel

    def context_deliver(self, ctx: ConnectorContext) -> Callable[[str | Routing, Frame], bool]:
        """The ``deliver`` of one connection's context: like :meth:`deliver`, but once that
        context is revoked (the connection ended) every frame is counted as ``down``."""
        def deliver(key: str | Routing, frame: Frame) -> bool:
            if ctx.revoked:
                self.counts.drop("down")
                return False
            return self.deliver(key, frame)

        return deliver

    def deliver(self, key: str | Routing, frame: Frame) -> bool:
        """Publish ``frame`` on the channel ``key`` names; True if published, else the drop
        is counted by cause and False returned. Never raises for a bad frame."""
        channel = self._by_routing.get(key) if isinstance(key, Routing) else self._by_name.get(key)
        if channel is None:
            self.counts.drop("unknown_channel")
            log.warning("gateway %r: frame for unknown channel %r dropped", self.name, key)
            return False
        if self.paused:
            self.counts.drop("paused")
            return False
        try:
            with channel.lock:
                if channel.closed:
                    self.counts.drop("down")
                    return False
                if self.carries_envelope:
                    self._publish_envelope(channel, frame)
                else:
                    self._publish_wrapped(channel, frame)
        except EnvelopeError as exc:
            self.counts.drop("malformed")
            log.warning("gateway %r: %r: malformed frame dropped: %s", self.name,
                        channel.descriptor.name, str(exc))
            return False
        except PayloadError as exc:  # larger than the channel allows
            self.counts.drop("too_large")
            log.warning("gateway %r: %r: %s", self.name, channel.descriptor.name, str(exc))
            return False
        except TransportError as exc:
            self.counts.drop("publish_error")
            log.warning("gateway %r: publishing %r failed: %s", self.name,
                        channel.descriptor.name, str(exc))
            return False
        except Exception:
            self.counts.drop("internal_error")
            log.exception("gateway %r: inbound frame for %r failed", self.name,
                          channel.descriptor.name)
            return False
        self.counts.forward()
        return True

    def _publish_envelope(self, channel: _Channel, frame: Frame) -> None:
        fields, _ = envelope.split(frame, self.malformed, verify_crc=True)
        seq = fields[_SEQUENCE]
        last = channel.last_seen
        if last is not None and seq > last + 1:
            with self.counts.lock:
                self._gaps += 1
                self._lost += seq - last - 1
        channel.last_seen = seq
        channel.publisher.send_copy(frame)

    def _publish_wrapped(self, channel: _Channel, frame: Frame) -> None:
        src = memoryview(frame).cast("B")
        size = src.nbytes
        seq = channel.sequence + 1
        pub = channel.publisher
        sample, view = pub.loan_bytes(HEADER_SIZE + size)
        try:
            view[HEADER_SIZE:] = src
            crc = zlib.crc32(src) if channel.descriptor.crc else None
            envelope.pack_header(view, codec_id=channel.codec_id, payload_len=size, sequence=seq,
                                 crc32=crc)
        except BaseException:
            pub.discard(sample, view)
            raise
        pub.commit(sample, view)
        channel.sequence = seq

    def gaps(self) -> tuple[int, int]:
        """``(gaps, lost)``: sequence jumps of arriving envelopes and the frames they skipped
        (frames lost on the link)."""
        with self.counts.lock:
            return self._gaps, self._lost

    def close(self) -> None:
        """Release the publishers; idempotent. Each channel is closed under its lock, so a
        protocol thread still delivering either finishes its publish first or is counted as
        ``down``: never a publish on a released port."""
        for channel in self._by_name.values():
            with channel.lock:
                if not channel.closed:
                    channel.closed = True
                    channel.publisher.close()
