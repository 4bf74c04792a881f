"""Health state machine (ARCH_0012), worst-of, monitor actor."""

from __future__ import annotations

import itertools
import threading

import pytest
from actorkit import MODES, open_system
from taktora.actors.control.health_monitor import (
    HealthMonitor,
    ReportHealth,
    Subscribe,
    Unsubscribe,
)
from taktora.actors.control.messages import ErrorKind, ErrorReply, GetHealth, HealthReply
from taktora.actors.control.supervision import ChildSpec
from taktora.actors.errors import ActorError, ControlError
from taktora.actors.models.health import TRANSITIONS, HealthEvent, HealthMachine, HealthState, worst_of

C, U, G, D = HealthState.CONNECTING, HealthState.UP, HealthState.DEGRADED, HealthState.DOWN

LEGAL = {(C, U), (C, G), (C, D), (U, G), (U, D), (G, U), (G, C), (G, D), (D, C)}


@pytest.mark.req("REQ_0320")
def test_transition_table_is_exactly_arch_0012():
    assert {(a, b) for a, bs in TRANSITIONS.items() for b in bs} == LEGAL
    for a in HealthState:
        for b in HealthState:
            if a is b:
                continue
            m = HealthMachine("s")
            path = {C: [], U: [U], G: [G], D: [D]}[a]
            for step in path:
                m.transition(step)
            if (a, b) in LEGAL:
                assert m.transition(b).state is b
            else:
                with pytest.raises(ActorError, match="illegal health transition"):
                    m.transition(b)
                assert m.state is a


@pytest.mark.req("REQ_0321")
def test_subscribers_receive_every_event_in_order():
    ticks = iter(range(100, 200))
    m = HealthMachine("gw", clock_ns=lambda: next(ticks))
    got: list[HealthEvent] = []
    m.subscribe(got.append, replay=True)
    m.subscribe(lambda e: 1 / 0)  # a failing subscriber does not stop the others
    for s, why in [(U, "connected"), (G, "puback timeout"), (C, "recovery"), (D, "failed"),
                   (C, "backoff elapsed"), (U, "connected")]:
        m.transition(s, why)
    assert m.transition(U) is None  # same state: no event
    assert [(e.previous, e.state, e.reason) for e in got] == [
        (None, C, "created"), (C, U, "connected"), (U, G, "puback timeout"),
        (G, C, "recovery"), (C, D, "failed"), (D, C, "backoff elapsed"), (C, U, "connected")]
    assert all(e.source == "gw" for e in got)
    assert [e.timestamp_ns for e in got] == sorted(e.timestamp_ns for e in got)
    assert m.subscriber_errors == 6
    m.unsubscribe(got.append)
    m.transition(D)
    assert got[-1].state is U


@pytest.mark.req("REQ_0321")
def test_machine_is_thread_safe():
    m = HealthMachine()
    got: list[HealthEvent] = []
    m.subscribe(got.append)

    def flap() -> None:
        for _ in range(300):
            for s in (U, D, C):
                try:
                    m.transition(s)
                except ActorError:
                    pass

    threads = [threading.Thread(target=flap) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for prev, cur in itertools.pairwise(got):
        assert cur.previous is prev.state
        assert (cur.previous, cur.state) in LEGAL


@pytest.mark.req("REQ_0322")
def test_worst_of():
    assert worst_of([U, U]) is U
    assert worst_of([U, C]) is C
    assert worst_of([U, G]) is G
    assert worst_of([U, D]) is G  # some down while another is up: degraded
    assert worst_of([D, D]) is D
    assert worst_of([D, C]) is D
    assert worst_of([U, D, C]) is G
    with pytest.raises(ActorError):
        worst_of([])


@pytest.mark.req("REQ_0320")
def test_invalid_event_fields_are_rejected():
    with pytest.raises(ControlError, match="state"):
        HealthEvent(state="up", previous=None)  # type: ignore[arg-type]
    with pytest.raises(ControlError, match="state"):
        ReportHealth(source="x", state="up")  # type: ignore[arg-type]


@pytest.mark.req("REQ_0323")
@pytest.mark.parametrize("mode", MODES)
def test_monitor_actor(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(ChildSpec(id="hm", start=HealthMonitor, args={"sources": ["a", "b"]}))
        r = h.control("hm", GetHealth())
        assert isinstance(r, HealthReply) and r.state is C
        h.control("hm", Subscribe())
        for src, st in [("a", U), ("b", U), ("b", D)]:
            assert h.control("hm", ReportHealth(source=src, state=st, reason=f"{src}->{st.value}")
                             ).detail == ""
        bad = h.control("hm", ReportHealth(source="a", state=C))
        assert isinstance(bad, ErrorReply) and bad.kind is ErrorKind.REJECTED
        r = h.control("hm", GetHealth())
        assert r.state is G and dict(r.sources) == {"a": U, "b": D}
        # the subscriber (this thread's endpoint) got every event, in order
        events = []
        while (m := h.receive(2.0)) is not None:
            if isinstance(m, HealthEvent):
                events.append((m.source, m.previous, m.state))
            if len(events) == 3:
                break
        assert events == [("a", C, U), ("b", C, U), ("b", U, D)]
        h.control("hm", Unsubscribe())
        h.control("hm", ReportHealth(source="b", state=C))
        assert h.receive(0.3) is None
