"""The per-frame paths' shortcuts keep their results: the prebuilt message factory of a send
route builds the message the keyword call builds, and the per-frame counters (plain ints on
the interface) appear in ``stats()`` under their names, on python-can ``virtual`` buses."""

from __future__ import annotations

from collections.abc import Iterator

import can
import pytest
from canrig import WAIT_S, inp, out, recv_all, vbus, wait_until
from taktora.connectors.can import CanConnector, CanRouting, can_routing
from taktora.connectors.can.txroute import POSITIONAL, message_factory
from taktora.connectors.testing import RecordingContext

FIELDS = ("timestamp", "arbitration_id", "is_extended_id", "is_remote_frame", "is_error_frame",
          "channel", "dlc", "data", "is_fd", "is_rx", "bitrate_switch", "error_state_indicator")


@pytest.fixture
def chan(iox_prefix: str) -> str:
    return f"vcan-{iox_prefix}"


@pytest.fixture
def peer(chan: str) -> Iterator[can.BusABC]:
    bus = can.Bus(interface="virtual", channel=chan)
    yield bus
    bus.shutdown()


def fields(msg: can.Message) -> tuple[object, ...]:
    return tuple(getattr(msg, f) for f in FIELDS)


@pytest.mark.req("REQ_0702", "REQ_0703")
@pytest.mark.parametrize("routing", [
    can_routing("can0", 0x123),
    can_routing("can0", 0x18DAF110, extended=True),
    can_routing("can0", 0x50, fd=True),
    can_routing("can0", 0x1ABCDE, extended=True, fd=True, brs=True, esi=True),
], ids=["classic", "extended", "fd", "fd-brs-esi"])
def test_the_message_factory_builds_what_the_keyword_call_builds(routing: object) -> None:
    assert POSITIONAL  # python-can 4.x: the fast positional factory is the one in use
    r = CanRouting.from_routing(routing)  # type: ignore[arg-type]
    fast, slow = message_factory(r), message_factory(r, positional=False)
    for data in (b"", bytes(range(8)), bytearray(b"\x01\x02"), memoryview(bytes(range(12)))):
        if len(data) > 8 and not r.fd:
            continue
        reference = can.Message(arbitration_id=r.can_id, is_extended_id=r.extended, data=data,
                                is_fd=r.fd, bitrate_switch=r.brs, error_state_indicator=r.esi,
                                check=False)
        assert fields(fast(data)) == fields(slow(data)) == fields(reference)
    # the data is copied once into the message: the caller's buffer may change afterwards
    buf = bytearray(b"abcd")
    msg = fast(memoryview(buf))
    buf[0] = 0
    assert bytes(msg.data) == b"abcd"


@pytest.mark.req("REQ_0710")
def test_per_frame_counters_appear_in_stats_by_name(chan: str, peer: can.BusABC) -> None:
    # can0 filters in the connector (filtered), can1 in the bus without readers (unmatched);
    # each on its own virtual channel, with its own plain python-can peer
    peer1 = can.Bus(interface="virtual", channel=f"{chan}-1")
    descs = [inp("rx/a", "can0", 0x10), inp("rx/any", "can0", 0x10, mask=0x7F0),
             out("tx", "can0", 0x20), out("tx1", "can1", 0x21)]
    conn = CanConnector([vbus("can0", chan, filter_mode="connector"),
                         vbus("can1", f"{chan}-1", filter_mode="bus")])
    ctx = RecordingContext(descs)
    ctx.open(conn)
    try:
        assert {k: v for k, v in conn.stats().items() if v} == {}
        for bus in (peer, peer1):
            bus.send(can.Message(arbitration_id=0x10, is_extended_id=False, data=b"y"))
            bus.send(can.Message(arbitration_id=0x200, is_extended_id=False, data=b"n"))
            bus.send(can.Message(arbitration_id=0x11, is_extended_id=False,
                                 is_remote_frame=True, dlc=1))
        assert sorted(ctx.next(WAIT_S) for _ in range(2)) == [("rx/a", b"y"), ("rx/any", b"y")]
        conn.send(descs[2], memoryview(b"out"))
        conn.send(descs[3], b"one")
        assert [bytes(m.data) for m in recv_all(peer, 1)] == [b"out"]
        assert [bytes(m.data) for m in recv_all(peer1, 1)] == [b"one"]
        expected = {"can0.frames_in": 3, "can0.delivered": 2, "can0.filtered": 1,
                    "can0.remote_frames": 1, "can0.frames_out": 1,
                    "can1.frames_in": 3, "can1.unmatched": 2, "can1.remote_frames": 1,
                    "can1.frames_out": 1,
                    "frames_in": 6, "frames_out": 2, "filtered": 1, "unmatched": 2}
        def nonzero() -> dict[str, int]:
            return {k: v for k, v in conn.stats().items() if v}

        assert wait_until(lambda: nonzero() == expected), nonzero()
        assert ctx.next(0.1) is None and nonzero() == expected  # and nothing more came
        assert "can0.unmatched" not in conn.stats()  # a counter at zero is not listed
    finally:
        conn.close()
        peer1.shutdown()
