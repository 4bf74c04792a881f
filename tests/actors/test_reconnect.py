"""Reconnect policy: pure policy and actor."""

from __future__ import annotations

import random
import time

import pytest
from actorkit import MODES, open_system
from taktora.actors.control.messages import GetStats, Reconnect, Route
from taktora.actors.control.reconnect_policy import (
    AttemptReconnect,
    ConnectionLost,
    ConnectionUp,
    ReconnectGaveUp,
    ReconnectPolicyActor,
)
from taktora.actors.control.supervision import ChildSpec
from taktora.actors.errors import ActorError
from taktora.actors.models.backoff import Backoff, ReconnectPolicy


@pytest.mark.req("REQ_0330")
def test_exponential_backoff_without_jitter():
    p = ReconnectPolicy(Backoff(initial_s=0.1, max_s=1.0, multiplier=2,
                                                jitter=0, max_attempts=6))
    assert [p.next_delay() for _ in range(7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, None]
    assert p.attempts == 6
    p.reset()
    assert p.next_delay() == 0.1


@pytest.mark.req("REQ_0330")
def test_jitter_is_bounded_and_reproducible():
    s = Backoff(initial_s=1.0, max_s=8.0, jitter=0.5)
    a = ReconnectPolicy(s, rng=random.Random(7))
    b = ReconnectPolicy(s, rng=random.Random(7))
    da = [a.next_delay() for _ in range(5)]
    assert da == [b.next_delay() for _ in range(5)]
    for n, d in enumerate(da, start=1):
        base = min(8.0, 2.0 ** (n - 1))
        assert base <= d <= base * 1.5


@pytest.mark.req("REQ_0330")
def test_reset_after_stable_period():
    now = [0.0]
    p = ReconnectPolicy(Backoff(initial_s=1, jitter=0, reset_after_s=10),
                        clock=lambda: now[0])
    p.next_delay(), p.next_delay()
    p.mark_up()
    now[0] = 5.0
    assert p.next_delay() == 4.0  # up only 5 s: keeps counting
    p.mark_up()
    now[0] = 16.0
    assert p.next_delay() == 1.0  # up 11 s >= 10: starts again


@pytest.mark.req("REQ_0330")
def test_settings_validation_names_the_field():
    with pytest.raises(ActorError, match="initial_s"):
        Backoff(initial_s=0)
    with pytest.raises(ActorError, match="jitter"):
        Backoff(jitter=2)
    with pytest.raises(ActorError, match="max_s"):
        Backoff(initial_s=5, max_s=1)
    with pytest.raises(ActorError, match="max_attempts"):
        Backoff(max_attempts=0)


@pytest.mark.req("REQ_0331")
@pytest.mark.parametrize("mode", MODES)
def test_actor_schedules_attempts_and_ignores_stale_timers(mode, admin_port):
    settings = {"initial_s": 0.2, "max_s": 1.0, "jitter": 0.0, "max_attempts": 2}
    with open_system(mode, admin_port) as h:
        h.start_child(ChildSpec(id="rp", start=ReconnectPolicyActor,
                                args={"settings": settings}))
        def route(msg):
            return h.ask(h.root, Route(path=("rp",), message=msg,
                                       correlation_id=msg.correlation_id))

        def next_notice(timeout):
            t0 = time.monotonic()
            while (m := h.receive(timeout)) is not None:
                if isinstance(m, AttemptReconnect | ReconnectGaveUp):
                    return m, time.monotonic() - t0
            return None, time.monotonic() - t0

        route(ConnectionLost(reason="refused"))
        m, dt = next_notice(3.0)
        assert isinstance(m, AttemptReconnect) and m.attempt == 1 and 0.15 <= dt < 2.0
        # arm attempt 2 then report up before it fires: the armed timer goes stale
        route(ConnectionLost())
        route(ConnectionUp())
        m, _ = next_notice(0.8)
        assert m is None
        stats = route(GetStats()).stats
        assert stats["stale_timers"] == 1 and stats["attempts"] == 2
        route(ConnectionLost())  # attempts exhausted (2): gives up at once
        m, _ = next_notice(2.0)
        assert isinstance(m, ReconnectGaveUp) and m.attempts == 2
        route(Reconnect())  # manual reconnect: an attempt now, counter reset
        m, _ = next_notice(2.0)
        assert isinstance(m, AttemptReconnect) and m.attempt == 0
