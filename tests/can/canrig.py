"""Helpers of the CAN tests: an app + dispatcher + CanConnector rig on python-can buses."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import can
from polling import WAIT_S, collect, settle, wait_until  # noqa: F401 - re-exported
from taktora.connectors import (
    ChannelDescriptor,
    ChannelReader,
    ChannelWriter,
    CodecRegistry,
    Direction,
    Dispatcher,
    HealthEvent,
    HealthState,
)
from taktora.connectors.can import CanBusConfig, CanConnector, can_routing
from taktora.transport import Node


def recv_all(bus: can.BusABC, count: int, timeout: float = WAIT_S) -> list[can.Message]:
    got: list[can.Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and (left := deadline - time.monotonic()) > 0:
        msg = bus.recv(min(left, 0.1))
        if msg is not None:
            got.append(msg)
    return got


def vbus(name: str, channel: str, **kw: Any) -> CanBusConfig:
    return CanBusConfig(name=name, interface="virtual", channel=channel, **kw)


def out(name: str, iface: str, can_id: int, **kw: Any) -> ChannelDescriptor:
    codec = kw.pop("codec", "raw")
    return ChannelDescriptor(name, Direction.OUTBOUND, codec=codec, max_payload=64,
                             buffer_size=64, routing=can_routing(iface, can_id, **kw))


def inp(name: str, iface: str, can_id: int, **kw: Any) -> ChannelDescriptor:
    codec = kw.pop("codec", "raw")
    return ChannelDescriptor(name, Direction.INBOUND, codec=codec, max_payload=64,
                             buffer_size=256, routing=can_routing(iface, can_id, **kw))


class Events:
    """Collects HealthEvents (subscriber callback), thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[HealthEvent] = []

    def __call__(self, event: HealthEvent) -> None:
        with self.lock:
            self.items.append(event)

    def seq(self, source: str | None = None) -> list[tuple[str, str]]:
        with self.lock:
            return [(e.previous.value if e.previous else "-", e.state.value)
                    for e in self.items if source is None or e.source == source]


class Reports:
    """Collects the connector's health reports as the dispatcher hears them, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[HealthState, str]] = []

    def __call__(self, state: HealthState, reason: str) -> None:
        with self.lock:
            self.items.append((state, reason))

    def states(self) -> list[str]:
        with self.lock:
            return [s.value for s, _ in self.items]


class Rig:
    """A CanConnector under a Dispatcher, plus the app's writers and readers; ``reports``
    holds every health report the connector pushed (the dispatcher's ``on_report``)."""

    def __init__(self, prefix: str, buses: Sequence[CanBusConfig],
                 descriptors: Sequence[ChannelDescriptor], *,
                 registry: CodecRegistry | None = None, **conn_kw: Any) -> None:
        self.conn = CanConnector(buses, name="can", **conn_kw)
        self.events = Events()
        self.conn.subscribe(self.events)
        self.reports = Reports()
        self.disp = Dispatcher(prefix, self.conn, descriptors, name="can-gw",
                               registry=registry, poll_s=0.02, on_report=self.reports).start()
        self.node = Node("can-app", prefix=prefix)
        self.writers: dict[str, ChannelWriter[Any]] = {}
        self.readers: dict[str, ChannelReader[Any]] = {}
        for d in descriptors:
            if d.direction is Direction.OUTBOUND:
                self.writers[d.name] = ChannelWriter(self.node, d, registry=registry)
            else:
                self.readers[d.name] = ChannelReader(self.node, d, registry=registry, strict=True)

    def close(self) -> None:
        report = self.disp.stop()
        self.node.close()
        assert report.clean
