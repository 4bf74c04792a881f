"""``taktora run SYSTEM.toml``: start the gateways a system file declares and watch them.

The file is loaded and checked completely first (:func:`taktora.system.config.load`); an
invalid file prints the ConfigError (key path and reason) and exits 2 before any actor,
thread or socket exists. Then an actor system starts (``--mode inprocess`` by default, or
``multiprocess`` on ``--port``), a :class:`~taktora.connectors.gateway.host.ConnectorHost` starts the
gateways under the declared supervisor, and every HealthEvent is printed as it arrives, until
``--for SECONDS`` passed or SIGINT/SIGTERM. Then the gateways stop in reverse order (each
bounded by its shutdown timeout; what did not stop in time is printed) and the system closes.
Exit status: 0, 1 if a gateway did not stop cleanly, 2 for a bad file or arguments.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from typing import Any

from taktora.connectors.gateway.messages import GatewayStopped
from taktora.system.bootstrap import start_system
from taktora.system.config import load
from taktora.system.errors import ConfigError
from taktora.system.launch import start_host
from taktora.transport.errors import TaktoraError


def cmd_run(args: argparse.Namespace) -> int:
    """Load, start, print health events, stop. Blocks the calling (main) thread."""
    from rich.console import Console

    out, err = Console(highlight=False), Console(stderr=True, highlight=False)
    try:
        config = load(args.file)
    except ConfigError as exc:
        err.print(f"[red]invalid config:[/red] {exc}")
        return 2
    if args.mode == "multiprocess" and args.port is None:
        err.print("[red]error:[/red] --mode multiprocess needs --port (a free TCP port)")
        return 2
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        with start_system(args.mode, admin_port=args.port) as handle:
            host = start_host(handle, config)
            out.print(f"[bold]{config.name}[/bold]: {len(config.gateways)} gateway(s) running "
                      f"({args.mode}{f', admin port {args.port}' if args.port else ''})")
            try:
                deadline = None if args.for_s is None else time.monotonic() + args.for_s
                while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                    event = host.next_event(0.2)
                    if event is not None:
                        prev = event.previous.value if event.previous else "-"
                        out.print(f"{event.source}: {prev} -> {event.state.value} "
                                  f"({event.reason})")
            finally:
                for report in host.stop():
                    if isinstance(report, GatewayStopped) and not report.clean:
                        status = 1
                        out.print(f"[red]not stopped within {report.timeout_s} s:[/red] "
                                  f"{', '.join(report.not_stopped)}")
            out.print("stopped")
    except TaktoraError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def register(subparsers: Any) -> None:
    """The ``run`` subcommand."""
    p = subparsers.add_parser("run", help="start the gateways of a system TOML file")
    p.add_argument("file", help="system file (see examples/)")
    p.add_argument("--mode", choices=("inprocess", "multiprocess"), default="inprocess")
    p.add_argument("--port", type=int, default=None, help="admin port (multiprocess)")
    p.add_argument("--for", dest="for_s", type=float, default=None, metavar="SECONDS",
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.set_defaults(func=cmd_run)
