"""Application-side channel handles: :class:`ChannelWriter` and :class:`ChannelReader`.

Both sit on the transport (``taktora.transport``): one iceoryx2 bytes channel per descriptor
(:meth:`ChannelDescriptor.channel_spec`), each sample being one envelope - the 48-byte header
(:mod:`taktora.transport.envelope`) followed by the codec's output.

- The writer loans shared memory, writes the header and the encoded value right behind it in
  place (zero-copy for codecs that know their size, one copy otherwise), and sends. Sequence
  numbers are per writer, from 1. A send that reached no subscriber (nothing is listening: a
  gateway that is down or restarting) is counted as ``no_subscriber``; a sample a full
  DROP_NEWEST queue refused is counted as ``refused`` (one cause per counter).
- The reader receives, validates the envelope (a malformed one is counted by cause, logged and
  skipped), decodes (a decode error is counted and skipped), and counts the samples missing on
  the shared-memory hop (``gaps`` / ``lost``). It never raises for bad data unless built with
  ``strict=True``.

Loss accounting (spec/loss.rst): the reader's ``lost`` counts only shared-memory losses of
*this* hop, from the transport's per-publisher sample sequence - not from the envelope's
sequence - so a malformed envelope (counted as malformed) is never counted again as lost, and
losses on a protocol link before a gateway (counted by that gateway as ``in.lost``) never show
up here. A publisher whose first send came after this reader subscribed owes the reader every
sample from its first: samples overwritten before the first read count as lost. A publisher
that was already sending when the reader subscribed (a late join) is taken from the first
sample received.

Threading: a writer or reader is used by one thread at a time (the transport ports are not
thread-safe); :meth:`ChannelReader.stats` / :meth:`ChannelWriter.stats` may be read from any
thread. Neither ever goes through an actor mailbox.
"""

from __future__ import annotations

import functools
import logging
import time
import zlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import attrs
from taktora.connectors.codecs import (
    Codec,
    CodecRegistry,
    channel_error,
    decode_for,
    default_registry,
    encode_for,
)
from taktora.connectors.errors import CodecError, ConnectorError
from taktora.connectors.model import ChannelDescriptor, FrozenMap
from taktora.transport import envelope
from taktora.transport.channel import OverflowPolicy
from taktora.transport.envelope import HEADER_SIZE, EnvelopeCounters, EnvelopeHeader, FrameKind
from taktora.transport.errors import EnvelopeError
from taktora.transport.node import Node

log = logging.getLogger(__name__)

T = TypeVar("T")

SMALL_FRAME = 4096
"""Channels whose frames are at most this large (fixed size: ``HEADER_SIZE + max_payload``,
not growable) take the small-frame paths: the writer sends header and payload as one bytes
object (one copy into shared memory, no loaned view), the reader takes one private copy of
the sample (no view, no Sample). Both cost less than the view bookkeeping at these sizes;
larger frames are written and read in place."""

_CODEC_ID, _SEQUENCE = 4, 8  # indices of envelope.split()'s header fields


def resolve_codec(descriptor: ChannelDescriptor, codec: Codec[Any] | None,
                  registry: CodecRegistry | None) -> Codec[Any]:
    """The codec for ``descriptor``: ``codec`` if given (its name must match the descriptor's),
    else the registry's codec of that name. Raises ConnectorError / CodecError naming both."""
    if codec is None:
        return (registry or default_registry).by_name(descriptor.codec)
    if codec.name != descriptor.codec:
        raise ConnectorError(f"channel {descriptor.name!r} declares codec {descriptor.codec!r} "
                             f"but was given codec {codec.name!r}")
    return codec


@attrs.frozen
class WriterStats:
    """A writer's counters, one cause per field.

    ``sent``: envelopes published (the "written" of the loss equation). ``encode_errors``:
    values that could not be encoded (nothing sent, no sequence used). ``no_subscriber``: sends
    that reached no subscriber at all - lost at the writer, counted only here. ``refused``:
    (sample, subscriber) pairs a full queue refused under DROP_NEWEST; the subscriber counts
    the same samples as ``lost`` (a sequence gap), so the loss equation takes them from there.
    ``undelivered`` is ``no_subscriber + refused``.
    """

    sent: int
    encode_errors: int
    refused: int
    overflow: OverflowPolicy
    no_subscriber: int = 0

    @property
    def undelivered(self) -> int:
        return self.refused + self.no_subscriber


@attrs.frozen
class ReaderStats:
    """A reader's counters.

    ``received``: envelopes taken off the channel (good or bad). ``delivered``: values handed
    to the caller. ``gaps`` / ``lost``: times a publisher's sample sequence jumped, and the
    samples missing on this shared-memory hop (overwritten under DROP_OLDEST, refused under
    DROP_NEWEST; a publisher that started after this reader subscribed owes every sample from
    its first). Losses on a protocol link are the gateway's (``in.lost``), never counted here.
    ``malformed``: bad envelopes by cause (short, magic, version, header_len, length, crc);
    each is counted once (it is a received sample, not a gap). ``decode_errors``: good
    envelopes the codec rejected (including a codec id that is not this reader's codec).
    ``received == delivered + malformed_total + decode_errors``.
    """

    received: int
    delivered: int
    lost: int
    gaps: int
    malformed: FrozenMap[str, int]
    decode_errors: int
    overflow: OverflowPolicy

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())


