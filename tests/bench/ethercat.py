"""EtherCAT: raw pysoem against the taktora gateway, both driving the software SubDevice.

Setup: a veth pair (root) and the simulator (``SimProcess``, its own process) with 2 digital
I/O terminals. Cases:

- ``soem_raw_free``: pysoem ``send_processdata``/``receive_processdata`` as fast as it goes;
- ``taktora_ethercat_free``: the EthercatConnector behind a Dispatcher with ``free_running``
  (each tick right after the last, as the floor's loop; no timer), with channel traffic (a
  writer flipping an output slice, a reader draining the looped-back input slice);
- ``taktora_ethercat_1kHz``: the same paced at 1 kHz;
- ``floor_ethercat_free``: the taktora free case written by hand with raw pysoem and raw
  iceoryx2 (``_floor``), no taktora code, the same work per cycle as the connector: take the
  pending ``.out`` samples into the output image, exchange process data, read every
  SubDevice's AL status (``read_state``: the AL watch of REQ_0823, one more round trip), and
  publish the routed input byte on ``.in`` when it changed and the cycle was good (expected
  working counter, all in OP), all on one cycle thread; the same app traffic thread (1 kHz
  writes, draining reads) in the same process;
- ``soem_raw_1kHz``: raw pysoem paced by a timerfd (absolute 1 ms ticks) in a process of its
  own: the least a 1 kHz Python loop on SOEM costs here;
- ``soem_raw_al_1kHz``: the same loop with the AL watch the connector must do each cycle
  (``read_state`` after the exchange, REQ_0823): the least a 1 kHz loop with the same reads
  costs (not a target, it says how much of the gap is the AL read).

The cases run interleaved in rounds (``ROUNDS`` free, ``PACED_ROUNDS`` paced: raw, floor,
taktora, then again), so a load that comes and goes on the shared machine hits them alike;
each row is the case's median round (by cycles_per_s for the free cases, p99_us for the paced
ones; ``rounds`` lists every round's value) and each target ratio is the median of the
per-round ratios (``per_round``).

Fields: cycles_per_s, p50/p99/p999_us (round trip of one exchange for the free cases; period
error = tick start - scheduled tick for the paced cases), overruns (ticks skipped), wkc_errors, n,
cpu_us_per_cycle (CPU time of the thread that cycles, per cycle: what a cycle costs besides
waiting for the bus; the least noisy figure on a loaded machine).
"""

from __future__ import annotations

import array
import ctypes
import multiprocessing as mp
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
import _floor
from taktora.connectors.channel import ChannelReader, ChannelWriter
from taktora.connectors.ethercat.bus import Bus, BusConfig
from taktora.connectors.ethercat.connector import EthercatConnector
from taktora.connectors.ethercat.settings import EthercatOptions
from taktora.connectors.ethercat.sim import SimProcess, veth
from taktora.connectors.gateway.dispatcher import Dispatcher
from taktora.connectors.model import ChannelDescriptor, Direction, Routing
from taktora.transport import Node

COUNT = 2


def raw(iface: str, seconds: float) -> dict[str, Any]:
    bus = Bus(BusConfig(iface=iface))
    bus.open()
    try:
        expected = bus.bring_up()
        samples: list[float] = []
        errors = 0
        clock = time.perf_counter_ns
        end = time.monotonic() + seconds
        start = time.monotonic()
        cpu0 = time.thread_time()
        n = 0
        while time.monotonic() < end:
            t0 = clock()
            wkc = bus.cycle()
            samples.append((clock() - t0) / 1000)
            errors += wkc != expected
            n += 1
        rate = n / (time.monotonic() - start)
        cpu = (time.thread_time() - cpu0) / n * 1e6
    finally:
        bus.close()
    return _bench.summarize("soem_raw_free", samples, cycles_per_s=round(rate), overruns=0, wkc_errors=errors,
                            cpu_us_per_cycle=round(cpu, 1))


def chan(name: str, direction: Direction) -> ChannelDescriptor:
    return ChannelDescriptor(name=name, direction=direction, codec="raw", max_payload=8,
                             routing=Routing(kind="ethercat", options={
                                 "subdevice": 0, "bit_offset": 0, "bit_length": 8}))


