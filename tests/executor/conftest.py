"""Helpers for executor tests: raw iceoryx2 event services standing in for transport ports."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from typing import Any

import iceoryx2 as iox
import pytest


class RawPort:
    """A stand-in for a transport port: an iceoryx2 listener plus consume_wakeups()."""

    def __init__(self, listener: Any) -> None:
        self._listener = listener
        self.consumed = 0

    @property
    def listener(self) -> Any:
        return self._listener

    def consume_wakeups(self) -> int:
        n = len(self._listener.try_wait())
        self.consumed += n
        return n


class RawEvents:
    """Creates event services on a private node; ``close()`` deletes everything."""

    def __init__(self) -> None:
        cfg = iox.config.default()
        cfg.global_cfg.prefix = iox.FileName.new(os.environ["TAKTORA_IOX_PREFIX"])
        self.node = iox.NodeBuilder.new().config(cfg).create(iox.ServiceType.Ipc)
        self._objs: list[Any] = []

    def pair(self, name: str) -> tuple[RawPort, Any]:
        svc = self.node.service_builder(iox.ServiceName.new(name)).event().open_or_create()
        listener = svc.listener_builder().create()
        notifier = svc.notifier_builder().create()
        self._objs += [notifier, listener, svc]
        return RawPort(listener), notifier

    def close(self) -> None:
        for o in self._objs:
            if hasattr(o, "delete"):
                o.delete()
        self._objs.clear()
        del self.node
        gc.collect()


@pytest.fixture
def events() -> Iterator[RawEvents]:
    ev = RawEvents()
    yield ev
    ev.close()


@pytest.fixture
def closing() -> Iterator[Callable[[Any], Any]]:
    """Register executors (or anything with close()) to close at teardown, in reverse order."""
    objs: list[Any] = []

    def add(obj: Any) -> Any:
        objs.append(obj)
        return obj

    yield add
    for o in reversed(objs):
        o.close()
