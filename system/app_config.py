"""The application part of a system file: ``[[hosts]]`` (item hosts and their items) and the
system's own ``[[channels]]``.

Layout (see spec/config.rst)::

    [[channels]]                      # application-to-application channels (ChannelDescriptor)
    name = "app/ticks"
    direction = "outbound"
    codec = "json"

    [[hosts]]                         # one ItemHost actor running one executor
    name = "control"                  # child id under the "apps" supervisor
    restart = "permanent"             # permanent | transient | temporary
    placement = "thread"              # thread | dedicated (a process of its own)
    affinity = [2, 3]                 # optional, with priority, mlock, best_effort
    workers = 0                       # executor keys: workers, thread, items, chains, graphs
    [[hosts.items]]
    name = "writer"
    factory = "app_items:make_writer" # module:function, called with an ItemEnv
    writes = ["loop/cmd"]
    trigger = { every_s = 0.01 }      # or { on_data = "loop/state" } (+ deadline_s)
    [[hosts.chains]]
    items = ["a", "b"]

A host table is one :class:`HostSpec`: its host keys (:data:`HOST_KEYS`) stay on the HostSpec,
every other key is structured into its :class:`~taktora.actors.executor.spec.ExecutorSpec`
(named like the host); errors name ``hosts[i].<key>`` without an ``executor`` step. Channel
names are resolved at load: an application reads a gateway's INBOUND channels and writes its
OUTBOUND ones, and reads and writes the system's own ``[[channels]]``; each host's executor
gets them as :class:`AppChannel` values. :func:`check_factories` imports (never calls) every
factory, from the system file's directory first: ``taktora run`` and ``taktora check`` do,
:func:`taktora.system.config.load` does not. Pure: no threads, no I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn
from taktora.actors.control.supervision import ChildSpec, Restart
from taktora.actors.executor.spec import ExecutorSpec, load_function
from taktora.connectors.channel import ChannelReader, ChannelWriter
from taktora.connectors.model import ChannelDescriptor, Direction
from taktora.system.errors import ConfigError
from taktora.transport.errors import TaktoraError
from taktora.transport.node import Node
from taktora.transport.validators import Checks

_v = Checks(ConfigError)

#: The keys of a ``[[hosts]]`` table that belong to the host (the rest are the executor's).
HOST_KEYS = ("name", "restart", "placement", "affinity", "priority", "mlock", "best_effort",
             "gc", "gc_period_s", "shutdown_s")
#: The supervisor the hosts run under, a child of the root (``taktora control apps/NAME``).
APPS_ID = "apps"
ITEM_HOST = "taktora.actors.control.item_host:ItemHost"


class Placement(enum.Enum):
    """Where a host's executor runs: a thread of the ItemHost actor, or a dedicated process."""

    THREAD = "thread"
    DEDICATED = "dedicated"


@attrs.frozen
class AppChannel:
    """A system channel as the application sees it (a ChannelPort of the executor spec):
    the descriptor and whether the application reads and/or writes it. Picklable."""

    descriptor: ChannelDescriptor = attrs.field(validator=_v.instance(ChannelDescriptor))
    readable: bool = attrs.field(validator=_v.instance(bool))
    writable: bool = attrs.field(validator=_v.instance(bool))

    @property
    def name(self) -> str:
        """The channel's name."""
        return self.descriptor.name

    def open_reader(self, node: Node) -> ChannelReader[Any]:
        """A ChannelReader on ``node`` (the caller's thread; closed with the node)."""
        return ChannelReader(node, self.descriptor)

    def open_writer(self, node: Node) -> ChannelWriter[Any]:
        """A ChannelWriter on ``node`` (the caller's thread; closed with the node)."""
        return ChannelWriter(node, self.descriptor)


