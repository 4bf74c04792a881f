"""Gateway groups: the health monitor and the reconnect policy are actors that outlive the
gateway's restarts, and the gateway's counters outlive its process. Real Thespian systems
(in-process and multi-process), real UDP gateways, real iceoryx2; kill -9 of the gateway's own
process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from taktora.actors.control.health_monitor import Subscribe
from taktora.actors.control.messages import (
    Ack,
    ConfigReply,
    Configure,
    ErrorKind,
    ErrorReply,
    GetConfig,
    GetHealth,
    GetStats,
    HealthReply,
    Pause,
    StatsReply,
)
from taktora.actors.control.supervision import SupervisorSpec
from taktora.actors.models.backoff import Backoff
from taktora.actors.models.health import HealthEvent, HealthState
from taktora.connectors.gateway.group import LINK, MONITOR, POLICY
from taktora.connectors.gateway.host import ConnectorHost
from taktora.connectors.gateway.messages import GatewayStopped, InjectCrash
from taktora.connectors.ledger import LossLedger, account, gateway_totals
from taktora.transport import isolation

from .helpers import wait_until
from .test_gateway import App, events_until, open_app, open_system, pair, stats

C, U, G, D = HealthState.CONNECTING, HealthState.UP, HealthState.DEGRADED, HealthState.DOWN


@contextlib.contextmanager
def killable(admin_port: int, iox_prefix: str,
             supervision: SupervisorSpec) -> Iterator[tuple[ConnectorHost, App]]:
    """A multi-process system with the UDP pair and the app, for tests that kill -9."""
    try:
        with open_app(iox_prefix) as app, open_system("multiprocess", admin_port) as handle:
            host = ConnectorHost(handle, pair(), supervision=supervision).start()
            try:
                events_until(host, [("left", U), ("right", U)])
                yield host, app
            finally:
                reports = host.stop()
            # a gateway still restarting answers Shutdown with "restarting" (nothing to stop)
            assert all(r.clean if isinstance(r, GatewayStopped) else "restarting" in r.detail
                       for r in reports), reports
    finally:
        # as in test_gateway: a killed node's files are not always cleaned up by iceoryx2
        isolation.purge_prefix(iox_prefix)


def settled_total(host: ConnectorHost, name: str, key: str, want: int) -> dict[str, Any]:
    """Wait until the gateway's ledger total of ``key`` is ``want``; return its stats."""
    got: dict[str, Any] = {}

    def check() -> bool:
        got.clear()
        got.update(stats(host, name))
        return got.get(f"total.{key}") == want

    assert wait_until(check, 10.0), got
    return got


def monitor_has(host: ConnectorHost, name: str, key: str, want: int) -> None:
    """Wait until the monitor, reading the gateway's counter block itself, sees ``want``."""
    def check() -> bool:
        reply = host.handle.control((host.host_id, name, MONITOR), GetStats(), 5.0)
        return isinstance(reply, StatsReply) and reply.stats.get(f"total.{key}") == want

    assert wait_until(check, 10.0)


@pytest.mark.req("REQ_0540", "REQ_0541")
def test_the_group_runs_monitor_policy_and_gateway(admin_port: int, iox_prefix: str) -> None:
    with killable(admin_port, iox_prefix, SupervisorSpec()) as (mp_host, _):
        _group_shape(mp_host)


def _group_shape(mp_host: ConnectorHost) -> None:
    node = mp_host.handle.tree().find(("connectors", "left"))
    assert node is not None and node.kind == "gateway" and node.strategy == "rest_for_one"
    assert [c.id for c in node.children] == [MONITOR, POLICY, LINK]
    pids = {c.id: c.pid for c in node.children}
    assert len(set(pids.values())) == 3 and os.getpid() not in pids.values()  # own processes
    assert pids[LINK] == stats(mp_host, "left")["pid"]  # "left" still names the gateway


@pytest.mark.req("REQ_0542", "REQ_0543")
def test_kill9_gives_down_at_once_and_the_ledger_keeps_the_counts(admin_port: int,
                                                                  iox_prefix: str) -> None:
    with killable(admin_port, iox_prefix, SupervisorSpec(intensity=20)) as (mp_host, app):
        _kill9_ledger(mp_host, app)


