"""``taktora stats``: every gateway's loss ledger per channel, from a running system.

``taktora stats [NAME ...] --port P [--json]`` attaches (read-only), finds the gateways in the
supervision tree (nodes of kind ``gateway``; NAME filters by gateway name), asks each for
``GetStats`` and prints one row per channel and direction with the totals across gateway
incarnations (``total.ch.<channel>.<direction>.<what>``): forwarded, every drop by cause, and
for inbound channels what the link lost before the gateway (sequence gaps). A gateway that is
restarting answers from its monitor's ledger. ``--json`` prints the same as one JSON object
(``{gateway: {channel: {direction: {what: count}}}}``) for scripts.

This is the gateway's part of the per-channel equation (written = delivered + drops, see
spec/loss.rst): the writer's and the reader's parts live in the application's process (its
``ChannelWriter.stats()`` / ``ChannelReader.stats()``), which the CLI cannot see.

Exit status: 0; 1 when a gateway did not answer; 2 when attaching failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from taktora.actors.control.messages import ChildInfo, GetStats, StatsReply
from taktora.system.session import attach_args, console, error, with_attached

#: the prefix of the per-channel totals in a gateway's StatsReply
TOTAL_CHANNEL = "total.ch."


def gateways(tree: ChildInfo, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths of every gateway group in ``tree`` (depth first, in tree order)."""
    out: list[tuple[str, ...]] = []
    for child in tree.children:
        path = (*prefix, child.id)
        if child.kind == "gateway":
            out.append(path)
        elif child.kind == "supervisor":
            out.extend(gateways(child, path))
    return out


def per_channel(stats: Mapping[str, Any]) -> dict[str, dict[str, dict[str, int]]]:
    """``total.ch.<channel>.<direction>.<what>`` keys as ``{channel: {direction: {what: n}}}``
    (channel names hold no dots, so the split is unambiguous)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for key, n in stats.items():
        if not key.startswith(TOTAL_CHANNEL) or not isinstance(n, int):
            continue
        channel, direction, what = key[len(TOTAL_CHANNEL):].split(".", 2)
        out.setdefault(channel, {}).setdefault(direction, {})[what] = n
    return out


def _row(counts: Mapping[str, int]) -> tuple[str, str, str, str]:
    forwarded = counts.get("forwarded", 0)
    drops = {k[len("dropped."):]: n for k, n in counts.items() if k.startswith("dropped.") and n}
    lost = counts.get("lost", 0)
    causes = ", ".join(f"{cause} {n}" for cause, n in sorted(drops.items())) or "-"
    accounted = forwarded + sum(drops.values()) + lost
    return str(forwarded), causes, str(lost) if "lost" in counts else "", str(accounted)


def cmd_stats(args: argparse.Namespace) -> int:
    """Print the per-channel ledger of every (or the named) gateway."""
    def body(a: Any) -> int:
        from rich.markup import escape
        from rich.table import Table

        found = gateways(a.tree())
        if args.names:
            found = [p for p in found if p[-1] in args.names]
            missing = set(args.names) - {p[-1] for p in found}
            if missing:
                error(f"no gateway named {', '.join(sorted(missing))}", label="stats")
                return 1
        status = 0
        everything: dict[str, Any] = {}
        table = Table("gateway", "channel", "dir", "forwarded", "dropped (cause n)",
                      "link lost", "accounted", "incarnations", title="loss ledger (totals)")
        for path in found:
            reply = a.route(path, GetStats())
            name = "/".join(path)
            if not isinstance(reply, StatsReply):
                error(f"{name}: {getattr(reply, 'detail', reply)}", label="stats")
                status = 1
                continue
            channels = per_channel(reply.stats)
            everything[name] = channels
            incarnations = str(reply.stats.get("incarnations", "?"))
            for channel, directions in sorted(channels.items()):
                for direction, counts in sorted(directions.items()):
                    table.add_row(escape(name), escape(channel), direction, *_row(counts),
                                  incarnations)
        if args.json:
            sys.stdout.write(json.dumps(everything, indent=2, sort_keys=True) + "\n")
        else:
            console().print(table)
        return status

    return with_attached(args, body)


def register(subparsers: Any) -> None:
    """The ``stats`` subcommand."""
    p = subparsers.add_parser("stats", help="every gateway's loss ledger per channel")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these gateways")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    attach_args(p)
    p.set_defaults(func=cmd_stats)
