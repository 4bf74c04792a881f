"""QoS mapping onto zenoh publisher options, sealed queries, pause/resume and per key
expression counters; the config's validation."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest
import zenoh
from taktora.connectors import (
    ChannelDescriptor,
    ChannelReader,
    ChannelWriter,
    Congestion,
    ConnectorError,
    Direction,
    Dispatcher,
    HealthState,
    QoS,
    Reliability,
    Routing,
)
from taktora.connectors.testing import RecordingContext
from taktora.connectors.zenoh import (
    ZenohConfig,
    ZenohConnector,
    ZenohQuerier,
    ZenohQueryable,
    ZenohQueryConnector,
    ZenohSession,
    publisher_options,
    query_channels,
)
from taktora.connectors.zenoh.errors import ZenohConfigError
from taktora.transport import FrameKind, Node
from zenoh_harness import PlainPeer, collect, endpoint, wait_until, zchan
from zenoh_plain import config as plain_config


@pytest.fixture
def plain_session() -> Iterator[tuple[str, Any]]:
    """A plain zenoh session in this process (another zenoh runtime user), listening."""
    ep = endpoint()
    s = zenoh.open(plain_config(listen=ep))
    try:
        yield ep, s
    finally:
        s.close()


@pytest.mark.req("REQ_0605")
def test_qos_of_the_descriptor_reaches_zenoh_receivers(iox_prefix: str,
                                                       plain_session: tuple[str, Any]) -> None:
    ep, plain = plain_session
    qos = QoS(priority=1, congestion=Congestion.BLOCK, express=True,
              reliability=Reliability.BEST_EFFORT)
    assert publisher_options(qos) == {"priority": zenoh.Priority.REAL_TIME,
                                      "congestion_control": zenoh.CongestionControl.BLOCK,
                                      "express": True,
                                      "reliability": zenoh.Reliability.BEST_EFFORT}
    assert publisher_options(QoS())["priority"] == zenoh.Priority.DATA  # 5 = zenoh's default
    got: queue.Queue[Any] = queue.Queue()
    sub = plain.declare_subscriber(
        "qos/**", zenoh.handlers.Callback(
            lambda s: got.put((str(s.key_expr), s.priority, s.congestion_control, s.express)),
            indirect=False))
    fast = zchan("qos/fast", Direction.OUTBOUND, "qos/fast", qos=qos)
    slow = zchan("qos/slow", Direction.OUTBOUND, "qos/slow", qos=QoS(priority=7))
    disp = Dispatcher(iox_prefix, ZenohConnector(ZenohConfig(connect=(ep,))), [fast, slow],
                      name="gw-q").start()
    try:
        with Node("app", prefix=iox_prefix) as node:
            wf: ChannelWriter[Any] = ChannelWriter(node, fast)
            ws: ChannelWriter[Any] = ChannelWriter(node, slow)
            assert wait_until(lambda: disp.connector.health() is HealthState.UP)
            seen: dict[str, Any] = {}

            def both() -> bool:
                wf.send(b"f")
                ws.send(b"s")
                while not got.empty():
                    item = got.get()
                    seen[item[0]] = item[1:]
                return len(seen) == 2

            assert wait_until(both)
    finally:
        sub.undeclare()
        assert disp.stop().clean
    assert seen["qos/fast"] == (zenoh.Priority.REAL_TIME, zenoh.CongestionControl.BLOCK, True)
    assert seen["qos/slow"] == (zenoh.Priority.BACKGROUND, zenoh.CongestionControl.DROP, False)


@pytest.mark.req("REQ_0609")
def test_sealed_query_counts_late_replies(iox_prefix: str) -> None:
    ep = endpoint()
    slow = query_channels("slow", "demo/slow_q", side="querier", timeout_s=0.3)
    conn = ZenohQueryConnector(ZenohConfig(listen=(ep,), late_grace_s=2.0))
    disp = Dispatcher(iox_prefix, conn, slow.descriptors, name="gw-s").start()
    peer = PlainPeer(connect=ep)
    try:
        with Node("app", prefix=iox_prefix) as node:
            assert wait_until(lambda: conn.health() is HealthState.UP)
            querier = ZenohQuerier(node, slow)
            qid = querier.query(b"?")
            replies, end = querier.collect(qid)
            assert replies == [b"early"]
            assert end is FrameKind.REPLY_TIMEOUT
            # the peer replies b"late" 0.8 s after the query: sealed, dropped, counted
            assert wait_until(lambda: conn.stats().get("demo/slow_q|dropped:late_reply") == 1)
            assert wait_until(lambda: conn.in_flight() == 0)  # zenoh finished it after the grace
            assert querier.recv(0.3) is None  # no second terminator, no late data
    finally:
        peer.stop()
        assert disp.stop().clean


@pytest.mark.req("REQ_0607", "REQ_0608")
def test_queries_between_two_taktora_gateways(iox_prefix: str) -> None:
    ep = endpoint()
    prefix_b = f"{iox_prefix}b_"
    ask = query_channels("ask", "svc/add", side="querier", timeout_s=5.0)
    serve = query_channels("serve", "svc/add", side="queryable", timeout_s=5.0)
    disp_a = Dispatcher(iox_prefix, ZenohQueryConnector(ZenohConfig(listen=(ep,))),
                        ask.descriptors, name="gw-a").start()
    disp_b = Dispatcher(prefix_b, ZenohQueryConnector(ZenohConfig(connect=(ep,))),
                        serve.descriptors, name="gw-b").start()
    try:
        with Node("a", prefix=iox_prefix) as na, Node("b", prefix=prefix_b) as nb:
            querier = ZenohQuerier(na, ask)
            server = ZenohQueryable(nb, serve)
            assert wait_until(lambda: disp_a.connector.health() is HealthState.UP)
            ids = [querier.query(f"{i}".encode()) for i in range(3)]
            for _ in ids:
                got = None
                for _ in range(100):
                    got = server.recv(0.1)
                    if got is not None:
                        break
                assert got is not None
                qid, body = got
                server.reply(qid, body + b"+1")
                server.end(qid)
            for i, qid in enumerate(ids):
                replies, end = querier.collect(qid)
                assert (replies, end) == ([f"{i}+1".encode()], FrameKind.REPLY_END)
            # a reply to an ended query is refused and counted
            server.reply(qid, b"stale")
            assert wait_until(lambda: disp_b.connector.stats().get("svc/add|dropped:late_reply") == 1)
            assert disp_b.stats().outbound_dropped.get("send_error") == 1
    finally:
        reports = [disp_a.stop(), disp_b.stop()]
    assert all(r.clean for r in reports)


@pytest.mark.req("REQ_0613")
def test_pause_resume_and_counters_per_key_expression(iox_prefix: str) -> None:
    ep = endpoint()
    session = ZenohSession(ZenohConfig(listen=(ep,)), name="pz")
    peer_session = ZenohSession(ZenohConfig(connect=(ep,)), name="pz2")
    out = zchan("p/data", Direction.OUTBOUND, "p/data")
    inn = zchan("p/data", Direction.INBOUND, "p/data")
    prefix_b = f"{iox_prefix}b_"
    disp_a = Dispatcher(iox_prefix, ZenohConnector(session), [out], name="gw-pa").start()
    disp_b = Dispatcher(prefix_b, ZenohConnector(peer_session), [inn], name="gw-pb").start()
    try:
        with Node("a", prefix=iox_prefix) as na, Node("b", prefix=prefix_b) as nb:
            writer: ChannelWriter[Any] = ChannelWriter(na, out)
            reader: ChannelReader[Any] = ChannelReader(nb, inn)
            assert wait_until(lambda: session.health() is HealthState.UP)
            assert wait_until(lambda: (writer.send(b"probe"), reader.recv(0.1))[1] is not None)
            while reader.recv(0.2) is not None:
                pass
            disp_a.pause()
            for _ in range(5):
                writer.send(b"held?")
            assert wait_until(lambda: disp_a.stats().outbound_dropped.get("paused") == 5)
            disp_a.resume()
            for i in range(10):
                writer.send(f"{i}".encode())
            got = collect(reader, 10)
            assert [g.value for g in got] == [f"{i}".encode() for i in range(10)]
            sa, sb = disp_a.connector.stats(), disp_b.connector.stats()
            assert sa["p/data|out"] == disp_a.stats().outbound_forwarded
            assert sb["p/data|in"] == disp_b.stats().inbound_forwarded
            assert sa["peers"] == 1
    finally:
        reports = [disp_a.stop(), disp_b.stop()]
    assert all(r.clean for r in reports)


@pytest.mark.req("REQ_0614")
def test_config_validation_names_the_field() -> None:
    with pytest.raises(ZenohConfigError, match="mode"):
        ZenohConfig(mode="broker")
    with pytest.raises(ZenohConfigError, match="listen"):
        ZenohConfig(listen=("127.0.0.1:7447",))
    with pytest.raises(ZenohConfigError, match="min_peers"):
        ZenohConfig(min_peers=-1)
    with pytest.raises(ZenohConfigError, match="connect/timeout_ms"):
        ZenohConfig(extra={"connect/timeout_ms": "not json"}).to_zenoh()
    assert ZenohConfig(listen="tcp/127.0.0.1:1").listen == ("tcp/127.0.0.1:1",)


@pytest.mark.req("REQ_0601")
def test_foreign_routings_and_bad_key_expressions_fail_open() -> None:
    conn = ZenohConnector(ZenohConfig())
    with pytest.raises(ConnectorError, match=r"'u/x'.*not 'zenoh'"):
        conn.open(RecordingContext([ChannelDescriptor("u/x", Direction.OUTBOUND,
                                                      routing=Routing("udp", "h:1"))]))
    with pytest.raises(ConnectorError, match=r"'bad'.*key expression"):
        conn.open(RecordingContext([ChannelDescriptor("bad", Direction.INBOUND,
                                                      routing=Routing("zenoh", "a//b"))]))
    assert conn.health() is HealthState.CONNECTING  # nothing was opened
    with pytest.raises(ConnectorError, match="OUTBOUND and one INBOUND"):
        ZenohQueryConnector(ZenohConfig()).open(
            RecordingContext([query_channels("q", "k", side="querier").out]))


@pytest.mark.req("REQ_0608", "REQ_0603")
def test_a_query_the_app_never_ends_expires_at_the_gateway(iox_prefix: str) -> None:
    ep = endpoint()
    prefix_b = f"{iox_prefix}b_"
    ask = query_channels("ask", "svc/mute", side="querier", timeout_s=0.3)
    serve = query_channels("serve", "svc/mute", side="queryable", timeout_s=0.2)
    cfg = {"late_grace_s": 0.2}
    disp_a = Dispatcher(iox_prefix, ZenohQueryConnector(ZenohConfig(listen=(ep,), **cfg)),
                        ask.descriptors, name="gw-a").start()
    disp_b = Dispatcher(prefix_b, ZenohQueryConnector(ZenohConfig(connect=(ep,), **cfg)),
                        serve.descriptors, name="gw-b").start()
    try:
        with Node("a", prefix=iox_prefix) as na, Node("b", prefix=prefix_b) as nb:
            querier = ZenohQuerier(na, ask)
            server = ZenohQueryable(nb, serve)
            assert wait_until(lambda: disp_a.connector.health() is HealthState.UP)
            qid = querier.query(b"?")
            got = None
            for _ in range(100):
                got = server.recv(0.1)
                if got is not None:
                    break
            assert got is not None  # the app got the query and never answers it
            replies, end = querier.collect(qid)
            assert replies == [] and end is FrameKind.REPLY_TIMEOUT
            assert wait_until(lambda: disp_b.connector.stats().get("svc/mute|dropped:expired") == 1)
            server.reply(got[0], b"too late")  # refused: the gateway ended it
            assert wait_until(
                lambda: disp_b.connector.stats().get("svc/mute|dropped:late_reply") == 1)
    finally:
        reports = [disp_a.stop(), disp_b.stop()]
    assert all(r.clean for r in reports)
