"""The EtherCAT connector: cyclic process data on pysoem, routed bit-exactly to channels.

A channel's routing is ``Routing(kind="ethercat", options={"subdevice": S, "bit_offset": B,
"bit_length": L})``: L bits starting at bit B of SubDevice S's output image (OUTBOUND
channels, ``{name}.out``) or input image (INBOUND, ``{name}.in``). Payloads are the raw bytes
of the value, little-endian, bit 0 first (``carries_envelope`` is False: the gateway's sink
wraps inbound values in envelopes; codecs run on the application side).

Data path (no dispatcher inbound thread, no queue):
- ``open(ctx)`` (owner's thread) brings the bus up (ARCH_0040, blocks at most
  ``bus.bring_up_timeout_s``; BringUpError on failure) and starts the cycle thread; with
  ``bring_up_in_background`` it reports Connecting and returns at once, and the cycle thread
  brings the bus up (Up or Down reported from there);
- the cycle thread (affinity and SCHED_FIFO from ``cycle_thread``) runs a taktora
  :class:`~taktora.actors.Executor` with one item on a drift-free ``every(cycle_s)`` interval
  (missed ticks skipped, counted). Each tick it writes pending outputs (read-modify-write),
  exchanges process data, checks the working counter and AL status, publishes every changed
  input slice into its ``{name}.in`` service with ``ctx.deliver`` (the sink counts what it
  cannot publish, e.g. ``paused``) and drives health (ARCH_0041). pysoem releases the GIL
  while it waits for frames;
- ``send`` (the dispatcher's outbound thread) keeps the latest value per channel for the next
  tick (one not yet written that a newer replaces: ``overwritten``).

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
(e.g. on Pause; a value reaching ``send`` meanwhile is counted as ``discarded_safe``), and
before the bus leaves OP on ``close``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from taktora.actors import ErrorPolicy, Executor, every, item
from taktora.actors.control.messages import Ack, Reply
from taktora.actors.executor.context import Context
from taktora.actors.executor.errors import ThreadAttributeError
from taktora.actors.models.health import HealthEvent, HealthMachine, HealthState
from taktora.connectors.connector import Connector
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.errors import ConnectorError, LinkDownError
from taktora.connectors.ethercat.bits import copy_bits
from taktora.connectors.ethercat.bus import OP, STATE_NAMES, Bus
from taktora.connectors.ethercat.errors import EthercatError
from taktora.connectors.ethercat.messages import BusState, GetState, ReadSdo, SdoValue, WriteSdo
from taktora.connectors.ethercat.settings import BitRoute, EthercatOptions
from taktora.connectors.model import ChannelDescriptor, Direction
from taktora.connectors.requests import ConnectorRequest

log = logging.getLogger(__name__)

REQUEST_QUEUE = 16
T = TypeVar("T")
INIT = 1


class EthercatConnector(Connector):
    """EtherCAT on pysoem (see the module docstring)."""

    carries_envelope = False

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
        self.machine = HealthMachine(name)
        self.bus: Bus | None = None
        self._lock = threading.Lock()
        self._pending: dict[str, bytes] = {}
        self._safe = False
        self._out: list[tuple[ChannelDescriptor, BitRoute]] = []
        self._out_names: frozenset[str] = frozenset()
        self._in: list[tuple[ChannelDescriptor, BitRoute]] = []
        self._in_by_sub: dict[int, list[tuple[ChannelDescriptor, BitRoute]]] = {}
        self._last_in: dict[str, bytes] = {}
        self._last_image: dict[int, bytes] = {}
        self._refresh = False  # set on Resume: deliver every input again on the next cycle
        self._shadow: list[bytearray] = []
        self._ctx: ConnectorContext | None = None  # set from open until the end of close
        self.machine.subscribe(self._push)
        self._requests: queue.Queue[tuple[Callable[[Bus], Any], Future[Any]]] = queue.Queue(REQUEST_QUEUE)
        self._executor: Executor | None = None
        self._thread: threading.Thread | None = None
        self._low = 0
        self._low_since = 0.0
        self._next_attempt = 0.0
        self.counters: dict[str, int] = dict.fromkeys(
            ("cycles", "wkc_errors", "lost_frames", "sent", "overwritten", "discarded_safe", "received",
             "bringups", "bringup_failures", "left_op", "al_unread"), 0)
        self.cycle_ns: list[int] = []  # exchange durations (send+receive), up to CYCLE_SAMPLES
        self.al_ns: list[int] = []  # durations of the cyclic AL status read, up to CYCLE_SAMPLES
        self.period_err_ns: list[int] = []  # tick start - scheduled tick time
        self._missed = 0
        self._count: int | None = None
        self._cancel = threading.Event()  # set by close: a running bring-up gives up
        self._bringing_up = False
        self._bring_up_pending = False  # open() in the background: the cycle thread brings up

    # ---- Connector ----------------------------------------------------------------------------------
    def open(self, ctx: ConnectorContext) -> None:
        """Bring the bus up for ``ctx.channels`` and start the cycle thread (owner's thread;
        blocks for the bring-up, at most ``bus.bring_up_timeout_s``). From here on changed
        inputs are delivered to ``ctx`` and health transitions reported to it; Up is reported
        before this returns. With ``bring_up_in_background`` it reports Connecting and returns
        without blocking; the cycle thread brings the bus up and reports Up or Down (a failed
        bring-up is then not raised here).

        Raises ConnectorError naming the channel for a routing that is not ``ethercat`` (before
        anything is touched); EthercatError / BringUpError when the bus cannot be opened or
        brought up, or a routing lies outside the process image (Down is reported; nothing
        stays open). May be called again after :meth:`close` (a gateway's reconnect): health
        goes Down -> Connecting -> Up."""
        if self.bus is not None:
            raise EthercatError(f"EtherCAT {self.name}: already open")
        routes = [(d, BitRoute.of(d)) for d in ctx.channels]
        self._out = [(d, r) for d, r in routes if d.direction is Direction.OUTBOUND]
        self._in = [(d, r) for d, r in routes if d.direction is Direction.INBOUND]
        self._out_names = frozenset(d.name for d, _ in self._out)
        self._in_by_sub = {}
        for d, r in self._in:
            self._in_by_sub.setdefault(r.subdevice, []).append((d, r))
        with self._lock:
            self._pending.clear()
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
        self._executor.add(item(self._tick, [every(self.options.cycle_s)], name="ethercat-cycle",
                                error_policy=ErrorPolicy.LOG_AND_CONTINUE))
        self._thread = threading.Thread(target=self._run_cycle, name=f"{self.name}-cycle", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop cycling, write safe outputs, take the bus to INIT and close it (idempotent). A
        bring-up running on the cycle thread is cancelled (it ends within ~50 ms)."""
        self._cancel.set()
        self._bring_up_pending = False
        if self._executor is not None:
            self._executor.stop()
            if self._thread is not None:
                self._thread.join(10)
            self._missed = self._executor.stats().item("ethercat-cycle").missed_ticks
            self._executor.close()
            self._executor = None
            self._thread = None
        while not self._requests.empty():
            _fn, fut = self._requests.get_nowait()
            if fut.set_running_or_notify_cancel():
                fut.set_exception(EthercatError(f"EtherCAT {self.name}: closed"))
        bus = self.bus
        if bus is None:
            self._ctx = None
            return
        self.bus = None
        try:
            if self.machine.state in (HealthState.UP, HealthState.DEGRADED):
                self._write_safe(bus)
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
        """Keep the latest value of an OUTBOUND channel for the next cycle (the dispatcher's
        outbound thread; never blocks beyond a short lock). ``frame`` is copied. Raises
        LinkDownError while the bus is Down, ConnectorError for a channel not opened as
        outbound."""
        if self.machine.state is HealthState.DOWN:
            raise LinkDownError(f"EtherCAT {self.name}: bus is down")
        name = descriptor.name
        if name not in self._out_names:
            raise ConnectorError(f"EtherCAT {self.name}: channel {name!r} is not an open outbound channel")
        with self._lock:
            if name in self._pending:
                self.counters["overwritten"] += 1
            self._pending[name] = bytes(frame)
            self.counters["sent"] += 1

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
        ``lost_frames``, ``sent``, ``overwritten``, ``discarded_safe``, ``received`` (changed
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
            self._refresh = True  # the cycle thread forgets what it delivered before

    def set_safe_outputs(self, safe: bool) -> None:
        """While on, every cycle writes the safe value (zeros) instead of channel values, and
        values sent meanwhile are discarded (counted ``discarded_safe``; any thread)."""
        with self._lock:
            self._safe = safe

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
        fut: Future[T] = Future()
        try:
            self._requests.put_nowait((fn, fut))
        except queue.Full:
            raise EthercatError(f"EtherCAT {self.name}: busy ({REQUEST_QUEUE} requests waiting)") from None
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()
            raise EthercatError(f"EtherCAT {self.name}: request not served within {timeout} s") from None

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

    def _serve_request(self, bus: Bus) -> None:
        if self._requests.empty():  # the usual case, checked without raising queue.Empty
            return
        try:
            fn, fut = self._requests.get_nowait()
        except queue.Empty:
            return
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn(bus))
        except BaseException as exc:  # handed to the caller
            fut.set_exception(exc)

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
        self._count = len(self.bus.subdevices)  # a re-bring-up must find the same line
        self._shadow = [bytearray(len(sd.output)) for sd in self.bus.subdevices]
        for d, r in (*self._out, *self._in):
            size = len(self._shadow[r.subdevice]) if r.subdevice < len(self._shadow) else -1
            if d.direction is Direction.INBOUND and 0 <= r.subdevice < len(self._shadow):
                size = len(self.bus.subdevices[r.subdevice].input)
            if size < 0 or r.bit_offset + r.bit_length > 8 * size:
                self.machine.transition(HealthState.DOWN, "channel routing outside the process image")
                raise EthercatError(f"EtherCAT {self.name}: channel {d.name!r} routes bits "
                                    f"{r.bit_offset}..{r.bit_offset + r.bit_length - 1} of SubDevice "
                                    f"{r.subdevice}, whose image has {max(size, 0)} bytes")
        self._last_in.clear()
        self._last_image.clear()
        self._low = 0
        self.machine.transition(HealthState.UP, f"OP, working counter {self.bus.expected_wkc}")

    def _write_safe(self, bus: Bus) -> None:
        for sd, shadow in zip(bus.subdevices, self._shadow, strict=False):
            shadow[:] = bytes(len(shadow))
            sd.output = bytes(shadow)

    def _tick(self, ctx: Context) -> None:
        bus = self.bus
        if bus is None:
            return
        if ctx.scheduled_ns:
            self._record(self.period_err_ns, time.monotonic_ns() - ctx.scheduled_ns)
        now = time.monotonic()
        if self._bring_up_pending:  # open() in the background: the first bring-up is ours
            self._bring_up_pending = False
            try:
                self._bring_up()
            except EthercatError as exc:
                self._next_attempt = time.monotonic() + self.options.reconnect_s
                log.info("EtherCAT %s: bring-up failed: %s", self.name, exc)
            return
        if self.machine.state is HealthState.DOWN:
            if now >= self._next_attempt:
                self._next_attempt = now + self.options.reconnect_s
                self.machine.transition(HealthState.CONNECTING, "re-bring-up")
                try:
                    self._bring_up()
                except EthercatError as exc:
                    log.info("EtherCAT %s: re-bring-up failed: %s", self.name, exc)
            self._serve_request(bus)
            return
        self._apply_outputs(bus)
        t0 = time.perf_counter_ns()
        wkc = bus.cycle()
        t1 = time.perf_counter_ns()
        # the AL watch: every cycle, after the exchange, read AL status (one BRD while all agree),
        # so a SubDevice that left OP is seen even when its working counter does not drop
        lowest = bus.al_lowest() if wkc > 0 else 0
        self._record(self.cycle_ns, t1 - t0)
        self._record(self.al_ns, time.perf_counter_ns() - t1)
        self.counters["cycles"] += 1
        if wkc == bus.expected_wkc and lowest == OP:
            self._low = 0
            if self.machine.state is HealthState.DEGRADED:
                self.machine.transition(HealthState.UP, "working counter restored")
            self._publish_inputs(bus)
            self._serve_request(bus)
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
        self._serve_request(bus)
        if self._low >= self.options.degraded_after and self.machine.state is HealthState.UP:
            self.machine.transition(HealthState.DEGRADED, f"{why} for {self._low} cycles")
        if self.machine.state is HealthState.DEGRADED and now - self._low_since > self.options.down_after_s:
            self._down(f"{why} for more than {self.options.down_after_s} s")

    def _run_cycle(self) -> None:
        """The cycle thread: the executor (its ``cycle_thread`` attributes applied first); a
        refused attribute ends it with Down naming it (the gateway reconnects)."""
        assert self._executor is not None
        try:
            self._executor.run()
        except ThreadAttributeError as exc:
            log.error("ethercat %r: cycle thread: %s", self.name, exc)
            if self.machine.state is not HealthState.DOWN:
                self._down(f"cycle thread attributes refused: {exc}")

    def _down(self, reason: str) -> None:
        self.machine.transition(HealthState.DOWN, reason)
        self._next_attempt = time.monotonic() + self.options.reconnect_s

    def _apply_outputs(self, bus: Bus) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            safe = self._safe
        subs = bus.subdevices
        if safe:
            self.counters["discarded_safe"] += len(pending)
            self._write_safe(bus)
            return
        if not pending:
            return
        touched: set[int] = set()
        for d, r in self._out:
            value = pending.get(d.name)
            if value is None:
                continue
            value = value[:r.nbytes].ljust(r.nbytes, b"\x00")
            copy_bits(value, 0, self._shadow[r.subdevice], r.bit_offset, r.bit_length)
            touched.add(r.subdevice)
        for s in touched:
            subs[s].output = bytes(self._shadow[s])

    def _publish_inputs(self, bus: Bus) -> None:
        """Deliver every input slice that changed since it was last delivered (cycle thread).
        A SubDevice whose whole input image is unchanged is skipped without slicing."""
        ctx = self._ctx
        if not self._in_by_sub or ctx is None:
            return
        if self._refresh:
            self._refresh = False
            self._last_image.clear()
            self._last_in.clear()
        subs = bus.subdevices
        for s, channels in self._in_by_sub.items():
            img = bytes(subs[s].input)
            if self._last_image.get(s) == img:
                continue
            self._last_image[s] = img
            for d, r in channels:
                value = bytearray(r.nbytes)
                copy_bits(img, r.bit_offset, value, 0, r.bit_length)
                raw = bytes(value)
                if self._last_in.get(d.name) == raw:
                    continue
                self._last_in[d.name] = raw
                self.counters["received"] += 1
                ctx.deliver(d.name, raw)  # a value the sink cannot publish is counted there

    @staticmethod
    def _record(ring: list[int], ns: int) -> None:
        """Keep a sample; a full ring (CYCLE_SAMPLES) starts over (old samples overwritten)."""
        if len(ring) >= CYCLE_SAMPLES:
            ring.clear()
        ring.append(ns)

    def missed_ticks(self) -> int:
        """Cycle ticks the executor skipped because a cycle ran late (overruns)."""
        ex = self._executor
        return ex.stats().item("ethercat-cycle").missed_ticks if ex is not None else self._missed

    def reset_samples(self) -> None:
        """Forget recorded cycle and period samples (e.g. after warm-up; any thread, racy by design)."""
        self.cycle_ns.clear()
        self.al_ns.clear()
        self.period_err_ns.clear()


CYCLE_SAMPLES = 65536