@attrs.frozen
class Received(Generic[T]):
    """One decoded value with the envelope header it came in (sequence, timestamp, codec).

    ``fields`` are the header's raw fields (:data:`taktora.transport.envelope.HEADER` order);
    :attr:`header` is built from them on first access (most consumers read only ``value``,
    and building it costs about as much as checking the envelope)."""

    value: T
    fields: tuple[Any, ...] = attrs.field(repr=False)

    @functools.cached_property
    def header(self) -> EnvelopeHeader:
        """The envelope header this value came in."""
        return envelope.header_of(self.fields)


class ChannelWriter(Generic[T]):
    """Encodes values into envelopes on the descriptor's iceoryx2 channel.

    ``codec`` defaults to the registry's codec named by ``descriptor.codec``. :meth:`send`
    runs on the caller's thread and blocks only under the BLOCK overflow policy (until every
    subscriber has room). Closing the node closes the writer.
    """

    def __init__(self, node: Node, descriptor: ChannelDescriptor, codec: Codec[T] | None = None,
                 *, registry: CodecRegistry | None = None) -> None:
        self.descriptor = descriptor
        self.codec: Codec[T] = resolve_codec(descriptor, codec, registry)
        self._publisher = node.publisher(descriptor.channel_spec())
        self._name = descriptor.name
        self._crc = descriptor.crc
        self._codec_id = int(self.codec.codec_id)
        self._seq = 0
        self._encode_errors = 0
        self._small = descriptor.max_frame <= SMALL_FRAME and not descriptor.growable

    @property
    def overflow(self) -> OverflowPolicy:
        """What a full subscriber queue does to this channel's samples (from the descriptor)."""
        return self.descriptor.overflow

    @property
    def sequence(self) -> int:
        """The sequence number of the last envelope sent (0 before the first)."""
        return self._seq

    def send(self, value: T, *, correlation_id: int = 0, kind: int = FrameKind.DATA) -> int:
        """Encode ``value`` and publish it; return its sequence number.

        Raises CodecError (naming the channel and codec; counted, nothing sent, sequence not
        used) if the value cannot be encoded, and the transport's PayloadError / LoanError if it
        does not fit the channel or no shared memory is free.
        """
        seq = self._seq + 1
        codec = self.codec
        if self._small:  # header + payload as one bytes object: one copy into shared memory
            try:
                encoded = codec.encode(value)
            except Exception as exc:
                self._encode_errors += 1
                raise channel_error(codec, self._name, "encode", exc) from None
            self._publisher.send_copy(envelope.encode(
                encoded, codec_id=self._codec_id, sequence=seq, correlation_id=correlation_id,
                kind=kind, with_crc=self._crc))
            self._seq = seq
            return seq
        try:
            size = codec.size_hint(value)
        except Exception as exc:
            self._encode_errors += 1
            raise channel_error(codec, self._name, "encode", exc) from None
        pub = self._publisher
        # loan / commit / discard: the semantics of ``with pub.loan(...)`` (an exception
        # discards the loan, counted, and propagates) without its generator overhead
        if size is not None:
            sample, view = pub.loan_bytes(HEADER_SIZE + size)
            try:
                try:
                    written = codec.encode_into(value, view[HEADER_SIZE:])
                except Exception as exc:
                    self._encode_errors += 1
                    raise channel_error(codec, self._name, "encode", exc) from None
                self._header(view, written, seq, correlation_id, kind)
            except BaseException:
                pub.discard(sample, view)
                raise
        else:
            try:
                data = encode_for(codec, value, self._name)
            except CodecError:
                self._encode_errors += 1
                raise
            size = len(data)
            sample, view = pub.loan_bytes(HEADER_SIZE + size)
            try:
                view[HEADER_SIZE:] = data
                self._header(view, size, seq, correlation_id, kind)
            except BaseException:
                pub.discard(sample, view)
                raise
        pub.commit(sample, view)
        self._seq = seq
        return seq

    def _header(self, view: memoryview, size: int, seq: int, correlation_id: int,
                kind: int) -> None:
        crc = zlib.crc32(view[HEADER_SIZE:HEADER_SIZE + size]) if self._crc else None
        envelope.pack_header(view, codec_id=self._codec_id, payload_len=size, sequence=seq,
                             correlation_id=correlation_id, kind=kind, crc32=crc)

    def stats(self) -> WriterStats:
        """A snapshot of the counters (any thread)."""
        pub = self._publisher.stats
        return WriterStats(sent=self._seq, encode_errors=self._encode_errors,
                           refused=pub.refused, overflow=self.overflow,
                           no_subscriber=pub.no_subscriber)

    def close(self) -> None:
        """Release the publisher; idempotent."""
        self._publisher.close()

    def __enter__(self) -> ChannelWriter[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChannelReader(Generic[T]):
    """Receives, validates and decodes envelopes from the descriptor's iceoryx2 channel.

    :meth:`try_recv` never blocks; :meth:`recv` blocks the calling thread on the channel's
    listener (GIL released) up to ``timeout``. For an executor, attach :attr:`listener` to the
    WaitSet (``on_data(reader)``) and call :meth:`consume_wakeups` + :meth:`drain` per wake.

    Malformed envelopes and decode errors are counted, logged at WARNING and skipped; the
    reader keeps going. With ``strict=True`` they raise instead (EnvelopeError / CodecError,
    still counted, the bad sample consumed) - for tests and diagnostics.

    Checks (ARCH_0506): the header's sanity always; the payload's CRC only with
    ``verify_crc=True``. The bytes a reader sees never left shared memory: the writer or the
    gateway's sink wrote them, and the sink checked the CRC of everything that crossed a link.
    Ask for it on a channel that foreign, unchecked code writes into.
    """

    def __init__(self, node: Node, descriptor: ChannelDescriptor, codec: Codec[T] | None = None,
                 *, registry: CodecRegistry | None = None, strict: bool = False,
                 verify_crc: bool = False) -> None:
        self.descriptor = descriptor
        self.codec: Codec[T] = resolve_codec(descriptor, codec, registry)
        self.strict = strict
        self.verify_crc = verify_crc
        self._subscriber = node.subscriber(descriptor.channel_spec())
        self._name = descriptor.name
        self._codec_id = int(self.codec.codec_id)
        self._counters = EnvelopeCounters()
        self._received = 0
        self._delivered = 0
        self._decode_errors = 0
        self._small = descriptor.max_frame <= SMALL_FRAME and not descriptor.growable

    @property
    def overflow(self) -> OverflowPolicy:
        """What a full queue does (from the descriptor); DROP_* losses show up as ``lost``."""
        return self.descriptor.overflow

    @property
    def listener(self) -> Any:
        """The iceoryx2 Listener woken on every send to this channel (for a WaitSet)."""
        return self._subscriber.listener

    def consume_wakeups(self) -> int:
        """Empty pending wake-ups without blocking; returns how many there were."""
        return self._subscriber.consume_wakeups()

    def try_recv(self) -> Received[T] | None:
        """The next good value, or None when nothing (good) is queued. Never blocks.

        Bad samples on the way are counted and skipped (or raised, if ``strict``).
        """
        if self._small:  # one private copy: no view, no Sample (see SMALL_FRAME)
            receive = self._subscriber.receive_bytes
            while True:
                taken = receive()
                if taken is None:
                    return None
                got = self._take(taken[0])
                if got is not None:
                    return got
        while True:
            sample = self._subscriber.receive()
            if sample is None:
                return None
            with sample:
                got = self._take(sample.payload)
            if got is not None:
                return got

    def recv(self, timeout: float | None = None) -> Received[T] | None:
        """The next good value, waiting up to ``timeout`` seconds (None: forever) for one.

        Blocks the calling thread in the channel's listener; returns None on timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            got = self.try_recv()
            if got is not None:
                return got
            if deadline is None:
                self._subscriber.wait(None)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._subscriber.wait(left)

    def drain(self) -> Iterator[Received[T]]:
        """Yield every good value queued now; stops when the queue is empty."""
        while (got := self.try_recv()) is not None:
            yield got

    __iter__ = drain

    def _take(self, data: bytes | memoryview) -> Received[T] | None:
        # Errors are logged and raised as fresh exceptions built from a message: a traceback
        # or chained exception would hold views of the sample and keep its shared memory alive.
        self._received += 1
        error: Exception | None = None
        try:
            fields, payload = envelope.split(data, self._counters, self.verify_crc)
        except EnvelopeError as exc:
            error = EnvelopeError(f"channel {self._name!r}: {exc}")
        if error is not None:
            log.warning("dropped a malformed envelope: %s", str(error))
            if self.strict:
                raise error
            return None
        try:
            if fields[_CODEC_ID] != self._codec_id:
                raise CodecError(f"envelope codec id {fields[_CODEC_ID]} is not this reader's "
                                 f"{self._codec_id}")
            value = decode_for(self.codec, payload, self._name)
        except CodecError as exc:
            error = CodecError(str(exc) if str(exc).startswith("channel ")
                               else str(channel_error(self.codec, self._name, "decode", exc)))
        if error is not None:
            del payload
            self._decode_errors += 1
            log.warning("dropped seq %d: %s", fields[_SEQUENCE], str(error))
            if self.strict:
                raise error
            return None
        self._delivered += 1
        return Received(value, fields)

    def stats(self) -> ReaderStats:
        """A snapshot of the counters (any thread). ``gaps`` / ``lost`` are the transport
        subscriber's (per publisher, on its sample sequence; see the module docstring)."""
        sub = self._subscriber.stats
        return ReaderStats(received=self._received, delivered=self._delivered, lost=sub.lost,
                           gaps=sub.gaps, malformed=FrozenMap(self._counters.snapshot()),
                           decode_errors=self._decode_errors, overflow=self.overflow)

    def close(self) -> None:
        """Release the subscriber; idempotent."""
        self._subscriber.close()

    def __enter__(self) -> ChannelReader[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
