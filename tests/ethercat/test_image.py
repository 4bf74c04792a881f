"""The process image of the cycle without a bus (:mod:`taktora.connectors.ethercat.image`):
what a drain writes into the output image and counts, the safe outputs, and which input
slices are delivered."""

from __future__ import annotations

import pytest
from taktora.connectors.ethercat.image import Inputs, Outputs
from taktora.connectors.ethercat.settings import BitRoute
from taktora.connectors.model import Direction

from .contexts import TakingContext
from .test_connector import chan


class FakeSubDevice:
    """What the image uses of a pysoem SubDevice: its ``output`` and ``input`` bytes."""

    def __init__(self, outputs: int, inputs: int) -> None:
        self.output = bytes(outputs)
        self.input = bytes(inputs)
        self.writes = 0

    def __setattr__(self, name: str, value: object) -> None:
        if name == "output" and hasattr(self, "writes"):
            self.writes += 1
        super().__setattr__(name, value)


def counters() -> dict[str, int]:
    return dict.fromkeys(("sent", "overwritten", "discarded_safe", "received"), 0)


@pytest.mark.req("REQ_0828", "REQ_0813")
def test_the_latest_value_of_a_cycle_wins_and_the_others_are_counted_overwritten():
    low, high = chan("low", Direction.OUTBOUND, 0, 0, 3), chan("high", Direction.OUTBOUND, 0, 3, 5)
    word = chan("word", Direction.OUTBOUND, 1, 8, 16)
    ctx = TakingContext([low, high, word])
    count = counters()
    out = Outputs([(d, BitRoute.of(d)) for d in (low, high, word)], count)
    subs = [FakeSubDevice(1, 1), FakeSubDevice(4, 1)]
    out.attach(subs)
    for v in (b"\x01", b"\x07", b"\x05"):  # three values in one cycle: the last one wins
        ctx.write("low", v)
    ctx.write("high", b"\x14")  # bits 3..7 = 10100
    ctx.write("word", b"\x34")  # short: zero-padded to the routing's 2 bytes
    out.take(ctx)
    assert subs[0].output == b"\xa5" and subs[1].output == b"\x00\x34\x00\x00"
    assert count == {"sent": 5, "overwritten": 2, "discarded_safe": 0, "received": 0}
    writes = [sd.writes for sd in subs]
    out.take(ctx)  # nothing taken: SOEM's image is not written again
    assert [sd.writes for sd in subs] == writes
    ctx.write("low", b"\x02")  # read-modify-write: the high bits stay
    ctx.write("word", b"\x01\x02\x03")  # long: cut to the routing
    out.take(ctx)
    assert subs[0].output == b"\xa2" and subs[1].output == b"\x00\x01\x02\x00"
    assert count["overwritten"] == 2 and count["sent"] == 7 and ctx.taken == 7


@pytest.mark.req("REQ_0828", "REQ_0819")
def test_safe_outputs_always_reach_the_image_and_values_taken_meanwhile_are_discarded():
    do = chan("do", Direction.OUTBOUND, 0, 0, 8)
    ctx = TakingContext([do])
    count = counters()
    out = Outputs([(do, BitRoute.of(do))], count)
    sd = FakeSubDevice(1, 1)
    out.attach([sd])
    ctx.write("do", b"\x3c")
    out.take(ctx)
    assert sd.output == b"\x3c"
    out.set_safe(True)
    ctx.write("do", b"\xff")
    out.take(ctx)
    assert sd.output == b"\x00" and count["discarded_safe"] == 1
    # on and off again before a cycle ran (a Pause and a Resume in quick succession): the
    # next cycle still writes the safe value, and the outputs stay safe until a new write
    ctx.write("do", b"\x3c")
    out.take(ctx)
    assert sd.output == b"\x00" and count["discarded_safe"] == 2
    out.set_safe(False)
    out.take(ctx)
    sd.output = b"\x77"  # as if the image held something else
    out.set_safe(True)
    out.set_safe(False)
    out.take(ctx)
    assert sd.output == b"\x00"
    ctx.write("do", b"\x81")
    out.take(ctx)
    assert sd.output == b"\x81" and count["sent"] == 4


@pytest.mark.req("REQ_0813", "REQ_0822")
def test_only_changed_slices_are_delivered_and_a_refresh_delivers_all_again():
    a, b = chan("a", Direction.INBOUND, 0, 0, 8), chan("b", Direction.INBOUND, 0, 12, 4)
    c = chan("c", Direction.INBOUND, 1, 0, 8)
    ctx = TakingContext([a, b, c])
    count = counters()
    inputs = Inputs([(d, BitRoute.of(d)) for d in (a, b, c)], count)
    subs = [FakeSubDevice(1, 2), FakeSubDevice(1, 1)]
    inputs.attach(subs)

    def delivered() -> set[tuple[object, bytes]]:
        got = set()
        while (item := ctx.next(0.0)) is not None:
            got.add(item)
        return got

    subs[0].input, subs[1].input = b"\x11\x20", b"\x05"
    inputs.publish(ctx)
    assert delivered() == {("a", b"\x11"), ("b", b"\x02"), ("c", b"\x05")}  # first: all
    subs[0].input = b"\x11\x2f"  # only bits 8..11 changed: b (bits 12..15) did not
    inputs.publish(ctx)
    assert delivered() == set()
    subs[0].input = b"\x12\x3f"
    inputs.publish(ctx)
    assert delivered() == {("a", b"\x12"), ("b", b"\x03")}
    inputs.refresh()
    inputs.publish(ctx)
    assert delivered() == {("a", b"\x12"), ("b", b"\x03"), ("c", b"\x05")}
    assert count["received"] == 8