def gateway(case: str, iface: str, seconds: float, cycle_s: float, prefix: str) -> dict[str, Any]:
    out, inp = chan("bench_do", Direction.OUTBOUND), chan("bench_di", Direction.INBOUND)
    conn = EthercatConnector("bench", EthercatOptions(bus=BusConfig(iface=iface), cycle_s=cycle_s or 0.001,
                                                      free_running=not cycle_s))
    disp = Dispatcher(prefix, conn, [out, inp], name="bench-gw").start()
    stop = threading.Event()
    try:
        with Node("bench-app", prefix=prefix) as node:
            writer: ChannelWriter[Any] = ChannelWriter(node, out)
            reader: ChannelReader[Any] = ChannelReader(node, inp)

            def traffic() -> None:
                k = 0
                while not stop.is_set():
                    writer.send(bytes([k & 0xFF]))
                    k += 1
                    for _ in reader.drain():
                        pass
                    time.sleep(0.001)

            t = threading.Thread(target=traffic, name="bench-traffic")
            t.start()
            try:
                time.sleep(min(1.0, seconds / 5))  # warm-up
                conn.reset_samples()
                cycle_thread = conn._thread
                assert cycle_thread is not None and cycle_thread.ident is not None
                cpu_clock = time.pthread_getcpuclockid(cycle_thread.ident)
                c0, e0, m0, t0 = (conn.counters["cycles"], conn.counters["wkc_errors"], conn.missed_ticks(),
                                  time.monotonic())
                cpu0 = time.clock_gettime(cpu_clock)
                time.sleep(seconds)
                cpu = time.clock_gettime(cpu_clock) - cpu0
                cycles = conn.counters["cycles"] - c0
                rate = cycles / (time.monotonic() - t0)
                errors = conn.counters["wkc_errors"] - e0
                overruns = conn.missed_ticks() - m0
                samples = list(conn.period_err_ns if cycle_s else conn.cycle_ns)
            finally:
                stop.set()
                t.join()
                writer.close()
                reader.close()
    finally:
        disp.stop()
    return _bench.summarize(case, (s / 1000 for s in samples), cycles_per_s=round(rate),
                            overruns=overruns if cycle_s else 0, wkc_errors=errors,
                            cpu_us_per_cycle=round(cpu / max(cycles, 1) * 1e6, 1))


# ---- hand-written floors: raw pysoem (+ raw iceoryx2), no taktora code -------------------------
PREOP, SAFEOP, OP = 2, 4, 8


def soem_up(iface: str, state_timeout_s: float = 2.0) -> tuple[Any, int]:
    """Raw pysoem bring-up to OP: ``(master, expected working counter)``."""
    import pysoem

    master = pysoem.Master()
    master.always_release_gil = True  # as the connector's bus: other threads run during a frame
    master.open(iface)
    if master.config_init() <= 0:
        master.close()
        raise RuntimeError(f"no SubDevice answered on {iface}")
    us = int(state_timeout_s * 1e6)
    if master.state_check(PREOP, us) != PREOP:
        raise RuntimeError("SubDevices did not reach PRE-OP")
    master.config_map()
    if master.state_check(SAFEOP, us) != SAFEOP:
        raise RuntimeError("SubDevices did not reach SAFE-OP")
    expected = int(master.expected_wkc)
    master.state = OP
    master.send_processdata()
    master.receive_processdata(2000)
    master.write_state()
    deadline = time.monotonic() + state_timeout_s
    while True:
        master.send_processdata()
        master.receive_processdata(2000)
        if master.state_check(OP, 1000) == OP:
            return master, expected
        if time.monotonic() > deadline:
            raise RuntimeError("SubDevices did not reach OP")


