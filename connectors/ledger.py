"""The loss ledger: "nothing lost uncounted" as one equation per channel (spec/loss.rst).

For one channel along one path - a writer, the gateways the channel crosses, a reader::

    written = delivered + writer drops + gateway drops + link drops + reader drops

:func:`account` computes it from the counters each place already reports -
:class:`~taktora.connectors.channel.WriterStats`, gateway counters as flat dicts
(:func:`~taktora.connectors.gateway.counters.flatten_stats`, the ``ch.<channel>.*`` keys) and
:class:`~taktora.connectors.channel.ReaderStats` - and returns a frozen :class:`LossLedger`
whose ``unaccounted`` is what no counter explains (0 when the equation holds).

Every drop is taken from exactly one place (the labels of :attr:`LossLedger.drops`):

- ``writer.no_subscriber``: sends that reached no subscriber;
- ``gateway.out.<cause>``: frames an outbound gateway took off iceoryx2 (or its queue lost:
  ``overflow``) and did not hand to the protocol;
- ``link.lost``: frames the inbound gateway saw missing from the link sequence;
- ``gateway.in.<cause>``: frames that arrived from the protocol and were not published;
- ``reader.lost``, ``reader.malformed``, ``reader.decode_error``: shm-hop losses and bad
  samples at the reader.

The writer's ``refused`` (DROP_NEWEST) is not a term: the subscriber counts the same samples
as ``lost`` (or the outbound gateway as ``overflow``). A loss is counted when a later frame
shows the gap, so compare counters once traffic has settled.

Pure functions of immutable snapshots: any thread, never blocks, raises ConnectorError only
for arguments that describe no path (no writer and no gateway, or no reader and no gateway).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs
from taktora.connectors.channel import ReaderStats, WriterStats
from taktora.connectors.errors import ConnectorError
from taktora.connectors.model import FrozenMap
from taktora.transport.validators import Checks

_v = Checks(ConnectorError)


def _to_counts(value: Mapping[str, int]) -> FrozenMap[str, int]:
    """Zeros left out (a cause that dropped nothing is not a term)."""
    return FrozenMap({k: n for k, n in value.items() if n != 0})


@attrs.frozen
class LossLedger:
    """The loss equation of one channel: ``written == delivered + sum(drops) + unaccounted``.

    ``drops`` maps ``place.cause`` labels (module docstring) to counts, zeros left out.
    """

    channel: str = attrs.field(validator=_v.string(nonempty=True))
    written: int = attrs.field(validator=_v.non_negative_int())
    delivered: int = attrs.field(validator=_v.non_negative_int())
    drops: FrozenMap[str, int] = attrs.field(
        converter=_to_counts,
        validator=_v.mapping_of(lambda n: type(n) is int and n >= 0, "a count >= 0"))

    @property
    def dropped(self) -> int:
        """Every counted drop, all places and causes."""
        return sum(self.drops.values())

    @property
    def unaccounted(self) -> int:
        """``written - delivered - dropped``: > 0 lost uncounted, < 0 counted twice."""
        return self.written - self.delivered - self.dropped

    @property
    def holds(self) -> bool:
        """True when every message written is delivered or counted exactly once."""
        return self.unaccounted == 0

    def __str__(self) -> str:
        terms = "".join(f" + {label} {n}" for label, n in self.drops.items())
        tail = "" if self.holds else f" (unaccounted {self.unaccounted})"
        return f"{self.channel}: written {self.written} = delivered {self.delivered}{terms}{tail}"


def _section(flat: Mapping[str, int], channel: str, direction: str) -> dict[str, int] | None:
    prefix = f"ch.{channel}.{direction}."
    found = {k[len(prefix):]: int(v) for k, v in flat.items() if k.startswith(prefix)}
    return found or None


def gateway_totals(stats: Mapping[str, object]) -> dict[str, int]:
    """A gateway's ``GetStats`` counters across every incarnation (its ``total.<key>`` entries,
    under their plain keys): what :func:`account` takes for a gateway that restarted."""
    return {k[len("total."):]: v for k, v in stats.items()
            if k.startswith("total.") and isinstance(v, int) and not isinstance(v, bool)}


def account(channel: str, *, writer: WriterStats | None = None,
            gateways: Sequence[Mapping[str, int]] = (),
            reader: ReaderStats | None = None) -> LossLedger:
    """The ledger of ``channel`` from what each place on its path counted.

    ``gateways``: flat counters of the gateways the channel crosses (an outbound one with
    ``ch.<channel>.out.*`` keys, an inbound one with ``ch.<channel>.in.*`` keys, or both);
    gateways without keys for the channel are ignored. Without a ``writer`` the path starts at
    the inbound gateway (written = what arrived from the link, or was seen missing on it);
    without a ``reader`` it ends at the last gateway (delivered = frames it forwarded).
    """
    out = next((s for g in gateways if (s := _section(g, channel, "out")) is not None), None)
    inb = next((s for g in gateways if (s := _section(g, channel, "in")) is not None), None)
    drops: dict[str, int] = {}

    def add(label: str, n: int) -> None:
        if n:
            drops[label] = drops.get(label, 0) + n

    if writer is not None:
        written = writer.sent
        add("writer.no_subscriber", writer.no_subscriber)
    elif inb is not None:
        written = inb.get("forwarded", 0) + inb.get("lost", 0) + sum(
            n for k, n in inb.items() if k.startswith("dropped."))
    else:
        raise ConnectorError(f"ledger of {channel!r}: no writer stats and no inbound gateway "
                             f"counters (keys 'ch.{channel}.in.*')")
    # without a writer the path starts at the inbound gateway: outbound drops are before it
    for section, side in ((out if writer is not None else None, "out"), (inb, "in")):
        if section is None:
            continue
        for key, n in sorted(section.items()):
            if key.startswith("dropped."):
                add(f"gateway.{side}.{key[len('dropped.'):]}", n)
        if side == "in":
            add("link.lost", section.get("lost", 0))
    if reader is not None:
        delivered = reader.delivered
        add("reader.lost", reader.lost)
        add("reader.malformed", reader.malformed_total)
        add("reader.decode_error", reader.decode_errors)
    elif inb is not None:
        delivered = inb.get("forwarded", 0)
    elif out is not None:
        delivered = out.get("forwarded", 0)
    else:
        raise ConnectorError(f"ledger of {channel!r}: no reader stats and no gateway counters "
                             f"(keys 'ch.{channel}.*')")
    return LossLedger(channel, written, delivered, drops)
