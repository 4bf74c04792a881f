"""``taktora run SYSTEM.toml``: start the gateways and item hosts a system file declares and
watch them.

The file is loaded and checked completely first (:func:`taktora.system.config.load`); an
invalid file prints the ConfigError (key path and reason) and exits 2 before any actor,
thread or socket exists; so do invalid arguments (``--port`` outside 0..65535, ``--for`` not a
finite number of seconds > 0). Then an actor system starts (``--mode inprocess`` by default,
or ``multiprocess`` on ``--port``; ``--port 0`` picks a free port and prints it; the system
does not outlive this process, see :mod:`taktora.system.reaper`), a
:class:`~taktora.connectors.gateway.host.ConnectorHost` starts the gateways under the declared
supervisor, then the ``[[hosts]]`` start as ItemHost actors under an ``apps`` supervisor (a
child of the root with the declared supervision; ``taktora control apps/NAME stats`` reaches
each), and every HealthEvent is printed as it arrives, until ``--for SECONDS`` passed,
SIGINT/SIGTERM, or the root supervisor gave up. Then every host's items are printed with their
runs and failures (from its GetStats), the hosts stop, the gateways stop in reverse order (each
bounded by its shutdown timeout; what did not stop in time is printed) and the system closes.
Before anything starts, every item factory is imported (not called) from the system file's
directory first (:func:`taktora.system.app_config.check_factories`): one that cannot be is a
bad file.
Warnings and errors of the system are logged to stderr, one line each
(:mod:`taktora.system.logformat`; ``--verbose`` logs tracebacks too).

Exit status: 0; 1 if the system failed: the root supervisor gave up (its one-line reason is
printed, and the run ends within a second of it), no gateway came Up during the whole run
(the gateways are named), a gateway did not stop cleanly, a host's supervisor did not
start, or the system did not start; 2 for a bad file or arguments. Messages are printed
with rich markup escaped.
"""

from __future__ import annotations

import argparse
import logging.config
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from taktora.actors.control.messages import GetStats, Shutdown, StatsReply
from taktora.actors.control.supervision import ChildSpec, Restart
from taktora.actors.control.watching import WatchedSpec
from taktora.actors.errors import ControlError
from taktora.actors.models.health import HealthState
from taktora.connectors.gateway.messages import GatewayStopped
from taktora.system.app_config import APPS_ID
from taktora.system.args import MAX_RUN_S, port_or_zero_arg, seconds_type
from taktora.system.bootstrap import DEFAULT_LOGGING, start_system
from taktora.system.config import SystemConfig, check_factories, load
from taktora.system.errors import ConfigError
from taktora.system.launch import start_host
from taktora.system.logformat import one_line_logging
from taktora.transport.errors import TaktoraError

POLL_S = 0.2  # how often the watch loop looks at the stop conditions
GIVE_UP_NOTICE_S = 1.0  # how long a failed start waits for the root's give-up notice


def cmd_run(args: argparse.Namespace) -> int:
    """Load, start, print health events, stop. Blocks the calling (main) thread."""
    from rich.console import Console
    from rich.markup import escape

    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    def fail(label: str, text: object) -> None:
        err.print(f"[red]{label}:[/red] {escape(str(text))}")

    try:
        config = load(args.file)
        check_factories(config)
    except ConfigError as exc:
        fail("invalid config", exc)
        return 2
    if args.mode == "multiprocess" and args.port is None:
        fail("error", "--mode multiprocess needs --port (a free TCP port, or 0 to pick one)")
        return 2
    logs = DEFAULT_LOGGING if args.verbose else one_line_logging()
    logging.config.dictConfig(logs)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with start_system(args.mode, admin_port=args.port, logging_config=logs) as handle:
            try:
                return _watch(handle, config, args, stop, out, fail)
            except TaktoraError as exc:
                # a root giving up while the gateways start rejects the start first and
                # tells its owner right after: wait a moment for the reason
                reason = handle.wait_failure(GIVE_UP_NOTICE_S)
                fail("failed" if reason else "error",
                     f"the root supervisor {reason}" if reason else exc)
                return 1
    except TaktoraError as exc:
        fail("error", exc)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _watch(handle: Any, config: SystemConfig, args: argparse.Namespace, stop: threading.Event,
           out: Any, fail: Any) -> int:
    """Start the gateways and hosts, print events until a stop condition, stop them; the exit
    status."""
    from rich.markup import escape

    host = start_host(handle, config) if config.gateways else None
    apps = False
    came_up: set[str] = set()
    status = 0
    try:
        apps = start_apps(handle, config, subscribers=[host.endpoint] if host else ())
        where = f", admin port {handle.admin_port}" if handle.admin_port else ""
        running = ", ".join([f"{len(config.gateways)} gateway(s) running"] * bool(config.gateways)
                            + [f"{len(config.hosts)} host(s) running"] * bool(config.hosts))
        out.print(f"[bold]{escape(config.name)}[/bold]: {running} ({args.mode}{where})")
        deadline = None if args.for_s is None else time.monotonic() + args.for_s
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if handle.failure is not None:
                break
            if host is None:
                stop.wait(POLL_S)
                continue
            event = host.next_event(POLL_S)
            if event is not None:
                if event.state is HealthState.UP:
                    came_up.add(event.source)
                prev = event.previous.value if event.previous else "-"
                out.print(escape(f"{event.source}: {prev} -> {event.state.value} "
                                 f"({event.reason})"))
    finally:
        if handle.failure is None and apps:
            for line in host_report(handle, config):
                out.print(escape(line))
            stop_apps(handle, config)
        if handle.failure is None and host is not None:  # a root that gave up took them along
            for report in host.stop():
                if isinstance(report, GatewayStopped) and not report.clean:
                    status = 1
                    out.print(f"[red]not stopped within {report.timeout_s} s:[/red] "
                              f"{escape(', '.join(report.not_stopped))}")
    if handle.failure is not None:
        fail("failed", f"the root supervisor {handle.failure}")
        return 1
    never = [g.name for g in config.gateways if g.name not in came_up]
    if never and len(never) == len(config.gateways) and config.gateways:
        fail("failed", f"no gateway came up during the run: {', '.join(never)}")
        return 1
    if never:
        out.print(f"[yellow]never came up:[/yellow] {escape(', '.join(never))}")
    out.print("stopped")
    return status


