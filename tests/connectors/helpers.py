"""Shared helpers of the connector tests (importable by spawned children too)."""

from __future__ import annotations

import os
from typing import Any

from polling import WAIT_S, collect, settle, wait_until  # noqa: F401 - re-exported
from taktora.connectors import ChannelDescriptor, ChannelWriter
from taktora.transport import Node


def child_writer(descriptor: ChannelDescriptor, count: int, ready: Any, done: Any) -> None:
    """Spawned child: wait for the parent's reader, send ``count`` JSON values, wait for done."""
    prefix = os.environ["TAKTORA_IOX_PREFIX"]
    with Node("child-writer", prefix=prefix) as node:
        writer: ChannelWriter[Any] = ChannelWriter(node, descriptor)
        ready.wait(30)
        for i in range(count):
            writer.send({"i": i, "pid": os.getpid()})
        done.wait(30)
