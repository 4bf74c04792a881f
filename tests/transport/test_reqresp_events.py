"""Events and request/response with streaming responses, in one process and across two."""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import time

import pytest
from iox_procs import serve
from taktora.connectors import ChannelDescriptor, ChannelReader, ChannelWriter, Direction
from taktora.transport import (
    BytesPayload,
    EventSpec,
    Node,
    PayloadError,
    RequestError,
    ServiceSpec,
    TransportError,
)

SPAWN = mp.get_context("spawn")


@pytest.fixture
def node(iox_prefix: str):  # type: ignore[no-untyped-def]
    with Node("test", prefix=iox_prefix) as n:
        yield n


@pytest.mark.req("REQ_0109")
def test_notifier_wakes_listener_with_event_ids(node: Node) -> None:
    spec = EventSpec("t/ev", max_event_id=15)
    listener = node.listener(spec)
    notifier = node.notifier(spec)
    assert listener.try_wait() == []
    assert notifier.notify(3) == 1
    notifier.notify(3)
    notifier.notify(0)
    assert sorted(listener.wait(1.0)) == [0, 3, 3]
    assert listener.wait(0.01) == []
    with pytest.raises(TransportError, match=r"outside 0\.\.15"):
        notifier.notify(16)


@pytest.mark.req("REQ_0110")
def test_request_with_streamed_responses_in_process(node: Node) -> None:
    spec = ServiceSpec("t/rpc", BytesPayload(64), BytesPayload(64))
    server, client = node.server(spec), node.client(spec)
    first = client.request(b"one")
    second = client.request(b"two")
    assert first.correlation_id != second.correlation_id
    served = []
    while (req := server.receive()) is not None:
        with req:
            served.append(req.correlation_id)
            for i in range(3):
                req.respond(bytes(req.payload) + b"%d" % i)
    assert served == [first.correlation_id, second.correlation_id]
    for pending, word in ((first, b"one"), (second, b"two")):
        with pending:
            got = [(s.sequence, bytes(s.payload)) for s in pending.responses(2.0)]
            assert got == [(1, word + b"0"), (2, word + b"1"), (3, word + b"2")]
            assert pending.finished and pending.mismatched == 0


@pytest.mark.req("REQ_0110")
def test_request_errors_are_clear(node: Node) -> None:
    spec = ServiceSpec("t/rpc-err", BytesPayload(8), BytesPayload(8))
    client = node.client(spec)
    with pytest.raises(RequestError, match="no server"):
        client.request(b"x")
    server = node.server(spec)
    with pytest.raises(PayloadError, match="limit of 8 B"):
        client.request(b"123456789")
    with client.request(b"late") as pending:
        with pytest.raises(RequestError, match="no end of responses"):
            list(pending.responses(0.2))
    assert server.receive() is not None


@pytest.mark.req("REQ_0110")
def test_request_response_across_processes(node: Node, iox_prefix: str) -> None:
    spec = ServiceSpec("t/rpc-xp", BytesPayload(256), BytesPayload(256))
    ready = SPAWN.Event()
    child = SPAWN.Process(target=serve, args=(iox_prefix, "t/rpc-xp", 2, ready))
    child.start()
    try:
        assert ready.wait(30)
        client = node.client(spec)
        for word in (b"alpha", b"beta"):
            with client.request(word) as pending:
                got = [bytes(s.payload) for s in pending.responses(10.0)]
                assert got == [word.upper() + b"#%d" % i for i in range(3)]
        child.join(10)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
            child.join()


@pytest.mark.req("REQ_0114")
def test_a_signal_during_a_wait_is_a_spurious_wakeup(node: Node) -> None:
    d = ChannelDescriptor("t/sig", Direction.INBOUND, codec="json")
    reader: ChannelReader[object] = ChannelReader(node, d)
    writer: ChannelWriter[object] = ChannelWriter(node, d)
    result: list[object] = []
    waiting = threading.Event()

    def wait() -> None:
        waiting.set()
        try:
            got = reader.recv(30.0)
            result.append(got.value if got is not None else None)
        except BaseException as exc:  # what the fix prevents: ListenerWaitError(InterruptSignal)
            result.append(exc)

    previous = signal.signal(signal.SIGUSR1, lambda *_: None)
    try:
        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        waiting.wait(5)
        for _ in range(5):  # interrupt the waiting thread's system call, several times
            time.sleep(0.02)
            assert thread.ident is not None
            signal.pthread_kill(thread.ident, signal.SIGUSR1)
        assert not result  # still waiting: no exception, no early None
        writer.send("after the signals")
        thread.join(10)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert result == ["after the signals"]
