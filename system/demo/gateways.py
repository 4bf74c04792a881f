"""Section 2 of ``make demo``: supervised UDP gateways, faults, crashes and restarts, live.

An actor system (in-process, or multi-process with ``--mode multiprocess``) is started and a
:class:`~taktora.connectors.gateway.host.ConnectorHost` runs the gateways of ``examples/demo.toml``:
``left`` and ``right``, two UDP gateways facing each other on loopback. The app (this process)
has two threads of its own:

- the *sender* writes one JSON message every ``PERIOD_S`` on ``demo/cmd`` (out through
  ``left``, in through ``right``) and on ``demo/state`` (out through ``right``, in through
  ``left``) with :class:`ChannelWriter`; each message carries its id and the phase it was
  sent in;
- the *receiver* reads both channels with :class:`ChannelReader` and records the ids.

Meanwhile the main thread walks through phases: steady; link down on ``left`` (the UDP
FaultInjector: sends fail, ``left`` goes Down, reconnects with backoff once the link is back);
every 10th frame of ``right`` corrupted (the far side's CRC check drops them); ``right``
crashes (an exception in its handler: the supervisor restarts it after its backoff); in
multi-process mode ``left``'s process is killed with ``kill -9`` (restarted the same way);
steady again. Health events are printed live as the gateways emit them (the host's health
subscription). At the end, tables show the transitions, the supervision tree with restart
counts, and per phase: sent, received, lost, and the gateways' own loss counters by cause.
A lost message is counted once, in the phase it was *sent* in; its cause is what that phase
did (and the gateway counters say where it died when the gateway could count it).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table
from taktora.actors.control.messages import HealthReply
from taktora.actors.models.health import HealthEvent
from taktora.connectors import ChannelDescriptor, ChannelReader, ChannelWriter, Direction
from taktora.connectors.channel import ReaderStats, WriterStats
from taktora.connectors.gateway.messages import InjectCrash
from taktora.connectors.ledger import account, gateway_totals
from taktora.connectors.udp.messages import InjectFault
from taktora.system.bootstrap import QUIET_LOGGING, start_system
from taktora.system.config import load
from taktora.system.launch import start_host
from taktora.system.session import render_tree
from taktora.transport import Node, isolation

log = logging.getLogger("taktora.demo")

PERIOD_S = 0.005
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"

CAUSES = {
    "steady": "none expected",
    "link-down": "left's link cut: left is Down/reconnecting, what it gets is dropped (down)",
    "corrupt": "every 10th frame of right corrupted on the wire: left drops it (crc)",
    "crash": "right crashed: not subscribed until the supervisor restarted it",
    "kill-9": "left's process killed: nothing subscribed until restarted",
    "tail": "none expected",
}


@attrs.define
class Tally:
    """Ids sent and received per (channel, phase); written by one thread each."""

    sent: dict[tuple[str, str], int] = attrs.field(factory=Counter)
    received: dict[tuple[str, str], int] = attrs.field(factory=Counter)
    phase: str = "steady"
    stop: threading.Event = attrs.field(factory=threading.Event)
    writers: dict[str, WriterStats] = attrs.field(factory=dict)  # at the end, per channel
    readers: dict[str, ReaderStats] = attrs.field(factory=dict)
    errors: list[str] = attrs.field(factory=list)


def _descriptors(config: Any) -> dict[tuple[str, Direction], ChannelDescriptor]:
    out: dict[tuple[str, Direction], ChannelDescriptor] = {}
    for g in config.gateways:
        for d in g.channels:
            out[(d.name, d.direction)] = d
    return out


def _sender(prefix: str, descs: list[ChannelDescriptor], tally: Tally) -> None:
    try:
        with Node("demo-app-tx", prefix=prefix) as node:
            writers: list[ChannelWriter[Any]] = [ChannelWriter(node, d) for d in descs]
            n = 0
            next_t = time.monotonic()
            while not tally.stop.is_set():
                phase = tally.phase
                for w in writers:
                    w.send({"id": n, "phase": phase})
                    tally.sent[(w.descriptor.name, phase)] += 1
                n += 1
                next_t += PERIOD_S
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            tally.writers.update((w.descriptor.name, w.stats()) for w in writers)
    except Exception as exc:  # reported by the demo, never silently lost
        tally.errors.append(f"sender: {type(exc).__name__}: {exc}")
        log.exception("demo sender failed")


def _receiver(prefix: str, descs: list[ChannelDescriptor], tally: Tally,
              done: threading.Event) -> None:
    try:
        with Node("demo-app-rx", prefix=prefix) as node:
            readers: list[ChannelReader[Any]] = [ChannelReader(node, d) for d in descs]
            while not done.is_set():
                idle = True
                for r in readers:
                    for got in r.drain():
                        idle = False
                        tally.received[(r.descriptor.name, str(got.value["phase"]))] += 1
                if idle:
                    time.sleep(0.002)
            tally.readers.update((r.descriptor.name, r.stats()) for r in readers)
    except Exception as exc:
        tally.errors.append(f"receiver: {type(exc).__name__}: {exc}")
        log.exception("demo receiver failed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cause_counters(stats: dict[str, dict[str, Any]]) -> dict[str, int]:
    """The gateways' loss counters (``gateway:key``) that are not zero."""
    out: dict[str, int] = {}
    for gw, s in stats.items():
        for key, value in s.items():
            if isinstance(value, int) and not isinstance(value, bool) and value and (
                    ".dropped." in key or ".malformed." in key or key.startswith("connector.fault")
                    or key == "connector.link_down_rx"):
                out[f"{gw}:{key}"] = value
    return out


