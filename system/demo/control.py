"""Section 3 of ``make demo``: a real control application, faults and all, live.

One system file, ``examples/demo_control.toml``, run on the multi-process actor base, declares
the gateways and the item hosts (factories in ``examples/demo_control_items.py``):

- a CAN sensor: gateway ``can`` (python-can) with two buses on one ``virtual`` channel, the
  sensor node's side (``sensor``) and the controller's (``can0``). A python-can virtual bus
  only connects the Bus objects of one process and the connector has no built-in sensor
  simulation, so the sensor's *values* come from a thread of this process (a first-order
  engine model) written on ``can/sensor``; the gateway encodes them as DBC ``EngineStatus``
  frames on ``sensor``, they cross the virtual bus to ``can0`` and arrive DBC-decoded on
  ``can/engine``. (``udp_multicast`` would reach other processes but binds 0.0.0.0: not used.)
- the 1 kHz controller: item ``control`` (``every_s = 0.001``) in host ``control``,
  ``placement = "dedicated"`` (a spawned process, SCHED_FIFO 50, best effort), reads
  ``can/engine`` and writes the throttle command on ``act/cmd``;
- the actuator: the UDP loopback pair ``act-tx`` -> ``act-rx`` carries every command to the
  engine model here (the loop closes through the sensor); as root with iproute2 and pysoem the
  command also goes as one byte through gateway ``drive`` (EtherCAT, cycle 2 ms) to the
  software SubDevice on a veth pair this section creates and removes, and the engine follows
  what the drive applied (its inputs, ``ec/di``). Otherwise gateway ``drive`` is left out and
  the reason printed;
- telemetry: ``tel/ctl`` through gateway ``tel`` (zenoh, listening on loopback) to a plain
  zenoh subscriber of this process, which counts what arrives; when mosquitto is installed
  also ``tel/mqtt`` (the engine's state every 10 ms, written by this process) through gateway
  ``mqtt`` to a mosquitto this section starts on a free loopback port
  (:mod:`taktora.system.demo.mqtt_telemetry`), counted by a plain paho subscriber; otherwise
  the reason is printed and the gateway left out;
- application logic: item ``supervisor`` (every 100 ms, window statistics on ``app/summary``)
  and item ``alarm`` (on_data ``app/summary``) in host ``supervision``.

Phases: steady; link down (``act-tx``'s FaultInjector); connector crash (``InjectCrash`` on
``act-rx``); ``kill -9`` of the ``can`` gateway's process; a CPU hog thread in this process
while the loop runs in its own; steady again. Health transitions print as they happen, a status
line every half second (speed, throttle, the loop's period error over its last 100 ticks). At
the end: the supervision tree with restarts, the loop's period error per phase and its monitor
figures (GetStats), and the loss equation per channel (uncounted must be 0: else exit 1).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table
from taktora.actors.control.messages import GetStats, HealthReply, StatsReply
from taktora.actors.errors import ControlError
from taktora.actors.models.health import HealthEvent
from taktora.connectors import ChannelDescriptor, Direction
from taktora.connectors.can import use_dbc
from taktora.connectors.ethercat.errors import VethError
from taktora.connectors.ethercat.sim import SimProcess, veth
from taktora.connectors.gateway.host import ConnectorHost
from taktora.connectors.gateway.messages import InjectCrash
from taktora.connectors.ledger import LossLedger, account, gateway_totals
from taktora.connectors.udp.messages import InjectFault
from taktora.system import app_config
from taktora.system.app_config import APPS_ID
from taktora.system.bootstrap import start_system
from taktora.system.config import SystemConfig, check_factories, loads
from taktora.system.demo import mqtt_telemetry
from taktora.system.demo.control_models import (
    State,
    app_side,
    burn_cpu,
    plant,
    reader_stats,
    sensor,
    writer_stats,
)
from taktora.system.run import start_apps, stop_apps
from taktora.system.session import render_tree
from taktora.transport import isolation

log = logging.getLogger("taktora.demo")

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "demo_control.toml"
DBC = ROOT / "examples" / "can" / "vehicle.dbc"
#: the ports examples/demo_control.toml names: replaced by free ones at each run, so demos (and
#: tests) side by side do not collide (UDP act-tx -> act-rx, zenoh gateway "tel" listening)
FILE_UDP_PORT, FILE_ZENOH_PORT = "47611", "47612"
TELEMETRY_KEY = "demo/control/telemetry"
DIO = ROOT / "examples" / "ethercat" / "dio.toml"

#: The actor system's logging: every record dropped by a handler (QUIET_LOGGING has none, and
#: a record no handler takes goes to logging's last-resort handler, stderr). The faults are on
#: purpose; what they did is shown from health events and counters.
SILENT_LOGGING: dict[str, Any] = {
    "version": 1, "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "root": {"level": "CRITICAL", "handlers": ["null"]},
}

PHASES = {
    "steady": "the loop runs, every link up",
    "link-down": "act-tx's link cut (FaultInjector), restored after half the phase",
    "crash": "act-rx's handler raises (InjectCrash): the supervisor restarts it",
    "kill-9": "kill -9 of the can gateway's process: restarted by its supervisor",
    "cpu-hog": "a CPU hog thread in the demo process; the loop runs in its own process",
    "tail": "steady again",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descriptor(config: SystemConfig, name: str, direction: Direction) -> ChannelDescriptor:
    for g in config.gateways:
        for d in g.channels:
            if d.name == name and d.direction is direction:
                return d
    for d in config.channels:
        if d.name == name:
            return d
    raise KeyError(name)


def _load_on_free_ports() -> tuple[SystemConfig, str]:
    """The demo's system file with free loopback ports in place of the ones it names (its
    factories still found next to it); and the zenoh endpoint gateway "tel" listens on."""
    ports = []
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            ports.append(str(s.getsockname()[1]))
    text = CONFIG.read_text().replace(FILE_UDP_PORT, ports[0]).replace(FILE_ZENOH_PORT, ports[1])
    config = loads(text)
    config = attrs.evolve(config, hosts=app_config.bind(
        config.hosts, search_path=(str(CONFIG.resolve().parent),)))
    return config, f"tcp/127.0.0.1:{ports[1]}"


def _zenoh_subscriber(st: State, endpoint: str) -> Any:
    """A plain zenoh peer on loopback, connected to gateway "tel", counting telemetry per
    phase; returns (session, subscriber)."""
    import json

    import zenoh

    cfg = zenoh.Config()
    cfg.insert_json5("mode", json.dumps("peer"))
    cfg.insert_json5("scouting/multicast/enabled", "false")
    cfg.insert_json5("transport/shared_memory/enabled", "false")  # as the gateway's
    cfg.insert_json5("listen/endpoints", json.dumps(["tcp/127.0.0.1:0"]))
    cfg.insert_json5("connect/endpoints", json.dumps([endpoint]))
    session = zenoh.open(cfg)

    def got(sample: Any) -> None:
        st.telemetry[st.phase] += 1

    return session, session.declare_subscriber(TELEMETRY_KEY, got)


def _ethercat_missing() -> str | None:
    """None if the EtherCAT drive can run here (veth pairs, pysoem), else why not."""
    reason = veth.available()
    if reason:
        return reason
    try:
        import pysoem  # noqa: F401
    except ImportError:
        return "pysoem (extra 'ethercat') is not installed"
    return None


def _host_stats(handle: Any, name: str) -> dict[str, Any]:
    try:
        reply = handle.control((APPS_ID, name), GetStats(), 5.0)
    except ControlError as exc:
        return {"error": str(exc)}
    return dict(reply.stats) if isinstance(reply, StatsReply) else {}


def run_control(*, quick: bool = False) -> int:
    """Run section 3; 0 if every gateway recovered, the loop ran and the equations hold."""
    tty = sys.stdout.isatty()
    console = Console(width=120, highlight=False, no_color=not tty)
    for noisy in ("taktora.actors.control.base", "taktora.actors.control.supervisor",
                  "taktora.connectors", "demo_control_items", "zenoh"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    # the actor processes are forked from this one and Thespian's log process hands their
    # records to this process's root handlers (Logger.handle skips level checks): while the
    # system runs, the root logs only the demo's own records (the faults are on purpose)
    root = logging.getLogger()
    saved_handlers = root.handlers[:]
    only_demo = logging.StreamHandler()
    only_demo.addFilter(logging.Filter("taktora.demo"))
    root.handlers = [only_demo]
    cwd = os.getcwd()
    os.chdir(ROOT)  # the system file's DBC path is relative to the working directory
    prefix_scope = contextlib.ExitStack()  # closed last in the finally below
    prefix = prefix_scope.enter_context(isolation.private_prefix("tkctldemo"))
    phase_s = 1.2 if quick else 3.0
    t0 = time.monotonic()
    events: list[tuple[float, HealthEvent]] = []
    st = State()
    status = 0

    def stamp() -> str:
        return f"{time.monotonic() - t0:6.2f} s"

    def show(event: HealthEvent) -> None:
        events.append((time.monotonic() - t0, event))
        colour = {"up": "green", "connecting": "yellow", "degraded": "yellow",
                  "down": "red"}[event.state.value]
        prev = event.previous.value if event.previous else "-"
        console.print(f"  {stamp()}  [bold]{event.source:8}[/bold] {prev:>10} -> "
                      f"[{colour}]{event.state.value:<10}[/{colour}] {event.reason}")

    def line() -> None:
        s = st.status
        console.print(f"  {stamp()}  [dim]{st.phase:9}[/dim] {st.speed:6.0f} rpm "
                      f"throttle {st.throttle:5.1f} %  tick {s.get('tick', 0):6}  period "
                      f"error p99 {s.get('p99_us', 0):4} us max {s.get('max_us', 0):4} us  "
                      f"telemetry {sum(st.telemetry.values()):5}")

    def wait(seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(0.5, left))
            line()

    threads: list[threading.Thread] = []
    zenoh_session: Any = None
    missing = _ethercat_missing()
    pair = f"tkdc{os.getpid() % 100000}"
    sim: SimProcess | None = None
    made_pair = False
    broker: mqtt_telemetry.DemoBroker | None = None
    mqtt_sub: mqtt_telemetry.Subscriber | None = None
    mqtt_missing = mqtt_telemetry.missing()
    try:
        if mqtt_missing is None:  # first: it holds its port while the others are picked
            try:
                broker = mqtt_telemetry.DemoBroker().start()
            except (OSError, RuntimeError) as exc:
                mqtt_missing = f"the broker did not start: {exc}"
        config, zenoh_endpoint = _load_on_free_ports()
        check_factories(config)
        use_dbc(DBC)
        console.rule("[bold]a control application: CAN sensor, 1 kHz loop, UDP (+ EtherCAT) "
                     "actuator, Zenoh (+ MQTT) telemetry (multiprocess)")
        console.print(f"config {CONFIG.relative_to(ROOT)}: {len(config.gateways)} gateways, "
                      f"{len(config.hosts)} item hosts; iceoryx2 prefix {prefix}")
        gw_configs = config.gateway_configs(prefix)
        if missing is None:
            veth.down(pair)  # a leftover of a crashed run
            try:
                master, sim_end = veth.up(pair)
                made_pair = True
                sim = SimProcess(sim_end, [str(DIO)]).start()
            except (VethError, RuntimeError) as exc:
                missing = f"the EtherCAT bus did not come up: {exc}"
        if missing is None:
            console.print(f"actuator: UDP act-tx -> act-rx and EtherCAT gateway drive on veth "
                          f"pair {master} <-> {sim_end} (software SubDevice {DIO.name})")
            gw_configs = [attrs.evolve(g, settings={**g.settings, "bus": {
                **g.settings["bus"], "iface": master}}) if g.name == "drive" else g
                for g in gw_configs]
            st.drive = True
        else:
            console.print(f"EtherCAT drive skipped ({missing}): gateway drive left out, the "
                          f"actuator is the UDP loopback pair act-tx -> act-rx only")
            gw_configs = [g for g in gw_configs if g.name != "drive"]
        if broker is not None and mqtt_missing is None:
            tel = next(g for g in gw_configs if g.name == "tel")
            gw_configs.append(mqtt_telemetry.gateway_config(tel, broker.port))
            console.print(f"MQTT telemetry: {mqtt_telemetry.CHANNEL} -> gateway mqtt -> "
                          f"mosquitto on 127.0.0.1:{broker.port} (topic {mqtt_telemetry.TOPIC})")
        else:
            console.print(f"MQTT telemetry skipped ({mqtt_missing}): gateway mqtt left out")
        descs = {
            "can/sensor": _descriptor(config, "can/sensor", Direction.OUTBOUND),
            "act/cmd": _descriptor(config, "act/cmd", Direction.INBOUND),
            **{n: _descriptor(config, n, Direction.OUTBOUND)
               for n in ("app/status", "app/summary", "app/mode")},
        }
        with start_system("multiprocess", admin_port=_free_port(),
                          logging_config=SILENT_LOGGING) as handle:
            host = ConnectorHost(handle, gw_configs, supervision=config.supervision,
                                 host_id="connectors")
            host.on_event(show)
            ledger_stats: dict[str, dict[str, Any]] = {}
            try:
                threads = [
                    threading.Thread(target=plant, args=(
                        prefix, descs["act/cmd"],
                        _descriptor(config, "ec/di", Direction.INBOUND) if st.drive else None, st),
                        name="demo-ctl-plant", daemon=True),
                    threading.Thread(target=app_side, args=(prefix, descs, st),
                                     name="demo-ctl-app", daemon=True),
                    threading.Thread(target=sensor, args=(prefix, descs["can/sensor"], st),
                                     name="demo-ctl-sensor", daemon=True),
                ]
                if broker is not None:
                    threads.append(threading.Thread(
                        target=mqtt_telemetry.publisher,
                        args=(prefix, mqtt_telemetry.descriptor(), st),
                        name="demo-ctl-mqtt", daemon=True))
                for t in threads[:2]:  # the readers subscribe before the gateways publish
                    t.start()
                time.sleep(0.2)
                host.start()
                zenoh_session = _zenoh_subscriber(st, zenoh_endpoint)
                if broker is not None:
                    mqtt_sub = mqtt_telemetry.Subscriber(broker.port, st)
                start_apps(handle, config)
                time.sleep(0.2)
                for t in threads[2:]:
                    t.start()

                def phase(name: str, text: str) -> None:
                    st.phase = name
                    console.print(f"[bold cyan]{stamp()}  phase {name}[/bold cyan]: {text}")

                phase("steady", PHASES["steady"])
                wait(phase_s)
                phase("link-down", PHASES["link-down"])
                host.control("act-tx", InjectFault(link="down"))
                wait(phase_s * 0.5)
                host.control("act-tx", InjectFault(link="up"))
                console.print("            link restored; act-tx reconnects with backoff")
                wait(phase_s * 0.5)
                phase("crash", PHASES["crash"])
                host.control("act-rx", InjectCrash(reason="demo crash"))
                wait(phase_s)
                pid = int(host.stats()["can"]["pid"])
                phase("kill-9", f"{PHASES['kill-9']} (pid {pid})")
                os.kill(pid, signal.SIGKILL)
                wait(phase_s * 1.5)
                phase("cpu-hog", PHASES["cpu-hog"])
                hog = threading.Thread(target=burn_cpu, args=(st,), name="demo-ctl-hog", daemon=True)
                hog.start()
                wait(phase_s)
                st.hog_stop.set()
                hog.join(5)
                phase("tail", PHASES["tail"])
                wait(phase_s)
                final_health = host.health()
                st.phase = "end"
                # settle: the sensor stops, then the loop (its final status carries its counters)
                st.sensor_stop.set()  # the sensor and the MQTT publisher
                for t in threads[2:]:
                    t.join(5)
                time.sleep(0.3)
                st.mode_stop.set()
                deadline = time.monotonic() + 5.0
                while st.final is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.4)  # the last commands cross the link
                control_stats = _host_stats(handle, "control")
                tree = handle.tree()
                ledger_stats = host.stats()
            finally:
                st.sensor_stop.set()
                st.plant_stop.set()
                st.app_stop.set()
                st.hog_stop.set()
                for t in threads:
                    if t.is_alive() or t.ident is not None:
                        t.join(5)
                if zenoh_session is not None:
                    zenoh_session[1].undeclare()
                    zenoh_session[0].close()
                if mqtt_sub is not None:
                    mqtt_sub.stop()
                stop_apps(handle, config)
                reports = host.stop()
    finally:
        if broker is not None:
            broker.stop()
        if sim is not None:
            sim.stop()
        if made_pair:
            veth.down(pair)
            console.print(f"veth pair {pair} removed")
        root.handlers = saved_handlers
        os.chdir(cwd)
        prefix_scope.close()

    # ---- tables --------------------------------------------------------------------------------
    console.print(render_tree(tree))
    restarts = Table(title="gateways: health at the end and restarts")
    for col in ("gateway", "state", "last transition", "restarts", "transitions"):
        restarts.add_column(col)
    node = tree.find(("connectors",))
    per_source = Counter(e.source for _, e in events)
    for name, reply in final_health.items():
        child = node.find((name, "link")) if node else None
        if isinstance(reply, HealthReply):
            last = reply.last_event.reason if reply.last_event else ""
            restarts.add_row(name, reply.state.value, last, str(child.restarts if child else "?"),
                             str(sum(n for s, n in per_source.items() if s.split("/")[0] == name)))
            if reply.state.value != "up":
                status = 1
        else:
            restarts.add_row(name, "no answer", str(reply), "?", "")
            status = 1
    console.print(restarts)

    p = Table(title="the 1 kHz loop: period error (|time between runs - 1 ms|, per 100-tick "
                    "window, measured by the item in its dedicated process)")
    for col in ("phase", "windows", "p50 (median)", "p99 (worst window)", "max", "cause"):
        p.add_column(col, justify="left" if col in ("phase", "cause") else "right")
    for ph, text in PHASES.items():
        ws = st.windows.get(ph, [])
        if not ws:
            continue
        p50s = sorted(w[0] for w in ws)
        p.add_row(ph, str(len(ws)), f"{p50s[len(p50s) // 2]} us", f"{max(w[1] for w in ws)} us",
                  f"{max(w[2] for w in ws)} us", text if ph in ("kill-9", "cpu-hog") else "")
    console.print(p)
    item = next((it for it in (control_stats.get("monitor") or {}).get("items", ())
                 if it.get("name") == "control"), None)
    applied = (control_stats.get("dedicated") or {}).get("applied", {})
    if item is not None:
        every = [w for ws in st.windows.values() for w in ws]
        p50s = sorted(w[0] for w in every) or [0]
        k = Table(title="the 1 kHz loop (run time and missed ticks: GetStats monitor of host "
                        "control; period error: the item's windows, whole run)")
        for col in ("item", "runs", "failures", "missed ticks", "run p50", "run p99", "run max",
                    "period error p50", "p99", "max"):
            k.add_column(col, justify="left" if col == "item" else "right")
        k.add_row("control", str(item["runs"]), str(item["failures"]), str(item["missed_ticks"]),
                  f"{item['p50_us']:.0f} us", f"{item['p99_us']:.0f} us",
                  f"{item['max_us']:.0f} us", f"{p50s[len(p50s) // 2]} us",
                  f"{max((w[1] for w in every), default=0)} us",
                  f"{max((w[2] for w in every), default=0)} us")
        console.print(k)
        console.print(f"dedicated process pid {(control_stats.get('dedicated') or {}).get('pid')}"
                      f", applied {applied}")
    else:
        console.print(f"[red]no monitor snapshot of host control: {control_stats}")
        status = 1
    if st.final is None:
        console.print("[red]the controller sent no final status: no loss equation for its "
                      "channels")
        status = 1

    e = Table(title="the loss equation per channel, across gateway restarts (written = "
                    "delivered + every drop, counted once where it happened)")
    e.add_column("channel")
    e.add_column("path")
    e.add_column("equation")
    e.add_column("holds")
    gw = [gateway_totals(s) for s in ledger_stats.values()]
    final = st.final or {}
    paths: list[tuple[str, str, LossLedger | None]] = []

    def row(channel: str, path: str, **kw: Any) -> None:
        try:
            paths.append((channel, path, account(channel, gateways=gw, **kw)))
        except Exception as exc:
            log.error("no ledger for %s: %s", channel, exc)
            paths.append((channel, path, None))

    row("can/sensor", "demo sensor -> can (sensor bus)", writer=st.writers.get("can/sensor"))
    if final:
        row("can/engine", "can (can0 bus) -> control item",
            reader=reader_stats(final["readers"]["can/engine"]))
        row("act/cmd", "control item -> act-tx -> UDP -> act-rx -> demo plant",
            writer=writer_stats(final["writers"]["act/cmd"]), reader=st.readers.get("act/cmd"))
        row("tel/ctl", "control item -> tel -> zenoh",
            writer=writer_stats(final["writers"]["tel/ctl"]))
    if broker is not None:
        row(mqtt_telemetry.CHANNEL, "demo process -> mqtt -> mosquitto",
            writer=st.writers.get(mqtt_telemetry.CHANNEL))
        if st.drive:
            row("ec/do", "control item -> drive (EtherCAT outputs)",
                writer=writer_stats(final["writers"]["ec/do"]))
            row("ec/di", "drive (EtherCAT inputs) -> demo plant", reader=st.readers.get("ec/di"))
    for channel, path, ledger in paths:
        if ledger is None:
            e.add_row(channel, path, "no counters", "[red]NO")
            status = 1
            continue
        e.add_row(channel, path, str(ledger).split(": ", 1)[1],
                  "holds" if ledger.holds else "[red]NO")
        if not ledger.holds:
            log.error("loss equation of %s does not hold: %s", channel, ledger)
            status = 1
    console.print(e)
    tel_total = sum(st.telemetry.values())
    console.print(f"zenoh subscriber (demo process): {tel_total} telemetry samples ("
                  + ", ".join(f"{k} {v}" for k, v in st.telemetry.items()) + "); plant got "
                  f"{st.commands} commands, {st.drive_values} drive values; {len(events)} "
                  "health events; stop reports: "
                  + ", ".join(f"{getattr(r, 'stopped', ())} in {getattr(r, 'elapsed_s', 0):.3f} s"
                              for r in reports))
    if broker is not None:
        mqtt_total = sum(st.mqtt_telemetry.values())
        console.print(f"mqtt subscriber (demo process): {mqtt_total} telemetry messages ("
                      + ", ".join(f"{k} {v}" for k, v in st.mqtt_telemetry.items()) + ")")
        if st.mqtt_telemetry.get("tail", 0) == 0:
            log.error("no MQTT telemetry after the faults")
            status = 1
    if st.telemetry.get("tail", 0) == 0 or st.readers.get("act/cmd") is None:
        log.error("no telemetry or no commands after the faults")
        status = 1
    if st.errors:
        log.error("demo thread errors: %s", st.errors)
        status = 1
    console.print(f"control section: {'[green]ok' if status == 0 else '[red]FAILED'}[/] in "
                  f"{time.monotonic() - t0:.1f} s")
    return status
