"""Waiting helpers shared by the suite's test folders (importable: tests/ is on sys.path).

Bounds are generous: the suite runs on 2 busy cores, and tests never assert on speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

WAIT_S = 10.0


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT_S) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


def collect(reader: Any, count: int, timeout: float = WAIT_S) -> list[Any]:
    """Receive up to ``count`` items from a ChannelReader, waiting at most ``timeout`` in total."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and (left := deadline - time.monotonic()) > 0:
        item = reader.recv(min(left, 0.2))
        if item is not None:
            got.append(item)
    return got


def settle(reader: Any, quiet_s: float = 0.2) -> list[Any]:
    """Everything ``reader`` delivers until it stays quiet for ``quiet_s``."""
    got: list[Any] = []
    while (item := reader.recv(quiet_s)) is not None:
        got.append(item)
    return got
