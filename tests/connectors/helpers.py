"""Shared helpers of the connector tests (importable by spawned children too)."""

from __future__ import annotations

import os
import socket
from typing import Any

from polling import WAIT_S, collect, settle, wait_until  # noqa: F401 - re-exported
from taktora.connectors import ChannelDescriptor, ChannelWriter, Direction, Routing
from taktora.transport import Node


def free_udp_port() -> int:
    """A UDP port on loopback that nothing holds right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chan(name: str, direction: Direction, port: int) -> ChannelDescriptor:
    """A small JSON channel routed over UDP on loopback ``port``."""
    return ChannelDescriptor(name, direction, codec="json", max_payload=128, buffer_size=64,
                             routing=Routing("udp", f"127.0.0.1:{port}"))


def child_writer(descriptor: ChannelDescriptor, count: int, ready: Any, done: Any) -> None:
    """Spawned child: wait for the parent's reader, send ``count`` JSON values, wait for done."""
    prefix = os.environ["TAKTORA_IOX_PREFIX"]
    with Node("child-writer", prefix=prefix) as node:
        writer: ChannelWriter[Any] = ChannelWriter(node, descriptor)
        ready.wait(30)
        for i in range(count):
            writer.send({"i": i, "pid": os.getpid()})
        done.wait(30)
