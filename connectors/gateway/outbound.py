"""One outbound channel as the dispatcher's outbound thread sees it: its subscriber, its
counters, and the writers it follows across gateway restarts.

Each writer (transport publisher id) of the channel has a slot in the gateway's counter block
holding the last sequence the gateway took from it. The block outlives the gateway's process,
so a restarted gateway (crash, ``kill -9``) knows where each writer stood: what a writer sent
that no incarnation took is counted once, as ``restart``. Everything here runs on the outbound
thread (the counters' lock is taken for the counts).
"""

from __future__ import annotations

import logging

from taktora.connectors.gateway.counters import WRITER_SLOTS, ChannelCounts, Counts, Storage
from taktora.connectors.model import ChannelDescriptor
from taktora.transport.pubsub import Subscriber

log = logging.getLogger("taktora.connectors.gateway.dispatcher")


class OutboundChannel:
    """One outbound channel of the outbound thread: its subscriber, counters and the writers
    it follows (publisher id -> slot of the writer's last sequence in the counter block)."""

    __slots__ = ("counts", "descriptor", "envelope", "ids", "overflow_base", "seqs", "sub",
                 "writers")

    def __init__(self, descriptor: ChannelDescriptor, sub: Subscriber, counts: ChannelCounts,
                 storage: Storage) -> None:
        self.descriptor, self.sub, self.counts = descriptor, sub, counts
        prefix = f"ch.{descriptor.name}.out.writer"
        self.ids = [storage.index(f"{prefix}{k}.id") for k in range(WRITER_SLOTS)]
        self.seqs = [storage.index(f"{prefix}{k}.seq") for k in range(WRITER_SLOTS)]
        self.writers: dict[int, int] = {}
        self.overflow_base = counts.overflow  # what earlier incarnations' queues lost
        self.envelope = True  # the connector's Connector.envelope_on(descriptor), at connect

    def adopt_writer(self, publisher: int, sequence: int, counts: Counts) -> int:
        """The block slot of ``publisher``'s last sequence (outbound thread). A writer an
        earlier incarnation of the gateway followed continues from its last sequence there:
        what it sent that no incarnation took (queued in the dead one, sent while it
        restarted) is counted as ``restart``. A writer never seen takes a free (or the
        oldest) slot and starts from ``sequence``."""
        values = self.counts.values
        for id_at, seq_at in zip(self.ids, self.seqs, strict=True):
            if values[id_at] == publisher:
                missing = sequence - values[seq_at] - 1
                if missing > 0:
                    counts.drop("restart", self.counts, missing)
                    log.info("outbound %r: %d frame(s) of writer %x sent while the gateway "
                             "restarted", self.descriptor.name, missing, publisher)
                self.writers[publisher] = seq_at
                return seq_at
        # a free slot, else one of a writer this incarnation has not seen (an earlier one's)
        free = [k for k, id_at in enumerate(self.ids) if not values[id_at]]
        stale = [k for k, id_at in enumerate(self.ids) if values[id_at] not in self.writers]
        k = (free or stale or [len(self.writers) % WRITER_SLOTS])[0]
        values[self.ids[k]] = publisher
        self.writers = {p: at for p, at in self.writers.items() if at != self.seqs[k]}
        self.writers[publisher] = self.seqs[k]
        return self.seqs[k]

    def count_leftovers(self, counts: Counts) -> None:
        """Take what is still queued (the outbound thread has stopped) and count it ``down``,
        each sample recorded as taken: else the next incarnation counts it again."""
        while (sample := self.sub.receive()) is not None:
            slot = self.writers.get(sample.publisher)
            if slot is None:
                slot = self.adopt_writer(sample.publisher, sample.sequence, counts)
            sample.release()
            counts.drop("down", self.counts)
            self.counts.values[slot] = sample.sequence

    def copy_overflow(self) -> None:
        """Copy the transport queue's overflow of this incarnation into the block."""
        self.counts.values[self.counts.i_overflow] = self.overflow_base + self.sub.lost
