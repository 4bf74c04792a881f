"""The cycle takes its outputs itself (``takes_outbound`` + ``ctx.drain``): while the gateway's
dispatcher is connected its outbound thread is not woken per written frame, and every frame is
counted once - forwarded (taken by the cycle: on the bus, ``overwritten`` by a later value of
the same cycle, or ``discarded_safe``) or dropped by one cause - through pause/resume, a
reconnect and the connector's own Down and re-bring-up."""

from __future__ import annotations

import threading
import time
from typing import Any

import attrs
import pytest
from polling import wait_until
from taktora.actors.models.health import HealthState
from taktora.connectors import ChannelReader, ChannelWriter
from taktora.connectors.ethercat.connector import EthercatConnector
from taktora.connectors.ethercat.sim import SimProcess
from taktora.connectors.gateway.dispatcher import Dispatcher
from taktora.connectors.model import Direction
from taktora.transport import Node

from .test_connector import DIO, chan, options, until

pytestmark = [pytest.mark.root, pytest.mark.slow]


def cpu_s(thread: threading.Thread) -> float:
    """CPU time the thread has used so far (its own clock)."""
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def balanced(writer: ChannelWriter[Any], disp: Dispatcher) -> bool:
    """The loss equation of the outbound channel: written = forwarded + dropped."""
    stats = disp.stats()
    return writer.stats().sent == stats.outbound_forwarded + sum(stats.outbound_dropped.values())


@pytest.mark.req("REQ_0828", "REQ_0550")
def test_outputs_are_drained_by_the_cycle_and_every_frame_is_counted_once(pair, iox_prefix):
    master, sim_end = pair
    # a deep queue: a cycle starved for a while on busy cores still finds every frame queued
    do = attrs.evolve(chan("do", Direction.OUTBOUND, 0, 0, 8), buffer_size=8192)
    di = chan("di", Direction.INBOUND, 0, 0, 8)
    with SimProcess(sim_end, [DIO]) as sim, Node("app", prefix=iox_prefix) as node:
        conn = EthercatConnector("ec", options(master))
        disp = Dispatcher(iox_prefix, conn, [do, di], name="ec-take").start()
        writer: ChannelWriter[Any] = ChannelWriter(node, do)
        reader: ChannelReader[Any] = ChannelReader(node, di)
        try:
            [out_thread] = [t for t in threading.enumerate() if t.name == "ec-take-out"]
            before = cpu_s(out_thread)
            for k in range(5000):  # a high rate: many values per 2 ms cycle
                writer.send(bytes([k % 251]))
                if k % 100 == 99:
                    time.sleep(0.001)
            writer.send(b"\x5a")
            assert until(reader, b"\x5a")  # the latest value reached the bus (looped back)
            assert wait_until(lambda: balanced(writer, disp))
            stats = disp.stats()
            assert dict(stats.outbound_dropped) == {}  # all taken by the cycle
            assert stats.outbound_forwarded == 5001 == conn.stats()["sent"]
            assert conn.stats()["overwritten"] > 0  # several values in one cycle: the last won
            # the outbound thread was not woken per frame: it used (next to) no CPU meanwhile
            assert cpu_s(out_thread) - before < 0.02

            disp.pause()  # what the gateway actor does on Pause
            conn.on_pause(True)
            for k in range(200):
                writer.send(bytes([k]))
            # the cycle drains them while paused: counted ``paused`` (pause acts when taken)
            assert wait_until(lambda: disp.stats().outbound_dropped.get("paused") == 200)
            assert balanced(writer, disp)
            disp.resume()
            conn.on_pause(False)
            assert until(reader, b"\x00")  # the safe outputs, looped back (current inputs)
            writer.send(b"\x3c")
            assert until(reader, b"\x3c")

            stop = threading.Event()

            def traffic() -> None:  # writes throughout the reconnects below
                k = 0
                while not stop.is_set():
                    writer.send(bytes([k % 200 + 1]))
                    k += 1
                    time.sleep(0.001)

            t = threading.Thread(target=traffic, name="ec-traffic")
            t.start()
            try:
                disp.disconnect()  # a gateway's reconnect: close, then open again
                assert wait_until(lambda: disp.stats().outbound_dropped.get("down", 0) > 0)
                disp.connect()  # a fresh bring-up; the cycle drains the channel again
                sent = conn.stats()["sent"]
                assert wait_until(lambda: conn.stats()["sent"] > sent)
                sim.command(op="safeop", position=0, code=0x001B)  # the connector's own Down ...
                assert wait_until(lambda: conn.stats()["left_op"] >= 1)
                assert wait_until(lambda: conn.health() is HealthState.UP)  # ... and re-bring-up
                sent = conn.stats()["sent"]
                assert wait_until(lambda: conn.stats()["sent"] > sent)
            finally:
                stop.set()
                t.join()
            writer.send(b"\xa5")
            assert until(reader, b"\xa5")
            assert wait_until(lambda: balanced(writer, disp))
            stats = disp.stats()
            # each frame by one cause; overflow only if a bring-up outlasted the queue
            assert set(stats.outbound_dropped) <= {"paused", "down", "link_down", "send_error",
                                                   "overflow"}
            assert stats.outbound_forwarded == conn.stats()["sent"]  # each taken by the cycle
        finally:
            writer.close()
            reader.close()
            assert disp.stop().clean
