"""Gateway counters: the per-channel counts the data plane bumps, and their flat form.

:class:`Counts` is what the dispatcher's outbound thread and the inbound sink (any protocol
thread) bump per frame: one :class:`ChannelCounts` per channel, held by the caller (the
outbound table entry, the sink's channel), so a frame costs one increment under the lock - no
lookup. The gateway-wide totals are sums taken at snapshot time. Drops that no channel can be
named for (``unknown_channel``, a failure before the channel is known) go to
:attr:`Counts.other`.

:func:`flatten_stats` turns a :class:`~taktora.connectors.gateway.dispatcher.DispatcherStats`
into flat ``dotted.key -> count`` maps: how gateways report them in
:class:`~taktora.actors.control.messages.StatsReply` and how the loss ledger
(:mod:`taktora.connectors.ledger`) reads them. Gateway-wide keys: ``out.forwarded``,
``out.dropped.<cause>``, ``in.forwarded``, ``in.dropped.<cause>``, ``in.malformed.<cause>``,
``in.gaps``, ``in.lost``, ``in.receive_errors``. Per channel (spec/loss.rst):
``ch.<channel>.out.forwarded``, ``ch.<channel>.out.dropped.<cause>``,
``ch.<channel>.in.forwarded``, ``ch.<channel>.in.dropped.<cause>``, ``ch.<channel>.in.gaps``,
``ch.<channel>.in.lost``.
"""

from __future__ import annotations

import array
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import attrs
from taktora.connectors.model import FrozenMap

OUT, IN = "out", "in"


#: the drop causes each direction counts in its own slot (any other cause is counted too, in
#: memory only: it does not survive a restart of the gateway)
OUT_CAUSES = ("paused", "malformed", "down", "link_down", "no_peer", "send_error",
              "internal_error", "restart")
IN_CAUSES = ("paused", "down", "malformed", "too_large", "publish_error", "internal_error",
             "unknown_channel")
#: per channel and direction: frames forwarded, link gaps and frames lost, the last link
#: sequence seen (inbound; 0: none yet), the transport queue's overflow (outbound)
FIELDS = ("forwarded", "gaps", "lost", "seq", "overflow")
#: writers of one outbound channel whose last sequence is kept across gateway restarts
WRITER_SLOTS = 4
#: an inbound channel's publisher (transport id, last sequence, first send), so that the next
#: incarnation continues it and readers count what the dead one's queue lost
PUBLISHER_FIELDS = ("publisher.id", "publisher.seq", "publisher.first_ns")
OTHER = "-"  # the pseudo channel of drops no channel can be named for


#: the slot counting the gateway incarnations that used a block
INCARNATIONS = "gateway.incarnations"


def counter_names(outbound: Iterable[str], inbound: Iterable[str]) -> list[str]:
    """The slots of a gateway's counter block (:mod:`taktora.transport.shared_counters`) for
    these channel names, in a fixed order: per channel and direction :data:`FIELDS` and one
    ``dropped.<cause>`` per cause, for outbound channels ``writer<k>.id`` / ``writer<k>.seq``
    (the writers followed), for inbound ones :data:`PUBLISHER_FIELDS`."""
    names: list[str] = [INCARNATIONS]
    for direction, channels in ((OUT, (*outbound, OTHER)), (IN, (*inbound, OTHER))):
        causes = OUT_CAUSES if direction == OUT else IN_CAUSES
        for ch in channels:
            prefix = f"ch.{ch}.{direction}."
            names.extend(prefix + f for f in FIELDS)
            names.extend(f"{prefix}dropped.{c}" for c in causes)
            if direction == OUT and ch != OTHER:
                for k in range(WRITER_SLOTS):
                    names.extend((f"{prefix}writer{k}.id", f"{prefix}writer{k}.seq"))
            elif ch != OTHER:  # the inbound channel's own publisher, resumed after a restart
                names.extend(prefix + f for f in PUBLISHER_FIELDS)
    return names


