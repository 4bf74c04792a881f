"""The cycle's clock: a periodic timerfd programmed once (drift-free ticks, skipped ones
counted), or with ``free_running`` back to back; the cycle thread's timer slack is 1 ns."""

from __future__ import annotations

import select
import time

import attrs
import pytest
from polling import wait_until
from taktora.actors.models.health import HealthState
from taktora.connectors.ethercat.connector import EthercatConnector
from taktora.connectors.ethercat.pacing import Pacer
from taktora.connectors.ethercat.sim import SimProcess
from taktora.connectors.model import Direction

from .contexts import TakingContext
from .test_connector import DIO, chan, options


@pytest.mark.req("REQ_0829")
def test_the_pacer_counts_ticks_and_the_skipped_ones():
    period = 0.002
    pacer = Pacer(period)
    try:
        time.sleep(10 * period)  # several ticks elapse before the first read: skipped
        assert select.select([pacer], [], [], 5.0)[0]
        before = time.monotonic_ns()
        pacer.consume(pacer.fileno())
        after = time.monotonic_ns()
        assert pacer.due and pacer.ticks >= 2 and pacer.missed == pacer.ticks - 1
        # the tick this run belongs to: the latest one elapsed at the read
        assert before - pacer.period_ns < pacer.scheduled_ns <= after
        assert (pacer.scheduled_ns - pacer.first_ns) % pacer.period_ns == 0  # drift-free grid
        pacer.consume(pacer.fileno())  # nothing due yet (it never blocks)
        assert not pacer.due
    finally:
        pacer.close()
        pacer.close()  # idempotent


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.req("REQ_0829", "REQ_0828")
def test_a_free_running_cycle_runs_back_to_back(pair):
    master, sim_end = pair
    do, di = chan("do", Direction.OUTBOUND, 0, 0, 8), chan("di", Direction.INBOUND, 0, 0, 8)
    slow = attrs.evolve(options(master), cycle_s=1.0)  # paced, this would be 1 cycle per s
    with SimProcess(sim_end, [DIO]):
        conn = EthercatConnector("ec", attrs.evolve(slow, free_running=True))
        conn.open(ctx := TakingContext([do, di]))
        try:
            assert conn.health() is HealthState.UP
            assert wait_until(lambda: conn.stats()["cycles"] >= 200)
            assert conn.period_err_ns == [] and conn.missed_ticks() == 0
            ctx.write("do", b"\x2a")
            assert wait_until(lambda: ("di", b"\x2a") in [ctx.next(0.05) for _ in range(3)])
            assert conn._thread is not None
            with open(f"/proc/{conn._thread.native_id}/timerslack_ns") as f:
                assert int(f.read()) == 1  # woken on time, not up to 50 us late
        finally:
            conn.close()
        assert conn.missed_ticks() == 0