def start_apps(handle: Any, config: SystemConfig, timeout: float = 30.0,
               subscribers: Sequence[Any] = ()) -> bool:
    """Add the ``apps`` supervisor (the system's supervision, one ItemHost per host) under the
    root; block until every host ran ``on_start`` (built its executor). ``subscribers`` (actor
    addresses) get each host's HealthEvents (Connecting, Up, Down when it dies: a
    :class:`~taktora.actors.control.watching.WatchingSupervisor`). False when there are no
    hosts; raises what ``start_child`` raises."""
    if not config.hosts:
        return False
    sup = config.supervision
    children = tuple(h.child_spec() for h in config.hosts)
    spec = WatchedSpec(strategy=sup.strategy, intensity=sup.intensity, period_s=sup.period_s,
                       backoff=sup.backoff, children=children, subscribers=tuple(subscribers))
    handle.start_child(ChildSpec(id=APPS_ID, start=spec, restart=Restart.TRANSIENT,
                                 shutdown_s=sum(c.shutdown_s for c in children) + 1.0),
                       timeout=timeout)
    return True


def host_report(handle: Any, config: SystemConfig, timeout: float = 5.0) -> list[str]:
    """One line per host: each item's runs and failures, from the ItemHost's GetStats (blocks
    one round trip per host; a host that does not answer is reported as such)."""
    lines = []
    for h in config.hosts:
        try:
            reply = handle.control((APPS_ID, h.name), GetStats(), timeout)
        except ControlError as exc:
            lines.append(f"host {h.name}: no stats ({exc})")
            continue
        stats = reply.stats if isinstance(reply, StatsReply) else {}
        monitor = stats.get("monitor") or {}
        items = ", ".join(f"{it['name']} {it['runs']} runs {it['failures']} failures"
                          for it in monitor.get("items", ()))
        state = "running" if stats.get("running") else "not running"
        lines.append(f"host {h.name}: {state}, {items or 'no items ran'}")
    return lines


def stop_apps(handle: Any, config: SystemConfig, timeout: float = 30.0) -> None:
    """Shut the ``apps`` supervisor down (its hosts in reverse order); errors are logged."""
    try:
        handle.control((APPS_ID,), Shutdown(), timeout)
    except ControlError as exc:
        logging.getLogger(__name__).error("supervisor %s did not answer Shutdown: %s", APPS_ID,
                                          exc)


def register(subparsers: Any) -> None:
    """The ``run`` subcommand."""
    p = subparsers.add_parser("run", help="start the gateways and hosts of a system TOML file")
    p.add_argument("file", help="system file (see examples/)")
    p.add_argument("--mode", choices=("inprocess", "multiprocess"), default="inprocess")
    p.add_argument("--port", type=port_or_zero_arg, default=None,
                   help="admin port (multiprocess): 1..65535, or 0 to pick a free one")
    p.add_argument("--for", dest="for_s", type=seconds_type(MAX_RUN_S), default=None,
                   metavar="SECONDS", help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log tracebacks (default: one line per log record)")
    p.set_defaults(func=cmd_run)
