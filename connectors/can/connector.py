"""The CAN connector: python-can buses behind the generic :class:`Connector` surface.

Send path (ARCH_0701): the dispatcher's outbound thread calls :meth:`CanConnector.send` with
the payload bytes of one envelope (``carries_envelope = False``: CAN has its own framing). The
connector builds one classic or FD ``can.Message`` from the channel's routing (identifier,
extended, FD, BRS, ESI) around those bytes - copied once into the message, never re-encoded -
and writes it on the routing's interface.

Receive path (ARCH_0702): CAN pushes. Every interface has its own receive thread
(``<name>-rx-<iface>``, started by :meth:`CanConnector.open`) blocked in ``bus.recv``: it is
the protocol's own thread, since python-can has no file descriptor a WaitSet could wait on
for every interface type. Error frames go to the classifier and never reach a channel. A data
frame is demultiplexed to EVERY INBOUND channel whose (can_id, mask, extended) accepts it and
handed, once per channel, to ``ctx.deliver`` on that thread, which wraps it in a fresh
envelope and publishes it into the channel's iceoryx2 service: no queue, no other thread
between the bus and the application. The interface's filter, compiled from the union of its
readers (:mod:`.filters`), is applied at the bus (``filter_mode``, see :class:`CanBusConfig`).

Health (ARCH_0703): one :class:`HealthMachine` per interface (source ``<connector>/<iface>``)
driven by the classified error frames; :meth:`CanConnector.health` is their
:func:`worst_of` aggregate, and every change of that aggregate is pushed with
``ctx.report(state, reason)``, the reason naming the interface whose transition changed it.
Bus-off closes the interface; its receive thread then waits the :class:`ReconnectPolicy`
delay, reopens the bus, re-applies the filter and goes through Connecting, and Up again once
the bus shows that the controller restarted (a frame read, a ``restarted`` or error-active
error frame, or a quiet window; see :mod:`.interface`). Meanwhile the connector stays open
(the gateway reconnects it only when the aggregate is Down, i.e. every interface is) and
frames written for the interface - closed, or reopened but not yet Up after the bus-off - are
refused with :class:`LinkDownError`, which the dispatcher counts as ``link_down``: once the
bus-off is read, no frame a bus-off controller would take and drop counts as forwarded
(REQ_0712). Reading, classification and recovery of one interface live in :mod:`.interface`;
this module opens and closes the interfaces, sends, and aggregates health.

Threads: the receive threads (one per interface, started by :meth:`open`, joined by
:meth:`close`) own reading, delivery, classification, recovery and their interface's receive
counters; :meth:`send` runs on the caller's (outbound) thread and owns the send counters; a
per-interface lock serializes ``bus.send`` against the bus being closed and replaced. Health
subscribers and ``ctx.report`` are called on the thread that made the transition (a receive
thread, or the sending thread for Connecting -> Up after a send); reports are serialized by
one lock so that they follow the order of the transitions.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import can
from taktora.actors.models.backoff import Backoff, ReconnectPolicy
from taktora.actors.models.health import HealthEvent, HealthMachine, HealthState, worst_of
from taktora.connectors.can.config import (
    CanBusConfig,
    CanRouting,
    CanSettings,
    check_dbc_channel,
    check_route,
)
from taktora.connectors.can.dbc import use_dbc
from taktora.connectors.can.errors import CanBusError, CanConfigError, CanError
from taktora.connectors.can.filters import CanFilter, Demux, compile_filters
from taktora.connectors.can.interface import Interface
from taktora.connectors.can.txroute import TxRoute
from taktora.connectors.connector import Connector
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.errors import ConnectorError, LinkDownError
from taktora.connectors.model import ChannelDescriptor, Direction, FrozenMap

log = logging.getLogger(__name__)

C, U, D = HealthState.CONNECTING, HealthState.UP, HealthState.DOWN

JOIN_S = 2.0
"""How long :meth:`CanConnector.close` waits for each receive thread."""


class CanConnector(Connector):
    """CAN (classic and FD) on one or more python-can buses; see the module doc.

    ``buses``: the interfaces (unique names). ``reconnect``: the bus-off / failure backoff
    (one :class:`ReconnectPolicy` per interface; ``seed`` makes its jitter reproducible).
    ``poll_s``: how long a receive thread blocks in ``bus.recv`` before it checks for stop,
    recovery windows and reconnect requests (it bounds how long :meth:`close` waits, not the
    latency of a frame: ``recv`` returns as soon as one arrives).
    """

    carries_envelope = False
    settings_class = CanSettings

    @classmethod
    def from_settings(cls, name: str, settings: Any) -> CanConnector:
        """The connector of gateway ``name`` (``settings``: a :class:`CanSettings`)."""
        return cls(settings.buses, name=name, reconnect=settings.reconnect, seed=settings.seed,
                   poll_s=settings.poll_s)

    @classmethod
    def check_channel(cls, settings: Any, descriptor: ChannelDescriptor) -> None:
        """A valid CAN routing on one of the settings' interfaces (FD only on FD buses); a
        ``dbc:<Message>`` channel on an interface with a ``dbc`` must fit that DBC."""
        routing = check_route(settings.buses, descriptor)
        bus = next(b for b in settings.buses if b.name == routing.interface)
        if bus.dbc is not None:
            check_dbc_channel(use_dbc(bus.dbc), descriptor, routing)

    def __init__(self, buses: Sequence[CanBusConfig], *, name: str = "can",
                 reconnect: Backoff | None = None, seed: int | None = None,
                 poll_s: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        names = [b.name for b in buses]
        if not buses:
            raise CanConfigError(f"connector {name!r}: needs at least one CanBusConfig")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise CanConfigError(f"connector {name!r}: interface names {dupes} appear more than once")
        if poll_s <= 0:
            raise CanConfigError(f"connector {name!r}: poll_s must be > 0, got {poll_s}")
        for b in buses:  # settings built in another process: their DBC codecs, here too
            if b.dbc is not None:
                use_dbc(b.dbc)
        self.name = name
        self.poll_s = poll_s
        self._clock = clock
        settings = reconnect or Backoff()
        rng = random.Random(seed)
        self._stop = threading.Event()
        self._ifaces: dict[str, Interface] = {
            b.name: Interface(b, HealthMachine(f"{name}/{b.name}"),
                              ReconnectPolicy(settings, rng=random.Random(rng.random()), clock=clock),
                              owner=name, stop=self._stop, poll_s=poll_s, clock=clock,
                              on_change=self._on_change)
            for b in buses}
        self._tx_routes: dict[str, TxRoute] = {}
        self._ctx: ConnectorContext | None = None  # the open connection's; None while closed
        self._report_lock = threading.Lock()
        self._reported: HealthState | None = None  # the aggregate last pushed to _ctx
        self._state = "new"

    # -- configuration views -------------------------------------------------------------------
    @property
    def interfaces(self) -> tuple[str, ...]:
        """The interface names, in configuration order."""
        return tuple(self._ifaces)

    def bus_config(self, interface: str) -> CanBusConfig:
        return self._iface(interface).cfg

    def filters(self, interface: str) -> list[CanFilter]:
        """The compiled filter of ``interface`` in python-can's format (what ``set_filters`` got
        in ``bus`` mode, what the receive thread applies in ``connector`` mode)."""
        return [e.as_python_can() for e in self._iface(interface).filters]

    def filter_mode(self, interface: str) -> str:
        """``bus`` or ``connector``: where ``interface``'s filter is applied (after open)."""
        return self._iface(interface).mode

    def bus(self, interface: str) -> can.BusABC | None:
        """The open python-can bus of ``interface`` (None while it is closed or recovering)."""
        return self._iface(interface).bus

    def _iface(self, interface: str) -> Interface:
        try:
            return self._ifaces[interface]
        except KeyError:
            raise CanError(f"connector {self.name!r} has no interface {interface!r} "
                           f"(known: {list(self._ifaces)})") from None

    # -- health --------------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[HealthEvent], None]) -> None:
        """Call ``callback`` with every per-interface HealthEvent (source ``<name>/<iface>``),
        on the thread that made the transition."""
        for iface in self._ifaces.values():
            iface.machine.subscribe(callback)

    def unsubscribe(self, callback: Callable[[HealthEvent], None]) -> None:
        for iface in self._ifaces.values():
            iface.machine.unsubscribe(callback)

    def interface_health(self) -> dict[str, HealthState]:
        """Each interface's state now."""
        return {n: i.machine.state for n, i in self._ifaces.items()}

    def health(self) -> HealthState:
        """The worst-of aggregate of the interfaces (any thread): one Down while another is Up
        is Degraded, all Down is Down. While open it is also what was last reported to the
        context."""
        return worst_of(i.machine.state for i in self._ifaces.values())

    def _on_change(self, iface: Interface, state: HealthState, reason: str) -> None:
        """An interface moved to ``state``: push the aggregate if that changed it (the
        transitioning thread, with the interface's ``state_lock`` held; never blocks but for
        the report lock). Nothing is reported while the connector is closed."""
        with self._report_lock:
            ctx = self._ctx
            if ctx is None:
                return
            aggregate = self.health()
            if aggregate is self._reported:
                return
            self._reported = aggregate
            ctx.report(aggregate, f"interface {iface.cfg.name!r} {state.value}: {reason}")

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self, ctx: ConnectorContext) -> None:
        """Open every interface for ``ctx.channels``, apply its compiled filter, report the
        aggregate health (Connecting: an interface is Up at its first frame read or sent) and
        start the receive threads, which deliver to ``ctx`` from then on.

        Raises CanConfigError naming the channel (bad routing, unknown interface, FD channel on
        a classic interface) or CanBusError naming the interface (python-can cannot open it);
        nothing stays open and nothing is reported then. Caller's thread; blocks while the
        buses open.
        """
        if self._state == "open":
            raise CanError(f"connector {self.name!r} is already open")
        tx: dict[str, TxRoute] = {}
        readers: dict[str, list[tuple[str, CanRouting]]] = {n: [] for n in self._ifaces}
        buses = [i.cfg for i in self._ifaces.values()]
        for d in ctx.channels:
            routing = check_route(buses, d)
            iface = self._ifaces[routing.interface]
            if d.direction is Direction.OUTBOUND:
                tx[d.name] = TxRoute(iface, routing)
            else:
                readers[routing.interface].append((d.name, routing))
        for name, iface in self._ifaces.items():
            iface.readers = readers[name]
            iface.demux = Demux(iface.readers)
            iface.filters = compile_filters([r for _, r in iface.readers])
        opened: list[Interface] = []
        try:
            for iface in self._ifaces.values():
                iface.transition(C, "opening", only_from=frozenset({D}))
                iface.bus = iface.open_bus()
                iface.since = self._clock()
                opened.append(iface)
        except ConnectorError as exc:
            for iface in opened:
                iface.shutdown_bus()
            for iface in self._ifaces.values():
                iface.transition(D, f"open failed: {exc}")
            raise
        self._tx_routes = tx
        self._stop.clear()
        self._state = "open"
        with self._report_lock:
            self._ctx = ctx
            self._reported = aggregate = self.health()
            ctx.report(aggregate, ", ".join(f"interface {n!r} {s.value}"
                                            for n, s in self.interface_health().items()))
        for iface in self._ifaces.values():
            iface.gave_up = False
            iface.reopen_at = None
            iface.thread = threading.Thread(target=iface.run, args=(ctx.deliver,),
                                            name=f"{self.name}-rx-{iface.cfg.name}", daemon=True)
            iface.thread.start()

    def close(self) -> None:
        """Stop and join the receive threads, close every bus; each interface goes Down (its
        subscribers hear it; the context is not told: the owner is closing the connection).
        Idempotent (caller's thread; blocks up to ~poll_s per thread)."""
        if self._state != "open":
            self._state = "closed" if self._state == "new" else self._state
            return
        with self._report_lock:
            self._ctx = None
        self._stop.set()
        for iface in self._ifaces.values():
            if iface.thread is not None:
                iface.thread.join(JOIN_S)
                if iface.thread.is_alive():
                    log.error("connector %r: receive thread of %r did not stop", self.name,
                              iface.cfg.name)
                iface.thread = None
        for iface in self._ifaces.values():
            iface.shutdown_bus()
            iface.transition(D, "connector closed")
        self._state = "closed"

    def reconnect(self, interface: str | None = None) -> None:
        """Close and reopen ``interface`` (all if None) now, with a fresh backoff (any thread;
        the receive thread does it at its next wake-up)."""
        for iface in ([self._iface(interface)] if interface else self._ifaces.values()):
            iface.reconnect_now = True

    # -- send path (outbound thread) -----------------------------------------------------------
    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        """Write ``frame`` (the payload bytes) as one CAN frame with the channel's routing.

        Raises LinkDownError while the interface is closed (bus-off recovery, or its policy
        gave up) or reopened after a bus-off but not yet Up (the dispatcher counts it
        ``link_down``, the interface ``drops.link_down``; the other interfaces keep sending),
        CanError for a
        payload the frame format cannot carry (> 8 bytes classic, > 64 or not a DLC length FD)
        and CanBusError for a failed ``bus.send``. Blocks at most ``send_timeout_s`` on a full
        TX queue.
        """
        route = self._tx_routes.get(descriptor.name)
        if route is None:
            raise CanError(f"connector {self.name!r}: channel {descriptor.name!r} is not an "
                           "open outbound channel")
        size = len(frame) if type(frame) is not memoryview else frame.nbytes
        if size not in route.lengths:
            route.iface.tx["send_errors.length"] += 1
            kind = ("CAN FD frame (0-8, 12, 16, 20, 24, 32, 48 or 64)" if route.fd
                    else "classic CAN frame (0-8)")
            raise CanError(f"channel {descriptor.name!r}: {size} bytes do not fit a {kind}")
        msg = route.message(frame)
        iface = route.iface
        with iface.lock:
            bus = iface.bus
            if bus is None or iface.bus_off:
                iface.tx["drops.link_down"] += 1
                why = ("down" if bus is None
                       else "recovering from bus-off (no sign yet that its controller restarted)")
                raise LinkDownError(f"connector {self.name!r}: interface {iface.cfg.name!r} is "
                                    f"{why} ({iface.machine.state.value})")
            try:
                bus.send(msg, route.timeout)
            except Exception as exc:  # CanError / CanOperationError / OSError
                iface.tx["send_errors"] += 1
                raise CanBusError(f"connector {self.name!r}: sending {descriptor.name!r} on "
                                  f"{iface.cfg.name!r} failed: {exc}") from exc
        iface.frames_out += 1
        if not iface.up and iface.machine.state is C:
            iface.transition(U, "first frame sent", only_from=frozenset({C}))

    # -- stats -----------------------------------------------------------------------------------
    def stats(self) -> Mapping[str, int]:
        """Counters per interface (``<iface>.frames_in``, ``.frames_out``, ``.filtered``,
        ``.unmatched``, ``.delivered``, ``.error_frames``, ``.errors.<class>``,
        ``.drops.<cause>``, ``.reopens`` ...) and connector totals (``frames_in``,
        ``frames_out``, ``filtered``, ``unmatched``, ``error_frames``, ``drops``).
        ``delivered`` counts (frame, channel) pairs the context published; a frame the
        context refused (paused, too large ...) is counted there by cause, not here. Any
        thread."""
        out: dict[str, int] = {}
        totals: defaultdict[str, int] = defaultdict(int)
        for name, iface in self._ifaces.items():
            for key, value in iface.counts().items():
                out[f"{name}.{key}"] = value
                if key in ("frames_in", "frames_out", "filtered", "unmatched", "error_frames"):
                    totals[key] += value
                elif key.startswith("drops."):
                    totals["drops"] += value
        for key in ("frames_in", "frames_out", "filtered", "unmatched", "error_frames", "drops"):
            out[key] = totals[key]
        return FrozenMap(out)

    def __repr__(self) -> str:
        return f"<CanConnector {self.name!r} {list(self._ifaces)}>"


def inject(bus: Any, arbitration_id: int, data: bytes) -> None:
    """Put an error frame (class bits ``arbitration_id``, SocketCAN data layout) on ``bus``
    the way a controller driver reports one (tests, simulations; python-can convention: no
    CAN_ERR_FLAG in the identifier)."""
    bus.send(can.Message(arbitration_id=arbitration_id, is_error_frame=True, data=data,
                         is_extended_id=False, check=False))
