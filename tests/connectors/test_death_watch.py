"""The gateway monitor's death watch: it watches the gateway's process itself (a pidfd) and goes
Down the moment the process dies, once per death, whoever tells it next. Real multi-process
Thespian systems, real UDP gateways, kill -9 of the gateway's own process; the pidfd helpers on
a real child process."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from typing import Any

import pytest
from taktora.actors.control.children import RestartChild, TerminateChild
from taktora.actors.control.messages import Ack, GetStats, StatsReply
from taktora.actors.control.supervision import SupervisorSpec
from taktora.actors.models.health import HealthEvent, HealthState
from taktora.connectors.gateway.group import LINK, MONITOR
from taktora.connectors.gateway.host import ConnectorHost
from taktora.connectors.gateway.messages import InjectCrash
from taktora.connectors.gateway.monitor import DeathWatch, pid_namespace, process_identity

from .helpers import wait_until
from .test_gateway import events_until, stats
from .test_group import killable

C, U, D = HealthState.CONNECTING, HealthState.UP, HealthState.DOWN
WAIT_S = 10.0

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open") or sys.platform != "linux",
                                reason="the death watch needs Linux pidfds")


def monitor_stats(host: ConnectorHost, name: str) -> dict[str, Any]:
    reply = host.handle.control((host.host_id, name, MONITOR), GetStats(), 5.0)
    assert isinstance(reply, StatsReply), reply
    return dict(reply.stats)


def watching(host: ConnectorHost, name: str, **want: Any) -> dict[str, Any]:
    """Wait until the monitor watches the gateway's process and its stats have ``want``."""
    got: dict[str, Any] = {}

    def check() -> bool:
        got.clear()
        got.update(monitor_stats(host, name))
        return bool(got["watching"]) and all(got.get(k) == v for k, v in want.items())

    assert wait_until(check, WAIT_S), got
    return got


def downs(events: list[HealthEvent], name: str) -> list[HealthEvent]:
    return [e for e in events if e.source == name and e.state is D]


@pytest.mark.req("REQ_0324", "REQ_0542")
def test_kill9_one_down_from_the_watch_each_time(admin_port: int, iox_prefix: str) -> None:
    with killable(admin_port, iox_prefix, SupervisorSpec(intensity=20)) as (host, _):
        for n in (1, 2):  # the new incarnation is watched again
            watching(host, "left", watch_downs=n - 1, exits=n - 1)
            host.drain_events()
            os.kill(stats(host, "left")["pid"], signal.SIGKILL)
            events = events_until(host, [("left", D), ("left", C), ("left", U)])
            (down,) = downs(events, "left")
            assert down.previous is U and down.reason == "exited: killed"
            # the group's notice (same process) came too, and made no second Down
            assert wait_until(lambda n=n: monitor_stats(host, "left")["exits"] == n, WAIT_S)
            assert monitor_stats(host, "left")["watch_downs"] == n
            assert not downs(host.drain_events(), "left")


@pytest.mark.req("REQ_0324")
def test_a_crash_is_down_once_by_the_gateways_own_event(admin_port: int,
                                                         iox_prefix: str) -> None:
    with killable(admin_port, iox_prefix, SupervisorSpec(intensity=20)) as (host, _):
        watching(host, "right", watch_downs=0, exits=0)
        host.drain_events()
        host.control("right", InjectCrash())
        events = events_until(host, [("right", D), ("right", C), ("right", U)])
        (down,) = downs(events, "right")  # delivered before the process ended: the watch adds none
        assert down.reason.startswith("crashed")
        assert wait_until(lambda: monitor_stats(host, "right")["exits"] == 1, WAIT_S)
        assert monitor_stats(host, "right")["watch_downs"] == 0
        assert not downs(host.drain_events(), "right")


@pytest.mark.req("REQ_0324")
def test_an_orderly_stop_is_down_once_and_a_restart_is_watched(admin_port: int,
                                                               iox_prefix: str) -> None:
    with killable(admin_port, iox_prefix, SupervisorSpec(intensity=20)) as (host, _):
        watching(host, "left", watch_downs=0)
        host.drain_events()
        group = (host.host_id, "left")
        assert isinstance(host.handle.control(group, TerminateChild(child_id=LINK), 15.0), Ack)
        events = events_until(host, [("left", D)])
        assert [e.reason for e in downs(events, "left")] == ["stopped"]
        assert isinstance(host.handle.control(group, RestartChild(child_id=LINK), 15.0), Ack)
        events = events_until(host, [("left", C), ("left", U)])
        assert not downs(events, "left")
        got = watching(host, "left")  # the restarted gateway's process
        assert got["watch_downs"] == 0 and got["exits"] == 0  # asked to stop: no exit


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


@pytest.mark.req("REQ_0324")
def test_the_watch_tells_a_process_from_a_later_one_with_its_pid() -> None:
    proc = _sleeper()
    try:
        ticks = process_identity(proc.pid, parent=os.getpid())
        assert ticks is not None and process_identity(proc.pid) == ticks
        assert process_identity(proc.pid, parent=proc.pid) is None  # not its parent
        assert pid_namespace() != ""
        watch = DeathWatch()
        assert not watch.watch(proc.pid, ticks + 1)  # same pid, another start: not watched
        assert watch.fd is None
        assert watch.watch(proc.pid, ticks)
        assert watch.fd is not None
        assert watch.exited([watch.fd]) is None  # alive
        proc.kill()
        readable, _, _ = select.select([watch.fd], [], [], WAIT_S)
        assert readable and watch.exited([watch.fd]) == (proc.pid, ticks)
        watch.close()
        assert watch.fd is None and watch.exited([]) is None
    finally:
        proc.kill()
        proc.wait()
    assert process_identity(proc.pid) is None  # reaped: gone
    assert not DeathWatch().watch(proc.pid, ticks)
