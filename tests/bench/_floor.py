"""Raw iceoryx2 plumbing for the benchmarks' hand-written **floor** cases (no taktora code).

A floor case is the topology of a taktora case written by hand: the iceoryx2 Python binding,
the raw protocol library and the same threads and processes, nothing else. It is the least
that design can cost in Python, so ``taktora / floor`` says what taktora adds.

The idiom (DESIGN.md, "Facts measured here"):

- a channel is two iceoryx2 services of one name: publish-subscribe (``Slice[c_uint8]``, no
  user header) carrying the bytes, and an event service whose notifier wakes the
  subscriber's listener (a WaitSet cannot wait on a subscriber);
- :class:`Pub` loans shared memory, ``memmove``-s the bytes in, sends, then notifies;
- :class:`Waiter` is a WaitSet over the listeners (and a stop eventfd); after a wake the
  listener's pending events are consumed (``try_wait``), or the WaitSet spins;
- :class:`Sub` takes samples; a taken sample's memory is read-only and must stay referenced
  while it is read (hold the sample while a ctypes view of ``payload_ptr`` is in use).

Service names must not collide with taktora's (those carry a user header, so the services
differ): every floor uses names under ``floor/``. The iceoryx2 prefix comes from
``TAKTORA_IOX_PREFIX`` (set by ``_bench.private_prefix``), so child processes share it.

Threads: a port belongs to the thread that uses it; a Waiter blocks only its caller's thread
and is woken through its stop fd (:class:`Stop`), never by calling it from another thread.
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

import iceoryx2 as iox

PREFIX_ENV = "TAKTORA_IOX_PREFIX"
BUFFER = 256  # subscriber queue: more than any benchmark keeps in flight (64)
_memmove = ctypes.memmove
_u8 = ctypes.c_uint8


def node(name: str | None = None, prefix: str | None = None) -> Any:
    """An iceoryx2 node under ``prefix`` (default: ``TAKTORA_IOX_PREFIX``), signals left to
    Python."""
    cfg = iox.config.default()
    cfg.global_cfg.prefix = iox.FileName.new(prefix or os.environ.get(PREFIX_ENV, "iox2_"))
    builder = (iox.NodeBuilder.new().config(cfg)
               .signal_handling_mode(iox.SignalHandlingMode.Disabled))
    if name:
        builder = builder.name(iox.NodeName.new(name))
    return builder.create(iox.ServiceType.Ipc)


def _services(node_: Any, name: str, buffer: int) -> tuple[Any, Any]:
    service = iox.ServiceName.new(name)
    pubsub = (node_.service_builder(service).publish_subscribe(iox.Slice[_u8])
              .history_size(0).subscriber_max_buffer_size(buffer)
              .subscriber_max_borrowed_samples(4).max_publishers(2).max_subscribers(8)
              .open_or_create())
    event = node_.service_builder(service).event().max_notifiers(4).max_listeners(8).open_or_create()
    return pubsub, event


class Pub:
    """Publisher + notifier of one channel. ``growable``: slices grow past ``max_size``
    (PowerOfTwo); ``block``: a full subscriber queue makes ``send`` wait (else the sample is
    dropped for that subscriber)."""

    def __init__(self, node_: Any, name: str, max_size: int, *, buffer: int = BUFFER,
                 growable: bool = False, block: bool = False) -> None:
        pubsub, event = _services(node_, name, buffer)
        strategy = iox.AllocationStrategy.PowerOfTwo if growable else iox.AllocationStrategy.Static
        backpressure = (iox.BackpressureStrategy.RetryUntilDelivered if block
                        else iox.BackpressureStrategy.DiscardData)
        self._pub = (pubsub.publisher_builder().initial_max_slice_len(max_size)
                     .allocation_strategy(strategy).backpressure_strategy(backpressure).create())
        self._notifier = event.notifier_builder().create()
        self._loan = self._pub.loan_slice_uninit
        self._notify = self._notifier.notify

    def send(self, data: Any, size: int | None = None) -> int:
        """Copy ``data`` (bytes or a ctypes array; ``size`` bytes of it) into shared memory,
        send, notify. Returns the number of subscribers reached."""
        n = len(data) if size is None else size
        sample = self._loan(n)
        _memmove(sample.payload_ptr, data, n)
        delivered = int(sample.assume_init().send())
        self._notify()
        return delivered

    def send_from(self, address: int, size: int) -> int:
        """As :meth:`send`, copying ``size`` bytes from memory at ``address`` (e.g. a received
        sample's ``payload_ptr``: shared memory to shared memory, one copy)."""
        sample = self._loan(size)
        _memmove(sample.payload_ptr, address, size)
        delivered = int(sample.assume_init().send())
        self._notify()
        return delivered

    def close(self) -> None:
        self._notifier.delete()
        self._pub.delete()


class Sub:
    """Subscriber + listener of one channel."""

    def __init__(self, node_: Any, name: str, *, buffer: int = BUFFER) -> None:
        pubsub, event = _services(node_, name, buffer)
        self._sub = pubsub.subscriber_builder().buffer_size(buffer).create()
        self.listener = event.listener_builder().create()
        self.take = self._sub.receive  # the next sample or None; never blocks

    def take_bytes(self) -> bytes | None:
        """The next payload as bytes (one copy), or None."""
        sample = self._sub.receive()
        if sample is None:
            return None
        return ctypes.string_at(sample.payload_ptr, sample.header.number_of_elements)

    def consume(self) -> None:
        """Drop the listener's pending wake-ups (after a WaitSet wake)."""
        self.listener.try_wait()

    def close(self) -> None:
        self.listener.delete()
        self._sub.delete()


class Stop:
    """A stop flag with an eventfd that wakes a :class:`Waiter` (any thread may set it)."""

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.is_set = False

    def set(self) -> None:
        self.is_set = True
        os.eventfd_write(self.fd, 1)

    def close(self) -> None:
        os.close(self.fd)


class Waiter:
    """A WaitSet over some subscribers' listeners (and a :class:`Stop`); owned by one thread."""

    def __init__(self, subs: list[Sub], stop: Stop | None = None) -> None:
        self._ws = (iox.WaitSetBuilder.new().signal_handling_mode(iox.SignalHandlingMode.Disabled)
                    .create(iox.ServiceType.Ipc))
        self._guards = [self._ws.attach_notification(s.listener) for s in subs]
        self._by_id = {iox.WaitSetAttachmentId.from_guard(g): s
                       for g, s in zip(self._guards, subs, strict=True)}
        if stop is not None:
            self._guards.append(self._ws.attach_notification_fd(
                iox.FileDescriptor.non_owning_new(stop.fd)))
        self._stop = stop

    def wait(self, timeout: float) -> list[Sub]:
        """Block (GIL released) until a listener fires or ``timeout`` s pass; consume the
        wake-ups and return the subscribers that were woken (empty on timeout or stop)."""
        ids, _ = self._ws.wait_and_process_with_timeout(iox.Duration.from_secs_f64(timeout))
        woken = []
        for i in ids:
            s = self._by_id.get(i)
            if s is not None:
                s.listener.try_wait()
                woken.append(s)
        return woken

    def close(self) -> None:
        for g in self._guards:
            g.delete()
        self._ws.delete()


def recv(sub: Sub, waiter: Waiter, timeout: float) -> bytes | None:
    """The next payload of ``sub`` as bytes, waiting up to ``timeout`` s in ``waiter``."""
    got = sub.take_bytes()
    if got is not None:
        return got
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        waiter.wait(left)
        got = sub.take_bytes()
        if got is not None:
            return got


def close_all(ports: list[Any]) -> None:
    """Close ports newest first (Pub/Sub/Waiter/Stop ``close``, raw iceoryx2 ``delete``)."""
    for p in reversed(ports):
        if hasattr(p, "close"):
            p.close()
        elif hasattr(p, "delete"):
            p.delete()
    ports.clear()
