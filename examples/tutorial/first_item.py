"""Tutorial step 1: your first items.

An executor runs two items on one iceoryx2 channel: ``produce`` every 0.1 s loans a
``Reading`` in shared memory and fills it in place; ``consume`` wakes when the channel has
data and reads it zero-copy. After one second the executor stops and prints its counters.

Run it:  python examples/tutorial/first_item.py
"""

from __future__ import annotations

import ctypes
import itertools
import math

from taktora.actors.executor import Context, Executor, every, item, on_data
from taktora.transport import ChannelSpec, Node, StructPayload


class Reading(ctypes.Structure):
    """One sensor reading, as it lies in shared memory."""

    _fields_ = [("count", ctypes.c_uint32), ("value", ctypes.c_double)]

    @staticmethod
    def type_name() -> str:
        # iceoryx2 matches publishers and subscribers by this name: bump the version when the
        # fields change
        return "tutorial::Reading.v1"


READINGS = ChannelSpec("tutorial/readings", StructPayload(Reading), buffer_size=16)


def main() -> None:
    with Node("first-item") as node, Executor("first-item") as executor:
        publisher = node.publisher(READINGS)
        subscriber = node.subscriber(READINGS)
        counter = itertools.count(1)

        def produce(ctx: Context) -> None:
            n = next(counter)
            with ctx.loan("readings") as reading:  # the struct itself, in shared memory
                reading.count = n
                reading.value = math.sin(n / 3)

        def consume(ctx: Context) -> None:
            for sample in subscriber.drain():  # every sample queued now; each released after
                reading = sample.value  # read-only, zero-copy
                print(f"got reading {reading.count}: {reading.value:+.3f} (seq {sample.sequence})")

        executor.add(item(produce, [every(0.1)], publishers={"readings": publisher}))
        executor.add(item(consume, [on_data(subscriber)]))
        executor.run_for(1.0)

        stats = executor.stats()
        print(f"produce ran {stats.item('produce').runs} times, "
              f"consume ran {stats.item('consume').runs} times, "
              f"{subscriber.lost} lost")


if __name__ == "__main__":
    main()
