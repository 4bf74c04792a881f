"""Graphs: items as a DAG. A vertex runs after all its parents finished with CONTINUE.

Build a :class:`Graph`, then ``Executor.add_graph(graph)``. The root vertices (no parents)
declare the triggers that start a run; each run walks the whole DAG once. A vertex returning
``Control.STOP`` or raising keeps its descendants from running in that run; independent
branches still finish. With ``Executor(workers=N)`` ready vertices run in parallel on the pool;
with ``workers=0`` they run one by one in the executor thread in a topological order.

A cycle is rejected by :meth:`Graph.edge` as soon as it is formed, with
:class:`GraphCycleError` naming the vertices in it.
"""

from __future__ import annotations

from taktora.actors.executor.errors import ExecutorConfigError, GraphCycleError
from taktora.actors.executor.item import Item


class Graph:
    """A DAG builder (not thread-safe; build it in one thread, then add it to an executor)."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.items: list[Item] = []
        self.successors: list[list[int]] = []
        self._index: dict[str, int] = {}

    def vertex(self, item: Item) -> Item:
        """Add ``item`` as a vertex; returns it (for use in :meth:`edge`)."""
        name = item.item_name()
        if name in self._index:
            raise ExecutorConfigError(f"graph {self.name!r} already has a vertex named {name!r}; "
                                      "give vertices unique names")
        self._index[name] = len(self.items)
        self.items.append(item)
        self.successors.append([])
        return item

    def edge(self, parent: Item, child: Item) -> None:
        """``child`` runs after ``parent``. Raises :class:`GraphCycleError` if this closes a
        cycle (the graph is left unchanged)."""
        p, c = self._idx(parent), self._idx(child)
        if c in self.successors[p]:
            return
        path = self._path(c, p)
        if path is not None:
            names = [self.items[i].item_name() for i in [p, *path]]
            raise GraphCycleError(
                f"graph {self.name!r}: edge {names[0]!r} -> {names[1]!r} would close the cycle "
                + " -> ".join(repr(n) for n in names)
            )
        self.successors[p].append(c)

    def roots(self) -> list[int]:
        """Indices of the vertices without parents."""
        has_parent = {c for succ in self.successors for c in succ}
        return [i for i in range(len(self.items)) if i not in has_parent]

    def in_degrees(self) -> list[int]:
        """How many parents each vertex has."""
        deg = [0] * len(self.items)
        for succ in self.successors:
            for c in succ:
                deg[c] += 1
        return deg

    def _idx(self, item: Item) -> int:
        i = self._index.get(item.item_name())
        if i is None or self.items[i] is not item:
            raise ExecutorConfigError(
                f"graph {self.name!r}: {item.item_name()!r} is not a vertex; add it with vertex()"
            )
        return i

    def _path(self, start: int, goal: int) -> list[int] | None:
        """A path start -> ... -> goal along edges, or None."""
        stack: list[tuple[int, list[int]]] = [(start, [start])]
        seen: set[int] = set()
        while stack:
            node, path = stack.pop()
            if node == goal:
                return path
            if node in seen:
                continue
            seen.add(node)
            for nxt in self.successors[node]:
                stack.append((nxt, [*path, nxt]))
        return None
