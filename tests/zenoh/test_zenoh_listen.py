"""Where Zenoh sessions listen: loopback unless ``allow_remote`` opens them (spec/system.rst,
REQ_0412/REQ_0413). Listeners are read from /proc for this process (tests/listening.py)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import zenoh
from listening import Listener, listeners
from taktora.actors.models.health import HealthState
from taktora.connectors.settings import structure_settings
from taktora.connectors.zenoh import ZenohConfig, ZenohConfigError, ZenohConnector, ZenohSession
from zenoh_harness import endpoint, wait_until


class NoEntities:
    """A declarer with nothing to declare: it only keeps a session open."""

    def declare(self, session: zenoh.Session) -> None:
        pass

    def undeclare(self) -> None:
        pass


def applied_listen(cfg: ZenohConfig) -> Any:
    return json.loads(cfg.to_zenoh().get_json("listen/endpoints"))


def opened(*sessions: ZenohSession) -> set[Listener]:
    """The listeners this process gains while ``sessions`` are open (they are closed after)."""
    before = listeners({os.getpid()})
    declarer = NoEntities()
    for s in sessions:
        s.attach(declarer)
    try:
        return listeners({os.getpid()}) - before
    finally:
        for s in reversed(sessions):
            s.detach(declarer)


@pytest.mark.req("REQ_0412")
def test_an_empty_listen_is_loopback_per_mode_never_zenohs_default() -> None:
    # zenoh 1.10's own default, measured: every interface (this is what must never apply)
    assert json.loads(zenoh.Config().get_json("listen/endpoints")) == {
        "router": ["tcp/[::]:7447"], "peer": ["tcp/[::]:0"]}
    peer, router = ZenohConfig(), ZenohConfig(mode="router")
    client = ZenohConfig(mode="client", connect=("tcp/127.0.0.1:7447",))
    assert applied_listen(peer) == ["tcp/127.0.0.1:0"] == list(peer.listen_endpoints())
    assert applied_listen(router) == ["tcp/127.0.0.1:7447"] == list(router.listen_endpoints())
    assert applied_listen(client) == [] == list(client.listen_endpoints())
    # allow_remote opens what listen names; it never widens the default
    assert applied_listen(ZenohConfig(allow_remote=True)) == ["tcp/127.0.0.1:0"]
    named = ZenohConfig(listen=("tcp/127.0.0.1:7000", "tcp/[::1]:7001"))
    assert applied_listen(named) == ["tcp/127.0.0.1:7000", "tcp/[::1]:7001"]


@pytest.mark.req("REQ_0412")
def test_sessions_opened_with_defaults_listen_on_loopback_only() -> None:
    ep = endpoint()
    port = int(ep.rsplit(":", 1)[1])
    router = ZenohSession(ZenohConfig(mode="router", listen=(ep,), min_peers=0), name="l-router")
    peer = ZenohSession(ZenohConfig(connect=(ep,)), name="l-peer")
    client = ZenohSession(ZenohConfig(mode="client", connect=(ep,)), name="l-client")
    got = opened(router, peer, client)
    # the router's named endpoint, the peer's default (a free loopback port), nothing else: the
    # client listens on nothing, and no session bound UDP (multicast scouting is off)
    assert {(li.proto, li.address) for li in got} == {("tcp", "127.0.0.1")}, got
    assert len(got) == 2 and port in {li.port for li in got}, got
    assert all(li.loopback for li in got)


@pytest.mark.req("REQ_0412")
def test_peers_that_only_connect_still_find_each_other(iox_prefix: str) -> None:
    # the way the suite uses peers: one listens on a named endpoint, the others only connect;
    # they reach each other through gossip and their default loopback listeners (measured:
    # with listen=[] each sees only the listening peer, peers do not route for each other)
    ep = endpoint()
    hub = ZenohSession(ZenohConfig(listen=(ep,), min_peers=0), name="hub")
    a = ZenohSession(ZenohConfig(connect=(ep,), min_peers=2), name="pa")
    b = ZenohSession(ZenohConfig(connect=(ep,), min_peers=2), name="pb")
    declarer = NoEntities()
    for s in (hub, a, b):
        s.attach(declarer)
    try:
        assert wait_until(lambda: a.health() is HealthState.UP and b.health() is HealthState.UP)
        assert a.peer_count() == b.peer_count() == 2
        got: list[bytes] = []
        assert b.session is not None and a.session is not None
        sub = b.session.declare_subscriber("lst/x", lambda s: got.append(s.payload.to_bytes()))
        try:
            assert wait_until(lambda: (a.session.put("lst/x", b"hi"), got)[1] != [])  # type: ignore[union-attr]
        finally:
            sub.undeclare()
    finally:
        for s in (b, a, hub):
            s.detach(declarer)


@pytest.mark.req("REQ_0413")
@pytest.mark.parametrize("listen", [
    "tcp/0.0.0.0:7447", "tcp/[::]:7447", "udp/0.0.0.0:7447", "tcp/192.0.2.2:7447",
    "tcp/[fd00::2]:7447", "tcp/myhost.example:7447", "tls/10.0.0.1:7447", "ws/[::]:80",
])
def test_a_listener_beyond_loopback_is_refused_without_allow_remote(listen: str) -> None:
    with pytest.raises(ZenohConfigError, match=r"field 'listen'.*allow_remote=True"):
        ZenohConfig(listen=("tcp/127.0.0.1:7447", listen))
    assert ZenohConfig(listen=(listen,), allow_remote=True).listen == (listen,)


@pytest.mark.req("REQ_0413")
def test_every_other_route_to_a_listener_beyond_loopback_is_refused() -> None:
    for local in ("tcp/localhost:7447", "tcp/127.0.0.2:7447", "tcp/[::1]:7447",
                  "udp/127.0.0.1:7447", "unixsock-stream//tmp/taktora.sock"):
        assert ZenohConfig(listen=(local,)).listen == (local,)
    with pytest.raises(ZenohConfigError, match=r"field 'multicast_scouting'.*0\.0\.0\.0"):
        ZenohConfig(multicast_scouting=True)
    assert ZenohConfig(multicast_scouting=True, allow_remote=True).multicast_scouting
    # extra writes zenoh paths directly: what it leaves in the config is checked
    for extra in ({"listen/endpoints": '["tcp/0.0.0.0:7447"]'},
                  {"listen/endpoints": '{"peer": ["tcp/10.0.0.1:7447"]}'},
                  {"listen": "{}"},  # back to zenoh's default: every interface
                  {"scouting/multicast/enabled": "true"},
                  {"scouting/multicast": "{}"},  # unset: zenoh's default is on
                  {"plugins_loading/enabled": "true"}):
        with pytest.raises(ZenohConfigError, match=r"field 'extra'.*allow_remote=True"):
            ZenohConfig(extra=extra)
        assert ZenohConfig(extra=extra, allow_remote=True).to_zenoh() is not None
    assert applied_listen(ZenohConfig(extra={"listen/endpoints": '["tcp/127.0.0.1:7448"]'})) == [
        "tcp/127.0.0.1:7448"]
    # a system file's settings table reaches the field (the gateway structures it)
    table = structure_settings(ZenohConfig, {"listen": ["tcp/0.0.0.0:0"], "allow_remote": True})
    assert table.allow_remote and table.listen == ("tcp/0.0.0.0:0",)
    with pytest.raises(Exception) as refused:  # cattrs wraps the class's own error
        structure_settings(ZenohConfig, {"listen": ["tcp/0.0.0.0:0"]})
    errors = getattr(refused.value, "exceptions", [refused.value])
    assert any(isinstance(e, ZenohConfigError) and "field 'listen'" in str(e) for e in errors)


@pytest.mark.req("REQ_0413")
def test_allow_remote_listens_where_it_is_told() -> None:
    # the opt-in does what it says: every interface when the user names it
    session = ZenohSession(ZenohConfig(listen=("tcp/0.0.0.0:0",), allow_remote=True,
                                       min_peers=0), name="open")
    got = opened(session)
    assert [(li.proto, li.address) for li in got] == [("tcp", "0.0.0.0")], got


@pytest.mark.req("REQ_0412")
def test_a_gateway_table_without_listen_listens_on_loopback() -> None:
    # what a bare [[gateways]] table (connector = "zenoh", no settings) builds
    conn = ZenohConnector.from_settings("dflt", structure_settings(ZenohConfig, {}))
    got = opened(conn.zsession)
    assert [(li.proto, li.address) for li in got] == [("tcp", "127.0.0.1")], got
