"""Publish-subscribe on real iceoryx2 shared memory, in one process and across processes."""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import time

import pytest
from iox_procs import echo_back, pattern, publish_forever, slow_drain, spec_for
from taktora.transport import (
    BytesPayload,
    ChannelSpec,
    LoanError,
    Node,
    OverflowPolicy,
    PayloadError,
    SampleReleasedError,
    StructPayload,
    isolation,
    pubsub,
)

SPAWN = mp.get_context("spawn")


class Pose(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("joints", ctypes.c_int32 * 4)]

    @staticmethod
    def type_name() -> str:
        return "tests::Pose.v1"


@pytest.fixture
def node(iox_prefix: str):  # type: ignore[no-untyped-def]
    with Node("test", prefix=iox_prefix) as n:
        yield n


@pytest.mark.req("REQ_0103")
def test_send_copy_loan_and_loan_send_deliver_and_wake(node: Node) -> None:
    spec = ChannelSpec("t/bytes", BytesPayload(128))
    pub, sub = node.publisher(spec), node.subscriber(spec)
    out = pub.send_copy(b"copy")
    assert (out.delivered, out.woken) == (1, 1)
    with pub.loan(5) as view:
        view[:] = b"loan!"
    assert pub.last_outcome is not None and pub.last_outcome.delivered == 1
    assert pub.loan_send(lambda v: v.__setitem__(slice(0, 4), b"fill"), 4).delivered == 1
    assert sub.wait(1.0) == 1  # the three wake-ups share the channel's event id; all consumed
    assert sub.consume_wakeups() == 0
    assert [bytes(s.payload) for s in sub.drain()] == [b"copy", b"loan!", b"fill"]
    assert pub.stats.sent == 3 and sub.stats.received == 3 and sub.stats.lost == 0


