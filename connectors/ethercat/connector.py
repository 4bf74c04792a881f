"""The EtherCAT connector: cyclic process data on pysoem, routed bit-exactly to channels.

A channel's routing is ``Routing(kind="ethercat", options={"subdevice": S, "bit_offset": B,
"bit_length": L})``: L bits starting at bit B of SubDevice S's output image (OUTBOUND
channels, ``{name}.out``) or input image (INBOUND, ``{name}.in``). Payloads are the raw bytes
of the value, little-endian, bit 0 first (``carries_envelope`` is False: the gateway's sink
wraps inbound values in envelopes; codecs run on the application side).

Data path (no dispatcher thread, no queue, no lock between them and the cycle):
- ``open(ctx)`` (owner's thread) brings the bus up (ARCH_0040, blocks at most
  ``bus.bring_up_timeout_s``; BringUpError on failure) and starts the cycle thread; with
  ``bring_up_in_background`` it reports Connecting and returns at once, and the cycle thread
  brings the bus up (Up or Down reported from there);
- the cycle thread (affinity and SCHED_FIFO from ``cycle_thread``, timer slack 1 ns) runs a
  taktora :class:`~taktora.actors.Executor` with one item triggered by a periodic timerfd
  (:mod:`.pacing`: drift-free ticks every ``cycle_s``, programmed once; missed ticks skipped
  and counted), or with ``free_running`` by an fd that stays readable (back to back). Each
  tick drains every ``{name}.out`` channel with ``ctx.drain`` straight into the output image
  (:mod:`.image`: read-modify-write, the latest value of the tick wins, an earlier one it
  replaces is counted ``overwritten``; while Down every frame is refused, ``link_down``),
  exchanges process data, checks the working counter and AL status, publishes every changed
  input slice into its ``{name}.in`` service with ``ctx.deliver`` (the sink counts what it
  cannot publish, e.g. ``paused``) and drives health (ARCH_0041). pysoem releases the GIL
  while it waits for frames;
- the connector takes its outbound frames itself (``takes_outbound``): the dispatcher's
  outbound thread does not wake per written frame and ``send`` is never called.

Health: Connecting until OP with the expected working counter, then Up; Degraded after
``degraded_after`` consecutive bad cycles (working counter low, or the AL status read
unanswered); Up again when a cycle is good; Down when a SubDevice leaves OP or the bad cycles
last past ``down_after_s``; from Down, every ``reconnect_s`` a re-bring-up (Connecting -> Up /
Down). The AL watch does not rely on the working counter (an ESC may count output writes
outside OP): every cycle reads AL status right after the exchange (one BRD of 0x0130 while all
SubDevices agree, about one more round trip), and inputs are published only from a cycle with
the expected working counter *and* every SubDevice in OP.
One HealthEvent per transition (:attr:`EthercatConnector.machine`), also pushed with
``ctx.report(state, reason)`` on the thread that made it (the cycle thread, or the owner's in
``open`` / ``close``), from ``open`` until the end of ``close``. Under a gateway a Down makes
the gateway reopen the connector (a fresh bring-up); alone, the cycle re-brings the bus up.

Outputs take the safe value (zeros) while :meth:`EthercatConnector.set_safe_outputs` is on
(e.g. on Pause; a value taken meanwhile is counted as ``discarded_safe``), and
before the bus leaves OP on ``close``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from taktora.actors import ErrorPolicy, Executor, item
from taktora.actors.control.messages import Ack, Reply
from taktora.actors.executor.context import Context
from taktora.actors.executor.errors import ThreadAttributeError
from taktora.actors.executor.triggers import on_fd
from taktora.actors.models.health import HealthEvent, HealthMachine, HealthState
from taktora.connectors.connector import Connector
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.errors import ConnectorError
from taktora.connectors.ethercat.bus import OP, STATE_NAMES, Bus
from taktora.connectors.ethercat.errors import EthercatError
from taktora.connectors.ethercat.image import Inputs, Outputs
from taktora.connectors.ethercat.live import BusRequests
from taktora.connectors.ethercat.messages import BusState, GetState, ReadSdo, SdoValue, WriteSdo
from taktora.connectors.ethercat.pacing import Pacer, set_timer_slack
from taktora.connectors.ethercat.settings import BitRoute, EthercatOptions
from taktora.connectors.model import ChannelDescriptor, Direction
from taktora.connectors.requests import ConnectorRequest

log = logging.getLogger(__name__)

T = TypeVar("T")
INIT = 1


class EthercatConnector(Connector):
    """EtherCAT on pysoem (see the module docstring)."""

    carries_envelope = False
    takes_outbound = True

    settings_class = EthercatOptions

    @classmethod
    def from_settings(cls, name: str, settings: Any) -> EthercatConnector:
        """The connector of gateway ``name`` (``settings``: its :class:`EthercatOptions`)."""
        return cls(name, settings)

    @classmethod
    def check_channel(cls, settings: Any, descriptor: ChannelDescriptor) -> None:
        """Routing kind ``ethercat`` with ``subdevice``, ``bit_offset``, ``bit_length``."""
        BitRoute.of(descriptor)

    def __init__(self, name: str, options: EthercatOptions) -> None:
        self.name = name
        self.options = options
        self._receive_timeout_us = options.bus.receive_timeout_us
        self.machine = HealthMachine(name)
        self.bus: Bus | None = None
        self._out: list[tuple[ChannelDescriptor, BitRoute]] = []
        self._in: list[tuple[ChannelDescriptor, BitRoute]] = []
        self._ctx: ConnectorContext | None = None  # set from open until the end of close
        self.machine.subscribe(self._push)
        self._requests = BusRequests(name)
        self._executor: Executor | None = None
        self._thread: threading.Thread | None = None
        self._low = 0
        self._low_since = 0.0
        self._next_attempt = 0.0
        self.counters: dict[str, int] = dict.fromkeys(
            ("cycles", "wkc_errors", "lost_frames", "sent", "overwritten", "discarded_safe", "received",
             "bringups", "bringup_failures", "left_op", "al_unread"), 0)
        self._outputs = Outputs((), self.counters)  # the process image, built again in open
        self._inputs = Inputs((), self.counters)
        self._safe = False  # kept across opens: a Pause outlives a reconnect
        self.cycle_ns: list[int] = []  # exchange durations (send+receive), up to CYCLE_SAMPLES
        self.al_ns: list[int] = []  # durations of the cyclic AL status read, up to CYCLE_SAMPLES
        self.period_err_ns: list[int] = []  # tick start - scheduled tick time
        self._missed = 0
        self._count: int | None = None
        self._cancel = threading.Event()  # set by close: a running bring-up gives up
        self._bringing_up = False
        self._bring_up_pending = False  # open() in the background: the cycle thread brings up
        self._free_fd = -1  # free_running: the always-readable eventfd that triggers the cycle
        self._pacer: Pacer | None = None  # otherwise the cycle's periodic timer

    # ---- Connector ----------------------------------------------------------------------------------
    def open(self, ctx: ConnectorContext) -> None:
        """Bring the bus up for ``ctx.channels`` and start the cycle thread (owner's thread;
        blocks for the bring-up, at most ``bus.bring_up_timeout_s``). From here on changed
        inputs are delivered to ``ctx`` and health transitions reported to it; Up is reported
        before this returns. With ``bring_up_in_background`` it reports Connecting and returns
        without blocking; the cycle thread brings the bus up and reports Up or Down (a failed
        bring-up is then not raised here).

        Raises ConnectorError naming the channel for a routing that is not ``ethercat``, or
        when there are outbound channels and ``ctx`` cannot serve ``ctx.drain`` (before
        anything is touched); EthercatError / BringUpError when the bus cannot be opened or
        brought up, or a routing lies outside the process image (Down is reported; nothing
        stays open). May be called again after :meth:`close` (a gateway's reconnect): health
        goes Down -> Connecting -> Up."""
        if self.bus is not None:
            raise EthercatError(f"EtherCAT {self.name}: already open")
        routes = [(d, BitRoute.of(d)) for d in ctx.channels]
        self._out = [(d, r) for d, r in routes if d.direction is Direction.OUTBOUND]
        self._in = [(d, r) for d, r in routes if d.direction is Direction.INBOUND]
        self._check_drain(ctx)
        self._outputs = Outputs(self._out, self.counters)
        self._outputs.set_safe(self._safe)
        self._inputs = Inputs(self._in, self.counters)
        self._ctx = ctx
        self._cancel.clear()
        background = self.options.bring_up_in_background
        try:
            if self.machine.state is HealthState.DOWN:
                self.machine.transition(HealthState.CONNECTING, "open")
            elif background:  # the machine starts in Connecting: tell this context so
                ctx.report(HealthState.CONNECTING, "bring-up in the background")
            bus = Bus(self.options.bus)
            bus.open()
            self.bus = bus
            try:
                if background:
                    self._bring_up_pending = True
                else:
                    self._bring_up()
            except EthercatError:
                self.bus = None
                bus.close()
                raise
        except Exception as exc:
            if self.machine.state is not HealthState.DOWN:  # e.g. the interface did not open
                self.machine.transition(HealthState.DOWN, f"open failed: {exc}")
            self._ctx = None
            raise
        self._executor = Executor(f"{self.name}-cycle", signals=False,
                                  thread_attrs=self.options.cycle_thread)
        try:
            trigger = self._trigger()
        except Exception:  # no timer: nothing stays open
            self.close()
            raise
        self._executor.add(item(self._tick, [trigger], name="ethercat-cycle",
                                error_policy=ErrorPolicy.LOG_AND_CONTINUE))
        self._thread = threading.Thread(target=self._run_cycle, name=f"{self.name}-cycle", daemon=True)
        self._thread.start()

    def _trigger(self) -> Any:
        """What triggers the cycle item: the periodic timer of ``cycle_s``, or with
        ``free_running`` an eventfd that stays readable until close (back to back)."""
        if self.options.free_running:
            self._free_fd = os.eventfd(1, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            return on_fd(self._free_fd)
        self._pacer = pacer = Pacer(self.options.cycle_s)
        return on_fd(pacer, pacer.consume)

    def _check_drain(self, ctx: ConnectorContext) -> None:
        """The cycle takes its outputs with ``ctx.drain``: refuse a context that cannot serve it
        before anything is touched. What is queued already is refused (``link_down``): the bus
        is not up."""
        outputs = Outputs(self._out, self.counters)
        try:
            outputs.refuse(ctx, f"EtherCAT {self.name}: bus not up yet")
        except ConnectorError as exc:
            raise ConnectorError(f"EtherCAT {self.name}: this context cannot take its outputs "
                                 f"with ctx.drain (the cycle reads them itself): {exc}") from exc

    def close(self) -> None:
        """Stop cycling, write safe outputs, take the bus to INIT and close it (idempotent). A
        bring-up running on the cycle thread is cancelled (it ends within ~50 ms)."""
        self._cancel.set()
        self._bring_up_pending = False
        if self._executor is not None:
            self._executor.stop()
            if self._thread is not None:
                self._thread.join(10)
            self._executor.close()
            self._executor = None
            self._thread = None
        if self._free_fd >= 0:
            os.close(self._free_fd)
            self._free_fd = -1
        if self._pacer is not None:
            self._missed = self._pacer.missed
            self._pacer.close()
            self._pacer = None
        self._requests.fail_all()
        bus = self.bus
        if bus is None:
            self._ctx = None
            return
        self.bus = None
        try:
            if self.machine.state in (HealthState.UP, HealthState.DEGRADED):
                self._outputs.write_safe()
                for _ in range(3):
                    bus.cycle()
                bus.master.state = INIT
                bus.master.write_state()
        except Exception as exc:  # closing must not fail on a dead bus
            log.warning("EtherCAT %s: leaving OP failed: %s", self.name, exc)
        finally:
            bus.close()
            if self.machine.state in (HealthState.UP, HealthState.DEGRADED):
                self.machine.transition(HealthState.DOWN, "closed")
            self._ctx = None

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        """Not used: the cycle takes the outputs itself (``takes_outbound``, ``ctx.drain``), so
        the framework never calls it. Raises ConnectorError (counted ``send_error``)."""
        raise ConnectorError(f"EtherCAT {self.name}: outputs are taken by the cycle (ctx.drain), "
                             f"not sent; {descriptor.name!r} was handed to send")

    def health(self) -> HealthState:
        """The state of :attr:`machine` (any thread): the last state reported to the context."""
        return self.machine.state

    def _push(self, event: HealthEvent) -> None:
        """Report a transition of :attr:`machine` to the open context (the transitioning
        thread, under the machine's lock; ``ctx.report`` does not block)."""
        ctx = self._ctx
        if ctx is not None:
            ctx.report(event.state, event.reason)

    def stats(self) -> Mapping[str, int]:
        """A snapshot of :attr:`counters` (any thread): ``cycles``, ``wkc_errors``,
        ``lost_frames``, ``sent`` (values taken from the outbound channels), ``overwritten``
        (taken, then replaced in the same cycle), ``discarded_safe``, ``received`` (changed
        input values delivered), ``bringups``, ``bringup_failures``, ``left_op`` (a SubDevice
        seen below OP by the AL watch) and ``al_unread`` (cycles with the expected working
        counter whose AL status read went unanswered: their inputs were not published)."""
        return dict(self.counters)

    def on_pause(self, paused: bool) -> None:
        """Pausing the gateway puts the outputs to their safe value (gateway actor thread).

        Resuming does not restore the values written before the pause: the outputs stay safe
        until the app writes a channel again, so actuators never restart on their own after a
        stop (the machine-safety rule of EN 60204-1). Resuming does deliver the *current*
        inputs on the next cycle, changed or not: a change that happened while paused was
        dropped (counted ``paused``), and the app must not keep a stale value.
        """
        self.set_safe_outputs(paused)
        if not paused:
            self._inputs.refresh()  # the cycle thread forgets what it delivered before

    def set_safe_outputs(self, safe: bool) -> None:
        """While on, every cycle writes the safe value (zeros) instead of channel values, and
        values taken meanwhile are discarded (counted ``discarded_safe``; any thread: a flag the
        cycle reads once per cycle)."""
        self._safe = safe
        self._outputs.set_safe(safe)

    # ---- requests on the live bus (any thread; run on the cycle thread) ---------------------------
    def call(self, fn: Callable[[Bus], T], timeout: float = 5.0) -> T:
        """Run ``fn(bus)`` on the cycle thread between two exchanges and return its result (or
        raise its exception). Blocks the caller up to ``timeout`` (EthercatError when it passes or
        the bus is not running). At most ``REQUEST_QUEUE`` requests wait; beyond that
        EthercatError ("busy"). A slow request (an SDO transfer) delays the next cycles: the
        executor skips and counts the missed ticks."""
        if self._executor is None:
            raise EthercatError(f"EtherCAT {self.name}: not open")
        bus = self.bus
        if self._bringing_up or self._bring_up_pending:
            step = bus.step if bus is not None else "start"
            raise EthercatError(f"EtherCAT {self.name}: bring-up in progress (step {step}); try again "
                                "when the bus is Up")
        return self._requests.call(fn, timeout)

    def read_sdo(self, subdevice: int, index: int, subindex: int, timeout: float = 5.0) -> bytes:
        """SDO upload on the live bus (SdoAbortError with the abort code)."""
        return self.call(lambda bus: bus.sdo_read(subdevice, index, subindex), timeout)

    def write_sdo(self, subdevice: int, index: int, subindex: int, data: bytes, timeout: float = 5.0) -> None:
        """SDO download on the live bus (SdoAbortError with the abort code)."""
        self.call(lambda bus: bus.sdo_write(subdevice, index, subindex, data), timeout)

    def get_state(self, timeout: float = 5.0) -> list[tuple[int, int]]:
        """(AL state with error flag, AL status code) of every SubDevice, read from the bus."""
        return self.call(lambda bus: bus.states(), timeout)

    def dc_deviation_ns(self, timeout: float = 5.0) -> list[int | None]:
        """Each SubDevice's drift from the reference clock in ns, read from the bus (0x092C;
        0 for the reference clock, None without distributed clocks). With distributed clocks
        on, this is what the drift compensation keeps near zero. Blocks up to ``timeout``."""
        return self.call(lambda bus: bus.dc_deviations(), timeout)

    def handle_request(self, msg: ConnectorRequest) -> Reply:
        """The gateway's control requests on the live bus (gateway actor thread; blocks up to
        the 5 s request timeout of :meth:`call`): :class:`ReadSdo` -> :class:`SdoValue`,
        :class:`WriteSdo` -> :class:`Ack`, :class:`GetState` -> :class:`BusState`. An SDO abort
        raises SdoAbortError (the gateway answers an ErrorReply naming the abort code); a bus
        that is not running raises EthercatError; other requests are refused (base class)."""
        cid = msg.correlation_id
        if isinstance(msg, ReadSdo):
            return SdoValue(correlation_id=cid, data=self.read_sdo(msg.subdevice, msg.index, msg.subindex))
        if isinstance(msg, WriteSdo):
            self.write_sdo(msg.subdevice, msg.index, msg.subindex, msg.data)
            return Ack(correlation_id=cid, detail=f"SubDevice {msg.subdevice} 0x{msg.index:04X}:"
                                                  f"{msg.subindex} written")
        if isinstance(msg, GetState):
            states = self.get_state()
            return BusState(correlation_id=cid, states=tuple(s for s, _ in states),
                            al_status_codes=tuple(c for _, c in states))
        return super().handle_request(msg)

    def cycle_stats(self) -> dict[str, float]:
        """Counters plus the exchange-time histogram summary (p50/p99/max in us, any thread)."""
        out: dict[str, float] = {k: float(v) for k, v in self.counters.items()}
        for key, ring in (("cycle", self.cycle_ns), ("al_read", self.al_ns)):
            samples = sorted(ring)
            if samples:
                out[f"{key}_p50_us"] = samples[len(samples) // 2] / 1000
                out[f"{key}_p99_us"] = samples[min(len(samples) - 1, len(samples) * 99 // 100)] / 1000
                out[f"{key}_max_us"] = samples[-1] / 1000
        out["overruns"] = float(self.missed_ticks())
        return out

    # ---- cycle (executor thread) ------------------------------------------------------------------
    def _bring_up(self) -> None:
        assert self.bus is not None
        self._bringing_up = True
        try:
            self.bus.bring_up(self._count, self._cancel)
        except EthercatError as exc:
            self.counters["bringup_failures"] += 1
            self.machine.transition(HealthState.DOWN, str(exc))
            raise
        finally:
            self._bringing_up = False
        self.counters["bringups"] += 1
        subs = self.bus.subdevices
        self._count = len(subs)  # a re-bring-up must find the same line
        for d, r in (*self._out, *self._in):
            size = -1
            if r.subdevice < len(subs):
                sd = subs[r.subdevice]
                size = len(sd.input if d.direction is Direction.INBOUND else sd.output)
            if size < 0 or r.bit_offset + r.bit_length > 8 * size:
                self.machine.transition(HealthState.DOWN, "channel routing outside the process image")
                raise EthercatError(f"EtherCAT {self.name}: channel {d.name!r} routes bits "
                                    f"{r.bit_offset}..{r.bit_offset + r.bit_length - 1} of SubDevice "
                                    f"{r.subdevice}, whose image has {max(size, 0)} bytes")
        self._outputs.attach(subs)
        self._inputs.attach(subs)
        self._low = 0
        self.machine.transition(HealthState.UP, f"OP, working counter {self.bus.expected_wkc}")

    def _tick(self, ctx: Context) -> None:
        """One cycle (cycle thread). The common case - Up, the expected working counter, every
        SubDevice in OP - runs straight through: drain the outputs, exchange, AL read, publish
        the changed inputs; everything else goes to :meth:`_slow_tick`."""
        bus = self.bus
        cctx = self._ctx
        if bus is None or cctx is None:
            return
        pacer = self._pacer
        if pacer is not None:
            if not pacer.due:
                return
            ring = self.period_err_ns
            ring.append(ctx.now_ns - pacer.scheduled_ns)
            if len(ring) >= CYCLE_SAMPLES:
                ring.clear()
        if self._bring_up_pending or self.machine.state is HealthState.DOWN:
            self._slow_tick(bus, 0, 0, ctx.now_ns)
            return
        self._outputs.take(cctx)
        master = bus.master
        clock = time.perf_counter_ns
        t0 = clock()
        master.send_processdata()
        wkc = master.receive_processdata(self._receive_timeout_us)
        t1 = clock()
        # the AL watch: every cycle, after the exchange, read AL status (one BRD while all agree),
        # so a SubDevice that left OP is seen even when its working counter does not drop
        lowest = master.read_state() if wkc > 0 else 0
        t2 = clock()
        ring = self.cycle_ns
        ring.append(t1 - t0)
        if len(ring) >= CYCLE_SAMPLES:
            ring.clear()
        ring = self.al_ns
        ring.append(t2 - t1)
        if len(ring) >= CYCLE_SAMPLES:
            ring.clear()
        self.counters["cycles"] += 1
        if wkc == bus.expected_wkc and lowest == OP:
            if self._low:
                self._low = 0
                if self.machine.state is HealthState.DEGRADED:
                    self.machine.transition(HealthState.UP, "working counter restored")
            self._inputs.publish(cctx)
            if self._requests.waiting():
                self._requests.serve(bus)
            return
        self._slow_tick(bus, wkc, lowest, ctx.now_ns)

    def _slow_tick(self, bus: Bus, wkc: int, lowest: int, now_ns: int) -> None:
        """What a tick does outside the common case (cycle thread): the first bring-up of a
        background open, a re-bring-up while Down, a bad cycle (health, ARCH_0041)."""
        now = now_ns / 1e9
        if self._bring_up_pending:  # open() in the background: the first bring-up is ours
            self._bring_up_pending = False
            try:
                self._bring_up()
            except EthercatError as exc:
                self._next_attempt = time.monotonic() + self.options.reconnect_s
                log.info("EtherCAT %s: bring-up failed: %s", self.name, exc)
            return
        if self.machine.state is HealthState.DOWN:
            if self._ctx is not None:  # outputs written while Down are refused (``link_down``)
                self._outputs.refuse(self._ctx, f"EtherCAT {self.name}: bus is down")
            if now >= self._next_attempt:
                self._next_attempt = now + self.options.reconnect_s
                self.machine.transition(HealthState.CONNECTING, "re-bring-up")
                try:
                    self._bring_up()
                except EthercatError as exc:
                    log.info("EtherCAT %s: re-bring-up failed: %s", self.name, exc)
            self._requests.serve(bus)
            return
        if lowest != OP and wkc > 0:
            # a SubDevice that answers from below OP (state 0 = it did not answer: a WKC matter)
            below = [(i, st, c) for i, (st, c) in enumerate(bus.cached_states())
                     if st and (st & 0x0F != OP or st & 0x10)]
            if below:
                i, st, c = below[0]
                self.counters["left_op"] += 1
                self._down(f"SubDevice {i} left OP: state 0x{st:02X} ({STATE_NAMES.get(st & 0x0F, '?')}), "
                           f"AL status code 0x{c:04X}")
                return
        if wkc == bus.expected_wkc:
            self.counters["al_unread"] += 1  # the inputs are not known to be OP data: not published
            why = "AL status not readable"
        else:
            self.counters["wkc_errors"] += 1
            if wkc <= 0:
                self.counters["lost_frames"] += 1
            why = f"working counter {wkc} < {bus.expected_wkc}"
        self._low += 1
        if self._low == 1:
            self._low_since = now
        self._requests.serve(bus)
        if self._low >= self.options.degraded_after and self.machine.state is HealthState.UP:
            self.machine.transition(HealthState.DEGRADED, f"{why} for {self._low} cycles")
        if self.machine.state is HealthState.DEGRADED and now - self._low_since > self.options.down_after_s:
            self._down(f"{why} for more than {self.options.down_after_s} s")

    def _run_cycle(self) -> None:
        """The cycle thread: the executor (its ``cycle_thread`` attributes applied first); a
        refused attribute ends it with Down naming it (the gateway reconnects)."""
        assert self._executor is not None
        try:
            set_timer_slack(1)
            self._executor.run()
        except ThreadAttributeError as exc:
            log.error("ethercat %r: cycle thread: %s", self.name, exc)
            if self.machine.state is not HealthState.DOWN:
                self._down(f"cycle thread attributes refused: {exc}")

    def _down(self, reason: str) -> None:
        self.machine.transition(HealthState.DOWN, reason)
        self._next_attempt = time.monotonic() + self.options.reconnect_s

    def missed_ticks(self) -> int:
        """Cycle ticks the executor skipped because a cycle ran late (overruns)."""
        pacer = self._pacer
        return pacer.missed if pacer is not None else self._missed

    def reset_samples(self) -> None:
        """Forget recorded cycle and period samples (e.g. after warm-up; any thread, racy by design)."""
        self.cycle_ns.clear()
        self.al_ns.clear()
        self.period_err_ns.clear()


CYCLE_SAMPLES = 65536
