"""``taktora children`` and ``taktora child ...``: OTP's child API on a running system.

- ``taktora children [PATH] --port P``: the children of the supervisor at PATH (child ids from
  the root; none: the root) as a table, then its counts (``which_children`` and
  ``count_children``);
- ``taktora child terminate|restart|delete PATH --port P``: terminate, restart or delete the
  child at PATH (``connectors/gw``: child ``gw`` of supervisor ``connectors``). Terminate waits
  until the child stopped, restart until it is up: give ``--timeout`` more than the child's
  ``shutdown_s`` / start time.

Semantics: :mod:`taktora.actors.control.children`. Exit status: 0 done; 1 the supervisor
refused (``running``, ``not_found``, it gave up ...: the one-line reason says what to do) or
did not answer within ``--timeout``; 2 a usage error or no taktora system on the port (as
the other attaching subcommands). Handlers run on the CLI's main thread and block at most
``--timeout`` per request; attaching never starts or stops anything.
"""

from __future__ import annotations

import argparse
from typing import Any

from taktora.actors.control.children import (
    ChildrenReply,
    CountChildren,
    CountReply,
    DeleteChild,
    RestartChild,
    TerminateChild,
    WhichChildren,
)
from taktora.actors.errors import ControlError
from taktora.system.session import (
    Attached,
    attach_args,
    console,
    error,
    parse_path,
    refused,
    with_attached,
)

ACTIONS: dict[str, type[TerminateChild | RestartChild | DeleteChild]] = {
    "terminate": TerminateChild, "restart": RestartChild, "delete": DeleteChild,
}
_DONE = {"terminate": "terminated", "restart": "restarted", "delete": "deleted"}


def cmd_children(args: argparse.Namespace) -> int:
    """Print the children of the supervisor at PATH and its counts."""
    path = parse_path(args.path)

    def body(root: Attached) -> int:
        from rich.markup import escape
        from rich.table import Table

        kids = root.route(path, WhichChildren())
        if refused(kids):
            return 1
        counts = root.route(path, CountChildren())
        if refused(counts):
            return 1
        if not isinstance(kids, ChildrenReply) or not isinstance(counts, CountReply):
            raise ControlError(f"unexpected replies {kids!r} / {counts!r}")
        table = Table("id", "state", "kind", "restart", "restarts", "pid",
                      title=escape(f"children of {'/'.join(path) or 'root'}"))
        for c in kids.children:
            table.add_row(escape(c.id), escape(c.state), c.kind, c.restart, str(c.restarts),
                          str(c.pid) if c.pid else "")
        out = console()
        out.print(table)
        out.print(f"specs={counts.specs} active={counts.active} "
                  f"supervisors={counts.supervisors} workers={counts.workers}")
        return 0

    return with_attached(args, body)


def cmd_child(args: argparse.Namespace) -> int:
    """Terminate, restart or delete the child at PATH; print the outcome."""
    path = parse_path(args.path)
    if not path:
        error("PATH names no child: write the child ids from the root, e.g. connectors/gw")
        return 2

    def body(root: Attached) -> int:
        from rich.markup import escape

        reply = root.route(path[:-1], ACTIONS[args.action](child_id=path[-1]))
        if refused(reply):
            return 1
        console().print(escape(f"{_DONE[args.action]} {'/'.join(path)}"))
        return 0

    return with_attached(args, body)


def register(subparsers: Any) -> None:
    """This module's subcommands: children, child."""
    p = subparsers.add_parser("children", help="list a supervisor's children and counts")
    p.add_argument("path", nargs="?", default="",
                   help="the supervisor's child ids from the root, e.g. connectors (default: "
                        "the root)")
    attach_args(p)
    p.set_defaults(func=cmd_children)
    p = subparsers.add_parser("child", help="terminate, restart or delete one child")
    p.add_argument("action", choices=sorted(ACTIONS))
    p.add_argument("path", help="the child's ids from the root, e.g. connectors/gw")
    attach_args(p)
    p.set_defaults(func=cmd_child)
