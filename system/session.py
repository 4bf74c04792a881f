"""What every attaching ``taktora`` subcommand shares: the attached session, its error printing
and its arguments.

:class:`Attached` is a CLI's connection to a running multi-process system (see
:mod:`taktora.system.attach`): it never starts or stops a system. :func:`with_attached` runs a
subcommand's body against one and turns the project's errors into one-line messages and exit
statuses: 2 when attaching failed (nothing taktora listens on the port), 1 for any other
project error (no reply in time, a refusal, a root that gave up). Everything runs on the CLI's
main thread; each request blocks at most ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from taktora.actors.control.messages import (
    ChildInfo,
    ControlMessage,
    ErrorReply,
    GetTree,
    Reply,
    Route,
    TreeReply,
)
from taktora.actors.errors import AttachError, ControlError
from taktora.system.args import port_arg, seconds_type
from taktora.system.attach import attach, detach, inspect
from taktora.transport.errors import TaktoraError


class Attached:
    """A CLI's connection to a running system. Never shuts the system down.

    Raises :class:`AttachError` when nothing taktora listens on ``port`` or it has no root.
    """

    def __init__(self, port: int, timeout: float) -> None:
        self.timeout = timeout
        self.asys = attach(port, timeout=timeout)
        try:
            info = inspect(self.asys, port, timeout)
            if info.root is None:
                raise AttachError(f"the taktora system on port {port} has no root supervisor "
                                  f"(it gave up or the system is shutting down)")
        except BaseException:
            detach(self.asys)
            raise
        self.root = info.root

    def ask(self, target: Any, msg: ControlMessage, cid: str | None = None) -> Reply:
        """``msg`` to ``target``; the reply carrying its correlation id (``cid`` if given).
        Raises :class:`ControlError` after ``timeout`` seconds without one."""
        want = cid or msg.correlation_id
        deadline = time.monotonic() + self.timeout
        self.asys.tell(target, msg)
        while (remaining := deadline - time.monotonic()) > 0:
            reply = self.asys.listen(remaining)
            if isinstance(reply, Reply) and reply.correlation_id == want:
                return reply
        raise ControlError(f"no reply to {type(msg).__name__} within {self.timeout:g} s "
                           f"(raise --timeout if the operation takes longer)")

    def route(self, path: tuple[str, ...], msg: ControlMessage) -> Reply:
        """``msg`` to the actor at ``path`` (child ids from the root; empty: the root)."""
        if not path:
            return self.ask(self.root, msg)
        return self.ask(self.root, Route(path=path, message=msg,
                                         correlation_id=msg.correlation_id))

    def tree(self) -> ChildInfo:
        """The whole supervision tree; ControlError with the root's reason if it cannot."""
        reply = self.ask(self.root, GetTree())
        if isinstance(reply, ErrorReply):  # e.g. "supervisor 'root' gave up: ...; restart ..."
            raise ControlError(reply.detail)
        if not isinstance(reply, TreeReply):
            raise ControlError(f"the root supervisor answered {reply!r}")
        return reply.tree

    def close(self) -> None:
        detach(self.asys)


def console(stderr: bool = False) -> Any:
    """A rich Console (stdout, or stderr) without highlighting of numbers and paths."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def error(text: object, label: str = "error") -> None:
    """Print ``label: text`` on stderr, one line; ``text`` is escaped (never read as markup)."""
    from rich.markup import escape

    console(stderr=True).print(f"[red]{escape(label)}:[/red] {escape(str(text))}",
                               soft_wrap=True)


def refused(reply: Reply) -> bool:
    """Print an ErrorReply (its kind as the label); True if it was one."""
    if isinstance(reply, ErrorReply):
        error(reply.detail, label=reply.kind.value)
        return True
    return False


def parse_path(text: str) -> tuple[str, ...]:
    """``"connectors/gw"`` -> ``("connectors", "gw")`` (empty parts dropped)."""
    return tuple(p for p in text.split("/") if p)


def with_attached(args: argparse.Namespace, body: Callable[[Attached], int]) -> int:
    """Attach to ``args.port`` for ``args.timeout`` and run ``body``; its exit status, or 2
    (attach failed) / 1 (a project error), the error printed on one line."""
    try:
        attached = Attached(args.port, args.timeout)
    except AttachError as exc:
        error(exc)
        return 2
    try:
        return body(attached)
    except TaktoraError as exc:
        error(exc)
        return 1
    finally:
        attached.close()


def attach_args(p: argparse.ArgumentParser, *, timeout: float = 5.0) -> None:
    """``--port`` (required) and ``--timeout`` (default ``timeout`` seconds)."""
    p.add_argument("--port", type=port_arg, required=True,
                   help="admin port of the running system (1..65535)")
    p.add_argument("--timeout", type=seconds_type(), default=timeout,
                   help=f"seconds to wait for replies (> 0, default {timeout:g})")


def _label(node: ChildInfo) -> str:
    from rich.markup import escape

    colour = {"running": "green", "starting": "yellow", "backoff": "yellow",
              "stopping": "yellow", "failed": "red", "stopped": "dim"}.get(node.state, "white")
    extra = f" {node.strategy}" if node.strategy else ""
    pid = f" pid={node.pid}" if node.pid else ""
    return (f"[bold]{escape(node.id)}[/bold] [{colour}]{escape(node.state)}[/{colour}] "
            f"({escape(node.kind + extra)}) restarts={node.restarts}{pid}")


def render_tree(tree: ChildInfo) -> Any:
    """A rich Tree of the supervision tree."""
    from rich.tree import Tree

    def add(parent: Any, node: ChildInfo) -> None:
        branch = parent.add(_label(node))
        for child in node.children:
            add(branch, child)

    top = Tree(_label(tree))
    for child in tree.children:
        add(top, child)
    return top
