"""The ``taktora`` command line.

Subcommands that attach to a running multi-process system (``--port`` = its admin port):

- ``taktora status --port P``: the supervision tree with states and restart counts;
- ``taktora health --port P``: the health of every worker and gateway that answers
  ``GetHealth`` (exit status 1 when one is not Up: scriptable);
- ``taktora control PATH pause|resume|reconnect|stats --port P``: one control message to the
  actor at PATH (child ids from the root, ``gw`` or ``line1/gw``);
- ``taktora stop --port P``: shut down a system that lost its owner (refused while the owner
  runs, unless ``--force``).

Attaching (:mod:`taktora.system.attach`) never starts a system and fails within a few seconds
with a one-line message (exit status 2) when nothing, something other than Thespian, or a
Thespian system that is not taktora's listens on 127.0.0.1:P. Only ``stop`` shuts a system
down. ``--port`` must be 1..65535 and ``--timeout`` a finite number of seconds > 0 (else a
usage error, exit status 2). Every message that carries user or error text is printed with
rich markup escaped, so ``[[gateways]]`` reaches the terminal as written.

Adding a subcommand: write ``register(subparsers)`` in your module (add a parser, set
``func=handler`` with ``handler(args) -> int``) and append it to :data:`REGISTRARS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from taktora.actors.control.messages import (
    ChildInfo,
    ControlMessage,
    ErrorReply,
    GetHealth,
    GetStats,
    HealthReply,
    Pause,
    Reconnect,
    Resume,
    StatsReply,
)
from taktora.actors.errors import AttachError
from taktora.actors.models.health import HealthState
from taktora.connectors.ethercat.cli import register as register_ethercat
from taktora.system.check_cli import register as register_check
from taktora.system.children_cli import register as register_children
from taktora.system.param_cli import register as register_param
from taktora.system.recording.cli import register as register_recording
from taktora.system.run import register as register_run
from taktora.system.session import (
    Attached,
    attach_args,
    console,
    error,
    render_tree,
    with_attached,
)
from taktora.system.stats_cli import register as register_stats
from taktora.transport.errors import TaktoraError

Registrar = Callable[[Any], None]

ACTIONS: dict[str, type[ControlMessage]] = {
    "pause": Pause, "resume": Resume, "reconnect": Reconnect, "stats": GetStats,
}


def _leaves(node: ChildInfo, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for child in node.children:
        path = (*prefix, child.id)
        if child.kind == "supervisor":
            out.extend(_leaves(child, path))
        else:
            out.append(path)
    return out


def cmd_status(args: argparse.Namespace) -> int:
    """Print the supervision tree."""
    def body(a: Attached) -> int:
        console().print(render_tree(a.tree()))
        return 0

    return with_attached(args, body)


def cmd_health(args: argparse.Namespace) -> int:
    """Print the health of every worker and gateway (n/a for workers without a health state);
    exit status 1 when one of them is not Up (a restarting gateway answers Down)."""
    def body(a: Attached) -> int:
        from rich.markup import escape
        from rich.table import Table

        table = Table("path", "health", "detail")
        not_up = []
        for path in _leaves(a.tree()):
            reply = a.route(path, GetHealth())
            name = escape("/".join(path))
            if isinstance(reply, HealthReply):
                table.add_row(name, reply.state.value,
                              escape(reply.last_event.reason) if reply.last_event else "")
                if reply.state is not HealthState.UP:
                    not_up.append("/".join(path))
            elif isinstance(reply, ErrorReply):
                table.add_row(name, "n/a", reply.kind.value)
        console().print(table)
        if not_up:
            error(f"not up: {', '.join(not_up)}", label="health")
            return 1
        return 0

    return with_attached(args, body)


def cmd_control(args: argparse.Namespace) -> int:
    """Send one control message to PATH and print the reply."""
    path = tuple(p for p in args.path.split("/") if p)

    def body(a: Attached) -> int:
        from rich.markup import escape

        reply = a.route(path, ACTIONS[args.action]())
        out = console()
        if isinstance(reply, ErrorReply):
            error(reply.detail, label=reply.kind.value)
            return 1
        if isinstance(reply, StatsReply):
            for key, value in reply.stats.items():
                out.print(escape(f"{key}: {value}"))
        else:
            out.print(escape(f"{args.action}: ok {getattr(reply, 'detail', '')}".rstrip()))
        return 0

    return with_attached(args, body)


def cmd_stop(args: argparse.Namespace) -> int:
    """Shut down the taktora system on ``--port`` (one that lost its owner, or ``--force``)."""
    from rich.markup import escape
    from taktora.system.stop import stop_system

    try:
        report = stop_system(args.port, timeout=args.timeout, force=args.force)
    except AttachError as exc:
        error(exc)
        return 2
    except TaktoraError as exc:
        error(exc)
        return 1
    console().print(escape(f"stopped the taktora system on port {args.port} (owner pid "
                            f"{report.owner_pid}): {report}"))
    return 0


def register(subparsers: Any) -> None:
    """This module's subcommands: status, health, control, stop."""
    p = subparsers.add_parser("status", help="show the supervision tree")
    attach_args(p)
    p.set_defaults(func=cmd_status)
    p = subparsers.add_parser("health", help="show the health of every worker")
    attach_args(p)
    p.set_defaults(func=cmd_health)
    p = subparsers.add_parser("control", help="send a control message to one actor")
    p.add_argument("path", help="child ids from the root, e.g. line1/gw")
    p.add_argument("action", choices=sorted(ACTIONS))
    attach_args(p)
    p.set_defaults(func=cmd_control)
    p = subparsers.add_parser("stop", help="shut down a system that lost its owner")
    attach_args(p)
    p.add_argument("--force", action="store_true",
                   help="stop it even though its owner process still runs")
    p.set_defaults(func=cmd_stop)


#: Every module contributing subcommands; append your ``register`` here.
REGISTRARS: list[Registrar] = [register, register_run, register_ethercat, register_recording,
                               register_param, register_children, register_stats,
                               register_check]


def build_parser() -> argparse.ArgumentParser:
    """The full parser (all registered subcommands)."""
    try:
        version = metadata.version("taktora")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = "unknown"
    parser = argparse.ArgumentParser(prog="taktora", description="taktora actor runtime")
    parser.add_argument("--version", action="version", version=f"taktora {version}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for reg in REGISTRARS:
        reg(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taktora`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except TaktoraError as exc:  # a handler's uncaught user-facing error: one line, no traceback
        error(exc)
        return 1
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
