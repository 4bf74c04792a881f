"""Request/response on iceoryx2: clients send requests, servers stream responses back.

Each service is the iceoryx2 request-response service plus two event services (``NAME/requests``
wakes servers, ``NAME/responses`` wakes clients). Every request carries a correlation id in its
:class:`RpcHeader`; the server echoes it in every response, with a per-request response sequence.
A server ends a response stream by finishing (releasing) the request; the client then sees
:attr:`PendingRequest.finished`.
"""

from __future__ import annotations

import ctypes
import itertools
import random
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self

import iceoryx2 as iox
from taktora.transport.channel import OverflowPolicy, ServiceSpec
from taktora.transport.errors import LoanError, PayloadError, RequestError, ServiceOpenError
from taktora.transport.events import Wakeable
from taktora.transport.sample import Sample

if TYPE_CHECKING:
    from taktora.transport.node import Node

_memmove = ctypes.memmove


class RpcHeader(ctypes.Structure):
    """User header of requests and responses (24 bytes, native order)."""

    _fields_ = [
        ("correlation_id", ctypes.c_uint64),
        ("sequence", ctypes.c_uint64),  # 0 for a request, 1.. for its responses
        ("timestamp_ns", ctypes.c_uint64),  # CLOCK_MONOTONIC at send
    ]

    @staticmethod
    def type_name() -> str:
        return "taktora::RpcHeader.v1"


def _open(node: Node, spec: ServiceSpec) -> Any:
    u8 = iox.Slice[ctypes.c_uint8]
    try:
        return (
            node.service_builder(spec.name)
            .request_response(u8, u8)
            .request_header(RpcHeader)
            .response_header(RpcHeader)
            .max_clients(spec.max_clients)
            .max_servers(spec.max_servers)
            .max_active_requests_per_client(spec.max_active_requests)
            .max_response_buffer_size(spec.response_buffer)
            .enable_safe_overflow_for_responses(spec.overflow is OverflowPolicy.DROP_OLDEST)
            .open_or_create()
        )
    except Exception as exc:
        raise ServiceOpenError(
            f"service {spec.name!r}: {exc}. Every participant must use the same ServiceSpec"
        ) from exc


def _fill(loaned: Any, data: Any, corr: int, seq: int) -> Any:
    size = len(data)
    if size:
        _memmove(loaned.payload_ptr, data, size)
    hdr = RpcHeader.from_address(loaned.user_header_ptr)
    hdr.correlation_id = corr
    hdr.sequence = seq
    hdr.timestamp_ns = time.monotonic_ns()
    return loaned.assume_init()


def _check_size(spec: ServiceSpec, what: str, size: int, limit: int, growable: bool) -> None:
    if size > limit and not growable:
        raise PayloadError(
            f"{what} of {size} B exceeds {spec.name!r} limit of {limit} B: raise the "
            "ServiceSpec payload max_size or set growable=True"
        )


def _wrap(raw: Any) -> Sample:
    hdr = RpcHeader.from_address(raw.user_header_ptr)
    return Sample(raw, raw.header.number_of_elements, None, hdr.sequence, hdr.timestamp_ns,
                  hdr.correlation_id)


def _port_options(builder: Any, payload: Any, overflow: OverflowPolicy) -> Any:
    strategy = iox.AllocationStrategy.PowerOfTwo if payload.growable else iox.AllocationStrategy.Static
    backpressure = (
        iox.BackpressureStrategy.RetryUntilDelivered
        if overflow is OverflowPolicy.BLOCK
        else iox.BackpressureStrategy.DiscardData
    )
    return (
        builder.initial_max_slice_len(payload.max_size)
        .allocation_strategy(strategy)
        .backpressure_strategy(backpressure)
    )