def _kill9_ledger(mp_host: ConnectorHost, app: App) -> None:
    cmds, states = app.roundtrip(20, "before")
    assert len(cmds) == len(states) == 20
    before = settled_total(mp_host, "left", "out.forwarded", 20)
    assert before["out.forwarded"] == 20 and before["incarnations"] == 1
    tree = mp_host.handle.tree()
    monitor_pid = tree.find(("connectors", "left", MONITOR)).pid  # type: ignore[union-attr]
    os.kill(before["pid"], signal.SIGKILL)
    events = events_until(mp_host, [("left", D), ("left", C), ("left", U)])
    down, connecting = [e for e in events if e.source == "left"][-3:-1]
    assert down.previous is U and down.reason == "exited: killed"
    assert connecting.previous is D  # the new incarnation follows the Down
    after = settled_total(mp_host, "left", "out.forwarded", 20)
    assert after["pid"] != before["pid"] and after["out.forwarded"] == 0  # a fresh incarnation
    assert after["incarnations"] == 2 and after["total.in.forwarded"] == 20
    cmds, _ = app.roundtrip(5, "after")
    assert len(cmds) == 5
    settled_total(mp_host, "left", "out.forwarded", 25)
    tree = mp_host.handle.tree()
    group = tree.find(("connectors", "left"))
    assert group is not None and group.restarts == 0  # the gateway alone was restarted
    assert [c.restarts for c in group.children] == [0, 0, 1]
    assert group.children[0].pid == monitor_pid  # the monitor lived on


@pytest.mark.req("REQ_0544")
def test_health_and_stats_answer_while_the_gateway_restarts(admin_port: int,
                                                            iox_prefix: str) -> None:
    slow = SupervisorSpec(intensity=5, backoff=Backoff(initial_s=30.0, max_s=30.0, jitter=0.0))
    with killable(admin_port, iox_prefix, slow) as (host, app):
        app.roundtrip(3, "x")
        pid = settled_total(host, "left", "out.forwarded", 3)["pid"]
        monitor_has(host, "left", "out.forwarded", 3)
        os.kill(pid, signal.SIGKILL)
        events_until(host, [("left", D)])
        health = host.control("left", GetHealth())  # the monitor answers: no not_found
        assert isinstance(health, HealthReply) and health.state is D
        assert health.last_event is not None and health.last_event.reason == "exited: killed"
        reply = host.control("left", Pause())
        assert isinstance(reply, ErrorReply) and reply.kind is ErrorKind.REJECTED
        assert "restarting" in reply.detail
        s = stats(host, "left")  # from the monitor, which reads the gateway's counter block
        assert s["restarting"] is True and s["total.out.forwarded"] == 3
        monitor_has(host, "left", "in.forwarded", 3)


@pytest.mark.req("REQ_0545")
def test_reconnect_attempts_carry_on_across_a_crash(admin_port: int) -> None:
    configs = pair(reconnect=Backoff(initial_s=0.05, max_s=0.1, jitter=0.0))
    inbound = configs[1].channels[0]  # right binds t/cmd's port
    port = int(inbound.routing.address.rsplit(":", 1)[1])
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", port))
    try:
        with open_system("inprocess", admin_port) as handle:
            host = ConnectorHost(handle, configs, supervision=SupervisorSpec(intensity=5)).start()
            try:
                events_until(host, [("right", D), ("right", C), ("right", D), ("right", C),
                                    ("right", D)])
                assert wait_until(lambda: stats(host, "right")["reconnect_attempts"] >= 3)
                before = stats(host, "right")["reconnect_attempts"]
                host.control("right", InjectCrash())
                # the restarted gateway fails to connect again: the policy, which lived on,
                # hands out the next attempt number instead of starting again at 1
                got: list[HealthEvent] = []

                def attempt_after_crash() -> bool:
                    e = host.next_event(0.2)
                    if e is not None and e.source == "right":
                        got.append(e)
                    return any(e.reason.startswith("reconnect attempt ") and
                               int(e.reason.rsplit(" ", 1)[1]) > before for e in got)

                assert wait_until(attempt_after_crash, 10.0), [e.reason for e in got]
                assert all(e.reason != "reconnect attempt 1" for e in got)
                holder.close()
                events_until(host, [("right", U)])
            finally:
                host.stop()
    finally:
        holder.close()


@pytest.mark.req("REQ_0546")
def test_run_time_subscriptions_survive_a_gateway_restart(admin_port: int) -> None:
    with open_system("inprocess", admin_port) as handle:
        host = ConnectorHost(handle, pair(), supervision=SupervisorSpec(intensity=5)).start()
        try:
            events_until(host, [("left", U), ("right", U)])
            me = handle.endpoint()
            assert isinstance(host.control("left", Subscribe(subscriber=me)), Ack)
            host.control("left", InjectCrash())
            seen: list[tuple[Any, Any]] = []
            while len(seen) < 4 and (m := handle.receive(5.0)) is not None:
                if isinstance(m, HealthEvent) and m.source == "left":
                    seen.append((m.previous, m.state))
            assert seen == [(C, U), (U, D), (D, C), (C, U)]  # current state, then the restart
            reply = host.control("left", GetHealth())
            assert isinstance(reply, HealthReply) and reply.state is U
            assert isinstance(host.control("left", Pause()), Ack)
        finally:
            host.stop()


