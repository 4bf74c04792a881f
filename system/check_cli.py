"""``taktora check SYSTEM.toml``: validate a system file and print what would run; start nothing.

The file is loaded like ``taktora run`` loads it (:func:`taktora.system.config.load`: syntax,
types, validators, cross-field rules, channel references of the hosts' items) and every item
factory is imported, not called (``--no-import`` skips that: then no module of the
application runs). A problem prints the ConfigError (each ``key.path: reason``) on stderr and
exits 2. Otherwise a rich tree of the system goes to stdout: its name and supervision, the
gateways with their connector and channels (direction, codec, routing), the application's own
channels, the hosts under ``apps/`` (placement, restart, executor workers) with their items
(trigger, channels read and written, factory), chains and graphs; exit status 0.

No actor system, thread, socket or iceoryx2 node is created. Runs on the calling (main)
thread; output is printed with rich markup escaped.
"""

from __future__ import annotations

import argparse
from typing import Any

from taktora.system.app_config import APPS_ID, HostSpec
from taktora.system.config import SystemConfig, check_factories, load
from taktora.system.errors import ConfigError


def render(config: SystemConfig) -> Any:
    """The rich Tree of what ``config`` would run."""
    from rich.markup import escape as e
    from rich.tree import Tree

    sup = config.supervision
    top = Tree(f"[bold]{e(config.name)}[/bold]")
    backoff = f", backoff {sup.backoff.initial_s:g}..{sup.backoff.max_s:g} s" if sup.backoff else ""
    top.add(f"supervision: {sup.strategy.value}, at most {sup.intensity} restart(s) per "
            f"{sup.period_s:g} s{backoff}")
    if config.gateways:
        gateways = top.add(f"gateways ({len(config.gateways)}, under connectors/)")
        for g in config.gateways:
            branch = gateways.add(f"[bold]{e(g.name)}[/bold] ({e(g.connector)})")
            for d in g.channels:
                branch.add(e(_channel(d)))
    if config.channels:
        own = top.add(f"channels ({len(config.channels)}, the application's own)")
        for d in config.channels:
            own.add(e(_channel(d)))
    if config.hosts:
        hosts = top.add(f"hosts ({len(config.hosts)}, under {APPS_ID}/)")
        for h in config.hosts:
            _host(hosts, h)
    return top


def _channel(d: Any) -> str:
    where = f" {d.routing.kind} {d.routing.address}".rstrip() if d.routing.kind else ""
    return f"{d.name} {d.direction.value} {d.codec}{where}"


def _host(parent: Any, h: HostSpec) -> None:
    from rich.markup import escape as e

    ex = h.executor
    extra = [f"{k} {getattr(h, k)}" for k in ("affinity", "priority", "mlock", "best_effort")
             if getattr(h, k) is not None]
    branch = parent.add(f"[bold]{e(h.name)}[/bold] ({h.placement.value}, restart "
                        f"{h.restart.value}, {ex.workers} worker(s)"
                        f"{', ' + e(', '.join(extra)) if extra else ''})")
    for it in ex.items:
        parts = [it.trigger.describe() if it.trigger is not None else "in a chain/graph"]
        if it.reads:
            parts.append("reads " + ", ".join(it.reads))
        if it.writes:
            parts.append("writes " + ", ".join(it.writes))
        parts.append(f"factory {it.factory}")
        branch.add(f"{e(it.name)}: {e('; '.join(parts))}")
    for c in ex.chains:
        branch.add(f"chain: {e(' -> '.join(c.items))}")
    for g in ex.graphs:
        branch.add(f"graph {e(g.name)}: {e(', '.join(f'{a} -> {b}' for a, b in g.edges))}")


def cmd_check(args: argparse.Namespace) -> int:
    """Load, validate, print the tree; 0, or 2 for an invalid file."""
    from rich.console import Console
    from rich.markup import escape

    try:
        config = load(args.file)
        if not args.no_import:
            check_factories(config)
    except ConfigError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[red]invalid config:[/red] {escape(str(exc))}")
        return 2
    Console(highlight=False).print(render(config))
    return 0


def register(subparsers: Any) -> None:
    """The ``check`` subcommand."""
    p = subparsers.add_parser("check", help="validate a system TOML file and show what would run")
    p.add_argument("file", help="system file (see examples/)")
    p.add_argument("--no-import", action="store_true",
                   help="do not import the hosts' item factories (no application code runs)")
    p.set_defaults(func=cmd_check)
