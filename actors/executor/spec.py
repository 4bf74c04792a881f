"""Executors as data: :class:`ExecutorSpec` and its items, triggers, chains and graphs.

A spec is a frozen, validated, picklable description of an :class:`Executor`: what a system
file's ``[[hosts]]`` table declares (``taktora.system.app_config`` structures it). Nothing is
opened or imported when a spec is made: :meth:`ExecutorSpec.build` does all of it in the
thread that calls it (the ItemHost actor's, in the process that runs the executor): it puts
``search_path`` in front of ``sys.path``, creates the iceoryx2 node, imports every item's
``factory`` (``"module:function"``), calls it with an :class:`ItemEnv` and adds the items,
chains and graphs.

A factory is ``factory(env: ItemEnv) -> fn | Item``: ``fn(ctx) -> Control | None`` runs per
trigger (a plain function becomes a :func:`~taktora.actors.executor.item.item`), an
:class:`Item` is wrapped so that the spec's name, trigger, error policy and budget apply
(its own ``triggers()`` are used only when the spec declares no trigger). ``env.reader(name)``
/ ``env.writer(name)`` open the channel of that name (one reader and one writer per item,
cached; the item's on_data / deadline trigger waits on ``env.reader(trigger.on_data)``, so
the function drains the same reader it is woken by).

Channels are given as :class:`ChannelPort` values (a protocol: this layer knows no
connector): anything picklable with ``name``, ``readable``, ``writable``,
``open_reader(node)`` and ``open_writer(node)``. The system layer fills
:attr:`ExecutorSpec.channels` with the gateways' and its own channels.

Errors: invalid values raise :class:`ExecutorConfigError` at construction naming the class and
the field (``items[1].trigger``); :meth:`ExecutorSpec.build` raises ExecutorConfigError for a
factory that cannot be imported, returns something else than a callable or an Item, or a
channel the spec does not know, after closing what it opened.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
from taktora.actors.executor.context import Context
from taktora.actors.executor.errors import ExecutorConfigError
from taktora.actors.executor.execution_monitor import ExecutionMonitor
from taktora.actors.executor.executor import Executor
from taktora.actors.executor.graph import Graph
from taktora.actors.executor.item import Control, ErrorPolicy, FunctionItem, Item
from taktora.actors.executor.thread_attrs import ThreadAttrs
from taktora.actors.executor.timing import MissedTickPolicy
from taktora.actors.executor.triggers import Trigger, deadline, every, on_data
from taktora.transport.node import Node
from taktora.transport.validators import Checks, to_tuple

log = logging.getLogger("taktora.actors.executor.spec")

_v = Checks(ExecutorConfigError)
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_factory = _v.matches(_FACTORY, "'module:function' (e.g. 'app_items:make_writer')")
_names = _v.tuple_of(_v.string(nonempty=True), "channel names")


@runtime_checkable
class ChannelPort(Protocol):
    """A channel an executor spec may open (see the module docstring)."""

    @property
    def name(self) -> str: ...

    @property
    def readable(self) -> bool: ...

    @property
    def writable(self) -> bool: ...

    def open_reader(self, node: Node) -> Any: ...

    def open_writer(self, node: Node) -> Any: ...


@attrs.frozen(kw_only=True)
class TriggerSpec:
    """What wakes an item: exactly one of ``every_s`` (an interval; ``policy`` and ``spin_s``
    apply) or ``on_data`` (a channel name; with ``deadline_s`` it is a deadline trigger: the
    item also runs on every ``deadline_s`` without data)."""

    every_s: float | None = attrs.field(default=None, validator=_v.optional(_v.positive()))
    policy: MissedTickPolicy | None = attrs.field(
        default=None, validator=_v.optional(_v.instance(MissedTickPolicy)))
    spin_s: float | None = attrs.field(default=None, validator=_v.optional(_v.non_negative()))
    on_data: str | None = attrs.field(default=None, validator=_v.optional(_v.string(nonempty=True)))
    deadline_s: float | None = attrs.field(default=None, validator=_v.optional(_v.positive()))

    def __attrs_post_init__(self) -> None:
        if (self.every_s is None) == (self.on_data is None):
            raise _v.problem(self, "every_s", "give exactly one of every_s (an interval) or "
                             "on_data (a channel name)")
        if self.every_s is None and (self.policy is not None or self.spin_s is not None):
            raise _v.problem(self, "policy" if self.policy is not None else "spin_s",
                             "only an every_s trigger has a policy or spin_s")
        if self.on_data is None and self.deadline_s is not None:
            raise _v.problem(self, "deadline_s", "a deadline watches a channel: set on_data")
        if self.every_s is not None and self.spin_s is not None and self.spin_s >= self.every_s:
            raise _v.problem(self, "spin_s", f"{self.spin_s} s must be shorter than every_s "
                             f"({self.every_s} s)")

    def describe(self) -> str:
        """One line: ``every 0.01 s (skip)``, ``on_data loop/state``, ``deadline 0.5 s on x``."""
        if self.every_s is not None:
            return f"every {self.every_s:g} s ({(self.policy or MissedTickPolicy.SKIP).value})"
        if self.deadline_s is not None:
            return f"deadline {self.deadline_s:g} s on {self.on_data}"
        return f"on_data {self.on_data}"

    def build(self, env: ItemEnv) -> Trigger:
        """The trigger declaration (opens the reader of ``on_data`` through ``env``)."""
        if self.every_s is not None:
            return every(self.every_s, self.policy or MissedTickPolicy.SKIP, spin=self.spin_s or 0.0)
        assert self.on_data is not None
        reader = env.reader(self.on_data)
        return on_data(reader) if self.deadline_s is None else deadline(reader, self.deadline_s)


@attrs.frozen(kw_only=True)
class ItemSpec:
    """One item: ``name`` (unique in its executor), ``factory`` (``"module:function"``, see
    the module docstring), ``trigger`` (None: inside a chain or graph below its head, or an
    Item declaring its own), the channels it ``reads`` / ``writes`` (checked by the system
    config; ``env`` opens any channel), ``error_policy`` (None: the Item's, else propagate)
    and ``budget_s`` (the monitor counts runs longer than this)."""

    name: str = attrs.field(validator=_v.identifier())
    factory: str = attrs.field(validator=_factory)
    trigger: TriggerSpec | None = attrs.field(
        default=None, validator=_v.optional(_v.instance(TriggerSpec)))
    reads: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, validator=_names)
    writes: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, validator=_names)
    error_policy: ErrorPolicy | None = attrs.field(
        default=None, validator=_v.optional(_v.instance(ErrorPolicy)))
    budget_s: float | None = attrs.field(default=None, validator=_v.optional(_v.positive()))


@attrs.frozen(kw_only=True)
class ChainSpec:
    """Items run in order whenever the first one's trigger fires (``Executor.add_chain``)."""

    items: tuple[str, ...] = attrs.field(converter=to_tuple, validator=attrs.validators.and_(
        _v.tuple_of(_v.string(nonempty=True), "item names"),
        _v.predicate(lambda v: len(v) >= 1 and len(set(v)) == len(v),
                     "at least one item name, each once")))


@attrs.frozen(kw_only=True)
class GraphSpec:
    """Items as a DAG (``Executor.add_graph``): ``edges`` are ``[parent, child]`` pairs; the
    roots' triggers start a run."""

    name: str = attrs.field(validator=_v.identifier())
    edges: tuple[tuple[str, str], ...] = attrs.field(converter=to_tuple, validator=_v.predicate(
        lambda v: len(v) >= 1 and all(isinstance(e, tuple) and len(e) == 2 and all(
            isinstance(n, str) and n for n in e) for e in v), "at least one [parent, child] pair"))

    def vertices(self) -> list[str]:
        """The item names in order of first appearance."""
        return list(dict.fromkeys(n for e in self.edges for n in e))

    def roots(self) -> list[str]:
        """The vertices without a parent."""
        children = {c for _, c in self.edges}
        return [n for n in self.vertices() if n not in children]


def _grouped(spec: ExecutorSpec) -> dict[str, str]:
    """``{item name: "chains[i]" | "graphs[i]"}`` for every item inside a chain or graph."""
    out: dict[str, str] = {}
    for kind, groups in (("chains", [c.items for c in spec.chains]),
                         ("graphs", [g.vertices() for g in spec.graphs])):
        for i, names in enumerate(groups):
            for n in names:
                out.setdefault(n, f"{kind}[{i}]")
    return out


def _dummy(ctx: Context) -> None:
    return None


@attrs.frozen(kw_only=True)
class ExecutorSpec:
    """An executor: ``name``, ``workers`` (0: items run in the executor thread), ``thread``
    (ThreadAttrs of the executor thread and workers), ``items``, ``chains``, ``graphs``,
    ``channels`` (ChannelPort values) and ``search_path`` (directories put in front of
    ``sys.path`` before the factories are imported). Cross-field rules (unique item names,
    chains and graphs naming known items, each item in at most one of them, only a chain's
    head or a graph's roots triggered, no graph cycle) raise ExecutorConfigError naming the
    field (``chains[0].items``)."""

    name: str = attrs.field(validator=_v.identifier())
    workers: int = attrs.field(default=0, validator=_v.integer(ge=0, le=256))
    thread: ThreadAttrs | None = attrs.field(default=None,
                                             validator=_v.optional(_v.instance(ThreadAttrs)))
    items: tuple[ItemSpec, ...] = attrs.field(converter=to_tuple, validator=_v.tuple_of(
        _v.instance(ItemSpec), "ItemSpec"))
    chains: tuple[ChainSpec, ...] = attrs.field(default=(), converter=to_tuple,
                                                validator=_v.tuple_of(_v.instance(ChainSpec),
                                                                      "ChainSpec"))
    graphs: tuple[GraphSpec, ...] = attrs.field(default=(), converter=to_tuple,
                                                validator=_v.tuple_of(_v.instance(GraphSpec),
                                                                      "GraphSpec"))
    channels: tuple[Any, ...] = attrs.field(default=(), converter=to_tuple, validator=_v.tuple_of(
        _v.instance(ChannelPort), "ChannelPort"))
    search_path: tuple[str, ...] = attrs.field(default=(), converter=to_tuple,
                                               validator=_v.tuple_of(_v.string(), "str"))

    def __attrs_post_init__(self) -> None:
        if not self.items:
            raise _v.problem(self, "items", "declare at least one item ([[hosts.items]])")
        index: dict[str, int] = {}
        for i, it in enumerate(self.items):
            if it.name in index:
                raise _v.problem(self, f"items[{i}].name", f"duplicate item name {it.name!r} "
                                 f"(also items[{index[it.name]}])")
            index[it.name] = i
        seen: dict[str, str] = {}
        for kind, groups in (("chains", [c.items for c in self.chains]),
                             ("graphs", [g.vertices() for g in self.graphs])):
            for g, names in enumerate(groups):
                field = f"{kind}[{g}].{'items' if kind == 'chains' else 'edges'}"
                for n in names:
                    if n not in index:
                        raise _v.problem(self, field, f"unknown item {n!r} (known: "
                                         f"{', '.join(index)})")
                    if n in seen:
                        raise _v.problem(self, field, f"item {n!r} is already in {seen[n]}")
                    seen[n] = f"{kind}[{g}]"
        heads = {c.items[0] for c in self.chains} | {r for g in self.graphs for r in g.roots()}
        for i, it in enumerate(self.items):
            if it.name in seen and it.name not in heads and it.trigger is not None:
                raise _v.problem(self, f"items[{i}].trigger", f"{it.name!r} runs after the "
                                 f"head of {seen[it.name]}: only the head (a graph's roots) is "
                                 "triggered; remove its trigger")
            if (it.name not in seen or it.name in heads) and it.trigger is None:
                raise _v.problem(self, f"items[{i}].trigger", f"{it.name!r} needs a trigger "
                                 "(every_s or on_data)")
        for g, graph in enumerate(self.graphs):
            dag = Graph(graph.name)
            vertex = {n: dag.vertex(FunctionItem(_dummy, (), name=n,
                                                 error_policy=ErrorPolicy.PROPAGATE,
                                                 budget=None, publishers={}))
                      for n in graph.vertices()}
            try:
                for parent, child in graph.edges:
                    dag.edge(vertex[parent], vertex[child])
            except ExecutorConfigError as exc:
                raise _v.problem(self, f"graphs[{g}].edges", str(exc)) from None

    def channel(self, name: str, *, write: bool) -> Any:
        """The ChannelPort named ``name`` the application can read (or write); else
        ExecutorConfigError naming the known ones."""
        for c in self.channels:
            if c.name == name and (c.writable if write else c.readable):
                return c
        role = "write" if write else "read"
        known = sorted({c.name for c in self.channels if (c.writable if write else c.readable)})
        raise ExecutorConfigError(f"executor {self.name!r}: no channel {name!r} to {role} "
                                  f"(known: {', '.join(known) or 'none'})")

    def build(self, node_prefix: str | None = None) -> Executor:
        """The executor with every item added; its ``close()`` also closes the node.

        Runs on the calling thread and blocks only for opening the iceoryx2 ports.
        ``node_prefix`` is the iceoryx2 prefix (None: ``TAKTORA_IOX_PREFIX``). Raises
        ExecutorConfigError for a factory or channel that does not fit (what was opened is
        closed again) and whatever a factory raises.
        """
        for d in reversed(self.search_path):
            if d not in sys.path:
                sys.path.insert(0, d)
        node = Node(f"taktora-{self.name}", prefix=node_prefix)
        executor = SpecExecutor(self.name, node, workers=self.workers, thread_attrs=self.thread,
                                monitor=ExecutionMonitor(), signals=False)
        try:
            built = {it.name: _bind(it, ItemEnv(self, it, node)) for it in self.items}
            grouped = _grouped(self)
            for it in self.items:
                if it.name not in grouped:
                    executor.add(built[it.name])
            for chain in self.chains:
                executor.add_chain([built[n] for n in chain.items])
            for graph in self.graphs:
                dag = Graph(graph.name)
                for n in graph.vertices():
                    dag.vertex(built[n])
                for parent, child in graph.edges:
                    dag.edge(built[parent], built[child])
                executor.add_graph(dag)
        except BaseException:
            executor.close()
            raise
        log.info("executor %s built: %d item(s), %d chain(s), %d graph(s)", self.name,
                 len(self.items), len(self.chains), len(self.graphs))
        return executor


class SpecExecutor(Executor):
    """An :class:`Executor` built from a spec: it owns its iceoryx2 ``node`` (closed last by
    :meth:`close`)."""

    def __init__(self, name: str, node: Node, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.node = node

    def close(self) -> None:
        """Close the executor (items' ``on_stop``), then the node and every port it opened."""
        try:
            super().close()
        finally:
            self.node.close()


class ItemEnv:
    """What an item's factory is called with (in the thread that builds the executor).

    ``executor_name``, ``item_name``, ``node`` (the executor's iceoryx2 node), ``spec`` (the
    ItemSpec: its reads/writes), :meth:`reader` / :meth:`writer` (one per channel name and
    item, opened on first use and closed with the node).
    """

    def __init__(self, executor: ExecutorSpec, spec: ItemSpec, node: Node) -> None:
        self._executor = executor
        self.spec = spec
        self.executor_name = executor.name
        self.item_name = spec.name
        self.node = node
        self._readers: dict[str, Any] = {}
        self._writers: dict[str, Any] = {}

    def reader(self, name: str) -> Any:
        """The item's reader of channel ``name`` (a ChannelReader for a system channel)."""
        if name not in self._readers:
            self._readers[name] = self._executor.channel(name, write=False).open_reader(self.node)
        return self._readers[name]

    def writer(self, name: str) -> Any:
        """The item's writer of channel ``name`` (a ChannelWriter for a system channel)."""
        if name not in self._writers:
            self._writers[name] = self._executor.channel(name, write=True).open_writer(self.node)
        return self._writers[name]


def load_function(path: str, what: str = "item factory") -> Callable[..., Any]:
    """Import ``"module:function"``; ExecutorConfigError naming what is missing."""
    module, _, name = path.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ExecutorConfigError(f"cannot import {what} {path!r}: {exc} (put its module on "
                                  "sys.path, e.g. next to the system file)") from exc
    except AttributeError as exc:
        raise ExecutorConfigError(f"cannot import {what} {path!r}: {exc}") from exc
    if not callable(fn):
        raise ExecutorConfigError(f"{what} {path!r} is a {type(fn).__name__}, not a function")
    return fn  # type: ignore[no-any-return]


class _SpecItem(Item):
    """An Item returned by a factory, under its spec's name, trigger, policy and budget."""

    def __init__(self, inner: Item, spec: ItemSpec, triggers: Sequence[Trigger]) -> None:
        self.inner = inner
        self._triggers = tuple(triggers) if spec.trigger is not None else tuple(inner.triggers())
        self.name = spec.name
        self.error_policy = spec.error_policy or inner.error_policy
        self.budget = spec.budget_s if spec.budget_s is not None else inner.budget
        self.publishers = inner.publishers

    def triggers(self) -> Sequence[Trigger]:
        return self._triggers

    def execute(self, ctx: Context) -> Control | None:
        return self.inner.execute(ctx)

    def on_stop(self) -> None:
        self.inner.on_stop()


def _bind(spec: ItemSpec, env: ItemEnv) -> Item:
    made = load_function(spec.factory)(env)
    triggers = [spec.trigger.build(env)] if spec.trigger is not None else []
    if isinstance(made, Item):
        return _SpecItem(made, spec, triggers)
    if not callable(made):
        raise ExecutorConfigError(f"item {spec.name!r}: factory {spec.factory!r} returned a "
                                  f"{type(made).__name__}; return fn(ctx) or an Item")
    return FunctionItem(made, triggers, name=spec.name,
                        error_policy=spec.error_policy or ErrorPolicy.PROPAGATE,
                        budget=spec.budget_s, publishers={})
