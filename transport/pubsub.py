"""Publish-subscribe ports on iceoryx2 shared memory, each paired with an event service.

Every channel is two iceoryx2 services of the same name: the publish-subscribe service that
carries the samples, and an event service whose notifier wakes the subscribers' listeners
(a WaitSet cannot wait on a subscriber directly). Each sample carries a small user header
(:class:`TransportHeader`): the publisher's random id, a per-publisher sequence number and a
monotonic timestamp, so that subscribers detect and count every lost sample.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs
import iceoryx2 as iox
from taktora.transport.channel import BytesPayload, ChannelSpec, OverflowPolicy, StructPayload
from taktora.transport.errors import LoanError, PayloadError, ServiceOpenError
from taktora.transport.events import Wakeable
from taktora.transport.sample import Sample

if TYPE_CHECKING:
    from taktora.transport.node import Node

log = logging.getLogger(__name__)

_memmove = ctypes.memmove
_string_at = ctypes.string_at
_monotonic_ns = time.monotonic_ns

# iceoryx2's Python layer wraps ``Publisher.loan_slice_uninit`` and
# ``SampleMutUninit.assume_init`` in functions that check the port's payload type on every call
# (``typing.get_origin`` + an assert: about 0.35 us each, twice per send). A taktora port's
# payload type is fixed when it is built (bytes channels are ``Slice[c_uint8]``, struct
# channels their Structure), so sends call the binding's methods underneath those checks when
# this iceoryx2 has them (0.10), and the public wrappers otherwise. tests/transport/test_pubsub.py
# checks which one this build uses.
_RAW_LOAN_SLICE: Any = getattr(iox.Publisher, "__loan_slice_uninit", None)
_RAW_ASSUME_INIT: Any = getattr(iox.SampleMutUninit, "__assume_init", None)
FAST_SEND = _RAW_LOAN_SLICE is not None and _RAW_ASSUME_INIT is not None
"""True when sends bypass the binding's per-call type checks (see above)."""


def _public_assume_init(sample: Any) -> Any:
    return sample.assume_init()


class TransportHeader(ctypes.Structure):
    """The iceoryx2 user header of every taktora pub/sub sample (32 bytes, native order)."""

    _fields_ = [
        ("publisher", ctypes.c_uint64),  # random per Publisher instance
        ("sequence", ctypes.c_uint64),  # 1, 2, 3 ... per publisher
        ("timestamp_ns", ctypes.c_uint64),  # CLOCK_MONOTONIC at send
        ("first_send_ns", ctypes.c_uint64),  # CLOCK_MONOTONIC of this publisher's first send
    ]

    @staticmethod
    def type_name() -> str:
        return "taktora::TransportHeader.v2"


@attrs.frozen
class NotifyOutcome:
    """What one send did: subscribers that got the sample, listeners that were woken."""

    delivered: int
    woken: int


_OUTCOMES: dict[tuple[int, int], NotifyOutcome] = {}


def _outcome(delivered: int, woken: int) -> NotifyOutcome:
    """The (immutable, shared) NotifyOutcome of ``delivered`` / ``woken``: one per pair, built
    once - a send returns one without building an attrs object each time."""
    key = (delivered, woken)
    got = _OUTCOMES.get(key)
    if got is None:
        got = _OUTCOMES[key] = NotifyOutcome(delivered, woken)
    return got


@attrs.frozen
class PublisherStats:
    """Counters of a publisher, one cause per field. ``sent``: every send, those that reached
    nobody included (a send that reached nobody gives its sequence number to the next one).

    ``no_subscriber``: sends that reached no subscriber at all (nobody was connected: the
    sample is gone, counted here and nowhere else). ``refused``: (sample, subscriber) pairs the
    DROP_NEWEST policy refused because that subscriber's queue was full (the subscriber sees
    the same samples as a sequence gap: its ``lost``). ``undelivered`` is their sum.
    """

    sent: int
    refused: int
    loans_discarded: int
    no_subscriber: int = 0

    @property
    def undelivered(self) -> int:
        """Samples (or sample, subscriber pairs) that were not delivered: both causes."""
        return self.refused + self.no_subscriber


