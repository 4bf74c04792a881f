"""EtherCAT: raw pysoem against the taktora gateway, both driving the software SubDevice.

Setup: a veth pair (root) and the simulator (``SimProcess``, its own process) with 2 digital
I/O terminals. Cases:

- ``soem_raw_free``: pysoem ``send_processdata``/``receive_processdata`` as fast as it goes;
- ``taktora_ethercat_free``: the EthercatConnector behind a Dispatcher, interval 10 us (the
  executor free-runs, skipped ticks are not overruns here), with channel traffic (a writer
  flipping an output slice, a reader draining the looped-back input slice);
- ``taktora_ethercat_1kHz``: the same paced at 1 kHz.

Fields: cycles_per_s, p50/p99/p999_us (round trip of one exchange for the free cases; period
error = tick start - scheduled tick for the paced case), overruns (ticks skipped), wkc_errors, n.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
from taktora.connectors.channel import ChannelReader, ChannelWriter
from taktora.connectors.ethercat.bus import Bus, BusConfig
from taktora.connectors.ethercat.connector import EthercatConnector, EthercatOptions
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
        n = 0
        while time.monotonic() < end:
            t0 = clock()
            wkc = bus.cycle()
            samples.append((clock() - t0) / 1000)
            errors += wkc != expected
            n += 1
        rate = n / (time.monotonic() - start)
    finally:
        bus.close()
    return _bench.summarize("soem_raw_free", samples, cycles_per_s=round(rate), overruns=0, wkc_errors=errors)


def chan(name: str, direction: Direction) -> ChannelDescriptor:
    return ChannelDescriptor(name=name, direction=direction, codec="raw", max_payload=8,
                             routing=Routing(kind="ethercat", options={
                                 "subdevice": 0, "bit_offset": 0, "bit_length": 8}))


def gateway(case: str, iface: str, seconds: float, cycle_s: float, prefix: str) -> dict[str, Any]:
    out, inp = chan("bench_do", Direction.OUTBOUND), chan("bench_di", Direction.INBOUND)
    conn = EthercatConnector("bench", EthercatOptions(bus=BusConfig(iface=iface), cycle_s=cycle_s))
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
                c0, e0, m0, t0 = (conn.counters["cycles"], conn.counters["wkc_errors"], conn.missed_ticks(),
                                  time.monotonic())
                time.sleep(seconds)
                cycles = conn.counters["cycles"] - c0
                rate = cycles / (time.monotonic() - t0)
                errors = conn.counters["wkc_errors"] - e0
                overruns = conn.missed_ticks() - m0
                samples = list(conn.period_err_ns if cycle_s >= 0.001 else conn.cycle_ns)
            finally:
                stop.set()
                t.join()
                writer.close()
                reader.close()
    finally:
        disp.stop()
    return _bench.summarize(case, (s / 1000 for s in samples), cycles_per_s=round(rate),
                            overruns=overruns if cycle_s >= 0.001 else 0, wkc_errors=errors)


def main() -> None:
    args = _bench.parse_args(__doc__ or "ethercat")
    prefix = _bench.private_prefix()
    reason = veth.available()
    if reason:
        raise SystemExit(f"ethercat bench: {reason}")
    seconds = 3.0 if args.quick else 10.0
    paced = 10.0 if args.quick else 30.0
    name = f"tkb{os.getpid() % 100000}"
    veth.down(name)
    master, sim_end = veth.up(name)
    try:
        with SimProcess(sim_end, ["builtin:dio"], count=COUNT):
            results = [raw(master, seconds),
                       gateway("taktora_ethercat_free", master, seconds, 0.00001, prefix),
                       gateway("taktora_ethercat_1kHz", master, paced, 0.001, prefix)]
    finally:
        veth.down(name)
    ratios = {"gateway_free_vs_raw_cycles": _bench.ratio(results, "taktora_ethercat_free", "soem_raw_free",
                                                         "cycles_per_s")}
    _bench.write("ethercat", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
