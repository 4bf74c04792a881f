"""``taktora param ...``: a running gateway's connector settings (spec/params.rst).

- ``taktora param get NAME --port P``: the current settings as a tree;
- ``taktora param set NAME key=value ... --port P``: a partial update; prints the keys that
  changed and how (``live``, ``reconnect`` or ``unchanged``).

``NAME`` is the gateway's path of child ids from the root (``connectors/gw``). A value is read
as a TOML value (``bitrate=500000``, ``host="10.0.0.1"``, ``flag=true``, ``listen=["a", "b"]``,
``reconnect={initial_s=0.5}``); text that is not a TOML value is taken as a string
(``host=localhost``). A key is a settings key or a dotted path (``buses.0.bitrate``).

Exit status: 0 done; 1 the gateway refused (the reason names the key) or did not answer;
2 a usage error or no taktora system on the port (as the other attaching subcommands).
Handlers run on the CLI's main thread and block at most ``--timeout`` per request.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Mapping
from typing import Any

from taktora.actors.control.messages import (
    ConfigReply,
    Configure,
    ControlMessage,
    GetConfig,
)
from taktora.system.session import Attached, attach_args, console, error, refused, with_attached


# --- parsing --------------------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """``text`` as a TOML value (``500000``, ``"x"``, ``true``, ``[1, 2]``, ``{a = 1}``); text
    that is not one value is the string itself."""
    try:
        doc = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return doc["v"] if set(doc) == {"v"} else text


def assignment(text: str) -> tuple[str, Any]:
    """argparse type: ``key=value`` -> ``(key, value)`` (usage error without a key)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"invalid setting {text!r}: expected key=value "
                                         "(e.g. bitrate=500000 or host=\"10.0.0.1\")")
    if any(not part for part in key.split(".")):
        raise argparse.ArgumentTypeError(f"invalid key {key!r}: write a, a.b or a.0.b")
    return key, parse_value(value.strip())


def gateway_path(text: str) -> tuple[str, ...]:
    """argparse type: ``connectors/gw`` -> ``("connectors", "gw")``."""
    path = tuple(p for p in text.split("/") if p)
    if not path:
        raise argparse.ArgumentTypeError(f"invalid gateway {text!r}: expected child ids from "
                                         "the root, e.g. connectors/gw")
    return path


# --- printing -------------------------------------------------------------------------------------
def format_value(value: Any) -> str:
    """A setting's value as written in a system file (None: ``(unset)``)."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def render_settings(reply: ConfigReply) -> Any:
    """A rich Tree of the reply's settings: tables and arrays of tables are branches."""
    from rich.markup import escape
    from rich.tree import Tree

    def add(parent: Any, table: Mapping[str, Any]) -> None:
        for key, value in table.items():
            if isinstance(value, Mapping) and value:
                add(parent.add(f"[bold]{escape(str(key))}[/bold]"), value)
            elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
                branch = parent.add(f"[bold]{escape(str(key))}[/bold]")
                for i, item in enumerate(value):
                    add(branch.add(f"[bold]{i}[/bold]"), item)
            else:
                parent.add(f"{escape(str(key))} = {escape(format_value(value))}")

    top = Tree(f"[bold]{escape(reply.gateway)}[/bold] ({escape(reply.connector)})")
    add(top, reply.settings)
    return top


def lookup(table: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of a plain table (None if absent)."""
    node: Any = table
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def describe_applied(reply: ConfigReply) -> list[str]:
    """The lines ``param set`` prints: how, then ``key = new value`` per changed key."""
    if reply.how == "unchanged" or not reply.applied:
        return [f"{reply.gateway}: unchanged (the settings already had these values)"]
    lines = [f"{reply.gateway}: applied {len(reply.applied)} setting(s) ({reply.how})"]
    lines.extend(f"  {key} = {format_value(lookup(reply.settings, key))}" for key in reply.applied)
    return lines


def _ask(args: argparse.Namespace, msg: ControlMessage) -> ConfigReply | int:
    """The gateway's ConfigReply, or the exit status after printing why there is none
    (attach failures 2, refusals and silence 1: :func:`~taktora.system.session.with_attached`)."""
    got: list[ConfigReply] = []

    def body(attached: Attached) -> int:
        reply = attached.route(args.name, msg)
        if refused(reply):
            return 1
        if not isinstance(reply, ConfigReply):
            error(f"{'/'.join(args.name)} answered {type(reply).__name__}, not ConfigReply: "
                  "is it a gateway?")
            return 1
        got.append(reply)
        return 0

    status = with_attached(args, body)
    return got[0] if got else status


def cmd_get(args: argparse.Namespace) -> int:
    """Print the gateway's current settings."""
    reply = _ask(args, GetConfig())
    if isinstance(reply, int):
        return reply
    console().print(render_settings(reply))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    """Send one partial update; print what was applied and how."""
    settings = dict(args.settings)  # a key given twice: the last one wins
    reply = _ask(args, Configure(settings=settings))
    if isinstance(reply, int):
        return reply
    from rich.markup import escape

    out = console()
    for line in describe_applied(reply):
        out.print(escape(line))
    return 0


def register(subparsers: Any) -> None:
    """Add ``param get`` and ``param set``."""
    p = subparsers.add_parser("param", help="show or change a running gateway's settings")
    sub = p.add_subparsers(dest="param_command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("name", type=gateway_path, metavar="NAME",
                       help="the gateway: child ids from the root, e.g. connectors/gw")

    g = sub.add_parser("get", help="print the gateway's connector settings")
    common(g)
    attach_args(g, timeout=10.0)  # a reconnect can take a while
    g.set_defaults(func=cmd_get)
    s = sub.add_parser("set", help="change settings: key=value ... (TOML values)")
    common(s)
    s.add_argument("settings", nargs="+", type=assignment, metavar="key=value",
                   help="a settings key or dotted path and a TOML value")
    attach_args(s, timeout=10.0)
    s.set_defaults(func=cmd_set)