@attrs.frozen
class SubscriberStats:
    """Counters of a subscriber. ``lost`` is the number of missing sequence numbers (samples
    overwritten by DROP_OLDEST, refused by DROP_NEWEST, or never seen); ``gaps`` is how many
    times a gap was seen. For a publisher whose first send came after this subscriber was
    created, samples missing before the first one received count too; for one that was
    already sending (a late join), the first sample received is the baseline."""

    received: int
    lost: int
    gaps: int
    publishers: int


def _open_pubsub(node: Node, spec: ChannelSpec) -> Any:
    payload_type: Any = (
        iox.Slice[ctypes.c_uint8] if isinstance(spec.payload, BytesPayload) else spec.payload.struct
    )
    builder = (
        node.service_builder(spec.name)
        .publish_subscribe(payload_type)
        .user_header(TransportHeader)
        .history_size(spec.history)
        .subscriber_max_buffer_size(spec.buffer_size)
        .subscriber_max_borrowed_samples(spec.max_borrowed)
        .max_publishers(spec.max_publishers)
        .max_subscribers(spec.max_subscribers)
        .enable_safe_overflow(spec.overflow is OverflowPolicy.DROP_OLDEST)
    )
    try:
        return builder.open_or_create()
    except Exception as exc:
        raise ServiceOpenError(
            f"channel {spec.name!r}: {exc}. Every participant must use the same ChannelSpec "
            f"(payload type {spec.payload.type_name!r}, history, buffer size, limits, overflow)"
        ) from exc


@attrs.frozen
class Resume:
    """Where an earlier publisher (of a process that died) stopped: its id, the last sequence a
    subscriber received and its first send. A publisher built with it continues that sequence,
    so subscribers count what the dead one sent and they never received as ``lost``."""

    publisher: int
    sequence: int
    first_send_ns: int


