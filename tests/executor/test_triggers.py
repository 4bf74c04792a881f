"""Each trigger kind wakes its item with the right context."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time

import pytest
from taktora.actors import (
    Control,
    Executor,
    Item,
    TriggerKind,
    deadline,
    every,
    item,
    on_data,
    on_fd,
    on_listener,
    on_request,
    on_response,
)
from taktora.actors.executor.errors import ExecutorError


@pytest.mark.req("REQ_0201")
def test_interval_item_runs_with_tick_times(closing):
    ex = closing(Executor("iv", signals=False))
    ticks: list[int] = []
    ex.add(item(lambda ctx: ticks.append(ctx.scheduled_ns), [every(0.01)], name="tick"))
    ex.run_for(0.25)
    assert len(ticks) >= 10
    # tick times lie on the absolute grid start + k * period
    assert all((b - a) % 10_000_000 == 0 and b > a for a, b in itertools.pairwise(ticks))


@pytest.mark.req("REQ_0201")
def test_item_subclass_and_names_must_be_unique(closing):
    class Counter(Item):
        name = "counter"

        def __init__(self) -> None:
            self.n = 0

        def triggers(self):
            return [every(0.005)]

        def execute(self, ctx):
            self.n += 1
            if self.n == 3:
                ctx.stop()
            return Control.CONTINUE

    ex = closing(Executor("sub", signals=False))
    c = Counter()
    ex.add(c)
    with pytest.raises(ExecutorError, match="already has an item named 'counter'"):
        ex.add(Counter())
    ex.run()
    assert c.n == 3
    with pytest.raises(ExecutorError, match="declares no trigger"):
        ex.add(item(lambda ctx: None, [], name="lonely"))


@pytest.mark.req("REQ_0202")
def test_data_trigger_one_and_several_channels(events, closing):
    a, na = events.pair("t/a")
    b, nb = events.pair("t/b")
    ex = closing(Executor("data", signals=False))
    seen: list[tuple[TriggerKind, object]] = []
    ex.add(item(lambda ctx: seen.append((ctx.kind, ctx.source)), [on_data(a, b)], name="both"))
    na.notify()
    assert ex.run_once(timeout=1.0)
    nb.notify()
    assert ex.run_once(timeout=1.0)
    assert seen == [(TriggerKind.DATA, a), (TriggerKind.DATA, b)]
    assert a.consumed == 1 and b.consumed == 1
    assert not ex.run_once(timeout=0.05)  # wakeups were consumed: no busy loop


@pytest.mark.req("REQ_0202")
def test_data_trigger_rejects_objects_without_listener():
    with pytest.raises(TypeError, match="consume_wakeups"):
        on_data(object())


@pytest.mark.req("REQ_0205")
def test_request_and_response_triggers_name_their_kind(events, closing):
    srv, n_req = events.pair("t/req")
    cli, n_resp = events.pair("t/resp")
    ex = closing(Executor("rr", signals=False))
    kinds: list[TriggerKind] = []
    ex.add(item(lambda ctx: kinds.append(ctx.kind), [on_request(srv)], name="server"))
    ex.add(item(lambda ctx: kinds.append(ctx.kind), [on_response(cli)], name="client"))
    n_req.notify()
    ex.run_once(timeout=1.0)
    n_resp.notify()
    ex.run_once(timeout=1.0)
    assert kinds == [TriggerKind.REQUEST, TriggerKind.RESPONSE]


@pytest.mark.req("REQ_0204")
def test_fd_trigger_with_socket_and_raw_fd(closing):
    r, w = socket.socketpair()
    pr, pw = os.pipe()
    try:
        ex = closing(Executor("fd", signals=False))
        got: list[bytes] = []
        ex.add(item(lambda ctx: got.append(ctx.source.recv(16)), [on_fd(r)], name="sock"))
        ex.add(item(lambda ctx: None, [on_fd(pr, consume=lambda fd: got.append(os.read(fd, 16)))],
                    name="pipe"))
        w.send(b"hello")
        assert ex.run_once(timeout=1.0)
        os.write(pw, b"pipe")
        assert ex.run_once(timeout=1.0)
        assert got == [b"hello", b"pipe"]
        assert not ex.run_once(timeout=0.05)
    finally:
        r.close()
        w.close()
        os.close(pr)
        os.close(pw)


@pytest.mark.req("REQ_0204")
def test_raw_listener_trigger(events, closing):
    port, notifier = events.pair("t/raw")
    ex = closing(Executor("raw", signals=False))
    n = []
    ex.add(item(lambda ctx: n.append(ctx.kind), [on_listener(port.listener)], name="raw"))
    notifier.notify()
    notifier.notify()
    assert ex.run_once(timeout=1.0)
    assert not ex.run_once(timeout=0.05)
    assert n == [TriggerKind.LISTENER]


@pytest.mark.req("REQ_0203")
def test_deadline_misses_are_counted_exactly(events, closing):
    """N silences longer than the timeout (but shorter than twice it) give exactly N misses."""
    port, notifier = events.pair("t/deadline")
    ex = closing(Executor("dl", signals=False))
    timeout = 0.1
    runs: list[bool] = []
    ex.add(item(lambda ctx: runs.append(ctx.missed_deadline), [deadline(port, timeout)],
                name="watched"))
    injected = 3
    stop = threading.Event()

    def feed() -> None:
        for _ in range(injected):
            for _ in range(5):  # healthy traffic: every 20 ms
                notifier.notify()
                time.sleep(0.02)
            time.sleep(timeout * 1.5)  # one injected miss
            notifier.notify()
        time.sleep(0.02)
        stop.set()
        ex.stop()

    t = threading.Thread(target=feed)
    notifier.notify()
    t.start()
    ex.run()
    t.join()
    assert stop.is_set()
    assert ex.stats().item("watched").deadline_misses == injected
    assert runs.count(True) == injected
    assert runs.count(False) >= injected * 5


@pytest.mark.req("REQ_0202")
def test_data_trigger_with_transport_subscriber(closing):
    from taktora.transport import BytesPayload, ChannelSpec, Node

    node = closing(Node())
    spec = ChannelSpec("t/real", payload=BytesPayload(max_size=16))
    pub, sub = node.publisher(spec), node.subscriber(spec)
    ex = Executor("real", signals=False)
    got: list[bytes] = []

    def take(ctx):
        while (s := sub.receive()) is not None:
            with s:
                got.append(bytes(s.payload))

    ex.add(item(take, [on_data(sub)], name="take"))
    closing(ex)
    pub.send_copy(b"abc")
    assert ex.run_once(timeout=1.0)
    assert got == [b"abc"]


@pytest.mark.req("REQ_0205")
def test_request_and_response_triggers_with_real_transport_ports(closing):
    """A server item answers a request; a client item consumes the streamed responses."""
    from taktora.transport import BytesPayload, Node, ServiceSpec

    node = closing(Node())
    spec = ServiceSpec("t/rr-real", BytesPayload(32), BytesPayload(32))
    server, client = node.server(spec), node.client(spec)
    ex = closing(Executor("rr-real", signals=False))
    answers: list[bytes] = []
    pending = []

    def serve(ctx):
        while (req := server.receive()) is not None:
            with req:
                req.respond(bytes(req.payload).upper())
                req.respond(b"done")

    def collect(ctx):
        while (resp := pending[0].receive()) is not None:
            with resp:
                answers.append(bytes(resp.payload))
        if pending[0].finished:
            ctx.stop()

    ex.add(item(serve, [on_request(server)], name="server"))
    ex.add(item(collect, [on_response(client)], name="client"))
    pending.append(client.request(b"ping"))
    ex.run_for(2.0)
    pending[0].close()
    assert answers == [b"PING", b"done"]
