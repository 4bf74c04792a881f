"""Per-interface filter compilation and demultiplexing (ARCH_0702).

:func:`compile_filters` turns the INBOUND channels of one interface into the smallest list of
python-can filters (``{"can_id", "can_mask", "extended"}``) whose union accepts exactly the
frames some reader wants: duplicates are dropped, and an entry is dropped when another entry
accepts everything it accepts (:func:`subsumes`). No entry is ever widened, so the bus never
lets through a frame no reader matches (on SocketCAN the kernel applies it; CAN_RAW_FILTER_MAX
is 512 entries).

:class:`Demux` finds every reader a received frame belongs to: a dict lookup for readers of
one exact identifier plus a scan of the masked readers, in registration order, remembered per
identifier in :attr:`Demux.known` (a receive thread looks there first).

Pure data structures built once per open; lookups are read-only and thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from taktora.connectors.can.config import CAN_EFF_MASK, CAN_SFF_MASK, CanRouting

CanFilter = dict[str, int | bool]


@attrs.frozen
class FilterEntry:
    """One acceptance rule: ``rx_id & mask == can_id & mask`` for frames of format ``extended``."""

    can_id: int
    mask: int
    extended: bool

    def accepts(self, can_id: int, extended: bool) -> bool:
        return extended == self.extended and (can_id ^ self.can_id) & self.mask == 0

    def as_python_can(self) -> CanFilter:
        """The entry in python-can's ``set_filters`` format."""
        return {"can_id": self.can_id & self.mask, "can_mask": self.mask,
                "extended": self.extended}


def subsumes(a: FilterEntry, b: FilterEntry) -> bool:
    """Whether ``a`` accepts every identifier ``b`` accepts.

    True when both have the same format, every bit ``a`` checks is also checked by ``b``
    (``a.mask & ~b.mask == 0``), and on those bits the two identifiers agree.
    """
    return (a.extended == b.extended and a.mask & ~b.mask == 0
            and (a.can_id ^ b.can_id) & a.mask == 0)


def _entry(routing: CanRouting) -> FilterEntry:
    full = CAN_EFF_MASK if routing.extended else CAN_SFF_MASK
    mask = routing.mask & full
    return FilterEntry(routing.can_id & mask, mask, routing.extended)


def compile_filters(routings: Sequence[CanRouting]) -> list[FilterEntry]:
    """The minimal exact union of ``routings``' (can_id, mask, extended), in first-seen order.

    An empty list means "no reader": the caller decides what that means for its bus.
    """
    entries: list[FilterEntry] = []
    for routing in routings:
        entry = _entry(routing)
        if entry not in entries:
            entries.append(entry)
    # entries are normalised (can_id & mask) and unique, so two never subsume each other
    return [e for e in entries if not any(o is not e and subsumes(o, e) for o in entries)]


class Demux:
    """Readers of one interface by identifier: ``lookup`` returns every matching channel name.

    ``readers``: (channel name, routing) pairs of the interface's INBOUND channels.
    """

    def __init__(self, readers: Sequence[tuple[str, CanRouting]]) -> None:
        self.readers = tuple(readers)
        self._exact: dict[tuple[int, bool], tuple[str, ...]] = {}
        self._masked: list[tuple[str, FilterEntry]] = []
        for name, routing in readers:
            entry = _entry(routing)
            full = CAN_EFF_MASK if entry.extended else CAN_SFF_MASK
            if entry.mask == full:
                key = (entry.can_id, entry.extended)
                self._exact[key] = (*self._exact.get(key, ()), name)
            else:
                self._masked.append((name, entry))
        self.known: dict[tuple[int, bool], tuple[str, ...]] = {}
        """(can_id, extended) -> the channels :meth:`lookup` found (bounded memo; read it
        first on a per-frame path, call :meth:`lookup` on a miss)."""

    def lookup(self, can_id: int, extended: bool) -> tuple[str, ...]:
        """Every channel whose (can_id, mask, extended) accepts the frame (may be empty)."""
        key = (can_id, extended)
        hit = self.known.get(key)
        if hit is not None:
            return hit
        names = list(self._exact.get(key, ()))
        names += [n for n, e in self._masked if e.accepts(can_id, extended) and n not in names]
        found = tuple(names)
        if len(self.known) < 4096:  # bounded memo; misses beyond it are just recomputed
            self.known[key] = found
        return found
