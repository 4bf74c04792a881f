"""The UDP reference connector: real datagram sockets, no hardware, envelopes on the wire.

Routing (``Routing(kind="udp", address="HOST:PORT")``): for an OUTBOUND channel the address is
where frames go (the socket binds an ephemeral port, or ``options["local_port"]``); for an
INBOUND channel it is the local address to bind (port 0 picks a free one, see
:meth:`UdpConnector.local_address`). One socket per channel, so the far side's inbound socket
identifies the channel: no demultiplexing header is needed. Each datagram is one whole
envelope, so the far side checks the sequence (gaps) and the CRC (corruption).

Threads: ``send`` runs on the dispatcher's outbound thread and does not block (a datagram
send; an injected delay sleeps). Each inbound socket has a receive thread of its own
(``<name>-rx-<channel>``, from :meth:`open` to :meth:`close`) blocked in ``recv``: what
arrives is published into iceoryx2 right there with ``ctx.deliver`` (UDP pushes: no reader
thread, no queue, no poll period). :meth:`close` wakes and joins them.

Health: Connecting before :meth:`open`, Up while the sockets are open and the link is up, Down
when the link is down (fault injection) or after :meth:`close`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs
from taktora.actors.control.messages import Ack, Reply
from taktora.actors.models.health import HealthState
from taktora.connectors.connector import Connector
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.errors import ConnectorError, LinkDownError
from taktora.connectors.model import ChannelDescriptor, Direction, FrozenMap
from taktora.connectors.requests import ConnectorRequest
from taktora.connectors.udp.faults import FaultInjector, Verdict
from taktora.connectors.udp.messages import InjectFault
from taktora.transport.envelope import HEADER_SIZE
from taktora.transport.net import is_loopback
from taktora.transport.validators import AssignChecks

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65507
"""Largest UDP payload over IPv4; larger envelopes cannot be sent by this connector."""

RECV_BUFFER = 1 << 20
"""Receive buffer asked of the kernel per inbound socket (it may grant less)."""

JOIN_S = 2.0
"""How long :meth:`UdpConnector.close` waits for each receive thread."""

RX_BATCH = 64
"""Most datagrams a receive thread takes per wake-up of its readers (a burst)."""

ERROR_PAUSE_S = 0.01
"""How long a receive thread pauses after a failed ``recv`` before it tries again."""

BURST_NS = 20_000
"""A ``recv`` that returned within this many nanoseconds found a datagram already waiting:
the receive thread then takes what else is queued in the same batch."""


_v = AssignChecks(ConnectorError)


def parse_address(descriptor: ChannelDescriptor) -> tuple[str, int]:
    """The ``(host, port)`` of a UDP routing; ConnectorError naming the channel if invalid."""
    routing = descriptor.routing
    if routing.kind != "udp":
        raise ConnectorError(f"channel {descriptor.name!r}: routing kind {routing.kind!r} is not "
                             "'udp' (UdpConnector serves udp routings only)")
    host, sep, port_text = routing.address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConnectorError(f"channel {descriptor.name!r}: routing address "
                             f"{routing.address!r} must be 'HOST:PORT' with a port 0..65535")
    return host, int(port_text)


def _check_listen(descriptor: ChannelDescriptor, host: str, allow_remote: bool) -> None:
    """An inbound socket listens on ``host``: loopback only, unless explicitly opened."""
    if not allow_remote and not is_loopback(host):
        raise ConnectorError(f"channel {descriptor.name!r}: inbound address {host!r} is not "
                             "loopback; set allow_remote = true in the gateway's settings to "
                             "listen beyond this machine (only on a network you trust)")


@attrs.frozen(kw_only=True)
class UdpSettings:
    """A UDP gateway's settings table: ``name`` names the connector in logs and counters
    (None: the gateway's name); ``allow_remote`` opens inbound sockets beyond loopback.
    Addresses come from each channel's routing (``{ kind = "udp", address = "HOST:PORT" }``:
    where an outbound channel sends to, where an inbound channel listens)."""

    name: str | None = attrs.field(default=None, validator=_v.optional(_v.identifier()))
    allow_remote: bool = attrs.field(default=False, validator=_v.instance(bool))
    """Let inbound channels bind an address beyond loopback (``0.0.0.0``, an interface
    address). Off by default: every listener stays on loopback unless you open it here."""


class UdpConnector(Connector):
    """UDP datagrams, one socket per channel, with a :class:`FaultInjector` on the send side.

    ``send`` runs on the dispatcher's outbound thread and never blocks (except for an injected
    delay); each inbound socket's receive thread delivers what arrives (see the module doc).
    """

    carries_envelope = True
    settings_class = UdpSettings

    @classmethod
    def from_settings(cls, name: str, settings: Any) -> UdpConnector:
        """The connector of gateway ``name`` (``settings``: a :class:`UdpSettings`)."""
        connector = cls(settings.name or name, allow_remote=settings.allow_remote)
        connector._settings = settings
        return connector

    @classmethod
    def check_channel(cls, settings: Any, descriptor: ChannelDescriptor) -> None:
        """Routing kind ``udp``, ``HOST:PORT`` with a port 1..65535, a frame that fits one
        datagram."""
        host, port = parse_address(descriptor)
        if descriptor.direction is Direction.INBOUND:
            _check_listen(descriptor, host, getattr(settings, "allow_remote", False))
        if port == 0:
            raise ConnectorError(f"channel {descriptor.name!r}: routing address "
                                 f"{descriptor.routing.address!r} needs a port 1..65535")
        if descriptor.max_frame > MAX_DATAGRAM:
            raise ConnectorError(f"channel {descriptor.name!r}: max_payload "
                                 f"{descriptor.max_payload} does not fit one UDP datagram "
                                 f"(at most {MAX_DATAGRAM - HEADER_SIZE} bytes with the envelope)")

    def __init__(self, name: str = "udp", *, faults: FaultInjector | None = None,
                 allow_remote: bool = False) -> None:
        self.name = name
        self.allow_remote = allow_remote
        self.faults = faults or FaultInjector()
        self._lock = threading.Lock()
        self._out: dict[str, tuple[socket.socket, tuple[str, int]]] = {}
        self._in: dict[str, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._state = "new"
        self._counts: dict[str, int] = {"send_errors": 0}
        self._sent = 0  # written by the outbound thread only
        self._received: dict[str, int] = {}  # per channel, each by its receive thread only
        self._settings: UdpSettings | None = None  # what from_settings built it from

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self, ctx: ConnectorContext) -> None:
        """Bind one socket per channel of ``ctx``, start a receive thread per inbound socket
        and report Up (Down while an injected link cut lasts). Raises ConnectorError naming
        the channel when a routing is invalid or its socket cannot be bound; nothing stays
        open then."""
        if self._state == "open":
            raise ConnectorError(f"connector {self.name!r} is already open")
        try:
            for d in ctx.channels:
                host, port = parse_address(d)
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    if d.direction is Direction.OUTBOUND:
                        sock.setblocking(False)  # a full socket buffer is a send error
                        local = d.routing.option("local_port", 0)
                        sock.bind((host, int(local)))
                        self._out[d.name] = (sock, (host, port))
                    else:
                        _check_listen(d, host, self.allow_remote)
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
                        sock.bind((host, port))
                        self._in[d.name] = sock
                except BaseException:
                    sock.close()
                    raise
        except OSError as exc:
            self._close_sockets()
            raise ConnectorError(f"connector {self.name!r}: cannot bind channel {d.name!r} "
                                 f"({d.routing.address}): {exc}") from exc
        except BaseException:
            self._close_sockets()
            raise
        self._state = "open"
        for name in self._in:  # every key now: a receive thread never resizes the dict
            self._received.setdefault(name, 0)
        self._threads = [threading.Thread(target=self._receive, args=(ctx, name, sock),
                                          name=f"{self.name}-rx-{name}", daemon=True)
                         for name, sock in self._in.items()]
        for thread in self._threads:
            thread.start()
        self.faults.on_link = lambda up: ctx.report(
            HealthState.UP if up else HealthState.DOWN,
            "link restored (fault injection)" if up else "link cut (fault injection)")
        if self.faults.is_link_down:
            ctx.report(HealthState.DOWN, "link cut (fault injection)")
        else:
            ctx.report(HealthState.UP, f"{len(ctx.channels)} socket(s) bound")

    def close(self) -> None:
        """Stop the receive threads (each woken out of ``recv``, joined up to ``JOIN_S``)
        and close every socket; idempotent (owner's thread). No delivery happens after it."""
        with self._lock:
            if self._state != "open":
                self._state = "closed"
                return
            self._state = "closed"
        self.faults.on_link = None
        for sock in self._in.values():
            with contextlib.suppress(OSError):  # ENOTCONN for UDP, but the recv wakes up
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(JOIN_S)
            if thread.is_alive():
                log.error("connector %r: %s did not stop within %.1f s", self.name,
                          thread.name, JOIN_S)
        self._threads = []
        self._close_sockets()

    def _receive(self, ctx: ConnectorContext, name: str, sock: socket.socket) -> None:
        """One inbound socket's receive thread: each datagram goes to ``ctx.deliver`` (which
        counts what cannot be published) until :meth:`close`. When a datagram was already
        waiting (the blocking ``recv`` returned at once: a burst), whatever else is queued is
        taken too, up to ``RX_BATCH``, and delivered with one wake-up of the readers
        (``ctx.deliver_many``); a lone datagram costs no extra system call."""
        recv, deliver, deliver_many, faults = sock.recv, ctx.deliver, ctx.deliver_many, self.faults
        clock = time.perf_counter_ns
        received = self._received[name]  # this connector's count goes on across reconnects
        try:
            while True:
                began = clock()
                try:
                    data = recv(MAX_DATAGRAM)
                except OSError as exc:
                    if self._state != "open":
                        return
                    with self._lock:
                        self._counts["receive_errors"] = self._counts.get("receive_errors", 0) + 1
                    log.warning("connector %r: receive on %r failed: %s", self.name, name, exc)
                    time.sleep(ERROR_PAUSE_S)  # a persistent error must not spin this thread
                    continue
                if not data and self._state != "open":
                    return  # woken by close()
                if faults.discard_inbound():
                    continue
                if clock() - began > BURST_NS:  # it waited: a lone datagram
                    received += 1
                    self._received[name] = received
                    deliver(name, data)
                    continue
                batch = [data]
                with contextlib.suppress(BlockingIOError, InterruptedError):
                    for _ in range(RX_BATCH - 1):  # at most RX_BATCH datagrams per wake-up
                        more = recv(MAX_DATAGRAM, socket.MSG_DONTWAIT)
                        if not more and self._state != "open":
                            break
                        if not faults.discard_inbound():  # a link cut applies to each one
                            batch.append(more)
                received += len(batch)
                self._received[name] = received
                deliver_many(name, batch)
        except Exception:
            log.exception("connector %r: receive thread of %r failed", self.name, name)
            if self._state == "open":
                ctx.report(HealthState.DOWN, f"receive thread of {name!r} failed")

    def _close_sockets(self) -> None:
        for sock, _ in self._out.values():
            sock.close()
        for sock in self._in.values():
            sock.close()
        self._out.clear()
        self._in.clear()

    def local_address(self, channel: str) -> tuple[str, int]:
        """The bound ``(host, port)`` of ``channel``'s socket (after :meth:`open`)."""
        sock = self._in.get(channel) or self._out.get(channel, (None, None))[0]
        if sock is None:
            raise ConnectorError(f"connector {self.name!r} has no open channel {channel!r}")
        host, port = sock.getsockname()
        return str(host), int(port)

    # -- data ----------------------------------------------------------------------------------
    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        """Send one envelope to the channel's remote address, through the fault injector when
        a fault is set (outbound thread)."""
        entry = self._out.get(descriptor.name)
        if entry is None:
            raise ConnectorError(f"connector {self.name!r}: channel {descriptor.name!r} is not "
                                 "an open outbound channel")
        faults = self.faults
        if faults.active:
            decision = faults.decide(frame)
            if decision.verdict is Verdict.LINK_DOWN:
                raise LinkDownError(f"connector {self.name!r}: link is down")
            if decision.verdict is Verdict.DROP:
                return
            if decision.delay_s:
                time.sleep(decision.delay_s)
            frame = decision.frame
        else:
            faults.frames += 1
        sock, remote = entry
        try:
            sock.sendto(frame, remote)
        except OSError as exc:
            with self._lock:
                self._counts["send_errors"] += 1
            raise ConnectorError(f"connector {self.name!r}: sending {descriptor.name!r} to "
                                 f"{remote} failed: {exc}") from exc
        self._sent += 1

    def health(self) -> HealthState:
        """Connecting before open, Up when open with the link up, Down otherwise (what it
        reports to its context)."""
        if self._state == "new":
            return HealthState.CONNECTING
        if self._state != "open" or self.faults.is_link_down:
            return HealthState.DOWN
        return HealthState.UP

    def configure(self, settings: Any) -> bool:
        """Run-time settings (the gateway's actor thread; never blocks): ``allow_remote`` is
        applied live (only :meth:`open` reads it, and the gateway has already checked the
        bound channels against the new value); a new ``name`` needs a rebuilt connector
        (False), as does a connector built without :meth:`from_settings`."""
        current = self._settings
        if not isinstance(settings, UdpSettings) or current is None:
            return False
        if attrs.evolve(settings, allow_remote=current.allow_remote) != current:
            return False  # something besides allow_remote changed
        self.allow_remote = settings.allow_remote
        self._settings = settings
        return True

    def handle_request(self, msg: ConnectorRequest) -> Reply:
        """Serve :class:`InjectFault` (on the gateway's actor thread; never blocks): set the
        faults it names on :attr:`faults` and answer Ack. Any other request is refused."""
        if not isinstance(msg, InjectFault):
            return super().handle_request(msg)
        faults = self.faults
        if msg.clear:
            faults.clear()
        if msg.drop_every:
            faults.drop(every=int(msg.drop_every))
        if msg.corrupt_every:
            faults.corrupt(every=int(msg.corrupt_every))
        if msg.delay_ms:
            faults.delay(msg.delay_ms)
        if msg.link == "down":
            faults.link_down()
        elif msg.link == "up":
            faults.link_up()
        return Ack(correlation_id=msg.correlation_id, detail="faults set")

    def stats(self) -> Mapping[str, int]:
        """``sent``, ``received``, ``send_errors`` and the fault counts by cause."""
        with self._lock:
            counts = dict(self._counts)
        counts["sent"] = self._sent
        counts["received"] = sum(self._received.values())
        counts.update(self.faults.stats())
        return FrozenMap(counts)
