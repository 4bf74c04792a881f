"""Bring-up against a SubDevice that answers late: one overall deadline that is honoured, SOEM's
timeouts from the bus config, the step named, and the gateway actor answering meanwhile."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from polling import WAIT_S, wait_until
from taktora.actors.control.messages import ErrorKind, ErrorReply, GetHealth, HealthReply
from taktora.actors.control.supervision import SupervisorSpec
from taktora.actors.models.backoff import Backoff
from taktora.actors.models.health import HealthState
from taktora.connectors.ethercat import BusConfig, EthercatOptions
from taktora.connectors.ethercat.bus import SoemTimeouts, busy
from taktora.connectors.ethercat.connector import EthercatConnector
from taktora.connectors.ethercat.errors import BringUpError, EthercatError
from taktora.connectors.ethercat.messages import BusState, GetState
from taktora.connectors.ethercat.sim import SimProcess
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.host import ConnectorHost
from taktora.connectors.model import Direction
from taktora.connectors.settings import structure_settings
from taktora.connectors.testing import RecordingContext
from taktora.system.bootstrap import QUIET_LOGGING, start_system

from .test_connector import chan
from .test_gateway_control import wait_event

DIO = str(Path(__file__).resolve().parents[2] / "examples" / "ethercat" / "dio.toml")
U, D, C = HealthState.UP, HealthState.DOWN, HealthState.CONNECTING
SLOW_MS = 5  # answers 5 ms late: with SOEM's default 2 ms datagram timeout, ~2 s to OP
LATE_MS = 10  # answers 10 ms late: with the default 2 ms, SOEM's config_init alone took 42-80 s
DEADLINE_S = 0.5
SLACK_S = 0.5  # the deadline is checked every 50 ms; shared cores add some


@pytest.mark.req("REQ_0824")
def test_soem_timeouts_are_validated_fields_of_the_bus_config():
    assert BusConfig(iface="x").timeouts == SoemTimeouts()  # SOEM's defaults
    with pytest.raises(EthercatError, match="ret"):
        SoemTimeouts(ret=0)
    with pytest.raises(EthercatError, match="rx_mailbox"):
        SoemTimeouts(rx_mailbox=10**9)
    with pytest.raises(EthercatError, match="bring_up_timeout_s"):
        BusConfig(iface="x", bring_up_timeout_s=float("inf"))
    with pytest.raises(EthercatError, match="timeouts"):
        BusConfig(iface="x", timeouts={"ret": 20_000})  # type: ignore[arg-type]
    # from a system file's settings table (cattrs, strict)
    raw = {"bus": {"iface": "x", "bring_up_timeout_s": 3.0, "timeouts": {"ret": 20_000}},
           "bring_up_in_background": True}
    options = structure_settings(EthercatOptions, raw)
    assert options.bus.timeouts.ret == 20_000 and options.bring_up_in_background


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.req("REQ_0824", "REQ_0811")
def test_a_late_subdevice_fails_bring_up_at_the_deadline_and_succeeds_with_a_longer_ret(pair):
    master, sim_end = pair
    with SimProcess(sim_end, [DIO]) as sim:
        sim.command(op="faults", delay_ms=SLOW_MS)
        bus = BusConfig(iface=master, receive_timeout_us=20_000, bring_up_timeout_s=DEADLINE_S)
        conn = EthercatConnector("ec", EthercatOptions(bus=bus, cycle_s=0.002))
        began = time.monotonic()
        with pytest.raises(BringUpError) as err:
            conn.open(ctx := RecordingContext([]))
        took = time.monotonic() - began
        assert took < DEADLINE_S + SLACK_S, took
        message = str(err.value)
        assert f"passed its deadline of {DEADLINE_S} s in step discovery (config_init" in message
        assert "timeouts.ret = 2000 us" in message, message
        assert ctx.reports and ctx.reports[-1][0] is D
        # SOEM's call cannot be interrupted: it runs on and holds the interface until it ends
        if busy(master) is not None:
            with pytest.raises(BringUpError, match="still held by a bring-up"):
                conn.open(RecordingContext([]))
        sim.command(op="faults", delay_ms=0)
        assert wait_until(lambda: busy(master) is None)
        sim.command(op="faults", delay_ms=LATE_MS)
        # the same late SubDevice, with SOEM's datagram timeout above its delay
        bus = BusConfig(iface=master, receive_timeout_us=50_000, bring_up_timeout_s=WAIT_S,
                        timeouts=SoemTimeouts(ret=30_000))
        conn = EthercatConnector("ec", EthercatOptions(bus=bus, cycle_s=0.05))
        conn.open(RecordingContext([]))
        try:
            assert conn.health() is U
            assert conn.get_state() == [(8, 0)]
        finally:
            conn.close()
            SoemTimeouts().apply()  # process-wide: back to the defaults for the other tests


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.req("REQ_0824", "REQ_0819")
def test_the_gateway_actor_answers_while_the_bring_up_runs(pair):
    master, sim_end = pair
    bus = BusConfig(iface=master, receive_timeout_us=20_000, bring_up_timeout_s=2 * DEADLINE_S)
    options = EthercatOptions(bus=bus, cycle_s=0.002, bring_up_in_background=True)
    config = GatewayConfig(name="ec-gw", connector="taktora.connectors.ethercat:EthercatConnector",
                           settings=options, health_poll_s=0.05,
                           channels=(chan("plc_di", Direction.INBOUND, 0, 0, 8),),
                           reconnect=Backoff(initial_s=0.1, max_s=0.2, jitter=0.0))
    with SimProcess(sim_end, [DIO]) as sim, \
            start_system("inprocess", logging_config=QUIET_LOGGING) as handle:
        sim.command(op="faults", delay_ms=SLOW_MS)
        host = ConnectorHost(handle, [config], supervision=SupervisorSpec(intensity=3)).start()
        try:
            began = time.monotonic()
            health = host.control("ec-gw", GetHealth(), timeout=5.0)
            assert isinstance(health, HealthReply) and time.monotonic() - began < SLACK_S
            reply = host.control("ec-gw", GetState(), timeout=5.0)  # refused at once, not queued
            assert isinstance(reply, ErrorReply) and reply.kind is ErrorKind.REJECTED, reply
            assert "bring-up in progress (step " in reply.detail, reply.detail
            assert time.monotonic() - began < SLACK_S
            # the gateway's Down names the reason (one may come without: the gateway saw the
            # link Down before the report's message arrived; the next attempt fails alike)
            deadline = time.monotonic() + WAIT_S
            reasons: list[str] = []
            while not any(f"passed its deadline of {2 * DEADLINE_S} s" in r for r in reasons):
                assert time.monotonic() < deadline, reasons
                reasons += [e.reason for e in wait_event(host, [D], timeout=WAIT_S) if e.state is D]
            sim.command(op="faults", delay_ms=0)  # answers on time again: the next attempt is Up
            wait_event(host, [U])
            state = host.control("ec-gw", GetState())
            assert isinstance(state, BusState) and state.all_op, state
        finally:
            reports = host.stop()
            sim.command(op="faults", delay_ms=0)
            assert wait_until(lambda: busy(master) is None)
    assert all(r.clean for r in reports), reports  # type: ignore[attr-defined]
