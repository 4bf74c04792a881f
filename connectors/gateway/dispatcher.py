"""The gateway's data plane: two dispatcher threads between iceoryx2 and a :class:`Connector`.

Data never passes through an actor mailbox. A gateway actor owns a :class:`Dispatcher` and
sends it control calls (``pause``, ``resume``, ``stop``, ``stats``); the payload bytes move on
the dispatcher's own threads:

- **outbound thread** (``<name>-out``): blocks in an iceoryx2 WaitSet on the listeners of every
  OUTBOUND descriptor's ``{name}.out`` subscriber (and a stop eventfd); per wake it drains the
  subscribers, checks each envelope header (no CRC check: the writer is local) and hands the
  frame to ``connector.send`` - the whole envelope if the connector carries envelopes, the
  payload only otherwise. The frame is a read-only view of shared memory: no copy is made on
  the way to the protocol, and nothing is re-encoded.
- **inbound thread** (``<name>-in``): loops on ``connector.receive(poll_s)``, resolves the channel
  by descriptor name or routing, validates the envelope (bad ones are counted by cause and
  dropped - a corrupted UDP frame ends here with cause ``crc``) or wraps a payload-only frame
  in a fresh envelope, counts sequence gaps, and publishes it on ``{name}.in``.

Pause: a paused direction keeps draining its source and counts every frame as dropped with
cause ``paused`` (nothing is held: held data would be stale control data when resumed, and
the iceoryx2 queues are bounded anyway).

Failures never stop a thread: a send that raises is counted (``link_down`` for
:class:`LinkDownError`, ``send_error`` otherwise), a receive that raises is counted in
``receive_errors`` and retried after ``poll_s``; an unexpected exception is logged with its
traceback and counted as ``internal_error``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import zlib
from collections.abc import Sequence
from typing import Any

import attrs
import iceoryx2 as iox
from taktora.connectors.codecs import CodecRegistry, codec_id_for
from taktora.connectors.connector import Connector, Frame
from taktora.connectors.errors import ConnectorError, LinkDownError
from taktora.connectors.model import ChannelDescriptor, Direction, FrozenMap, Routing
from taktora.transport import envelope
from taktora.transport.envelope import HEADER_SIZE, EnvelopeCounters
from taktora.transport.errors import EnvelopeError, PayloadError, TransportError
from taktora.transport.node import Node
from taktora.transport.pubsub import Publisher, Subscriber

log = logging.getLogger(__name__)

# indices of the envelope.split() header fields read per frame
_HEADER_LEN, _PAYLOAD_LEN, _SEQUENCE = 3, 7, 8

OUTBOUND_WAKE_S = 0.5
"""Longest the outbound thread sleeps without a wake-up (a safety net for a lost wake-up)."""


@attrs.frozen
class DispatcherStats:
    """A snapshot of a dispatcher's counters.

    ``*_dropped`` map a cause to a count: ``paused``, ``malformed``, ``link_down``,
    ``send_error`` (outbound); ``paused``, ``malformed``, ``unknown_channel``, ``too_large``,
    ``publish_error`` (inbound); ``internal_error`` on either side. ``inbound_malformed``
    splits inbound ``malformed`` by envelope cause (short, magic, version, header_len, length,
    crc). ``inbound_gaps`` / ``inbound_lost`` count sequence jumps of envelopes arriving from
    the protocol (frames lost on the link).
    """

    outbound_forwarded: int
    outbound_dropped: FrozenMap[str, int]
    inbound_forwarded: int
    inbound_dropped: FrozenMap[str, int]
    inbound_malformed: FrozenMap[str, int]
    inbound_gaps: int
    inbound_lost: int
    receive_errors: int
    outbound_paused: bool
    inbound_paused: bool
    running: bool


@attrs.frozen
class StopReport:
    """What :meth:`Dispatcher.stop` achieved within its timeout.

    ``not_stopped`` names the threads still running when the timeout passed (their iceoryx2
    ports are then left open rather than pulled from under them).
    """

    stopped: tuple[str, ...]
    not_stopped: tuple[str, ...]
    elapsed_s: float

    @property
    def clean(self) -> bool:
        return not self.not_stopped


class _Counts:
    """Counters written by one thread each, read by any (the lock makes snapshots coherent)."""

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


class Dispatcher:
    """Moves frames between iceoryx2 and ``connector`` on two threads (see the module doc).

    ``node_prefix``: the iceoryx2 prefix of the application it serves (None: the
    ``TAKTORA_IOX_PREFIX`` environment variable). ``manage_connector``: :meth:`start` opens the
    connector and :meth:`stop` closes it (a gateway that reconnects the connector itself passes
    False). ``registry``: resolves codec ids for payload-only connectors.

    Lifecycle methods (:meth:`start`, :meth:`stop`) are called by the owner from one thread;
    :meth:`pause`, :meth:`resume` and :meth:`stats` from any thread. Not restartable: make a
    new dispatcher after :meth:`stop`.
    """

    def __init__(self, node_prefix: str | None, connector: Connector,
                 descriptors: Sequence[ChannelDescriptor], *, name: str = "dispatcher",
                 manage_connector: bool = True, poll_s: float = 0.05,
                 registry: CodecRegistry | None = None) -> None:
        names = [d.name for d in descriptors]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConnectorError(f"dispatcher {name!r}: channel names must be unique, "
                                 f"{dupes} appear more than once")
        if poll_s <= 0:
            raise ConnectorError(f"dispatcher {name!r}: poll_s must be > 0, got {poll_s}")
        self.name = name
        self.node_prefix = node_prefix
        self.connector = connector
        self.descriptors = tuple(descriptors)
        self.manage_connector = manage_connector
        self.poll_s = poll_s
        self._outbound = [d for d in descriptors if d.direction is Direction.OUTBOUND]
        self._inbound = [d for d in descriptors if d.direction is Direction.INBOUND]
        self._in_by_name = {d.name: d for d in self._inbound}
        self._in_by_routing: dict[Routing, ChannelDescriptor] = {d.routing: d for d in self._inbound}
        self._codec_ids = {d.name: codec_id_for(d.codec, registry) for d in self._inbound}
        self._out = _Counts()
        self._in = _Counts()
        self._in_malformed = EnvelopeCounters()
        self._out_malformed = EnvelopeCounters()
        self._in_last: dict[str, int] = {}
        self._in_seq: dict[str, int] = {}
        self._gaps = 0
        self._lost = 0
        self._receive_errors = 0
        self._out_paused = False
        self._in_paused = False
        self._stop = threading.Event()
        self._stop_fd = -1
        self._node: Node | None = None
        self._subs: list[tuple[ChannelDescriptor, Subscriber]] = []
        self._pubs: dict[str, Publisher] = {}
        self._threads: list[threading.Thread] = []
        self._state = "new"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Dispatcher:
        """Open the iceoryx2 ports (and the connector, if managed) and start the threads.

        Runs on the caller's thread; blocks while the connector opens. Raises ConnectorError
        if already started or the connector cannot open, TransportError if a port cannot be
        opened; on failure everything opened so far is closed again.
        """
        if self._state != "new":
            raise ConnectorError(f"dispatcher {self.name!r} was already started ({self._state})")
        self._state = "starting"
        try:
            self._node = Node(self.name, prefix=self.node_prefix)
            self._subs = [(d, self._node.subscriber(d.channel_spec())) for d in self._outbound]
            self._pubs = {d.name: self._node.publisher(d.channel_spec()) for d in self._inbound}
            if self.manage_connector:
                self.connector.open(self.descriptors)
            self._stop_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        except BaseException:
            self._release()
            self._state = "failed"
            raise
        if self._outbound:
            self._threads.append(threading.Thread(target=self._run_outbound,
                                                  name=f"{self.name}-out", daemon=True))
        if self._inbound:
            self._threads.append(threading.Thread(target=self._run_inbound,
                                                  name=f"{self.name}-in", daemon=True))
        for thread in self._threads:
            thread.start()
        self._state = "running"
        log.info("dispatcher %r started: %d outbound, %d inbound channel(s) on %r",
                 self.name, len(self._outbound), len(self._inbound), self.connector)
        return self

    def stop(self, timeout: float = 5.0) -> StopReport:
        """Stop both threads, waiting at most ``timeout`` seconds in total; then close the ports
        and (if managed) the connector. Idempotent; blocks the caller up to ``timeout``.

        A thread that did not stop in time is named in the report and logged; its ports stay
        open (closing them under a running thread would be unsafe) until a later ``stop()``
        finds every thread gone and releases them.
        """
        began = time.monotonic()
        if self._state in ("new", "stopped", "failed"):
            self._state = "stopped" if self._state == "new" else self._state
            return StopReport(tuple(t.name for t in self._threads), (), 0.0)
        self._stop.set()
        with contextlib.suppress(OSError):
            os.eventfd_write(self._stop_fd, 1)
        deadline = began + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stopped = tuple(t.name for t in self._threads if not t.is_alive())
        stuck = tuple(t.name for t in self._threads if t.is_alive())
        if stuck:
            log.error("dispatcher %r: %s did not stop within %.3f s", self.name, list(stuck),
                      timeout)
            if self.manage_connector:
                self._close_connector()  # may unblock a thread stuck in the protocol
            self._state = "stopping"  # calling stop() again finishes the job
        else:
            self._release()
            self._state = "stopped"
        return StopReport(stopped, stuck, time.monotonic() - began)

    def _release(self) -> None:
        if self.manage_connector:
            self._close_connector()
        if self._node is not None:
            self._node.close()
            self._node = None
        if self._stop_fd >= 0:
            os.close(self._stop_fd)
            self._stop_fd = -1

    def _close_connector(self) -> None:
        try:
            self.connector.close()
        except Exception:
            log.exception("dispatcher %r: closing %r failed", self.name, self.connector)

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

    def resume(self, *, outbound: bool = True, inbound: bool = True) -> None:
        """Forward again in the given directions."""
        if outbound:
            self._out_paused = False
        if inbound:
            self._in_paused = False

    @property
    def paused(self) -> bool:
        """True when either direction is paused."""
        return self._out_paused or self._in_paused

    def stats(self) -> DispatcherStats:
        """A snapshot of the counters (any thread)."""
        with self._out.lock:
            out_fwd, out_drop = self._out.forwarded, dict(self._out.dropped)
        with self._in.lock:
            in_fwd, in_drop = self._in.forwarded, dict(self._in.dropped)
            gaps, lost = self._gaps, self._lost
        return DispatcherStats(
            outbound_forwarded=out_fwd, outbound_dropped=FrozenMap(out_drop),
            inbound_forwarded=in_fwd, inbound_dropped=FrozenMap(in_drop),
            inbound_malformed=FrozenMap(
                {k: v for k, v in self._in_malformed.snapshot().items() if v}),
            inbound_gaps=gaps, inbound_lost=lost, receive_errors=self._receive_errors,
            outbound_paused=self._out_paused, inbound_paused=self._in_paused,
            running=self._state == "running" and any(t.is_alive() for t in self._threads))

    # -- outbound thread ---------------------------------------------------------------------
    def _run_outbound(self) -> None:
        ws: Any = (iox.WaitSetBuilder.new().signal_handling_mode(iox.SignalHandlingMode.Disabled)
                   .create(iox.ServiceType.Ipc))
        stop_fd = iox.FileDescriptor.non_owning_new(self._stop_fd)
        guards = [ws.attach_notification(sub.listener) for _, sub in self._subs]
        guards.append(ws.attach_notification_fd(stop_fd))
        wake = iox.Duration.from_secs_f64(OUTBOUND_WAKE_S)
        try:
            while not self._stop.is_set():
                ws.wait_and_process_with_timeout(wake)
                for descriptor, sub in self._subs:
                    sub.consume_wakeups()
                    self._drain_outbound(descriptor, sub)
        except Exception:
            log.exception("dispatcher %r: outbound thread failed", self.name)
            raise
        finally:
            for guard in guards:
                guard.delete()
            ws.delete()

    def _drain_outbound(self, descriptor: ChannelDescriptor, sub: Subscriber) -> None:
        while not self._stop.is_set():
            sample = sub.receive()
            if sample is None:
                return
            with sample:
                try:
                    self._forward_outbound(descriptor, sample.payload)
                except Exception:
                    self._out.drop("internal_error")
                    log.exception("dispatcher %r: outbound %r failed", self.name, descriptor.name)

    def _forward_outbound(self, descriptor: ChannelDescriptor, data: memoryview) -> None:
        if self._out_paused:
            self._out.drop("paused")
            return
        try:
            # split(): decode()'s checks and counts without building an EnvelopeHeader
            fields, payload = envelope.split(data, self._out_malformed, verify_crc=False)
        except EnvelopeError as exc:
            self._out.drop("malformed")
            log.warning("dispatcher %r: %r carries a malformed envelope: %s", self.name,
                        descriptor.name, str(exc))
            return
        frame: Frame = (data[: fields[_HEADER_LEN] + fields[_PAYLOAD_LEN]]
                        if self.connector.carries_envelope else payload)
        try:
            self.connector.send(descriptor, frame)
        except LinkDownError as exc:
            self._out.drop("link_down")
            log.debug("dispatcher %r: %r seq %d dropped: %s", self.name, descriptor.name,
                      fields[_SEQUENCE], str(exc))
            return
        except ConnectorError as exc:
            self._out.drop("send_error")
            log.warning("dispatcher %r: sending %r seq %d failed: %s", self.name,
                        descriptor.name, fields[_SEQUENCE], str(exc))
            return
        self._out.forward()

    # -- inbound thread ----------------------------------------------------------------------
    def _run_inbound(self) -> None:
        connector = self.connector
        while not self._stop.is_set():
            try:
                got = connector.receive(self.poll_s)
            except Exception as exc:
                self._receive_errors += 1
                log.warning("dispatcher %r: receive failed: %s", self.name, str(exc))
                self._stop.wait(self.poll_s)
                continue
            if got is None:
                continue
            try:
                self._forward_inbound(*got)
            except Exception:
                self._in.drop("internal_error")
                log.exception("dispatcher %r: inbound frame failed", self.name)

    def _resolve(self, key: str | Routing) -> ChannelDescriptor | None:
        if isinstance(key, Routing):
            return self._in_by_routing.get(key)
        return self._in_by_name.get(key)

    def _forward_inbound(self, key: str | Routing, frame: Frame) -> None:
        descriptor = self._resolve(key)
        if descriptor is None:
            self._in.drop("unknown_channel")
            log.warning("dispatcher %r: frame for unknown channel %r dropped", self.name, key)
            return
        if self._in_paused:
            self._in.drop("paused")
            return
        pub = self._pubs[descriptor.name]
        try:
            if self.connector.carries_envelope:
                fields, _ = envelope.split(frame, self._in_malformed, verify_crc=True)
                self._track(descriptor.name, fields[_SEQUENCE])
                pub.send_copy(frame)
            else:
                self._publish_wrapped(descriptor, pub, frame)
        except EnvelopeError as exc:
            self._in.drop("malformed")
            log.warning("dispatcher %r: %r: malformed frame dropped: %s", self.name,
                        descriptor.name, str(exc))
            return
        except PayloadError as exc:  # larger than the channel allows
            self._in.drop("too_large")
            log.warning("dispatcher %r: %r: %s", self.name, descriptor.name, str(exc))
            return
        except TransportError as exc:
            self._in.drop("publish_error")
            log.warning("dispatcher %r: publishing %r failed: %s", self.name, descriptor.name,
                        str(exc))
            return
        self._in.forward()

    def _publish_wrapped(self, descriptor: ChannelDescriptor, pub: Publisher,
                         frame: Frame) -> None:
        src = memoryview(frame).cast("B")
        size = src.nbytes
        seq = self._in_seq.get(descriptor.name, 0) + 1
        sample, view = pub._loan_bytes(HEADER_SIZE + size)  # pub.loan() without the generator
        try:
            view[HEADER_SIZE:] = src
            crc = zlib.crc32(src) if descriptor.crc else None
            envelope.pack_header(view, codec_id=self._codec_ids[descriptor.name],
                                 payload_len=size, sequence=seq, crc32=crc)
        except BaseException:
            pub._discard(sample, view)
            raise
        pub._commit(sample, view)
        self._in_seq[descriptor.name] = seq

    def _track(self, channel: str, seq: int) -> None:
        last = self._in_last.get(channel)
        if last is not None and seq > last + 1:
            with self._in.lock:
                self._gaps += 1
                self._lost += seq - last - 1
        self._in_last[channel] = seq

