"""The control-plane half of ``taktora top --port P``: the supervision tree, each gateway's
health, restarts and loss ledger, each item host's executor timing.

:class:`SystemView` asks a running system (through an attached
:class:`~taktora.system.session.Attached`, read-only) for its tree, then every gateway group
for ``GetHealth`` / ``GetStats`` and every item host for ``GetStats``; :func:`render` turns a
:class:`SystemSnapshot` into rich tables. One thread (the CLI's main thread) uses it; each
refresh blocks for one round trip per actor (bounded by the session's ``--timeout``), and an
actor that does not answer (restarting) shows as such instead of stopping the view.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs
from taktora.actors.control.messages import (
    ChildInfo,
    GetHealth,
    GetStats,
    HealthReply,
    StatsReply,
)
from taktora.system.session import Attached, render_tree
from taktora.transport.errors import TaktoraError

#: an item host's tree node: a worker whose stats carry an executor monitor snapshot
MONITOR_KEY = "monitor"


@attrs.frozen
class GatewayRow:
    """One gateway: health, the last transition's reason, gateway restarts, incarnations, and
    the ledger's totals (frames forwarded out/in, drops by cause)."""

    path: str
    health: str
    reason: str
    restarts: int
    incarnations: int
    forwarded_out: int
    forwarded_in: int
    drops: Mapping[str, int]


@attrs.frozen
class ItemRow:
    """One executor item of one item host: runs, failures, misses and timing (us)."""

    host: str
    item: str
    runs: int
    failures: int
    misses: int
    p50_us: float
    p99_us: float
    max_us: float


@attrs.frozen
class SystemSnapshot:
    """What one refresh saw."""

    tree: ChildInfo
    gateways: tuple[GatewayRow, ...]
    items: tuple[ItemRow, ...]
    hosts_without_monitor: tuple[str, ...] = ()


def _walk(node: ChildInfo, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                          ChildInfo]]:
    for child in node.children:
        path = (*prefix, child.id)
        yield path, child
        if child.kind == "supervisor":
            yield from _walk(child, path)


def _drops(stats: Mapping[str, Any]) -> dict[str, int]:
    """``total.out.dropped.<c>`` / ``total.in.dropped.<c>`` / ``total.in.lost`` by cause."""
    out: dict[str, int] = {}
    for key, n in stats.items():
        if not isinstance(n, int) or isinstance(n, bool) or not n:
            continue
        for prefix, side in (("total.out.dropped.", "out"), ("total.in.dropped.", "in")):
            if key.startswith(prefix):
                out[f"{side}.{key[len(prefix):]}"] = n
        if key == "total.in.lost":
            out["link.lost"] = n
    return out


class SystemView:
    """Reads a running system through ``attached`` (never changes it)."""

    def __init__(self, attached: Attached) -> None:
        self.attached = attached

    def snapshot(self) -> SystemSnapshot:
        """One refresh: the tree, then each gateway and each worker that has stats."""
        tree = self.attached.tree()
        gateways: list[GatewayRow] = []
        items: list[ItemRow] = []
        plain: list[str] = []
        for path, node in _walk(tree):
            if node.kind == "gateway":
                gateways.append(self._gateway(path, node))
            elif node.kind == "worker" and node.state == "running":
                rows = self._items(path)
                if rows is None:
                    plain.append("/".join(path))
                else:
                    items.extend(rows)
        return SystemSnapshot(tree, tuple(gateways), tuple(items), tuple(plain))

    def _ask(self, path: tuple[str, ...], msg: Any) -> Any:
        try:
            return self.attached.route(path, msg)
        except TaktoraError:  # no answer in time: shown as such
            return None

    def _gateway(self, path: tuple[str, ...], node: ChildInfo) -> GatewayRow:
        health = self._ask(path, GetHealth())
        stats = self._ask(path, GetStats())
        values = dict(stats.stats) if isinstance(stats, StatsReply) else {}
        link = next((c for c in node.children if c.id == "link"), None)
        return GatewayRow(
            path="/".join(path),
            health=health.state.value if isinstance(health, HealthReply) else "no answer",
            reason=(health.last_event.reason if isinstance(health, HealthReply)
                    and health.last_event is not None else ""),
            restarts=link.restarts if link is not None else node.restarts,
            incarnations=int(values.get("incarnations", 0)),
            forwarded_out=int(values.get("total.out.forwarded", 0)),
            forwarded_in=int(values.get("total.in.forwarded", 0)),
            drops=_drops(values))

    def _items(self, path: tuple[str, ...]) -> list[ItemRow] | None:
        stats = self._ask(path, GetStats())
        if not isinstance(stats, StatsReply):
            return None
        monitor = stats.stats.get(MONITOR_KEY)
        if not isinstance(monitor, Mapping):
            return None
        host = "/".join(path)
        return [ItemRow(host=host, item=str(it.get("name", "?")), runs=int(it.get("runs", 0)),
                        failures=int(it.get("failures", 0)),
                        misses=int(it.get("deadline_misses", 0)) + int(it.get("missed_ticks", 0))
                        + int(it.get("budget_misses", 0)),
                        p50_us=float(it.get("p50_us", 0.0)), p99_us=float(it.get("p99_us", 0.0)),
                        max_us=float(it.get("max_us", 0.0)))
                for it in monitor.get("items", ()) if isinstance(it, Mapping)]


def render(snapshot: SystemSnapshot) -> Any:
    """The snapshot as rich renderables: the tree, the gateways, the items."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    gw = Table("gateway", "health", "last transition", "restarts", "incarnations", "out",
               "in", "drops (cause n)", title="gateways (totals across restarts)")
    colour = {"up": "green", "connecting": "yellow", "degraded": "yellow", "down": "red"}
    for row in snapshot.gateways:
        c = colour.get(row.health, "red")
        gw.add_row(escape(row.path), f"[{c}]{escape(row.health)}[/{c}]", escape(row.reason),
                   str(row.restarts), str(row.incarnations), str(row.forwarded_out),
                   str(row.forwarded_in),
                   escape(", ".join(f"{k} {n}" for k, n in sorted(row.drops.items())) or "-"))
    parts: list[Any] = [render_tree(snapshot.tree), gw]
    if snapshot.items:
        it = Table("host", "item", "runs", "failures", "misses", "p50 us", "p99 us", "max us",
                   title="executor items")
        for r in snapshot.items:
            it.add_row(escape(r.host), escape(r.item), str(r.runs), str(r.failures),
                       str(r.misses), f"{r.p50_us:.0f}", f"{r.p99_us:.0f}", f"{r.max_us:.0f}")
        parts.append(it)
    return Group(*parts)
