"""One CAN interface of a connector: its python-can bus, receive thread, recovery and health.

An :class:`Interface` owns one ``can.BusABC`` (opened with its compiled reader filter, see
:func:`Interface.open_bus`), one :class:`HealthMachine` driven by classified error frames
(ARCH_0703), one :class:`ReconnectPolicy` and the receive thread that reads the bus
(:meth:`Interface.run`). Each :meth:`Interface.step` reads and handles at most one frame:
error frames go to the classifier and never reach a channel; a data frame is demultiplexed to
every INBOUND channel whose (can_id, mask, extended) accepts it and delivered, once per
channel, with the ``deliver`` the thread was started with (the connector context's: it
publishes into iceoryx2 on this thread, so there is no queue between the bus and the channel).
Bus-off closes the bus; later steps wait the policy's delay, reopen the bus, re-apply the
filter and go through Connecting. Reopening a socket does not restart a bus-off controller
(SocketCAN restarts it after its ``restart-ms``, reporting a ``restarted`` error frame, and
until then accepts writes and drops them), so after a bus-off :attr:`Interface.bus_off` holds
sends back (they are refused as link down, counted) until the bus shows the controller is
back: a frame read, a ``restarted`` or error-active error frame, or ``quiet_up_s`` (default
``recovery_window_s``) without error frames since the reopen - then Up. The hold outlives a
close and reopen of the whole connector (the gateway's reconnect). Otherwise an interface is
Up again at the first frame read or sent (or after ``quiet_up_s`` without error frames).

Why a thread per interface: python-can offers no file descriptor a WaitSet could wait on for
every interface type, so each bus is read by a thread blocked in ``bus.recv``.

Threads: :meth:`Interface.step` runs on the interface's receive thread only; it blocks in
``bus.recv`` (or in the backoff wait while the bus is closed) for at most its ``timeout`` and
never raises. Receive counters (the per-frame ones as int attributes, ``frames_in``,
``delivered``, ``filtered``, ``unmatched``, ``remote_frames``; the rare ones in the ``rx``
dict) are written by that thread only, send counters (``frames_out``; ``tx``) by the sending
thread only: a single writer each, so no lock, and a snapshot under the GIL is coherent. ``lock``
serializes ``bus.send`` against the bus being closed and replaced; ``state_lock`` makes
check-and-transition of the health machine atomic. Health subscribers and ``on_change`` are
called on the thread that made the transition, with ``state_lock`` held (so they see one
interface's transitions in order; they must not block).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable

import can
from taktora.actors.models.backoff import ReconnectPolicy
from taktora.actors.models.health import HealthMachine, HealthState
from taktora.connectors.can.config import CanBusConfig, CanRouting
from taktora.connectors.can.errorframes import BusState, ErrorFrame, classify
from taktora.connectors.can.errors import CanBusError
from taktora.connectors.can.filters import Demux, FilterEntry

Deliver = Callable[[str, bytearray], bool]
"""Hands one frame's data to a channel by name; False when the framework dropped it (counted
there by cause)."""
OnChange = Callable[["Interface", HealthState, str], None]
"""Called after every transition of an interface's health: (interface, new state, reason)."""

log = logging.getLogger(__name__)

C, U, G, D = HealthState.CONNECTING, HealthState.UP, HealthState.DEGRADED, HealthState.DOWN

HOT_COUNTERS = ("frames_in", "delivered", "filtered", "unmatched", "remote_frames", "frames_out")
"""The counters kept as int attributes of :class:`Interface` (written per frame)."""


def filters_in_bus(bus: can.BusABC) -> bool:
    """Whether ``bus`` filters in the kernel or hardware (its class implements python-can's
    ``_apply_filters`` hook, as SocketCAN does) rather than in python-can's software fallback."""
    return type(bus)._apply_filters is not can.BusABC._apply_filters


