"""Gateway counters as flat ``dotted.key -> count`` maps: how gateways report them in
:class:`~taktora.actors.control.messages.StatsReply` and how the loss ledger sums them."""

from __future__ import annotations

from taktora.connectors.gateway.dispatcher import DispatcherStats


def flatten_stats(stats: DispatcherStats) -> dict[str, int]:
    """A dispatcher snapshot as flat ``dotted.key -> count`` (how gateways report it)."""
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
    return out