@pytest.mark.req("REQ_0547")
def test_settings_changed_at_run_time_survive_a_gateway_restart(admin_port: int) -> None:
    with open_system("inprocess", admin_port) as handle:
        host = ConnectorHost(handle, pair(), supervision=SupervisorSpec(intensity=5)).start()
        try:
            events_until(host, [("left", U), ("right", U)])
            reply = host.control("left", Configure(settings={"name": "renamed"}))
            assert isinstance(reply, ConfigReply) and reply.how == "reconnect", reply
            events_until(host, [("left", D), ("left", C), ("left", U)])
            host.control("left", InjectCrash())
            events_until(host, [("left", D), ("left", C), ("left", U)])
            after = host.control("left", GetConfig())
            assert isinstance(after, ConfigReply) and after.settings["name"] == "renamed"
        finally:
            host.stop()


def fault_rounds(host: ConnectorHost, app: App, fault: Callable[[], None],
                 rounds: int) -> list[LossLedger]:
    """Data at ~200 Hz both ways while ``fault`` hits gateway "left" ``rounds`` times (each
    followed by Down, Connecting, Up); after each round the writer pauses and both channels'
    equations must hold exactly. Returns the final ledgers."""
    writing, stop = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        i = 0
        try:
            while not stop.is_set():
                if not writing.wait(0.05):
                    continue
                i += 1
                app.cmd_w.send({"cmd": i})
                app.state_w.send({"state": i})
                time.sleep(0.005)
        except BaseException as exc:  # the test fails with it below
            failures.append(exc)

    def ledgers() -> list[LossLedger]:
        for reader in (app.cmd_r, app.state_r):
            for _ in reader.drain():
                pass
        gateways = [gateway_totals(stats(host, "left")), gateway_totals(stats(host, "right"))]
        return [account("t/cmd", writer=app.cmd_w.stats(), gateways=gateways,
                        reader=app.cmd_r.stats()),
                account("t/state", writer=app.state_w.stats(), gateways=gateways,
                        reader=app.state_r.stats())]

    seen: list[LossLedger] = []

    def settled() -> bool:
        seen[:] = ledgers()
        return all(led.holds for led in seen)

    thread = threading.Thread(target=write, name="fault-writer")
    thread.start()
    try:
        for _ in range(rounds):
            writing.set()
            assert wait_until(lambda: app.cmd_w.sequence > 0 and stats(host, "left")
                              .get("out.forwarded", 0) >= 20, 10.0)
            fault()
            events_until(host, [("left", D), ("left", C), ("left", U)])
            # a gap shows when the next frame arrives: write on for a moment, then settle
            time.sleep(0.1)
            writing.clear()
            assert wait_until(settled, 10.0), [str(led) for led in seen]
    finally:
        stop.set()
        thread.join(5.0)
    assert not failures, failures
    final = ledgers()
    assert all(led.holds for led in final), [str(led) for led in final]
    assert any(led.drops for led in final), [str(led) for led in final]  # the faults lost some
    return final


@pytest.mark.req("REQ_0548", "REQ_1120", "REQ_0460")
def test_kill9_ten_times_with_data_flowing_the_equation_holds_each_time(
        admin_port: int, iox_prefix: str) -> None:
    spec = SupervisorSpec(intensity=100, period_s=1.0)
    with killable(admin_port, iox_prefix, spec) as (host, app):
        fault_rounds(host, app, lambda: os.kill(stats(host, "left")["pid"], signal.SIGKILL), 10)
        assert stats(host, "left")["incarnations"] == 11


@pytest.mark.req("REQ_1120")
@pytest.mark.parametrize("mode", ["inprocess", "multiprocess"])
def test_connector_crash_with_data_flowing_the_equation_holds(admin_port: int, iox_prefix: str,
                                                              mode: str) -> None:
    spec = SupervisorSpec(intensity=100, period_s=1.0)
    try:
        with open_app(iox_prefix) as app, open_system(mode, admin_port) as handle:
            host = ConnectorHost(handle, pair(), supervision=spec).start()
            try:
                events_until(host, [("left", U), ("right", U)])
                fault_rounds(host, app, lambda: host.control("left", InjectCrash()), 3)
                assert stats(host, "left")["incarnations"] == 4
            finally:
                host.stop()
    finally:
        isolation.purge_prefix(iox_prefix)