class Interface:
    """One interface's state and behaviour (see the module doc).

    ``owner``: the connector's name (log lines and error messages carry it). ``stop``: the
    connector's stop event (set by its ``close``; every wait here returns early when it is set).
    ``poll_s``: how long one step blocks in ``bus.recv``, and the longest pause after an
    internal error. ``clock``: monotonic seconds. ``on_change``: see :data:`OnChange` (None:
    nobody is told but the health machine's subscribers).
    """

    def __init__(self, cfg: CanBusConfig, machine: HealthMachine, policy: ReconnectPolicy, *,
                 owner: str, stop: threading.Event, poll_s: float,
                 clock: Callable[[], float], on_change: OnChange | None = None) -> None:
        self.cfg = cfg
        self.machine = machine
        self.policy = policy
        self.owner = owner
        self.poll_s = poll_s
        self._stop = stop
        self._clock = clock
        self.on_change = on_change
        self.bus: can.BusABC | None = None
        self.lock = threading.Lock()  # bus swap vs bus.send
        self.state_lock = threading.Lock()  # check-and-transition of the health machine
        self.readers: list[tuple[str, CanRouting]] = []
        self.demux = Demux(())
        self.filters: list[FilterEntry] = []
        self.soft_filter = True
        self.mode = "connector"
        self.up = False
        self.since = 0.0
        self.last_error = float("-inf")
        self.gave_up = False
        self.bus_off = False
        """Set by a bus-off error frame, cleared when the interface is Up again: while set,
        sends are refused (the controller may not have restarted yet)."""
        self.reconnect_now = False
        self.reopen_at: float | None = None
        self.reopen_delay = 0.0
        self.thread: threading.Thread | None = None
        # per-frame counters as plain ints (one writer each: see the module doc); the rare ones,
        # keyed by name, in rx / tx. counts() merges them.
        self.frames_in = 0
        self.delivered = 0
        self.filtered = 0
        self.unmatched = 0
        self.remote_frames = 0
        self.frames_out = 0
        self.rx: defaultdict[str, int] = defaultdict(int)
        self.tx: defaultdict[str, int] = defaultdict(int)

    def counts(self) -> dict[str, int]:
        """This interface's counters by name (any thread): every counter that is not zero,
        plus the last error-counter readings."""
        out = dict(self.rx)
        out.update(self.tx)
        for key in HOT_COUNTERS:
            value = getattr(self, key)
            if value:
                out[key] = value
        return out

    # -- health --------------------------------------------------------------------------------
    def transition(self, new: HealthState, reason: str,
                   only_from: frozenset[HealthState] | None = None) -> bool:
        """Move the health machine to ``new`` unless it is there already or not in
        ``only_from``; True if it moved (calling thread; subscribers and ``on_change`` run on
        it)."""
        with self.state_lock:
            cur = self.machine.state
            if cur is new or (only_from is not None and cur not in only_from):
                return False
            self.machine.transition(new, reason)
            self.up = new is U
            self.since = self._clock()
            if new is U:
                self.bus_off = False
                self.policy.mark_up()
            log.info("connector %r interface %r: %s -> %s (%s)", self.owner, self.cfg.name,
                     cur.value, new.value, reason)
            if self.on_change is not None:
                self.on_change(self, new, reason)
            return True

    # -- bus -----------------------------------------------------------------------------------
    def open_bus(self) -> can.BusABC:
        """Open the interface's bus and apply its filter (receive thread or opener; blocks while
        python-can opens it). CanBusError naming the interface if either fails."""
        cfg = self.cfg
        try:
            bus = can.Bus(**cfg.bus_kwargs())
        except Exception as exc:  # python-can raises CanError, OSError, ValueError, ImportError
            raise CanBusError(f"connector {self.owner!r}: cannot open interface {cfg.name!r} "
                              f"({cfg.interface}:{cfg.channel}): {type(exc).__name__}: "
                              f"{exc}") from exc
        try:
            in_bus = filters_in_bus(bus)
            mode = cfg.filter_mode if cfg.filter_mode != "auto" else ("bus" if in_bus else "connector")
            if mode == "bus" and self.filters:
                bus.set_filters([e.as_python_can() for e in self.filters])  # type: ignore[misc]
            else:
                bus.set_filters(None)
        except Exception as exc:
            bus.shutdown()
            raise CanBusError(f"connector {self.owner!r}: cannot apply the filter of "
                              f"interface {cfg.name!r}: {exc}") from exc
        self.mode = mode
        self.soft_filter = mode == "connector"
        return bus

    def shutdown_bus(self) -> None:
        """Detach and close the bus (any thread; waits for a ``bus.send`` in progress)."""
        with self.lock:
            bus, self.bus = self.bus, None
        if bus is not None:
            try:
                bus.shutdown()
            except Exception:
                log.exception("connector %r: closing interface %r failed", self.owner,
                              self.cfg.name)

    def go_down(self, reason: str) -> None:
        """Close the bus and go Down; the next steps start the recovery."""
        self.shutdown_bus()
        self.reopen_at = None
        self.transition(D, reason)

    # -- receive thread ------------------------------------------------------------------------
    def run(self, deliver: Deliver) -> None:
        """The receive thread's body: :meth:`step` until the stop event is set (returns within
        about ``poll_s`` of it). Never raises: failures are logged, counted and turned into
        health transitions."""
        stop, step, poll_s = self._stop, self.step, self.poll_s
        while not stop.is_set():
            step(poll_s, deliver)

    def step(self, timeout: float, deliver: Deliver) -> None:
        """Read and handle at most one frame, waiting up to ``timeout``; or, while the bus is
        closed, advance its recovery without waiting longer than ``timeout``. Every channel
        the frame matches gets it through ``deliver`` (counted ``delivered`` when published).
        Receive thread. Never raises."""
        try:
            if self.reconnect_now:
                self.reconnect_now = False
                self.policy.reset()
                self.gave_up = False
                if self.bus is not None:
                    self.go_down("reconnect requested")
                self.reopen_at = self._clock()
                self.reopen_delay = 0.0
            bus = self.bus
            if bus is None:
                self._recover_step(timeout)
                return
            try:
                msg = bus.recv(timeout)
            except Exception as exc:
                if self._stop.is_set():
                    return
                self.rx["receive_errors"] += 1
                self.go_down(f"receive failed: {type(exc).__name__}: {exc}")
                return
            if msg is None:
                self._tick()
                return
            if msg.is_error_frame:
                self._on_error(classify(msg.arbitration_id, msg.data))
                return
            self.frames_in += 1
            if not self.up:
                self._seen_traffic()
            if msg.is_remote_frame:
                self.remote_frames += 1
                return
            can_id, extended = msg.arbitration_id, msg.is_extended_id
            names = self.demux.known.get((can_id, extended))
            if names is None:
                names = self.demux.lookup(can_id, extended)
            if not names:
                if self.soft_filter:
                    self.filtered += 1
                else:
                    self.unmatched += 1
                return
            data = msg.data
            for channel in names:
                if deliver(channel, data):
                    self.delivered += 1
        except Exception:
            self.rx["internal_errors"] += 1
            log.exception("connector %r: receiving on %r failed; continuing", self.owner,
                          self.cfg.name)
            self._stop.wait(min(timeout, self.poll_s))

    def _recover_step(self, timeout: float) -> None:
        """The bus is closed: arm the policy's delay once, wait for it in slices of at most
        ``timeout``, then reopen (receive thread)."""
        if self.gave_up:
            self._stop.wait(timeout)
            return
        if self.reopen_at is None:
            delay = self.policy.next_delay()
            if delay is None:
                self.gave_up = True
                self.rx["reconnect_gave_up"] += 1
                log.error("connector %r: interface %r stays down after %d attempts", self.owner,
                          self.cfg.name, self.policy.attempts)
                return
            self.reopen_delay = delay
            self.reopen_at = self._clock() + delay
        left = self.reopen_at - self._clock()
        if left > 0:
            self._stop.wait(min(left, timeout))
            return
        self.reopen_at = None
        self.rx["reopen_attempts"] += 1
        self.transition(C, f"reopening after {self.reopen_delay:.3f} s backoff "
                           f"(attempt {self.policy.attempts})")
        try:
            bus = self.open_bus()
        except CanBusError as exc:
            self.rx["reopen_failures"] += 1
            self.transition(D, f"reopen failed: {exc}")
            return
        with self.lock:
            self.bus = bus
        self.last_error = float("-inf")
        self.rx["reopens"] += 1

    def _tick(self) -> None:
        """Timed transitions when nothing arrives: Degraded -> Up after the recovery window,
        Connecting -> Up after ``quiet_up_s`` without errors (after a bus-off: ``quiet_up_s``,
        else ``recovery_window_s``, so that a quiet bus whose only sender is this one gets
        its sends back)."""
        state = self.machine.state
        now = self._clock()
        quiet = self.cfg.quiet_up_s
        if self.bus_off and quiet is None:
            quiet = self.cfg.recovery_window_s
        if state is G and now - self.last_error >= self.cfg.recovery_window_s:
            self.transition(U, f"no error frames for {self.cfg.recovery_window_s} s",
                            only_from=frozenset({G}))
        elif (state is C and quiet is not None and self.bus is not None
              and now - max(self.since, self.last_error) >= quiet):
            after = " after bus-off" if self.bus_off else ""
            self.transition(U, f"open without error frames for {quiet} s{after}",
                            only_from=frozenset({C}))

    def _seen_traffic(self) -> None:
        if self.machine.state is C:
            self.transition(U, "first frame received", only_from=frozenset({C}))
        else:
            self._tick()

    def _on_error(self, ef: ErrorFrame) -> None:
        """Count an error frame by class and apply its health effect (receive thread)."""
        rx = self.rx
        rx["error_frames"] += 1
        for name in ef.classes:
            rx[f"errors.{name}"] += 1
        for name in ef.details:
            rx[f"errors.{name}"] += 1
            if name in ("controller.rx_overflow", "controller.tx_overflow"):
                rx["drops.controller_overflow"] += 1
        if ef.tx_errors is not None and ef.rx_errors is not None:
            rx["tx_error_counter"] = ef.tx_errors
            rx["rx_error_counter"] = ef.rx_errors
        self.last_error = self._clock()
        if ef.state is BusState.BUS_OFF:
            self.bus_off = True
            self.go_down(ef.describe())
        elif ef.state in (BusState.WARNING, BusState.PASSIVE):
            self.transition(G, ef.describe(), only_from=frozenset({U, C}))
        elif ef.state is BusState.ACTIVE or (self.bus_off and "restarted" in ef.classes):
            # error-active again, or the driver restarted the bus-off controller
            self.transition(U, ef.describe(),
                            only_from=frozenset({G, C}) if self.bus_off else frozenset({G}))