@pytest.mark.req("REQ_0103")
@pytest.mark.parametrize("fast", [True, False], ids=["binding-methods", "public-wrappers"])
def test_sends_with_and_without_the_bindings_type_checks(node: Node, fast: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert pubsub.FAST_SEND  # this build's iceoryx2 (0.10) has the methods under its wrappers
    monkeypatch.setattr(pubsub, "FAST_SEND", fast)
    raw = node.publisher(ChannelSpec("t/fast", BytesPayload(64)))
    struct_pub = node.publisher(ChannelSpec("t/fast-struct", StructPayload(Pose)))
    sub = node.subscriber(ChannelSpec("t/fast", BytesPayload(64)))
    struct_sub = node.subscriber(ChannelSpec("t/fast-struct", StructPayload(Pose)))
    raw.send_copy(b"one")
    with raw.loan(3) as view:
        view[:] = b"two"
    struct_pub.send_copy(Pose(1.5, (1, 2, 3, 4)))
    assert [bytes(s.payload) for s in sub.drain()] == [b"one", b"two"]
    [pose] = [s.copy() for s in struct_sub.drain()]
    assert pose.x == 1.5 and list(pose.joints) == [1, 2, 3, 4]
    with pytest.raises(PayloadError, match="exceeds"):
        raw.send_copy(bytes(65))


@pytest.mark.req("REQ_0103")
def test_loan_discarded_when_the_block_raises(node: Node) -> None:
    spec = ChannelSpec("t/discard", BytesPayload(16))
    pub, sub = node.publisher(spec), node.subscriber(spec)
    with pytest.raises(RuntimeError), pub.loan(4) as view:
        view[:] = b"half"
        raise RuntimeError("producer failed mid-write")
    assert sub.receive() is None
    assert pub.stats.loans_discarded == 1 and pub.stats.sent == 0


@pytest.mark.req("REQ_0103")
def test_oversized_payload_is_a_clear_error_unless_growable(node: Node) -> None:
    fixed = node.publisher(ChannelSpec("t/fixed", BytesPayload(8)))
    with pytest.raises(PayloadError, match="max_size=8"):
        fixed.send_copy(b"123456789")
    spec = ChannelSpec("t/grow", BytesPayload(8, growable=True))
    grow, sub = node.publisher(spec), node.subscriber(spec)
    grow.send_copy(b"x" * 100_000)
    with sub.receive() as sample:  # type: ignore[union-attr]
        assert sample.size == 100_000 and bytes(sample.payload[-3:]) == b"xxx"


@pytest.mark.req("REQ_0103")
def test_struct_channel_round_trip(node: Node) -> None:
    spec = ChannelSpec("t/pose", StructPayload(Pose))
    pub, sub = node.publisher(spec), node.subscriber(spec)
    pose = Pose(1.25)
    pose.joints[2] = 42
    pub.send_copy(pose)
    with pub.loan() as slot:
        slot.x = -3.5
    with pytest.raises(PayloadError, match="carries Pose"):
        pub.send_copy(b"not a pose")
    with sub.receive() as first:  # type: ignore[union-attr]
        assert first.value.x == 1.25 and list(first.value.joints) == [0, 0, 42, 0]
    assert sub.receive_copy().x == -3.5


@pytest.mark.req("REQ_0105")
def test_views_are_read_only_and_die_with_the_sample(node: Node) -> None:
    spec = ChannelSpec("t/life", BytesPayload(64))
    pub, sub = node.publisher(spec), node.subscriber(spec)
    pub.send_copy(b"immutable")
    with sub.receive() as sample:  # type: ignore[union-attr]
        view = sample.payload
        assert view.readonly
        with pytest.raises(TypeError):
            view[0] = 0
    with pytest.raises(ValueError, match="released"):
        bytes(view)
    with pytest.raises(SampleReleasedError):
        _ = sample.payload
    with pytest.raises(SampleReleasedError):
        sample.copy()


@pytest.mark.req("REQ_0105")
def test_struct_proxy_is_read_only_and_checks_release(node: Node) -> None:
    spec = ChannelSpec("t/lifes", StructPayload(Pose))
    pub, sub = node.publisher(spec), node.subscriber(spec)
    pub.send_copy(Pose(2.0))
    with sub.receive() as sample:  # type: ignore[union-attr]
        value = sample.value
        joints = value.joints
        with pytest.raises(PayloadError):
            value.x = 1.0
        with pytest.raises(PayloadError):
            joints[0] = 1
    with pytest.raises(SampleReleasedError):
        _ = value.x
    with pytest.raises(SampleReleasedError):
        _ = joints[0]


@pytest.mark.req("REQ_0105")
def test_slices_outliving_the_sample_keep_memory_valid(node: Node) -> None:
    spec = ChannelSpec("t/slice", BytesPayload(64), buffer_size=2)
    pub, sub = node.publisher(spec), node.subscriber(spec)
    pub.send_copy(b"first-payload")
    sample = sub.receive()
    assert sample is not None
    piece = sample.payload[0:5]
    sample.release()
    for i in range(20):  # churn the publisher's chunks: the held slice must not change
        pub.send_copy(b"overwrite-%02d" % i)
        sub.receive_copy()
    assert bytes(piece) == b"first"
    held = sub  # a sample held across the subscriber's close stays readable
    pub.send_copy(b"held")
    late = held.receive()
    held.close()
    assert late is not None and bytes(late.payload) == b"held"
    late.release()


@pytest.mark.req("REQ_0106")
@pytest.mark.parametrize("policy", [OverflowPolicy.DROP_OLDEST, OverflowPolicy.DROP_NEWEST])
def test_overflow_is_counted_as_lost_samples(node: Node, policy: OverflowPolicy) -> None:
    spec = ChannelSpec(f"t/overflow/{policy.value}", BytesPayload(8), buffer_size=4, overflow=policy)
    pub, sub = node.publisher(spec), node.subscriber(spec)
    pub.send_copy(b"base")
    assert sub.receive_copy() == b"base"  # the baseline sample of this publisher
    for i in range(10):
        pub.send_copy(b"%d" % i)
    got = [s.copy() for s in sub.drain()]
    assert len(got) == 4
    if policy is OverflowPolicy.DROP_OLDEST:
        assert got == [b"6", b"7", b"8", b"9"]
    else:
        assert got == [b"0", b"1", b"2", b"3"]
        assert pub.stats.undelivered == 6  # the publisher counts the refusal at once
        pub.send_copy(b"next")  # the subscriber sees the gap when the next sample arrives
        assert sub.receive_copy() == b"next"
    stats = sub.stats
    assert stats.lost == 6 and stats.gaps == 1


@pytest.mark.req("REQ_1102", "REQ_1103")
@pytest.mark.parametrize("policy", list(OverflowPolicy))
def test_sends_that_reach_no_subscriber_are_counted_apart_from_refusals(
        node: Node, policy: OverflowPolicy) -> None:
    spec = ChannelSpec(f"t/nosub/{policy.value}", BytesPayload(8), buffer_size=2, overflow=policy)
    pub = node.publisher(spec)
    for _ in range(3):
        assert pub.send_copy(b"x").delivered == 0
    assert (pub.stats.no_subscriber, pub.stats.refused, pub.stats.undelivered) == (3, 0, 3)
    sub = node.subscriber(spec)
    assert pub.send_copy(b"y").delivered == 1
    assert pub.stats.no_subscriber == 3
    if policy is OverflowPolicy.DROP_NEWEST:
        pub.send_copy(b"z")
        pub.send_copy(b"refused")  # the queue of 2 is full: refused, not "no subscriber"
        assert (pub.stats.no_subscriber, pub.stats.refused) == (3, 1)
    sub.close()


@pytest.mark.req("REQ_0106")
def test_lost_head_of_a_new_publisher_is_counted(node: Node) -> None:
    spec = ChannelSpec("t/head", BytesPayload(8), buffer_size=4)
    sub = node.subscriber(spec)  # exists before the publisher's first send
    pub = node.publisher(spec)
    for i in range(10):  # nothing read yet: samples 1..6 are overwritten
        pub.send_copy(b"%d" % i)
    assert [s.copy() for s in sub.drain()] == [b"6", b"7", b"8", b"9"]
    assert (sub.stats.lost, sub.stats.gaps) == (6, 1)


@pytest.mark.req("REQ_0106")
def test_late_joiner_takes_its_first_sample_as_baseline(node: Node) -> None:
    spec = ChannelSpec("t/late", BytesPayload(8), buffer_size=4)
    pub = node.publisher(spec)
    early = node.subscriber(spec)
    for i in range(3):
        pub.send_copy(b"%d" % i)
    late = node.subscriber(spec)  # joins after the publisher's first send
    pub.send_copy(b"3")
    assert late.receive_copy() == b"3" and late.stats.lost == 0
    assert len(list(early.drain())) == 4 and early.stats.lost == 0


@pytest.mark.req("REQ_0106")
def test_block_policy_loses_nothing_with_a_slow_consumer_process(node: Node, iox_prefix: str) -> None:
    spec = ChannelSpec("t/block", BytesPayload(8), buffer_size=2, overflow=OverflowPolicy.BLOCK)
    pub = node.publisher(spec)
    results = SPAWN.Queue()
    ready = SPAWN.Event()
    child = SPAWN.Process(target=slow_drain, args=(iox_prefix, spec, 40, ready, results))
    child.start()
    try:
        assert ready.wait(30)
        deadline = time.monotonic() + 10
        while pub.send_copy(b"0").delivered == 0:  # wait for the consumer to connect
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for i in range(1, 40):
            pub.send_copy(b"%d" % i)
        received, lost = results.get(timeout=30)
        assert received[0] in (b"0",) and received == [b"%d" % i for i in range(40)][: len(received)]
        assert len(received) == 40 and lost == 0
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join()
    results.close()
    results.join_thread()


@pytest.mark.req("REQ_0107")
def test_borrowing_more_than_max_borrowed_is_a_loan_or_receive_limit(node: Node) -> None:
    spec = ChannelSpec("t/borrow", BytesPayload(8), buffer_size=8, max_borrowed=2)
    pub, sub = node.publisher(spec), node.subscriber(spec)
    for i in range(4):
        pub.send_copy(b"%d" % i)
    a, b = sub.receive(), sub.receive()
    assert a is not None and b is not None
    with pytest.raises(Exception):
        sub.receive()
    a.release()
    c = sub.receive()
    assert c is not None
    b.release()
    c.release()
    with pytest.raises(LoanError):  # loans beyond the publisher's limit are a project error
        loans = [pub._loan_raw(1) for _ in range(64)]
        del loans


@pytest.mark.req("REQ_0101")
def test_prefixes_isolate_same_named_services(iox_prefix: str) -> None:
    other = iox_prefix + "other_"
    spec = ChannelSpec("t/shared-name", BytesPayload(8))
    try:
        with Node("a", prefix=iox_prefix) as a, Node("b", prefix=other) as b:
            pub_a, sub_a = a.publisher(spec), a.subscriber(spec)
            sub_b = b.subscriber(spec)
            pub_a.send_copy(b"mine")
            assert sub_a.receive_copy() == b"mine"
            assert sub_b.receive_copy() is None
    finally:
        isolation.purge_prefix(other)


@pytest.mark.req("REQ_0104")
@pytest.mark.parametrize("size", [64, 4096, 1 << 20, 4 << 20])
def test_cross_process_round_trip_64B_to_4MiB(node: Node, iox_prefix: str, size: int) -> None:
    name = f"t/xp{size}"
    pub = node.publisher(spec_for(f"{name}/in", size))
    sub = node.subscriber(spec_for(f"{name}/out", size))
    ready = SPAWN.Event()
    child = SPAWN.Process(target=echo_back, args=(iox_prefix, name, size, 3, ready))
    child.start()
    try:
        assert ready.wait(30), "echo process did not start"
        for seq in range(3):
            deadline = time.monotonic() + 10
            while pub.send_copy(pattern(size, seq)).delivered == 0:
                assert time.monotonic() < deadline, "echo subscriber never connected"
                time.sleep(0.01)
            got = None
            while got is None:
                assert time.monotonic() < deadline, "no echo"
                sub.wait(0.2)
                got = sub.receive_copy()
            assert len(got) == size and got == pattern(size, seq)
        child.join(10)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
            child.join()


@pytest.mark.req("REQ_0108")
def test_kill_9_of_a_publisher_then_cleanup(node: Node, iox_prefix: str) -> None:
    spec = spec_for("t/doomed", 64)
    sub = node.subscriber(spec)
    ready = SPAWN.Event()
    child = SPAWN.Process(target=publish_forever, args=(iox_prefix, "t/doomed", ready))
    child.start()
    assert ready.wait(30)
    deadline = time.monotonic() + 10
    while sub.receive_copy() is None:
        assert time.monotonic() < deadline
        sub.wait(0.1)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(5)
    report = node.cleanup_dead_nodes()
    assert report.cleaned == 1 and report.failed == 0
    while sub.receive_copy() is not None:  # what it sent before dying is still readable
        pass
    assert node.cleanup_dead_nodes().cleaned == 0
