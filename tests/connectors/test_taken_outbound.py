"""Connectors that take their outbound frames from their own loop (``takes_outbound`` +
``ctx.drain``) and connectors that choose envelope or payload per channel (``envelope_on``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from polling import collect, wait_until
from taktora.actors.models.health import HealthState
from taktora.connectors import (
    ChannelDescriptor,
    ChannelReader,
    ChannelWriter,
    Connector,
    ConnectorContext,
    ConnectorError,
    Direction,
    Frame,
)
from taktora.connectors.gateway.dispatcher import Dispatcher
from taktora.transport import Node, envelope
from taktora.transport.envelope import FrameKind

OUT = ChannelDescriptor("out", Direction.OUTBOUND, codec="json", buffer_size=256)
BACK = ChannelDescriptor("back", Direction.INBOUND, codec="json", buffer_size=256)


class Cycle(Connector):
    """A cyclic loop on its own thread that drains ``out`` each cycle and delivers each value
    back on ``back`` (a stand-in for a fieldbus cycle). ``send`` must never be called."""

    carries_envelope = False
    takes_outbound = True

    def __init__(self) -> None:
        self.ctx: ConnectorContext | None = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.taken: list[bytes] = []
        self.drains = 0

    def open(self, ctx: ConnectorContext) -> None:
        self.ctx, self.stop = ctx, threading.Event()
        self.thread = threading.Thread(target=self._loop, args=(ctx, self.stop), daemon=True)
        self.thread.start()
        ctx.report(HealthState.UP, "cycling")

    def _loop(self, ctx: ConnectorContext, stop: threading.Event) -> None:
        def take(descriptor: ChannelDescriptor, frame: Frame) -> None:
            self.taken.append(bytes(frame))
            ctx.deliver("back", frame)

        while not stop.wait(0.001):
            self.drains += 1
            ctx.drain("out", take)

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        raise AssertionError("send called for a connector that takes its outbound frames")

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5)


@pytest.mark.req("REQ_0550")
def test_a_taking_connector_drains_from_its_own_loop(iox_prefix: str) -> None:
    conn = Cycle()
    disp = Dispatcher(None, conn, [OUT, BACK], name="take").open_ports()
    try:
        with Node("app") as node:
            reader: ChannelReader[Any] = ChannelReader(node, BACK)
            writer: ChannelWriter[Any] = ChannelWriter(node, OUT)
            disp.connect()
            for i in range(50):
                writer.send(i)
            got = collect(reader, 50)
            assert [g.value for g in got] == list(range(50))
            assert len(conn.taken) == 50
            disp.disconnect()  # the outbound thread takes over: frames now count 'down'
            for i in range(5):
                writer.send(i)
            assert wait_until(lambda: disp.stats().outbound_dropped.get("down") == 5)
            disp.connect()  # and hands the channel back to the loop
            for i in range(50, 60):
                writer.send(i)
            assert [g.value for g in collect(reader, 10)] == list(range(50, 60))
            stats = disp.stats()
            assert stats.outbound_forwarded == 60 and dict(stats.outbound_dropped) == {"down": 5}
            assert stats.inbound_forwarded == 60
            assert conn.ctx is not None
            with pytest.raises(ConnectorError, match="not an outbound channel"):
                conn.ctx.drain("back", lambda d, f: None)
    finally:
        assert disp.close().clean


@pytest.mark.req("REQ_0550")
def test_a_connector_that_does_not_take_cannot_drain(iox_prefix: str) -> None:
    ctx = ConnectorContext("plain", [OUT], deliver=lambda k, f: True, report=lambda s, r: None)
    with pytest.raises(ConnectorError, match="takes_outbound"):
        ctx.drain("out", lambda d, f: None)


REQ = ChannelDescriptor("req", Direction.OUTBOUND, codec="json", buffer_size=16)
RSP = ChannelDescriptor("rsp", Direction.INBOUND, codec="json", buffer_size=16)


class Mixed(Connector):
    """Payloads on ``out``/``back``, whole envelopes on ``req``/``rsp``: each request comes
    back as a REPLY_DATA frame with the request's correlation id."""

    carries_envelope = False

    def __init__(self) -> None:
        self.ctx: ConnectorContext | None = None
        self.frames: dict[str, list[bytes]] = {"out": [], "req": []}

    def envelope_on(self, descriptor: ChannelDescriptor) -> bool:
        return descriptor.name in ("req", "rsp")

    def open(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        ctx.report(HealthState.UP, "mixed")

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        assert self.ctx is not None
        self.frames[descriptor.name].append(bytes(frame))
        if descriptor.name == "out":
            self.ctx.deliver("back", frame)
            return
        header, payload = envelope.decode(frame)
        self.ctx.deliver("rsp", envelope.encode(payload, codec_id=header.codec_id, sequence=1,
                                                correlation_id=header.correlation_id,
                                                kind=FrameKind.REPLY_DATA, with_crc=True))


@pytest.mark.req("REQ_0549")
def test_envelopes_or_payloads_per_channel(iox_prefix: str) -> None:
    conn = Mixed()
    disp = Dispatcher(None, conn, [OUT, BACK, REQ, RSP], name="mixed").open_ports()
    try:
        with Node("app") as node:
            back: ChannelReader[Any] = ChannelReader(node, BACK)
            rsp: ChannelReader[Any] = ChannelReader(node, RSP)
            out: ChannelWriter[Any] = ChannelWriter(node, OUT)
            req: ChannelWriter[Any] = ChannelWriter(node, REQ)
            disp.connect()
            out.send({"v": 1})
            req.send({"q": 2}, correlation_id=77, kind=FrameKind.QUERY)
            [data] = collect(back, 1)
            [reply] = collect(rsp, 1)
        assert conn.frames["out"] == [b'{"v":1}']  # the payload only
        assert envelope.decode(conn.frames["req"][0])[0].correlation_id == 77  # the envelope
        assert data.value == {"v": 1}
        assert reply.value == {"q": 2} and reply.header.correlation_id == 77
        assert reply.header.kind == FrameKind.REPLY_DATA
    finally:
        assert disp.close().clean


@pytest.mark.req("REQ_0550")
def test_quick_reconnects_hand_the_channels_over_without_waiting(iox_prefix: str) -> None:
    conn = Cycle()
    disp = Dispatcher(None, conn, [OUT, BACK], name="quick").open_ports()
    try:
        with Node("app") as node:
            reader: ChannelReader[Any] = ChannelReader(node, BACK)
            writer: ChannelWriter[Any] = ChannelWriter(node, OUT)
            for i in range(20):  # disconnect + connect back to back: no hand-over may stall
                began = time.monotonic()
                disp.connect()  # a stalled hand-over would wait its 2 s timeout here
                assert time.monotonic() - began < 1.5
                writer.send(i)
                assert [g.value for g in collect(reader, 1)] == [i]
                disp.disconnect()
            stats = disp.stats()
            assert stats.outbound_forwarded == 20 and not dict(stats.outbound_dropped)
    finally:
        assert disp.close().clean
