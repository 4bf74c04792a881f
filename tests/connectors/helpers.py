"""Shared helpers of the connector tests (importable by spawned children too)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from taktora.connectors import ChannelDescriptor, ChannelReader, ChannelWriter, Received
from taktora.transport import Node

WAIT_S = 10.0  # generous: the suite runs on 2 busy cores; tests never assert on speed


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def collect(reader: ChannelReader[Any], count: int, timeout: float = WAIT_S) -> list[Received[Any]]:
    """Receive up to ``count`` values, waiting at most ``timeout`` seconds in total."""
    got: list[Received[Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        item = reader.recv(min(left, 0.2))
        if item is not None:
            got.append(item)
    return got


def settle(reader: ChannelReader[Any], quiet_s: float = 0.2) -> list[Received[Any]]:
    """Receive until nothing more arrives for ``quiet_s`` seconds (to check that no extra
    values come)."""
    got: list[Received[Any]] = []
    while (item := reader.recv(quiet_s)) is not None:
        got.append(item)
    return got


def child_writer(descriptor: ChannelDescriptor, count: int, ready: Any, done: Any) -> None:
    """Spawned child: wait for the parent's reader, send ``count`` JSON values, wait for done."""
    prefix = os.environ["TAKTORA_IOX_PREFIX"]
    with Node("child-writer", prefix=prefix) as node:
        writer: ChannelWriter[Any] = ChannelWriter(node, descriptor)
        ready.wait(30)
        for i in range(count):
            writer.send({"i": i, "pid": os.getpid()})
        done.wait(30)