def run_demo(*, quick: bool = False, mode: str = "inprocess", port: int | None = None,
             config_path: str | None = None) -> int:
    """Run section 2; returns 0 if both gateways recovered and the tail arrived."""
    console = Console(width=110, highlight=False)
    for noisy in ("taktora.actors.control.base", "taktora.actors.control.supervisor", "taktora.connectors"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    config = load(config_path or DEFAULT_CONFIG)
    phase_s = 1.0 if quick else 1.6
    t0 = time.monotonic()
    events: list[tuple[float, HealthEvent]] = []

    def show(event: HealthEvent) -> None:
        t = time.monotonic() - t0
        events.append((t, event))
        colour = {"up": "green", "connecting": "yellow", "degraded": "yellow",
                  "down": "red"}[event.state.value]
        prev = event.previous.value if event.previous else "-"
        console.print(f"  {t:6.2f} s  [bold]{event.source:5}[/bold] {prev:>10} -> "
                      f"[{colour}]{event.state.value:<10}[/{colour}] {event.reason}")

    console.rule(f"[bold]supervised UDP gateways ({mode})")
    console.print(f"config {config_path or DEFAULT_CONFIG}: {len(config.gateways)} gateways, "
                  f"supervision {config.supervision.strategy.value} intensity "
                  f"{config.supervision.intensity}/{config.supervision.period_s} s")
    descs = _descriptors(config)
    out_descs = [d for (_, direction), d in descs.items() if direction is Direction.OUTBOUND]
    in_descs = [d for (_, direction), d in descs.items() if direction is Direction.INBOUND]
    tally = Tally()
    rx_done = threading.Event()
    status = 0
    mp_port = port or (_free_port() if mode == "multiprocess" else None)
    with isolation.private_prefix("tkgwdemo") as prefix, \
            start_system(mode, admin_port=mp_port, logging_config=QUIET_LOGGING) as handle:  # type: ignore[arg-type]
        host = start_host(handle, config, iox_prefix=prefix, on_event=show)
        rx = threading.Thread(target=_receiver, args=(prefix, in_descs, tally, rx_done),
                              name="demo-rx", daemon=True)
        tx = threading.Thread(target=_sender, args=(prefix, out_descs, tally),
                              name="demo-tx", daemon=True)
        rx.start()
        time.sleep(0.2)  # readers subscribed before the first message
        tx.start()
        counters: dict[str, dict[str, int]] = {}
        try:
            def phase(name: str, text: str) -> None:
                tally.phase = name
                console.print(f"[bold cyan]{time.monotonic() - t0:6.2f} s  phase "
                              f"{name}[/bold cyan]: {text}")

            def snapshot(name: str) -> None:
                counters[name] = _cause_counters(host.stats())

            phase("steady", "both directions flowing")
            time.sleep(phase_s)
            snapshot("steady")
            phase("link-down", "cutting left's link (FaultInjector.link_down)")
            host.control("left", InjectFault(link="down"))
            time.sleep(phase_s * 0.5)
            host.control("left", InjectFault(link="up"))
            console.print("            link restored; left reconnects with backoff")
            time.sleep(phase_s * 0.5)
            snapshot("link-down")
            phase("corrupt", "right corrupts every 10th frame it sends")
            host.control("right", InjectFault(corrupt_every=10))
            time.sleep(phase_s)
            host.control("right", InjectFault(clear=True))
            snapshot("corrupt")
            phase("crash", "right's handler raises (InjectCrash)")
            host.control("right", InjectCrash(reason="demo crash"))
            time.sleep(phase_s)
            snapshot("crash")
            if mode == "multiprocess":
                pid = int(host.stats()["left"]["pid"])
                phase("kill-9", f"kill -9 of left's process (pid {pid})")
                os.kill(pid, signal.SIGKILL)
                time.sleep(phase_s * 1.5)
                snapshot("kill-9")
            phase("tail", "steady again")
            time.sleep(phase_s)
            final_health = host.health()
            tree = handle.tree()
            final_stats = host.stats()
        finally:
            tally.stop.set()
            tx.join(5)
            time.sleep(0.3)  # the last messages cross the link
            rx_done.set()
            rx.join(5)
            ledger_stats = host.stats()  # everything settled: the loss ledger's totals
            reports = host.stop()

    # ---- tables --------------------------------------------------------------------------------
    console.print(render_tree(tree))
    t = Table(title="messages per phase (a loss is counted in the phase it was sent in)")
    for col in ("phase", "channel", "sent", "received", "lost", "cause"):
        t.add_column(col, justify="left" if col in ("phase", "channel", "cause") else "right")
    totals = Counter[str]()
    phases = [p for p in CAUSES if any(k[1] == p for k in tally.sent)]
    for p in phases:
        for d in out_descs:
            sent = tally.sent.get((d.name, p), 0)
            got = tally.received.get((d.name, p), 0)
            lost = sent - got
            totals.update(sent=sent, received=got, lost=lost)
            t.add_row(p, d.name, str(sent), str(got), str(lost), CAUSES[p] if lost else "")
    t.add_row("[bold]total", "", str(totals["sent"]), str(totals["received"]),
              str(totals["lost"]), "")
    console.print(t)
    c = Table(title="what the gateways counted during each phase (counter increments)")
    c.add_column("phase")
    c.add_column("gateway:counter")
    c.add_column("count", justify="right")
    previous: dict[str, int] = {}
    for p, found in [*counters.items(), ("to the end", _cause_counters(final_stats))]:
        for key, value in sorted(found.items()):
            delta = value - previous.get(key, 0)
            if delta > 0:
                c.add_row(p, key, str(delta))
        previous = found
    console.print(c)
    e = Table(title="the loss equation per channel, across gateway restarts (written = "
                    "delivered + every drop, counted once where it happened)")
    e.add_column("channel")
    e.add_column("equation")
    e.add_column("holds")
    gateway_counts = [gateway_totals(s) for s in ledger_stats.values()]
    for d in out_descs:
        ledger = account(d.name, writer=tally.writers.get(d.name), gateways=gateway_counts,
                         reader=tally.readers.get(d.name))
        e.add_row(d.name, str(ledger).split(": ", 1)[1], "yes" if ledger.holds else "[red]NO")
        if not ledger.holds:
            log.error("loss equation of %s does not hold: %s", d.name, ledger)
            status = 1
    console.print(e)
    h = Table(title="health at the end")
    for col in ("gateway", "state", "last transition", "restarts"):
        h.add_column(col)
    node = tree.find(("connectors",))
    for name, reply in final_health.items():
        child = node.find((name, "link")) if node else None  # the gateway actor in its group
        if isinstance(reply, HealthReply):
            last = reply.last_event.reason if reply.last_event else ""
            h.add_row(name, reply.state.value, last, str(child.restarts if child else "?"))
        else:
            h.add_row(name, "no answer", str(reply), "?")
            status = 1
    console.print(h)
    console.print(f"{len(events)} health events; stop reports: " + ", ".join(
        f"{getattr(r, 'stopped', ())} in {getattr(r, 'elapsed_s', 0):.3f} s" for r in reports))
    if any(not isinstance(r, HealthReply) or r.state.value != "up" for r in final_health.values()):
        log.error("a gateway did not recover: %s", final_health)
        status = 1
    if any(tally.received.get((d.name, "tail"), 0) == 0 for d in out_descs):
        log.error("nothing arrived after the faults")
        status = 1
    if tally.errors:
        log.error("app thread errors: %s", tally.errors)
        status = 1
    return status