@attrs.frozen(kw_only=True)
class HostSpec:
    """One ``[[hosts]]`` table: ``name``, the ``executor`` it runs, its supervision
    ``restart`` and ``shutdown_s``, and where it runs: ``placement`` with the dedicated
    process's ``affinity`` (CPU ids), ``priority`` (SCHED_FIFO 1..99), ``mlock`` and
    ``best_effort`` (go on when the OS refuses them), ``gc`` (``default`` | ``freeze``) and
    ``gc_period_s``; these are passed on in the ItemHost's args, not applied here."""

    name: str = attrs.field(validator=_v.identifier())
    executor: ExecutorSpec = attrs.field(validator=_v.instance(ExecutorSpec))
    restart: Restart = attrs.field(default=Restart.PERMANENT, validator=_v.instance(Restart))
    placement: Placement = attrs.field(default=Placement.THREAD, validator=_v.instance(Placement))
    affinity: tuple[int, ...] | None = attrs.field(default=None, validator=_v.optional(
        _v.predicate(lambda v: isinstance(v, tuple) and bool(v) and all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in v),
            "a non-empty list of CPU ids >= 0")))
    priority: int | None = attrs.field(default=None,
                                       validator=_v.optional(_v.integer(ge=1, le=99)))
    mlock: bool | None = attrs.field(default=None, validator=_v.optional(_v.instance(bool)))
    best_effort: bool | None = attrs.field(default=None,
                                           validator=_v.optional(_v.instance(bool)))
    gc: str | None = attrs.field(default=None, validator=_v.optional(_v.one_of(
        ("default", "freeze"))))
    gc_period_s: float | None = attrs.field(default=None, validator=_v.optional(
        _v.number(gt=0, le=60)))
    shutdown_s: float = attrs.field(default=10.0, validator=_v.number(gt=0, le=3600))

    def args(self) -> dict[str, Any]:
        """The ItemHost's args: the executor spec, the placement and what is set of affinity,
        priority, mlock and best_effort (picklable)."""
        out: dict[str, Any] = {"executor": self.executor, "placement": self.placement.value}
        for key in ("affinity", "priority", "mlock", "best_effort", "gc", "gc_period_s"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if key == "affinity" else value
        return out

    def child_spec(self) -> ChildSpec:
        """The ItemHost child of the ``apps`` supervisor."""
        return ChildSpec(id=self.name, start=ITEM_HOST, args=self.args(), restart=self.restart,
                         shutdown_s=self.shutdown_s)


def install(converter: cattrs.Converter) -> None:
    """Register the ``[[hosts]]`` structuring on ``converter`` (the system's strict one)."""
    host_fn = make_dict_structure_fn(HostSpec, converter)

    def structure_host(value: Any, _type: Any) -> HostSpec:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a table ([[hosts]]), got {type(value).__name__}")
        for key in ("executor", "channels", "search_path"):
            if key in value:
                raise ConfigError(f"invalid host field {key!r}: not a host key; a host uses the "
                                  "system's [[channels]] and the gateways' channels, and its "
                                  "executor keys (workers, thread, items, chains, graphs) sit "
                                  "in the [[hosts]] table itself")
        executor = {k: v for k, v in value.items() if k not in HOST_KEYS or k == "name"}
        host = {k: value[k] for k in HOST_KEYS if k in value}
        return host_fn({**host, "executor": executor}, HostSpec)

    converter.register_structure_hook(HostSpec, structure_host)


_EXECUTOR_STEP = re.compile(r"^(hosts\[\d+\])\.executor(?=\.|$)")


def tidy_key(key: str) -> str:
    """A key path without the ``executor`` step the structuring adds
    (``hosts[0].executor.items[1]`` -> ``hosts[0].items[1]``)."""
    return _EXECUTOR_STEP.sub(r"\1", key)


def app_channels(gateways: Sequence[Any], own: Sequence[ChannelDescriptor]
                 ) -> tuple[AppChannel, ...]:
    """Every channel the application may open: the gateways' INBOUND ones to read, their
    OUTBOUND ones to write, the system's own to read and write (first declaration wins)."""
    out: dict[tuple[str, Direction, bool], AppChannel] = {}
    for g in gateways:
        for d in g.channels:
            inbound = d.direction is Direction.INBOUND
            out.setdefault((d.name, d.direction, False), AppChannel(d, inbound, not inbound))
    for d in own:
        out.setdefault((d.name, d.direction, True), AppChannel(d, True, True))
    return tuple(out.values())


def bind(hosts: Sequence[HostSpec], channels: tuple[AppChannel, ...] | None = None,
         search_path: tuple[str, ...] | None = None) -> tuple[HostSpec, ...]:
    """``hosts`` with ``channels`` and ``search_path`` (those given) in their executor specs."""
    out = []
    for h in hosts:
        ex = h.executor
        if channels is not None:
            ex = attrs.evolve(ex, channels=channels)
        if search_path is not None:
            ex = attrs.evolve(ex, search_path=search_path)
        out.append(attrs.evolve(h, executor=ex))
    return tuple(out)


def check(config: Any) -> list[tuple[str, str]]:
    """Cross-field rules of the application part, each with its key path: unique host names,
    own channels unique and not shadowing a gateway channel, known codecs, and every channel
    an item's trigger, ``reads`` or ``writes`` names."""
    from taktora.connectors.codecs import codec_id_for

    problems: list[tuple[str, str]] = []
    gateway_names = {d.name: f"gateways[{i}].channels[{j}]" for i, g in enumerate(config.gateways)
                     for j, d in enumerate(g.channels)}
    own: dict[str, int] = {}
    for j, d in enumerate(config.channels):
        where = f"channels[{j}]"
        if d.name in gateway_names:
            problems.append((f"{where}.name", f"{d.name!r} is a gateway channel "
                                              f"({gateway_names[d.name]}); give it another name"))
        elif d.name in own:
            problems.append((f"{where}.name", f"duplicate channel {d.name!r} (also "
                                              f"channels[{own[d.name]}])"))
        own.setdefault(d.name, j)
        try:
            codec_id_for(d.codec)
        except TaktoraError as exc:
            problems.append((f"{where}.codec", str(exc)))
    seen: dict[str, int] = {}
    for i, h in enumerate(config.hosts):
        if h.name in seen:
            problems.append((f"hosts[{i}].name", f"duplicate host name {h.name!r} (also "
                                                 f"hosts[{seen[h.name]}])"))
        seen.setdefault(h.name, i)
        channels = h.executor.channels
        for j, it in enumerate(h.executor.items):
            where = f"hosts[{i}].items[{j}]"
            if it.trigger is not None and it.trigger.on_data is not None:
                problems += _resolve(channels, it.trigger.on_data, False, f"{where}.trigger.on_data")
            for k, name in enumerate(it.reads):
                problems += _resolve(channels, name, False, f"{where}.reads[{k}]")
            for k, name in enumerate(it.writes):
                problems += _resolve(channels, name, True, f"{where}.writes[{k}]")
    return problems


def _resolve(channels: Sequence[AppChannel], name: str, write: bool, key: str
             ) -> list[tuple[str, str]]:
    if any(c.name == name and (c.writable if write else c.readable) for c in channels):
        return []
    known = sorted({c.name for c in channels if (c.writable if write else c.readable)})
    listed = f"(known: {', '.join(known) or 'none'})"
    if any(c.name == name for c in channels):
        what = ("inbound: the application reads it" if write else
                "outbound: the application writes it")
        return [(key, f"channel {name!r} is {what}; {'writes' if write else 'reading'} needs "
                      f"one of {listed[1:-1]}")]
    return [(key, f"unknown channel {name!r} {listed}")]


def check_factories(config: Any) -> list[tuple[str, str]]:
    """Import every item factory (not calling it), from the hosts' search path first;
    ``(key path, reason)`` for each that cannot be imported. Imports run module code: like a
    ``module:Class`` connector, a system file naming factories is code."""
    import sys

    problems: list[tuple[str, str]] = []
    for i, h in enumerate(config.hosts):
        for d in reversed(h.executor.search_path):
            if d not in sys.path:
                sys.path.insert(0, d)
        for j, it in enumerate(h.executor.items):
            try:
                load_function(it.factory)
            except TaktoraError as exc:
                problems.append((f"hosts[{i}].items[{j}].factory", str(exc)))
    return problems
