"""The actor base: dispatch, error replies, message validation and pickling; the item host."""

from __future__ import annotations

import pickle

import pytest
from actorkit import MODES, Worker, node, open_system, wait_for
from taktora.actors.control import messages as m
from taktora.actors.control.item_host import ItemHost, StartExecutor, StopExecutor
from taktora.actors.control.supervision import ChildSpec, SupervisorSpec
from taktora.actors.errors import ControlError, SupervisorError


@pytest.mark.req("REQ_0300")
def test_messages_validate_and_pickle():
    samples = [m.Pause(), m.Resume(), m.Reconnect(), m.GetHealth(), m.GetStats(),
               m.Configure(settings={"rate": 5}), m.Shutdown(), m.GetTree(),
               m.Ack(correlation_id="x"),
               m.ErrorReply(correlation_id="x", kind=m.ErrorKind.REJECTED, message_type="Pause"),
               m.HealthReply(correlation_id="x", source="s", state=m.HealthState.UP),
               m.StatsReply(correlation_id="x", source="s", stats={"n": 1})]
    for s in samples:
        assert pickle.loads(pickle.dumps(s)) == s
    a, b = m.Pause(), m.Pause()
    assert a.correlation_id != b.correlation_id
    with pytest.raises(ControlError, match="settings"):
        m.Configure(settings={1: 2})
    with pytest.raises(ControlError, match="kind"):
        m.ErrorReply(correlation_id="x", kind="rejected", message_type="P")
    with pytest.raises(ControlError, match="path"):
        m.Route(path=("",), message=m.Pause())


@pytest.mark.req("REQ_0300")
def test_supervision_specs_validate():
    with pytest.raises(SupervisorError, match="strategy"):
        SupervisorSpec(strategy="one_for_some")
    with pytest.raises(SupervisorError, match="intensity"):
        SupervisorSpec(intensity=-1)
    with pytest.raises(SupervisorError, match="children"):
        SupervisorSpec(children=[ChildSpec(id="a", start=Worker), ChildSpec(id="a", start=Worker)])
    with pytest.raises(SupervisorError, match="start"):
        ChildSpec(id="a", start="no-colon")
    with pytest.raises(SupervisorError, match="restart"):
        ChildSpec(id="a", start=Worker, restart="sometimes")
    assert SupervisorSpec().intensity == 1 and SupervisorSpec().period_s == 5.0


@pytest.mark.req("REQ_0301")
@pytest.mark.parametrize("mode", MODES)
def test_unknown_and_invalid_messages_get_error_replies(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(ChildSpec(id="w", start=Worker))
        r = h.control("w", m.Reconnect())  # Worker has no Reconnect handler
        assert isinstance(r, m.ErrorReply) and r.kind is m.ErrorKind.UNKNOWN_MESSAGE
        assert r.message_type == "Reconnect"
        r = h.control("w", m.Configure(settings={"bad": 1}))
        assert isinstance(r, m.ErrorReply) and r.kind is m.ErrorKind.REJECTED
        assert "bad" in r.detail
        addr = next(c for c in h.tree().children if c.id == "w")
        assert addr.restarts == 0
        # not a taktora message at all
        h.tell(h.root, "junk")
        r = h.receive(5.0)
        assert isinstance(r, m.ErrorReply) and r.kind is m.ErrorKind.INVALID_MESSAGE
        # the actor is still alive and answering, and was not restarted
        assert isinstance(h.control("w", m.Pause()), m.Ack)
        assert node(h, "w").restarts == 0


@pytest.mark.req("REQ_0302")
@pytest.mark.parametrize("mode", MODES)
def test_item_host_runs_and_controls_an_executor(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(ChildSpec(id="ih", start=ItemHost,
                                args={"factory": "actorkit:fake_executor"}))
        st = wait_for(lambda: (s := h.control("ih", m.GetStats()).stats)["monitor"]["cycles"] > 2
                      and s, what="executor running")
        assert st["running"] is True
        assert h.control("ih", StopExecutor()).detail == "stopped"
        assert h.control("ih", m.GetStats()).stats["running"] is False
        assert h.control("ih", StartExecutor()).detail == "started"
        assert h.control("ih", m.Resume()).detail == "already running"


@pytest.mark.req("REQ_0302")
@pytest.mark.parametrize("mode", MODES)
def test_item_host_crash_of_executor_is_restarted(mode, admin_port):
    with open_system(mode, admin_port,
                     root=SupervisorSpec(intensity=50, period_s=60)) as h:
        h.start_child(ChildSpec(id="ih", start=ItemHost,
                                args={"factory": "actorkit:failing_executor"}))
        wait_for(lambda: node(h, "ih").restarts >= 1, what="item host restarted")
        assert any("executor exited: RuntimeError: item failed" in e for e in h.tree().events)
        h.control("ih", StopExecutor())


@pytest.mark.req("REQ_0302")
def test_item_host_with_the_real_executor(admin_port):
    pytest.importorskip("taktora.actors.executor")
    with open_system("inprocess", admin_port) as h:
        h.start_child(ChildSpec(id="ih", start=ItemHost,
                                args={"factory": "actorkit:real_executor"}))
        stats = h.control("ih", m.GetStats()).stats
        assert stats["running"] is True and "monitor" in stats
        assert h.control("ih", StopExecutor()).detail == "stopped"