class LocalCounters:
    """The same slots as a shared counter block, in this process's memory only (a dispatcher
    used without a gateway: tests, benchmarks)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._index = {n: i for i, n in enumerate(self.names)}
        self.values: memoryview = memoryview(array.array("Q", bytes(8 * len(self.names))))

    def index(self, name: str) -> int:
        return self._index[name]

    def snapshot(self) -> dict[str, int]:
        return dict(zip(self.names, self.values.tolist(), strict=True))


class Storage(Protocol):
    """What :class:`Counts` needs of a counter block (SharedCounters or LocalCounters)."""

    values: memoryview

    def index(self, name: str) -> int: ...


class ChannelCounts:
    """One channel's counters in one direction, in slots of a counter block (so that they can
    outlive the process); written only under :attr:`Counts.lock`.

    ``forwarded`` (also the outbound link sequence: the n-th frame forwarded carries n),
    ``gaps`` / ``lost`` (inbound: sequence jumps of envelopes arriving from the protocol link
    and the frames they skipped), ``seq`` (inbound: the last link sequence seen, 0 for none),
    ``overflow`` (outbound: what the transport queue lost, as last copied) are read as
    properties and written through ``values[i_<field>]``; drops by cause through
    :meth:`drop` and :attr:`dropped`.
    """

    __slots__ = ("_drop", "direction", "extra", "i_forwarded", "i_gaps", "i_lost",
                 "i_overflow", "i_seq", "values")

    def __init__(self, direction: str, storage: Storage, channel: str) -> None:
        self.direction = direction
        self.values = storage.values
        prefix = f"ch.{channel}.{direction}."
        (self.i_forwarded, self.i_gaps, self.i_lost, self.i_seq, self.i_overflow) = (
            storage.index(prefix + f) for f in FIELDS)
        causes = OUT_CAUSES if direction == OUT else IN_CAUSES
        self._drop = {c: storage.index(f"{prefix}dropped.{c}") for c in causes}
        self.extra: dict[str, int] = {}  # causes without a slot (this process only)

    # the hot paths index ``values`` with the ``i_*`` slots directly; these read the same
    @property
    def forwarded(self) -> int:
        return int(self.values[self.i_forwarded])

    @property
    def gaps(self) -> int:
        return int(self.values[self.i_gaps])

    @property
    def lost(self) -> int:
        return int(self.values[self.i_lost])

    @property
    def seq(self) -> int:
        return int(self.values[self.i_seq])

    @property
    def overflow(self) -> int:
        return int(self.values[self.i_overflow])

    def drop(self, cause: str, n: int = 1) -> None:
        """Count ``n`` frames dropped for ``cause`` (caller holds the lock)."""
        slot = self._drop.get(cause)
        if slot is None:
            self.extra[cause] = self.extra.get(cause, 0) + n
        else:
            self.values[slot] += n

    @property
    def dropped(self) -> dict[str, int]:
        """Drops by cause (causes with a count only)."""
        out = {c: int(self.values[i]) for c, i in self._drop.items() if self.values[i]}
        for cause, n in self.extra.items():
            out[cause] = out.get(cause, 0) + n
        return out

    def raw(self) -> tuple[int, ...]:
        """Every slot of this channel (:data:`FIELDS`, then the causes) for baselines."""
        v = self.values
        return (v[self.i_forwarded], v[self.i_gaps], v[self.i_lost], v[self.i_seq],
                v[self.i_overflow], *(v[i] for i in self._drop.values()))


@attrs.frozen
class ChannelStats:
    """A snapshot of one channel's counters: ``direction`` ``"out"`` or ``"in"``, frames
    ``forwarded``, drops by cause, and (inbound) link ``gaps`` / ``lost``."""

    direction: str = attrs.field(validator=attrs.validators.in_((OUT, IN)))
    forwarded: int
    dropped: FrozenMap[str, int]
    gaps: int = 0
    lost: int = 0


class Counts:
    """Per-channel ``forwarded`` counts and drops by cause, written by any thread under one
    lock (never held while sending or publishing). ``channels`` names the channels counted,
    all in ``direction``; their slots are in ``storage`` (a gateway's shared counter block,
    which outlives the gateway's process, or :class:`LocalCounters`). Snapshots count from
    the values ``storage`` held when this object was made (this incarnation), or from zero
    with ``total=True`` (every incarnation that used the block). Every method blocks only on
    that lock and never raises."""

    def __init__(self, direction: str, channels: Iterable[str] = (),
                 storage: Storage | None = None) -> None:
        channels = list(channels)
        if storage is None:
            storage = LocalCounters(counter_names(channels, ()) if direction == OUT
                                    else counter_names((), channels))
        self.lock = threading.Lock()
        self.direction = direction
        self.storage = storage
        self.channels: dict[str, ChannelCounts] = {
            n: ChannelCounts(direction, storage, n) for n in channels}
        self.other = ChannelCounts(direction, storage, OTHER)
        """Drops no channel can be named for (in the gateway-wide totals only)."""
        self._base = {n: c.raw() for n, c in (*self.channels.items(), (OTHER, self.other))}

    def channel(self, name: str) -> ChannelCounts:
        """The counters of channel ``name`` (:attr:`other` for a name not counted here)."""
        return self.channels.get(name, self.other)

    def drop(self, cause: str, channel: ChannelCounts | None = None, n: int = 1) -> None:
        """Count ``n`` frames of ``channel`` (None: :attr:`other`) dropped for ``cause``."""
        counts = self.other if channel is None else channel
        with self.lock:
            counts.drop(cause, n)

    def forward(self, channel: ChannelCounts) -> None:
        """Count one frame of ``channel`` forwarded."""
        with self.lock:
            channel.values[channel.i_forwarded] += 1

    def _stats(self, name: str, c: ChannelCounts, total: bool) -> ChannelStats:
        base = (0,) * (len(FIELDS) + len(c._drop)) if total else self._base[name]
        raw = c.raw()
        fields = [raw[i] - base[i] for i in range(len(FIELDS))]
        dropped = {cause: raw[len(FIELDS) + k] - base[len(FIELDS) + k]
                   for k, cause in enumerate(c._drop)}
        dropped = {k: v for k, v in dropped.items() if v}
        for cause, n in c.extra.items():
            dropped[cause] = dropped.get(cause, 0) + n
        if fields[4]:  # the outbound transport queue's overflow
            dropped["overflow"] = dropped.get("overflow", 0) + fields[4]
        return ChannelStats(c.direction, fields[0], FrozenMap(dropped), fields[1], fields[2])

    def per_channel(self, *, total: bool = False) -> dict[str, ChannelStats]:
        """A snapshot of every channel's counters (this incarnation's, or ``total``)."""
        with self.lock:
            return {f"{name}.{c.direction}": self._stats(name, c, total)
                    for name, c in self.channels.items()}

    def snapshot(self, *, total: bool = False) -> tuple[int, dict[str, int]]:
        """Gateway-wide ``(forwarded, dropped by cause)``: the sums over every channel (and
        :attr:`other`), ``overflow`` included."""
        with self.lock:
            every = [self._stats(n, c, total) for n, c in self.channels.items()]
            every.append(self._stats(OTHER, self.other, total))
        forwarded, dropped = 0, dict[str, int]()
        for st in every:
            forwarded += st.forwarded
            for cause, n in st.dropped.items():
                dropped[cause] = dropped.get(cause, 0) + n
        return forwarded, dropped

    def gaps(self, *, total: bool = False) -> tuple[int, int]:
        """Gateway-wide ``(gaps, lost)`` of arriving envelopes."""
        every = self.per_channel(total=total).values()
        return sum(c.gaps for c in every), sum(c.lost for c in every)



@attrs.frozen
class DispatcherStats:
    """A snapshot of a dispatcher's counters.

    ``*_dropped`` map a cause to a count: ``paused``, ``malformed``, ``down`` (no connector
    connected), ``link_down``, ``no_peer`` (nobody could receive it), ``send_error``,
    ``overflow`` (the gateway's own iceoryx2 queue overflowed while a send was slow),
    ``restart`` (a writer's frames no incarnation of the gateway took: it was restarting)
    (outbound); ``paused``, ``down`` (delivered by an ended
    connection or after close), ``malformed``, ``unknown_channel``, ``too_large``,
    ``publish_error`` (inbound); ``internal_error`` on either side. ``inbound_malformed``
    splits inbound ``malformed`` by envelope cause (short, magic, version, header_len, length,
    crc). ``inbound_gaps`` / ``inbound_lost`` count sequence jumps of envelopes arriving from
    the protocol (frames lost on the link). ``channels``: the same counters per channel and
    direction (``"<name>.<direction>"`` -> :class:`ChannelStats`: one name may serve both
    directions; the outbound ``overflow`` included).
    """

    outbound_forwarded: int
    outbound_dropped: FrozenMap[str, int]
    inbound_forwarded: int
    inbound_dropped: FrozenMap[str, int]
    inbound_malformed: FrozenMap[str, int]
    inbound_gaps: int
    inbound_lost: int
    receive_errors: int
    outbound_paused: bool
    inbound_paused: bool
    running: bool
    channels: FrozenMap[str, ChannelStats] = attrs.field(factory=FrozenMap)



def flatten_stats(stats: DispatcherStats) -> dict[str, int]:
    """A dispatcher snapshot as flat ``dotted.key -> count`` (how gateways report it; the
    keys are in the module docstring)."""
    out: dict[str, int] = {
        "out.forwarded": stats.outbound_forwarded,
        "in.forwarded": stats.inbound_forwarded,
        "in.gaps": stats.inbound_gaps,
        "in.lost": stats.inbound_lost,
        "in.receive_errors": stats.receive_errors,
    }
    for cause, n in stats.outbound_dropped.items():
        out[f"out.dropped.{cause}"] = n
    for cause, n in stats.inbound_dropped.items():
        out[f"in.dropped.{cause}"] = n
    for cause, n in stats.inbound_malformed.items():
        out[f"in.malformed.{cause}"] = n
    _flat_channels(out, stats.channels)
    return out


def _flat_channels(out: dict[str, int], channels: Mapping[str, ChannelStats]) -> None:
    for key, ch in channels.items():  # key: "<channel>.<direction>"
        prefix = f"ch.{key}."
        out[prefix + "forwarded"] = ch.forwarded
        for cause, n in ch.dropped.items():
            out[f"{prefix}dropped.{cause}"] = n
        if ch.direction == IN:
            out[prefix + "gaps"] = ch.gaps
            out[prefix + "lost"] = ch.lost


def block_totals(storage: Storage, outbound: Sequence[str],
                 inbound: Sequence[str]) -> dict[str, int]:
    """The keys of :func:`flatten_stats` (without the in-memory ``in.malformed.<cause>`` and
    ``in.receive_errors``) summed over every incarnation that counted in ``storage``: what a
    gateway's counter block holds, also after its process died. Any thread; never blocks."""
    out_counts, in_counts = Counts(OUT, outbound, storage), Counts(IN, inbound, storage)
    out_fwd, out_drop = out_counts.snapshot(total=True)
    in_fwd, in_drop = in_counts.snapshot(total=True)
    gaps, lost = in_counts.gaps(total=True)
    flat = {"out.forwarded": out_fwd, "in.forwarded": in_fwd, "in.gaps": gaps, "in.lost": lost}
    flat.update({f"out.dropped.{c}": n for c, n in out_drop.items()})
    flat.update({f"in.dropped.{c}": n for c, n in in_drop.items()})
    _flat_channels(flat, {**out_counts.per_channel(total=True),
                          **in_counts.per_channel(total=True)})
    flat["incarnations"] = int(storage.values[storage.index(INCARNATIONS)])
    return flat
