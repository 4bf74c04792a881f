"""The zenoh connectors against a plain eclipse-zenoh program in another process: pub/sub
both ways, queries both ways, client mode through a router process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from taktora.connectors import ChannelReader, ChannelWriter, Direction, Dispatcher, HealthState
from taktora.connectors.zenoh import (
    ZenohConfig,
    ZenohConnector,
    ZenohQuerier,
    ZenohQueryable,
    ZenohQueryConnector,
    ZenohSession,
    query_channels,
)
from taktora.transport import FrameKind, Node
from zenoh_harness import PlainPeer, collect, endpoint, wait_until, zchan

TO_PLAIN = zchan("demo/to_plain", Direction.OUTBOUND, "demo/to_plain")
FROM_PLAIN = zchan("demo/from_plain", Direction.INBOUND, "demo/from_plain")
ASK = query_channels("ask", "demo/plain_q", side="querier", timeout_s=5.0)
SERVE = query_channels("serve", "demo/app_q", side="queryable", timeout_s=5.0)


@attrs.define
class App:
    node: Node
    session: ZenohSession
    data: Dispatcher
    queries: Dispatcher
    peer: PlainPeer


@pytest.fixture
def app(iox_prefix: str) -> Iterator[App]:
    ep = endpoint()
    session = ZenohSession(ZenohConfig(listen=(ep,)), name="app-zenoh")
    data = Dispatcher(iox_prefix, ZenohConnector(session), [TO_PLAIN, FROM_PLAIN], name="gw-data")
    queries = Dispatcher(iox_prefix, ZenohQueryConnector(session),
                         [*ASK.descriptors, *SERVE.descriptors], name="gw-query")
    data.start()
    try:
        queries.start()
        try:
            plain = PlainPeer(connect=ep)
            try:
                with Node("app", prefix=iox_prefix) as node:
                    assert wait_until(lambda: session.health() is HealthState.UP)
                    yield App(node, session, data, queries, plain)
            finally:
                plain.stop()
        finally:
            assert queries.stop().clean
    finally:
        assert data.stop().clean


@pytest.mark.req("REQ_0601", "REQ_0602", "REQ_0603")
def test_plain_zenoh_program_receives_what_the_app_publishes(app: App) -> None:
    writer: ChannelWriter[Any] = ChannelWriter(app.node, TO_PLAIN)
    payloads = [f"frame-{i}".encode() for i in range(20)]
    # the peer's subscriber may need a moment to be routed after the session came up
    assert wait_until(lambda: (writer.send(b"probe"), app.peer.got(1, 0.2))[1] != [])
    for p in payloads:
        writer.send(p)
    got = app.peer.got(len(payloads))
    assert [g for g in got if g != b"probe"] == payloads  # raw payloads: no envelope on the wire
    stats = app.data.connector.stats()
    assert stats["demo/to_plain|out"] >= len(payloads)


@pytest.mark.req("REQ_0601", "REQ_0602", "REQ_0603")
def test_app_receives_what_a_plain_zenoh_program_publishes(app: App) -> None:
    reader: ChannelReader[Any] = ChannelReader(app.node, FROM_PLAIN)
    payloads = [f"plain-{i}".encode() for i in range(20)]
    app.peer.send("publish", "demo/from_plain", payloads)
    got = collect(reader, len(payloads))
    assert [g.value for g in got] == payloads
    assert [g.header.sequence for g in got] == list(range(1, 21))  # fresh envelopes
    assert app.data.connector.stats()["demo/from_plain|in"] == 20


@pytest.mark.req("REQ_0606", "REQ_0607")
def test_app_query_answered_by_a_plain_queryable(app: App) -> None:
    querier = ZenohQuerier(app.node, ASK)
    qid = querier.query(b"hello")
    replies, end = querier.collect(qid)
    assert sorted(replies) == [b"hello-1", b"hello-2", b"hello-3"]
    assert end is FrameKind.REPLY_END
    assert querier.recv(0.2) is None  # exactly one end frame


@pytest.mark.req("REQ_0606", "REQ_0608")
def test_plain_query_answered_by_the_app(app: App) -> None:
    queryable = ZenohQueryable(app.node, SERVE)
    app.peer.send("query", "demo/app_q", b"what", 5.0)
    got = None
    for _ in range(100):
        got = queryable.recv(0.1)
        if got is not None:
            break
    assert got is not None
    qid, body = got
    assert body == b"what" and qid != 0
    queryable.reply(qid, b"a1")
    queryable.reply(qid, b"a2")
    queryable.end(qid)
    assert app.peer.expect("replies")[1] == [b"a1", b"a2"]
