"""``taktora run SYSTEM.toml``: start the gateways a system file declares and watch them.

The file is loaded and checked completely first (:func:`taktora.system.config.load`); an
invalid file prints the ConfigError (key path and reason) and exits 2 before any actor,
thread or socket exists; so do invalid arguments (``--port`` outside 0..65535, ``--for`` not a
finite number of seconds > 0). Then an actor system starts (``--mode inprocess`` by default,
or ``multiprocess`` on ``--port``; ``--port 0`` picks a free port and prints it; the system
does not outlive this process, see :mod:`taktora.system.reaper`), a
:class:`~taktora.connectors.gateway.host.ConnectorHost` starts the gateways under the declared
supervisor, and every HealthEvent is printed as it arrives, until ``--for SECONDS`` passed,
SIGINT/SIGTERM, or the root supervisor gave up. Then the gateways stop in reverse order (each
bounded by its shutdown timeout; what did not stop in time is printed) and the system closes.
Warnings and errors of the system are logged to stderr, one line each
(:mod:`taktora.system.logformat`; ``--verbose`` logs tracebacks too).

Exit status: 0; 1 if the system failed: the root supervisor gave up (its one-line reason is
printed, and the run ends within a second of it), no gateway came Up during the whole run
(the gateways are named), a gateway did not stop cleanly, or the system did not start; 2 for
a bad file or arguments. Messages are printed with rich markup escaped.
"""

from __future__ import annotations

import argparse
import logging.config
import signal
import threading
import time
from typing import Any

from taktora.actors.models.health import HealthState
from taktora.connectors.gateway.messages import GatewayStopped
from taktora.system.args import MAX_RUN_S, port_or_zero_arg, seconds_type
from taktora.system.bootstrap import DEFAULT_LOGGING, start_system
from taktora.system.config import SystemConfig, load
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
    """Start the host, print events until a stop condition, stop the host; the exit status."""
    from rich.markup import escape

    host = start_host(handle, config)
    where = f", admin port {handle.admin_port}" if handle.admin_port else ""
    out.print(f"[bold]{escape(config.name)}[/bold]: {len(config.gateways)} gateway(s) running "
              f"({args.mode}{where})")
    came_up: set[str] = set()
    status = 0
    try:
        deadline = None if args.for_s is None else time.monotonic() + args.for_s
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if handle.failure is not None:
                break
            event = host.next_event(POLL_S)
            if event is not None:
                if event.state is HealthState.UP:
                    came_up.add(event.source)
                prev = event.previous.value if event.previous else "-"
                out.print(escape(f"{event.source}: {prev} -> {event.state.value} "
                                 f"({event.reason})"))
    finally:
        if handle.failure is None:  # a root that gave up took the gateways with it
            for report in host.stop():
                if isinstance(report, GatewayStopped) and not report.clean:
                    status = 1
                    out.print(f"[red]not stopped within {report.timeout_s} s:[/red] "
                              f"{escape(', '.join(report.not_stopped))}")
    if handle.failure is not None:
        fail("failed", f"the root supervisor {handle.failure}")
        return 1
    never = [g.name for g in config.gateways if g.name not in came_up]
    if never and len(never) == len(config.gateways):
        fail("failed", f"no gateway came up during the run: {', '.join(never)}")
        return 1
    if never:
        out.print(f"[yellow]never came up:[/yellow] {escape(', '.join(never))}")
    out.print("stopped")
    return status


def register(subparsers: Any) -> None:
    """The ``run`` subcommand."""
    p = subparsers.add_parser("run", help="start the gateways of a system TOML file")
    p.add_argument("file", help="system file (see examples/)")
    p.add_argument("--mode", choices=("inprocess", "multiprocess"), default="inprocess")
    p.add_argument("--port", type=port_or_zero_arg, default=None,
                   help="admin port (multiprocess): 1..65535, or 0 to pick a free one")
    p.add_argument("--for", dest="for_s", type=seconds_type(MAX_RUN_S), default=None,
                   metavar="SECONDS", help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log tracebacks (default: one line per log record)")
    p.set_defaults(func=cmd_run)