class Publisher:
    """Sends samples on one channel and wakes its subscribers.

    Not thread-safe: use one publisher per thread. Sends never block except under the BLOCK
    overflow policy, where a send waits until every subscriber has room. ``resume`` continues
    the identity and sequence of a publisher that died (see :class:`Resume`).
    """

    def __init__(self, node: Node, spec: ChannelSpec, *, resume: Resume | None = None) -> None:
        self.spec = spec
        self._node = node
        self._service = _open_pubsub(node, spec)
        builder = self._service.publisher_builder()
        payload = spec.payload
        self._struct: type[ctypes.Structure] | None = None
        self._max = 0
        self._growable = False
        if isinstance(payload, BytesPayload):
            strategy = (
                iox.AllocationStrategy.PowerOfTwo if payload.growable else iox.AllocationStrategy.Static
            )
            builder = builder.initial_max_slice_len(payload.max_size).allocation_strategy(strategy)
            self._max = payload.max_size
            self._growable = payload.growable
        else:
            self._struct = payload.struct
        backpressure = (
            iox.BackpressureStrategy.RetryUntilDelivered
            if spec.overflow is OverflowPolicy.BLOCK
            else iox.BackpressureStrategy.DiscardData
        )
        try:
            self._pub = builder.backpressure_strategy(backpressure).create()
            self._notifier = node.open_event(spec.event_name).notifier_builder().create()
        except Exception as exc:
            raise ServiceOpenError(f"publisher on {spec.name!r}: {exc}") from exc
        pub = self._pub
        self._loan_slice: Callable[[int], Any] = (
            _RAW_LOAN_SLICE.__get__(pub) if FAST_SEND and self._struct is None
            else pub.loan_slice_uninit)
        self._assume_init: Callable[[Any], Any] = (
            _RAW_ASSUME_INIT if FAST_SEND else _public_assume_init)
        self.id = random.getrandbits(63) | 1 if resume is None else resume.publisher
        self._seq = 0 if resume is None else resume.sequence  # the last one a subscriber got
        self._sent = 0
        self._first_send_ns = 0 if resume is None else resume.first_send_ns
        self._refused = 0
        self._no_subscriber = 0
        self._discarded = 0
        self._count_refused = spec.overflow is OverflowPolicy.DROP_NEWEST
        self._closed = False

    # ------------------------------------------------------------------ sending
    def send_copy(self, data: Any, *, notify: bool = True) -> NotifyOutcome:
        """Copy ``data`` (bytes-like, or an instance of the channel's struct) into shared
        memory and send it. Raises PayloadError if it does not fit the channel.

        ``notify=False`` sends without waking the listeners (``woken`` is 0): a caller that
        sends a batch wakes them once afterwards with :meth:`notify`."""
        if self._struct is not None:
            if not isinstance(data, self._struct):
                raise PayloadError(
                    f"channel {self.spec.name!r} carries {self._struct.__name__}, "
                    f"got {type(data).__name__}"
                )
            sample = self._loan_raw(0)
            _memmove(sample.payload_ptr, ctypes.addressof(data), ctypes.sizeof(data))
        elif type(data) is bytes:
            size = len(data)
            if (size > self._max and not self._growable) or self._closed:
                sample = self._loan_raw(size)  # raises the error that says why
            else:
                try:
                    sample = self._loan_slice(size)
                except Exception:
                    sample = self._loan_raw(size)  # the same error, with the explanation
            if size:
                _memmove(sample.payload_ptr, data, size)
        else:  # any buffer (memoryview, bytearray, a received sample's read-only view)
            src = memoryview(data).cast("B")
            size = src.nbytes
            sample = self._loan_raw(size)
            if size:
                dst = memoryview((ctypes.c_uint8 * size).from_address(sample.payload_ptr))
                dst.cast("B")[:] = src
        return self._send(sample, notify)

    @contextlib.contextmanager
    def loan(self, size: int | None = None) -> Iterator[Any]:
        """Loan shared memory, let the caller fill it in place, send on a clean exit.

        Yields a writable ``memoryview`` of ``size`` bytes (bytes channels) or the struct itself
        (struct channels). If the block raises, the loan is discarded (counted) and nothing is
        sent. The view must not be used after the block.
        """
        if self._struct is None:
            sample, view = self.loan_bytes(size or 0)
            try:
                yield view
            except BaseException:
                self.discard(sample, view)
                raise
            self.commit(sample, view)
            return
        sample = self._loan_raw(0)
        try:
            yield self._struct.from_address(sample.payload_ptr)
        except BaseException:
            self._discarded += 1
            sample.delete()
            raise
        self.last_outcome = self._send(sample)

    last_outcome: NotifyOutcome | None = None

    # The bytes-channel loan protocol behind :meth:`loan`, for hot paths that cannot afford the
    # generator-based context manager (~3.5 us per send here): ``loan_bytes`` then exactly one
    # of ``commit`` (send) or ``discard`` (counted in ``loans_discarded``, nothing sent).
    def loan_bytes(self, size: int) -> tuple[Any, memoryview]:
        """Loan ``size`` bytes of shared memory: ``(loan, view)``, the view writable in place.

        Pass both to exactly one of :meth:`commit` or :meth:`discard`; the view is invalid
        afterwards. Bytes channels only. Raises PayloadError (too large, closed) or LoanError
        (no shared memory free). Same thread rules as :meth:`loan`.
        """
        sample = self._loan_raw(size)
        return sample, memoryview((ctypes.c_uint8 * size).from_address(sample.payload_ptr)).cast("B")

    def commit(self, sample: Any, view: memoryview, *, notify: bool = True) -> NotifyOutcome:
        """Send a loan from :meth:`loan_bytes` and notify the channel's listeners (unless
        ``notify=False``: see :meth:`send_copy`)."""
        view.release()
        outcome = self.last_outcome = self._send(sample, notify)
        return outcome

    def discard(self, sample: Any, view: memoryview) -> None:
        """Give a loan from :meth:`loan_bytes` back unsent (counted in ``loans_discarded``)."""
        self._discarded += 1
        view.release()
        sample.delete()

    def loan_send(self, fill: Callable[[Any], object], size: int | None = None) -> NotifyOutcome:
        """Loan, call ``fill(view)`` to write the payload in place, send. See :meth:`loan`."""
        with self.loan(size) as view:
            fill(view)
        assert self.last_outcome is not None
        return self.last_outcome

    def _loan_raw(self, size: int) -> Any:
        if self._closed:
            raise PayloadError(f"publisher on {self.spec.name!r} is closed")
        try:
            if self._struct is not None:
                sample = self._pub.loan_uninit()
            else:
                if size > self._max and not self._growable:
                    raise PayloadError(
                        f"payload of {size} B exceeds channel {self.spec.name!r} max_size="
                        f"{self._max} B: raise BytesPayload.max_size or set growable=True"
                    )
                sample = self._pub.loan_slice_uninit(size)
        except PayloadError:
            raise
        except Exception as exc:
            raise LoanError(
                f"cannot loan {size} B on {self.spec.name!r}: {exc} (too many samples in flight "
                "or the segment is exhausted)"
            ) from exc
        return sample

    def notify(self) -> int:
        """Wake the channel's listeners now (after sends with ``notify=False``); returns how
        many were woken."""
        return int(self._notifier.notify())

    def _send(self, sample: Any, notify: bool = True) -> NotifyOutcome:
        self._seq += 1
        hdr = TransportHeader.from_address(sample.user_header_ptr)
        hdr.publisher = self.id
        hdr.sequence = self._seq
        hdr.timestamp_ns = now = _monotonic_ns()
        if not self._first_send_ns:
            self._first_send_ns = now
        hdr.first_send_ns = self._first_send_ns
        delivered = self._assume_init(sample).send()
        woken = self._notifier.notify() if notify else 0
        self._sent += 1
        if self._count_refused:
            missing = self._service.dynamic_config.number_of_subscribers - delivered
            if missing > 0:
                self._refused += missing
            elif not delivered:
                self._reached_nobody()
        elif not delivered:  # DROP_OLDEST / BLOCK deliver to every connected subscriber
            self._reached_nobody()
        return _outcome(delivered, woken)

    def _reached_nobody(self) -> None:
        """A send no subscriber received: counted here, and its sequence number is given to
        the next send, so no subscriber (one that connects later, a restarted gateway) ever
        sees it as a gap: one cause per sample."""
        self._no_subscriber += 1
        self._seq -= 1
        if not self._seq:
            self._first_send_ns = 0  # as if it had never sent

    # ------------------------------------------------------------------ misc
    @property
    def sequence(self) -> int:
        """The sequence of the last sample a subscriber received (0: none yet)."""
        return self._seq

    @property
    def first_send_ns(self) -> int:
        """CLOCK_MONOTONIC of the first send that reached a subscriber (0: none yet)."""
        return self._first_send_ns

    @property
    def stats(self) -> PublisherStats:
        return PublisherStats(self._sent, self._refused, self._discarded, self._no_subscriber)

    def update_connections(self) -> None:
        """Connect to subscribers that appeared since the last send (sending does this too)."""
        self._pub.update_connections()

    def close(self) -> None:
        """Release the port; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._pub.delete()
        self._notifier.delete()
        self._service = None
        self._node._forget(self)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscriber(Wakeable):
    """Receives samples of one channel; counts lost samples per publisher.

    Not thread-safe. :meth:`receive` never blocks; :meth:`wait` (or attaching :attr:`listener`
    to a WaitSet, as the executor does) sleeps until data arrives.
    """

    def __init__(self, node: Node, spec: ChannelSpec) -> None:
        self.spec = spec
        self._node = node
        self._service = _open_pubsub(node, spec)
        try:
            self._sub = self._service.subscriber_builder().buffer_size(spec.buffer_size).create()
            self._listener = node.open_event(spec.event_name).listener_builder().create()
        except Exception as exc:
            raise ServiceOpenError(f"subscriber on {spec.name!r}: {exc}") from exc
        # taken after the port exists: a publisher whose first send comes later reaches this
        # subscriber from its sequence 1 on (iceoryx2 connects existing subscribers on send)
        self._created_ns = _monotonic_ns()
        self._struct = spec.payload.struct if isinstance(spec.payload, StructPayload) else None
        self._fixed_size = ctypes.sizeof(self._struct) if self._struct is not None else -1
        self._last: dict[int, int] = {}  # publisher id -> last sequence (but the current one)
        self._cur_pub = 0
        self._cur_seq = 0
        self._received = 0
        self._lost = 0
        self._gaps = 0
        self._closed = False

    def receive(self) -> Sample | None:
        """The next sample, or None if none is queued. Never blocks."""
        raw = self._sub.receive()
        if raw is None:
            return None
        hdr, pub, seq = self._track(raw)
        # a bytes sample's length is read when its payload is first used (-1: not yet)
        return Sample(raw, self._fixed_size, self._struct, seq, hdr.timestamp_ns, pub)

    def _track(self, raw: Any) -> tuple[Any, int, int]:
        """Count one received sample and follow its publisher's sequence: ``(transport header,
        publisher, sequence)``."""
        hdr = TransportHeader.from_address(raw.user_header_ptr)
        pub, seq = hdr.publisher, hdr.sequence
        self._received += 1
        if pub == self._cur_pub and seq == self._cur_seq + 1:  # the common case
            self._cur_seq = seq
        else:
            self._follow(pub, seq, hdr.first_send_ns)
        return hdr, pub, seq

    def receive_bytes(self) -> tuple[bytes, int, int] | None:
        """The next payload as a private ``bytes`` copy with its publisher id and sequence:
        ``(data, publisher, sequence)``, or None if none is queued. Never blocks.

        The sample goes back to iceoryx2 at once, so this is the cheapest receive for small
        payloads that are copied anyway (no view, no :class:`Sample`); losses are counted as
        by :meth:`receive`. Bytes channels: the payload; struct channels: its bytes.
        """
        raw = self._sub.receive()
        if raw is None:
            return None
        _, pub, seq = self._track(raw)
        size = self._fixed_size if self._struct is not None else raw.header.number_of_elements
        return _string_at(raw.payload_ptr, size), pub, seq

    def _follow(self, pub: int, seq: int, first_send_ns: int) -> None:
        """Follow publisher ``pub`` to ``seq``: a jump past the next expected sequence is a
        gap (its samples lost); a publisher seen for the first time that started after this
        subscriber owes it every sequence from 1."""
        if pub == self._cur_pub:
            last: int | None = self._cur_seq
        else:
            if self._cur_pub:
                self._last[self._cur_pub] = self._cur_seq
            last = self._last.get(pub)
            if last is None and first_send_ns > self._created_ns:
                last = 0  # a publisher that started after us owes us every sequence from 1
            self._cur_pub = pub
        if last is not None and seq > last + 1:
            self._gaps += 1
            self._lost += seq - last - 1
        self._cur_seq = seq

    @property
    def lost(self) -> int:
        """Samples lost so far (as ``stats.lost``, without building the stats object)."""
        return self._lost

    def receive_copy(self) -> Any:
        """The next payload as a private copy (bytes or a ctypes instance), or None."""
        sample = self.receive()
        if sample is None:
            return None
        try:
            return sample.copy()
        finally:
            sample.release()

    def drain(self) -> Iterator[Sample]:
        """Yield every queued sample; each is released when the loop moves on (or ends)."""
        while True:
            sample = self.receive()
            if sample is None:
                return
            try:
                yield sample
            finally:
                sample.release()

    @property
    def has_samples(self) -> bool:
        return bool(self._sub.has_samples())

    @property
    def stats(self) -> SubscriberStats:
        publishers = len(self._last) + (1 if self._cur_pub and self._cur_pub not in self._last else 0)
        return SubscriberStats(self._received, self._lost, self._gaps, publishers)

    def close(self) -> None:
        """Release the port; idempotent. Samples still held stay valid until released."""
        if self._closed:
            return
        self._closed = True
        self._sub.delete()
        self._listener.delete()
        self._service = None
        self._node._forget(self)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
