"""Test actors and helpers shared by tests/actors (importable: actors pickle by reference)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from taktora.actors.control.base import TaktoraActor, handles
from taktora.actors.control.messages import (
    ChildInfo,
    Configure,
    GetStats,
    Pause,
    Resume,
    Shutdown,
    StatsReply,
)
from taktora.actors.control.supervision import SupervisorSpec
from taktora.system.bootstrap import QUIET_LOGGING, ActorSystemHandle, start_system

MODES = ["inprocess", "multiprocess"]


class Worker(TaktoraActor):
    """Pause -> Ack; Resume -> raises (a crash); Shutdown -> normal exit; GetStats -> pid."""

    def on_start(self) -> None:
        self.paused = 0
        if self.args.get("fail_start"):
            raise RuntimeError("fail_start")

    @handles(Pause)
    def _pause(self, msg: Pause, sender: Any) -> Any:
        self.paused += 1
        return self.ack(msg)

    @handles(Resume)
    def _boom(self, msg: Resume, sender: Any) -> Any:
        raise RuntimeError("boom")

    @handles(Shutdown)
    def _bye(self, msg: Shutdown, sender: Any) -> Any:
        self.send(sender, self.ack(msg))
        self.exit_normally()
        return None

    @handles(GetStats)
    def _stats(self, msg: GetStats, sender: Any) -> Any:
        return StatsReply(correlation_id=msg.correlation_id, source=self.name,
                          stats={"pid": os.getpid(), "paused": self.paused})

    @handles(Configure)
    def _configure(self, msg: Configure, sender: Any) -> Any:
        from taktora.actors.errors import ControlError

        if "bad" in msg.settings:
            raise ControlError("setting 'bad' is not supported")
        return self.ack(msg)


def open_system(mode: str, port: int, root: SupervisorSpec | None = None) -> ActorSystemHandle:
    return start_system(mode, admin_port=port if mode == "multiprocess" else None,  # type: ignore[arg-type]
                        logging_config=QUIET_LOGGING,
                        root=root or SupervisorSpec(intensity=20, period_s=5.0))


def wait_for(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


def node(h: ActorSystemHandle, path: str) -> ChildInfo:
    found = h.tree().find(tuple(path.split("/")))
    assert found is not None, path
    return found


def events_after(h: ActorSystemHandle, path: str, n: int) -> tuple[str, ...]:
    return node(h, path).events[n:]


def iter_nodes(info: ChildInfo) -> Iterator[ChildInfo]:
    yield info
    for c in info.children:
        yield from iter_nodes(c)


class FakeExecutor:
    """A stand-in with the executor API (run / stoppable().stop() / monitor_snapshot)."""

    def __init__(self, fail_after: float | None = None) -> None:
        import threading

        self._stop = threading.Event()
        self.fail_after = fail_after
        self.cycles = 0

    def run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(0.01):
            self.cycles += 1
            if self.fail_after is not None and time.monotonic() - t0 > self.fail_after:
                raise RuntimeError("item failed")

    def stoppable(self) -> FakeExecutor:
        return self

    def stop(self) -> None:
        self._stop.set()

    def monitor_snapshot(self) -> dict[str, Any]:
        return {"cycles": self.cycles}


def fake_executor() -> FakeExecutor:
    return FakeExecutor()


def failing_executor() -> FakeExecutor:
    return FakeExecutor(fail_after=0.2)


def real_executor() -> Any:
    from taktora.actors.executor.execution_monitor import ExecutionMonitor
    from taktora.actors.executor.executor import Executor

    return Executor("itemhost-test", monitor=ExecutionMonitor())