def floor_free(iface: str, seconds: float) -> dict[str, Any]:
    master, expected = soem_up(iface)
    app: list[Any] = [_floor.node("floor-ecat-app")]
    gw: list[Any] = [_floor.node("floor-ecat")]
    stop = threading.Event()
    try:
        app_pub = _floor.Pub(app[0], "floor/ecat/do.out", 8)
        app_sub = _floor.Sub(app[0], "floor/ecat/di.in")
        app += [app_pub, app_sub]
        take = _floor.Sub(gw[0], "floor/ecat/do.out")
        publish = _floor.Pub(gw[0], "floor/ecat/di.in", 8)
        gw += [take, publish]

        def traffic() -> None:  # the app: write an output byte every ms, drain the inputs
            k = 0
            while not stop.is_set():
                app_pub.send(bytes([k & 0xFF]))
                k += 1
                while app_sub.take() is not None:
                    pass
                app_sub.consume()
                time.sleep(0.001)

        t = threading.Thread(target=traffic, name="floor-traffic")
        t.start()
        sd = master.slaves[0]
        shadow = bytearray(len(sd.output))
        last_in = b""
        clock = time.perf_counter_ns
        samples: list[float] = []
        errors = n = 0
        try:
            end = time.monotonic() + min(1.0, seconds / 5) + seconds  # warm-up, then measure
            measure_from = end - seconds
            start = 0.0
            while (now := time.monotonic()) < end:
                if not start and now >= measure_from:
                    start, samples, errors, n = now, [], 0, 0
                    cpu0 = time.thread_time()
                changed = False
                while (s := take.take()) is not None:  # the routed byte: bits 0..7 of SubDevice 0
                    shadow[0] = ctypes.c_uint8.from_address(s.payload_ptr).value
                    changed = True
                    del s
                if changed:
                    sd.output = bytes(shadow)
                t0 = clock()
                master.send_processdata()
                wkc = master.receive_processdata(2000)
                samples.append((clock() - t0) / 1000)
                n += 1
                lowest = master.read_state() if wkc > 0 else 0  # the AL watch, as the connector
                if wkc != expected or lowest != OP:
                    errors += 1
                    continue
                value = sd.input[:1]
                if value != last_in:
                    last_in = value
                    publish.send(value)
            rate = n / (time.monotonic() - start)
            cpu = (time.thread_time() - cpu0) / n * 1e6
        finally:
            stop.set()
            t.join()
    finally:
        _floor.close_all(app)
        _floor.close_all(gw)
        master.state = 1  # INIT
        master.write_state()
        master.close()
    return _bench.summarize("floor_ethercat_free", samples, cycles_per_s=round(rate), overruns=0,
                            wkc_errors=errors, cpu_us_per_cycle=round(cpu, 1))


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def soem_paced_main(iface: str, seconds: float, period_s: float, results: Any, al: bool = False) -> None:
    """Spawned process: raw pysoem cycling on an absolute timerfd; reports period errors.
    ``al``: read every SubDevice's AL status after each exchange (as the connector)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        master, expected = soem_up(iface)
        fd = libc.timerfd_create(time.CLOCK_MONOTONIC, 0)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        period = int(period_s * 1e9)
        first = time.monotonic_ns() + 10 * period
        spec = _Itimerspec(_Timespec(0, period), _Timespec(first // 10**9, first % 10**9))
        if libc.timerfd_settime(fd, 1, ctypes.byref(spec), None) != 0:  # TFD_TIMER_ABSTIME
            raise OSError(ctypes.get_errno(), "timerfd_settime")
        errs = array.array("q")
        tick = overruns = errors = cycles = 0
        warm = int(min(1.0, seconds / 5) / period_s)
        total = warm + int(seconds / period_s)
        read = os.read
        cpu0 = 0.0
        while tick < total:
            expirations = int.from_bytes(read(fd, 8), "little")
            now = time.monotonic_ns()
            tick += expirations
            scheduled = first + (tick - 1) * period
            if tick > warm:
                if not cycles:
                    cpu0 = time.thread_time()
                errs.append(now - scheduled)
                overruns += expirations - 1
                cycles += 1
            master.send_processdata()
            wkc = master.receive_processdata(2000)
            if al and wkc > 0 and master.read_state() != OP:
                wkc = -1
            if wkc != expected and tick > warm:
                errors += 1
        cpu = (time.thread_time() - cpu0) / max(cycles, 1) * 1e6
        os.close(fd)
        master.state = 1
        master.write_state()
        master.close()
        results.put((cycles, overruns, errors, errs.tobytes(), cpu, None))
    except Exception as exc:  # reported to the parent as the case's error
        results.put((0, 0, 0, b"", 0.0, f"{type(exc).__name__}: {exc}"))


def soem_paced(iface: str, seconds: float, period_s: float = 0.001, al: bool = False) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=soem_paced_main, args=(iface, seconds, period_s, results, al))
    proc.start()
    try:
        cycles, overruns, errors, raw_errs, cpu, failure = results.get(timeout=seconds + 60)
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if failure:
        raise RuntimeError(failure)
    errs = array.array("q")
    errs.frombytes(raw_errs)
    return _bench.summarize("soem_raw_al_1kHz" if al else "soem_raw_1kHz", (v / 1000 for v in errs),
                            cycles_per_s=round(cycles / seconds), overruns=overruns,
                            wkc_errors=errors, cpu_us_per_cycle=round(cpu, 1))


ROUNDS = 5  # free cases: short, so more rounds
PACED_ROUNDS = 5


def interleaved(cases: list[tuple[str, Any, tuple[Any, ...]]], rounds: int, key: str
                ) -> dict[str, list[dict[str, Any]]]:
    """Run every case once per round, in order, ``rounds`` times: ``{case: [row per round]}``."""
    per: dict[str, list[dict[str, Any]]] = {case: [] for case, _, _ in cases}
    for _ in range(rounds):
        for case, fn, args in cases:
            per[case].append(_bench.run_case(case, fn, *args))
    return per


def median_row(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The row of the median round by ``key`` (with ``rounds``: every round's value)."""
    good = sorted((r for r in rows if key in r), key=lambda r: r[key])
    if not good:
        return rows[0]
    row = dict(good[len(good) // 2])
    row["rounds"] = [r.get(key) for r in rows]
    return row


def round_target(per: dict[str, list[dict[str, Any]]], num: str, den: str, field: str, op: str,
                 bound: float | None) -> dict[str, Any]:
    """The median over the rounds of ``num[field] / den[field]`` (same round), with the target."""
    values = sorted(round(a[field] / b[field], 3) for a, b in zip(per.get(num, []), per.get(den, []),
                                                                  strict=False)
                    if a.get(field) and b.get(field))
    value = values[len(values) // 2] if values else None
    out: dict[str, Any] = {"value": value, "of": f"{num}.{field} / {den}.{field} (median of rounds)",
                           "per_round": values}
    if bound is not None:
        out["target"] = f"{op} {bound}"
        out["target_met"] = value is not None and (value <= bound if op == "<=" else value >= bound)
    return out


def main() -> None:
    args = _bench.parse_args(__doc__ or "ethercat")
    prefix = _bench.private_prefix()
    reason = veth.available()
    if reason:
        raise SystemExit(f"ethercat bench: {reason}")
    seconds = (3.0 if args.quick else 10.0) / ROUNDS
    paced = (10.0 if args.quick else 30.0) / PACED_ROUNDS
    name = f"tkb{os.getpid() % 100000}"
    veth.down(name)
    master, sim_end = veth.up(name)
    try:
        with SimProcess(sim_end, ["builtin:dio"], count=COUNT):
            free = interleaved([
                ("soem_raw_free", raw, (master, seconds)),
                ("floor_ethercat_free", floor_free, (master, seconds)),
                ("taktora_ethercat_free", gateway, ("taktora_ethercat_free", master, seconds, 0.0,
                                                    prefix))], ROUNDS, "cycles_per_s")
            paced_rows = interleaved([
                ("soem_raw_1kHz", soem_paced, (master, paced)),
                ("soem_raw_al_1kHz", soem_paced, (master, paced, 0.001, True)),
                ("taktora_ethercat_1kHz", gateway, ("taktora_ethercat_1kHz", master, paced, 0.001,
                                                    prefix))], PACED_ROUNDS, "p99_us")
    finally:
        veth.down(name)
    results = ([median_row(rows, "cycles_per_s") for rows in free.values()]
               + [median_row(rows, "p99_us") for rows in paced_rows.values()])
    per = {**free, **paced_rows}
    ratios = {
        "gateway_free_vs_floor_cycles": round_target(per, "taktora_ethercat_free",
                                                     "floor_ethercat_free", "cycles_per_s", ">=", 0.8),
        "gateway_1kHz_vs_soem_raw_1kHz_p99": round_target(per, "taktora_ethercat_1kHz",
                                                          "soem_raw_1kHz", "p99_us", "<=", 1.2),
        "overruns_1kHz (taktora <= raw)": {
            "taktora": [r.get("overruns") for r in per["taktora_ethercat_1kHz"]],
            "raw": [r.get("overruns") for r in per["soem_raw_1kHz"]]},
        "floor_free_vs_raw_cycles": round_target(per, "floor_ethercat_free", "soem_raw_free",
                                                 "cycles_per_s", "", None),
        "gateway_free_vs_raw_cycles": round_target(per, "taktora_ethercat_free", "soem_raw_free",
                                                   "cycles_per_s", "", None),
        "gateway_free_vs_floor_cpu_per_cycle": round_target(per, "taktora_ethercat_free",
                                                            "floor_ethercat_free",
                                                            "cpu_us_per_cycle", "", None),
        "gateway_1kHz_vs_soem_raw_1kHz_cpu_per_cycle": round_target(
            per, "taktora_ethercat_1kHz", "soem_raw_1kHz", "cpu_us_per_cycle", "", None),
        "gateway_1kHz_vs_soem_raw_al_1kHz_p99": round_target(
            per, "taktora_ethercat_1kHz", "soem_raw_al_1kHz", "p99_us", "", None),
        "gateway_1kHz_vs_soem_raw_al_1kHz_cpu_per_cycle": round_target(
            per, "taktora_ethercat_1kHz", "soem_raw_al_1kHz", "cpu_us_per_cycle", "", None)}
    _bench.write("ethercat", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