class PendingRequest:
    """A sent request: its responses arrive here, in order, until the server finishes.

    Response samples are :class:`Sample` objects whose ``publisher`` field holds the correlation
    id and whose ``sequence`` is the response's position in the stream (1, 2, ...).
    """

    def __init__(self, client: Client, pending: Any, correlation_id: int) -> None:
        self._client = client
        self._pending = pending
        self.correlation_id = correlation_id
        self.received = 0
        self.mismatched = 0

    def receive(self) -> Sample | None:
        """The next response, or None if none is queued now. Never blocks.

        A response carrying another correlation id is counted in ``mismatched`` and dropped.
        """
        while True:
            raw = self._pending.receive()
            if raw is None:
                return None
            sample = _wrap(raw)
            if sample.publisher != self.correlation_id:
                self.mismatched += 1
                sample.release()
                continue
            self.received += 1
            return sample

    @property
    def finished(self) -> bool:
        """True once the server ended the stream (or vanished) and every response was read."""
        return not self._pending.is_connected and not self._pending.has_response

    def responses(self, timeout: float) -> Iterator[Sample]:
        """Yield responses until the stream finishes; RequestError if ``timeout`` passes first.

        Blocks the calling thread on the client's listener between responses. Each sample is
        released when the loop moves on.
        """
        deadline = time.monotonic() + timeout
        while True:
            sample = self.receive()
            if sample is not None:
                try:
                    yield sample
                finally:
                    sample.release()
                continue
            if self.finished:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestError(
                    f"request {self.correlation_id} on {self._client.spec.name!r}: no end of "
                    f"responses within {timeout} s ({self.received} received)"
                )
            self._client.wait(min(left, 0.05))

    def close(self) -> None:
        """Stop waiting for responses (the server sees the disconnect)."""
        if self._pending is not None:
            self._pending.delete()
            self._pending = None

    def __enter__(self) -> PendingRequest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _RpcPort(Wakeable):
    """What clients and servers share: the service, one port, and a notifier/listener pair."""

    _role = "port"

    def __init__(self, node: Node, spec: ServiceSpec, builder: str, payload: Any,
                 listen_on: str, notify_on: str) -> None:
        self.spec = spec
        self._node = node
        service = _open(node, spec)
        try:
            self._port = _port_options(getattr(service, builder)(), payload, spec.overflow).create()
            self._notifier = node.open_event(notify_on).notifier_builder().create()
            self._listener = node.open_event(listen_on).listener_builder().create()
        except ServiceOpenError:
            raise
        except Exception as exc:
            raise ServiceOpenError(f"{self._role} on {spec.name!r}: {exc}") from exc
        self._service = service
        self._closed = False

    def close(self) -> None:
        """Release the port and its event ports; idempotent."""
        if not self._closed:
            self._closed = True
            self._port.delete()
            self._notifier.delete()
            self._listener.delete()
            self._service = None
            self._node._forget(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client(_RpcPort):
    """Sends requests on a service; woken when a server responds. Not thread-safe."""

    _role = "client"

    def __init__(self, node: Node, spec: ServiceSpec) -> None:
        super().__init__(node, spec, "client_builder", spec.request,
                         listen_on=spec.response_event_name, notify_on=spec.request_event_name)
        self._ids = itertools.count(random.getrandbits(40) << 16)

    def request(self, data: Any, correlation_id: int | None = None) -> PendingRequest:
        """Send ``data`` (bytes-like) as a request; RequestError if no server is connected."""
        if self._closed:
            raise RequestError(f"client on {self.spec.name!r} is closed")
        if self._service.dynamic_config.number_of_servers == 0:
            raise RequestError(f"no server on {self.spec.name!r}: start the server first")
        size = len(data)
        _check_size(self.spec, "request", size, self.spec.request.max_size, self.spec.request.growable)
        corr = next(self._ids) if correlation_id is None else correlation_id
        try:
            loaned = self._port.loan_slice_uninit(size)
        except Exception as exc:
            raise LoanError(
                f"cannot loan a request on {self.spec.name!r}: {exc} (more than "
                f"max_active_requests={self.spec.max_active_requests} in flight?)"
            ) from exc
        pending = _fill(loaned, data, corr, 0).send()
        self._notifier.notify()
        return PendingRequest(self, pending, corr)


class ActiveRequest:
    """A request a server received: read it, respond zero or more times, then finish.

    Leaving the ``with`` block finishes it, which tells the client the stream is complete.
    """

    def __init__(self, server: Server, raw: Any) -> None:
        self._server = server
        self._raw = raw
        hdr = RpcHeader.from_address(raw.user_header_ptr)
        self.correlation_id = int(hdr.correlation_id)
        self._sample = Sample(raw, raw.header.number_of_elements, None, 0, hdr.timestamp_ns,
                              self.correlation_id)
        self._responses = 0

    @property
    def payload(self) -> memoryview:
        """Zero-copy, read-only request bytes; valid until the request is finished."""
        return self._sample.payload

    def respond(self, data: Any) -> None:
        """Send one response (bytes-like) for this request."""
        if self._raw is None:
            raise RequestError(f"request {self.correlation_id} already finished")
        spec = self._server.spec
        size = len(data)
        _check_size(spec, "response", size, spec.response.max_size, spec.response.growable)
        try:
            loaned = self._raw.loan_slice_uninit(size)
        except Exception as exc:
            raise LoanError(f"cannot loan a response on {spec.name!r}: {exc}") from exc
        self._responses += 1
        _fill(loaned, data, self.correlation_id, self._responses).send()
        self._server._notify()

    @property
    def client_connected(self) -> bool:
        return self._raw is not None and bool(self._raw.is_connected)

    def finish(self) -> None:
        """End the response stream; idempotent."""
        if self._raw is not None:
            self._sample.release()
            self._raw.delete()
            self._raw = None
            self._server._notify()

    def __enter__(self) -> ActiveRequest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


class Server(_RpcPort):
    """Receives requests on a service; woken when a client sends one. Not thread-safe."""

    _role = "server"

    def __init__(self, node: Node, spec: ServiceSpec) -> None:
        super().__init__(node, spec, "server_builder", spec.response,
                         listen_on=spec.request_event_name, notify_on=spec.response_event_name)

    def receive(self) -> ActiveRequest | None:
        """The next request, or None. Never blocks."""
        raw = self._port.receive()
        return None if raw is None else ActiveRequest(self, raw)

    def _notify(self) -> None:
        self._notifier.notify()
