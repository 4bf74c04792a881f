"""Run-time parameters (spec/params.rst): the merge/validate functions, and ParamsMixin in a small
gateway-like actor with a real UDP connector and dispatcher, in real Thespian systems
(in-process and multi-process). The actor is importable (``connectors.test_params``): the CLI
test starts it under a multi-process system too."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from taktora.actors.control.base import TaktoraActor, handles
from taktora.actors.control.messages import (
    ConfigReply,
    Configure,
    ErrorKind,
    ErrorReply,
    GetConfig,
    GetStats,
    StatsReply,
)
from taktora.actors.control.supervision import ChildSpec, SupervisorSpec
from taktora.actors.errors import ControlError
from taktora.connectors import (
    ChannelDescriptor,
    ChannelWriter,
    Connector,
    ConnectorContext,
    ConnectorError,
    Direction,
    Frame,
    Routing,
)
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.dispatcher import Dispatcher
from taktora.connectors.gateway.params import (
    REDACTED,
    ParamsMixin,
    changed_paths,
    merge_update,
    plan_change,
    redact,
)
from taktora.connectors.udp import UdpConnector, UdpSettings
from taktora.system.bootstrap import QUIET_LOGGING, ActorSystemHandle, start_system
from taktora.transport import Node, isolation
from taktora.transport.validators import AssignChecks

from .helpers import free_udp_port, wait_until

UDP = "taktora.connectors.udp:UdpConnector"
MODES = ["inprocess", "multiprocess"]
PATH = ("connectors", "gw")



def udp_config(out_port: int, *, connector: str = UDP, name: str = "gw",
               in_host: str = "127.0.0.1", allow_remote: bool = False,
               prefix: str | None = None) -> GatewayConfig:
    """One outbound channel to 127.0.0.1:out_port, one inbound on in_host (a free port)."""
    return GatewayConfig(
        name=name, connector=connector, settings={"name": "udp-a", "allow_remote": allow_remote},
        channels=(ChannelDescriptor("p/out", Direction.OUTBOUND, codec="json", max_payload=128,
                                    routing=Routing("udp", f"127.0.0.1:{out_port}")),
                  ChannelDescriptor("p/in", Direction.INBOUND, codec="json", max_payload=128,
                                    routing=Routing("udp", f"{in_host}:{free_udp_port()}"))),
        iox_prefix=prefix)


# ---- the test actor ------------------------------------------------------------------------------
class ParamsGateway(ParamsMixin, TaktoraActor):
    """A gateway reduced to what ParamsMixin needs: a GatewayConfig, its UDP connector on a real
    Dispatcher, and ``reconnect_for_settings`` (disconnect the old connector, connect the new).
    GetStats says which connector runs and how often it was reconnected."""

    def on_start(self) -> None:
        config = self.args["config"]
        assert isinstance(config, GatewayConfig)
        self.config = config
        self.connector = config.build_connector()
        self.reasons: list[str] = []
        self.dispatcher = Dispatcher(config.iox_prefix or isolation.prefix_from_env(),
                                     self.connector, config.channels, name=config.name,
                                     poll_s=config.poll_s)
        self.dispatcher.open_ports()
        self.dispatcher.connect(self.connector)

    def reconnect_for_settings(self, reason: str) -> None:
        self.reasons.append(reason)
        self.dispatcher.disconnect(self.config.shutdown_timeout_s)  # closes the old connector
        self.dispatcher.connect(self.connector)  # the one rebuilt from the new settings

    @handles(GetStats)
    def _stats(self, msg: GetStats, sender: Any) -> StatsReply:
        conn = self.connector
        return StatsReply(correlation_id=msg.correlation_id, source=self.name, stats={
            "pid": os.getpid(), "connector": id(conn), "connector_name": conn.name,
            "allow_remote": getattr(conn, "allow_remote", None), "reconnects": len(self.reasons),
            "reason": self.reasons[-1] if self.reasons else "",
            "sent": dict(conn.stats()).get("sent", 0),
            "live": self.dispatcher.connected})

    def on_stop(self) -> None:
        if hasattr(self, "dispatcher"):
            self.dispatcher.close(self.config.shutdown_timeout_s)


class RefusingUdp(UdpConnector):
    """UDP whose run-time configure refuses any name ``refuse-*``."""

    def configure(self, settings: Any) -> bool:
        if settings.name and settings.name.startswith("refuse"):
            raise ConnectorError(f"connector {self.name!r}: will not be renamed {settings.name!r}")
        return super().configure(settings)


# ---- a connector with nested settings (pure tests) -----------------------------------------------
_v = AssignChecks(ConnectorError)


@attrs.frozen(kw_only=True)
class Inner:
    rate: int = attrs.field(default=1, validator=_v.int_range(1, 10))
    label: str = "a"


@attrs.frozen(kw_only=True)
class NestedSettings:
    flag: bool = False
    inner: Inner = Inner()
    items: tuple[Inner, ...] = (Inner(), Inner(label="b"))
    extra: dict[str, Any] = attrs.field(factory=dict)
    password: str | None = None


class NestedConnector(Connector):
    settings_class = NestedSettings

    @classmethod
    def from_settings(cls, name: str, settings: Any) -> NestedConnector:
        return cls()

    def open(self, ctx: ConnectorContext) -> None:
        pass

    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        pass


def nested_config(**settings: Any) -> GatewayConfig:
    return GatewayConfig(name="n", connector=f"{__name__}:NestedConnector", settings=settings,
                         channels=(ChannelDescriptor("n/in", Direction.INBOUND),))


# ---- pure functions ------------------------------------------------------------------------------
@pytest.mark.req("REQ_1203")
def test_merge_takes_dotted_paths_and_merges_tables() -> None:
    current: dict[str, Any] = {"a": 1, "t": {"x": 1, "y": 2}, "arr": [{"r": 1}, {"r": 2}], "none": None}
    merged = merge_update(current, {"a": 2, "t": {"y": 3}, "arr.1.r": 5, "none.k": 1, "t.z": 0})
    assert merged == {"a": 2, "t": {"x": 1, "y": 3, "z": 0}, "arr": [{"r": 1}, {"r": 5}],
                      "none": {"k": 1}}
    assert current["t"] == {"x": 1, "y": 2} and current["arr"][1] == {"r": 2}  # not mutated
    assert merge_update(current, {"arr": [7]})["arr"] == [7]  # a non-table replaces
    with pytest.raises(ControlError, match=r"settings\.b: unknown key \(valid keys: a, arr"):
        merge_update(current, {"b": 1}, frozenset(current))
    with pytest.raises(ControlError, match=r"settings\.arr\.2: no element '2'"):
        merge_update(current, {"arr.2.r": 1})
    with pytest.raises(ControlError, match=r"settings\.a: is a int, not a table"):
        merge_update(current, {"a.b": 1})
    with pytest.raises(ControlError, match="empty key segment"):
        merge_update(current, {"t..x": 1})


@pytest.mark.req("REQ_1203")
def test_changed_paths_names_the_leaves_that_differ() -> None:
    old = {"a": 1, "t": {"x": 1, "y": 2}, "l": [1, 2], "f": 1.0}
    assert changed_paths(old, old) == ()
    assert changed_paths(old, {**old, "t": {"x": 1, "y": 3}, "l": [1]}) == ("t.y", "l")
    assert changed_paths(old, {**old, "l": [1, 3]}) == ("l.1",)
    assert changed_paths(old, {**old, "f": 1}) == ("f",)  # a type change is a change
    assert changed_paths({"t": {}}, {"t": {"k": 1}}) == ("t.k",)


@pytest.mark.req("REQ_1203", "REQ_1204")
def test_plan_change_structures_and_names_the_key_path() -> None:
    config = nested_config()
    plan = plan_change(config, {"items.1.rate": 3, "inner": {"label": "z"}, "extra.k": "v"})
    assert plan.settings.items[1] == Inner(rate=3, label="b")
    assert plan.settings.inner == Inner(label="z") and plan.settings.extra == {"k": "v"}
    assert plan.changed == ("inner.label", "items.1.rate", "extra.k")
    assert plan_change(config, {"flag": False}).changed == ()
    cases = {
        "items.0.rate": (11, r"settings\.items\.0\.rate=11: expected an int in 1\.\.10"),
        "flag": ("yes", r"settings\.flag: expected bool, got str"),
        "inner.nope": (1, r"settings\.inner: unknown key\(s\) nope"),
        "bogus": (1, r"settings\.bogus: unknown key \(valid keys: extra, flag, inner, items, "
                     r"password\)"),
    }
    for key, (value, pattern) in cases.items():
        with pytest.raises(ControlError, match=pattern) as info:
            plan_change(config, {key: value})
        assert "gateway 'n'" in str(info.value) and "nothing applied" in str(info.value)
    with pytest.raises(ControlError, match="at least one setting"):
        plan_change(config, {})


@pytest.mark.req("REQ_1204")
def test_plan_change_checks_the_channels_against_the_new_settings() -> None:
    config = udp_config(free_udp_port(), in_host="0.0.0.0", allow_remote=True)
    with pytest.raises(ControlError, match=r"cannot serve channel 'p/in'.*not loopback"):
        plan_change(config, {"allow_remote": False})
    assert plan_change(config, {"name": "b"}).changed == ("name",)


@pytest.mark.req("REQ_1209")
def test_secrets_are_redacted_in_replies() -> None:
    assert redact({"password": "pw", "t": [{"token": "x", "a": 1}], "secret": None}) == {
        "password": REDACTED, "t": [{"token": REDACTED, "a": 1}], "secret": None}


class Bare(ParamsMixin):
    """The mixin on a plain object (no actor): handlers called directly."""


def bare(config: GatewayConfig) -> Bare:
    obj = Bare()
    obj.config = config
    obj.connector = config.build_connector()
    return obj


@pytest.mark.req("REQ_1205", "REQ_1206")
def test_mixin_applies_live_and_refuses_a_reconnect_it_cannot_do() -> None:
    obj = bare(udp_config(free_udp_port()))
    first = obj.connector
    reply = obj._configure(Configure(settings={"allow_remote": True}), None)
    assert isinstance(reply, ConfigReply) and reply.how == "live"
    assert reply.applied == ("allow_remote",) and reply.settings["allow_remote"] is True
    assert obj.connector is first and first.allow_remote is True  # type: ignore[attr-defined]
    assert obj.config.connector_settings() == UdpSettings(name="udp-a", allow_remote=True)
    with pytest.raises(ControlError, match="need a reconnect, which this actor cannot do"):
        obj._configure(Configure(settings={"name": "other"}), None)
    assert obj.connector is first and obj.config.connector_settings().name == "udp-a"
    assert obj._get_config(GetConfig(), None).settings == {"name": "udp-a", "allow_remote": True}


class ShutDown(Bare):
    """A gateway that was shut down: its reconnect refuses before touching anything."""

    def reconnect_for_settings(self, reason: str) -> None:
        raise ControlError("gateway 'gw' was shut down")


@pytest.mark.req("REQ_1204", "REQ_1206")
def test_a_refused_reconnect_puts_the_old_config_and_connector_back() -> None:
    obj = ShutDown()
    obj.config = udp_config(free_udp_port())
    obj.connector = first = obj.config.build_connector()
    old_config = obj.config
    with pytest.raises(ControlError, match="was shut down"):
        obj._configure(Configure(settings={"name": "other"}), None)
    assert obj.connector is first and obj.config is old_config


@pytest.mark.req("REQ_1205")
def test_udp_configure_is_live_only_for_allow_remote() -> None:
    conn = UdpConnector.from_settings("g", UdpSettings(name="u"))
    assert conn.configure(UdpSettings(name="u", allow_remote=True)) is True
    assert conn.allow_remote is True
    assert conn.configure(UdpSettings(name="v", allow_remote=True)) is False
    assert UdpConnector("plain").configure(UdpSettings(allow_remote=True)) is False


# ---- real actor systems --------------------------------------------------------------------------
def open_system(mode: str, port: int) -> ActorSystemHandle:
    return start_system(mode, admin_port=port if mode == "multiprocess" else None,  # type: ignore[arg-type]
                        logging_config=QUIET_LOGGING)


def gateway_tree(config: GatewayConfig) -> ChildSpec:
    """``connectors/gw``: the test gateway under a supervisor, as a host would put it."""
    return ChildSpec(id="connectors", start=SupervisorSpec(children=[
        ChildSpec(id=config.name, start=ParamsGateway, args={"config": config})]))


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5.0)
        yield s


def gw_stats(handle: ActorSystemHandle) -> dict[str, Any]:
    reply = handle.control(PATH, GetStats(), timeout=10.0)
    assert isinstance(reply, StatsReply), reply
    return dict(reply.stats)


def configure(handle: ActorSystemHandle, **settings: Any) -> Any:
    return handle.control(PATH, Configure(settings=settings), timeout=15.0)


def datagram_arrives(writer: ChannelWriter[Any], receiver: socket.socket, tag: str) -> bool:
    """Write on p/out until one envelope carrying ``tag`` reaches the receiver socket."""
    def once() -> bool:
        writer.send({"tag": tag})
        try:
            while True:
                receiver.settimeout(0.2)
                if tag.encode() in receiver.recv(65535):
                    return True
        except TimeoutError:
            return False

    return bool(wait_until(once, timeout=10.0))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.req("REQ_1201", "REQ_1202", "REQ_1205", "REQ_1206", "REQ_1207")
def test_gateway_params_in_a_real_system(mode: str, admin_port: int, iox_prefix: str,
                                         receiver: socket.socket) -> None:
    config = udp_config(receiver.getsockname()[1], prefix=iox_prefix)
    with Node("param-app", prefix=iox_prefix) as node, open_system(mode, admin_port) as handle:
        writer: ChannelWriter[Any] = ChannelWriter(node, config.channels[0])
        handle.start_child(gateway_tree(config))
        assert datagram_arrives(writer, receiver, "before")
        reply = handle.control(PATH, GetConfig())
        assert isinstance(reply, ConfigReply), reply
        assert (reply.gateway, reply.connector, reply.how, reply.applied) == ("gw", UDP, "unchanged", ())
        assert reply.settings == {"name": "udp-a", "allow_remote": False}
        before = gw_stats(handle)
        if mode == "multiprocess":
            assert before["pid"] != os.getpid()

        # live: the same connector object, no reconnect
        reply = configure(handle, allow_remote=True)
        assert isinstance(reply, ConfigReply), reply
        assert (reply.how, reply.applied) == ("live", ("allow_remote",))
        assert reply.settings == {"name": "udp-a", "allow_remote": True}
        after = gw_stats(handle)
        assert after["connector"] == before["connector"] and after["reconnects"] == 0
        assert after["allow_remote"] is True

        # through a reconnect: a new connector named from the new settings, and data still flows
        reply = configure(handle, name="udp-b")
        assert isinstance(reply, ConfigReply), reply
        assert (reply.how, reply.applied) == ("reconnect", ("name",))
        after = gw_stats(handle)
        assert after["connector"] != before["connector"] and after["reconnects"] == 1
        assert after["connector_name"] == "udp-b" and after["reason"] == "settings changed: name"
        assert after["live"] is True and after["allow_remote"] is True  # the live change kept
        assert datagram_arrives(writer, receiver, "after")
        assert wait_until(lambda: gw_stats(handle)["sent"] >= 1)  # counted by the new connector

        # the same values again: nothing to do
        reply = configure(handle, name="udp-b", allow_remote=True)
        assert isinstance(reply, ConfigReply) and reply.how == "unchanged" and reply.applied == ()
        assert gw_stats(handle)["reconnects"] == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.req("REQ_1203", "REQ_1204", "REQ_1208")
def test_bad_updates_are_refused_and_nothing_is_applied(mode: str, admin_port: int,
                                                        iox_prefix: str) -> None:
    config = udp_config(free_udp_port(), connector=f"{__name__}:RefusingUdp", prefix=iox_prefix)
    with open_system(mode, admin_port) as handle:
        handle.start_child(gateway_tree(config))
        before = gw_stats(handle)
        refusals = {
            (("allow_remote", "yes"), ("name", "ok")): "settings.allow_remote: expected bool, got str",
            (("bogus", 1),): "settings.bogus: unknown key (valid keys: allow_remote, name)",
            (("name", "a/b"),): "settings.name='a/b': expected 1-64 characters",
            (("name", "refuse-me"),): "the connector refused the settings: connector 'udp-a': "
                                      "will not be renamed 'refuse-me'",
        }
        for items, detail in refusals.items():
            reply = configure(handle, **dict(items))
            assert isinstance(reply, ErrorReply), reply
            assert reply.kind is ErrorKind.REJECTED and reply.message_type == "Configure"
            assert detail in reply.detail and "nothing applied" in reply.detail
        reply = handle.control(PATH, GetConfig())
        assert isinstance(reply, ConfigReply)
        assert reply.settings == {"name": "udp-a", "allow_remote": False}
        after = gw_stats(handle)
        assert after["connector"] == before["connector"] and after["reconnects"] == 0
        assert after["live"] is True  # the gateway kept running


# ---- MQTT: live queue bounds, a reconnect for the rest (a real mosquitto) ------------------------
@pytest.mark.req("REQ_1205")
def test_mqtt_configure_is_live_only_for_the_queue_bounds() -> None:
    from taktora.connectors.mqtt import MqttConnector, MqttSettings

    conn = MqttConnector(MqttSettings(), name="m")
    assert conn.configure(MqttSettings(max_queue=10, high_water=0.5)) is True
    assert (conn.settings.max_queue, conn.settings.high_water) == (10, 0.5)
    assert conn.configure(MqttSettings(max_queue=10, high_water=0.5, keepalive_s=30)) is False
    assert conn.settings.keepalive_s == 10


@pytest.fixture
def mosquitto(tmp_path: Any) -> Iterator[int]:
    """A mosquitto on a free loopback port (skips when it is not installed)."""
    import shutil
    import subprocess

    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                        if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    if exe is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def accepting() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        assert wait_until(accepting, timeout=10.0), "mosquitto did not start"
        yield port
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.req("REQ_1205", "REQ_1206", "REQ_1209", "REQ_1204")
def test_mqtt_gateway_params_live_and_reconnect(mosquitto: int, admin_port: int,
                                                iox_prefix: str) -> None:
    config = GatewayConfig(
        name="gw", connector="mqtt", iox_prefix=iox_prefix,
        settings={"port": mosquitto, "username": "u", "password": "pw", "connect_timeout_s": 5.0},
        channels=(ChannelDescriptor("m/out", Direction.OUTBOUND, max_payload=64,
                                    routing=Routing("mqtt", "taktora/params/out")),))
    with open_system("inprocess", admin_port) as handle:
        handle.start_child(gateway_tree(config))
        before = gw_stats(handle)
        assert before["live"] is True
        reply = handle.control(PATH, GetConfig())
        assert isinstance(reply, ConfigReply), reply
        assert reply.settings["password"] == REDACTED and reply.settings["username"] == "u"
        assert reply.settings["port"] == mosquitto and reply.settings["overflow"] == "drop_newest"

        reply = configure(handle, max_queue=50, high_water=0.5)
        assert isinstance(reply, ConfigReply), reply
        assert reply.how == "live" and reply.applied == ("max_queue", "high_water")
        assert gw_stats(handle)["connector"] == before["connector"]

        reply = configure(handle, max_queue=2000)  # above paho's bound of this client
        assert isinstance(reply, ConfigReply), reply
        assert reply.how == "reconnect" and reply.applied == ("max_queue",)
        assert gw_stats(handle)["reconnects"] == 1
        reply = configure(handle, max_queue=50)  # within it again: live
        assert isinstance(reply, ConfigReply) and reply.how == "live", reply

        reply = configure(handle, keepalive_s=30)
        assert isinstance(reply, ConfigReply), reply
        assert reply.how == "reconnect" and reply.applied == ("keepalive_s",)
        after = gw_stats(handle)
        assert after["connector"] != before["connector"] and after["live"] is True
        assert after["reason"] == "settings changed: keepalive_s" and after["reconnects"] == 2

        reply = configure(handle, max_queue=0)
        assert isinstance(reply, ErrorReply) and reply.kind is ErrorKind.REJECTED
        assert "settings.max_queue=0: expected an int in 1..1000000" in reply.detail
        reply = handle.control(PATH, GetConfig())
        assert isinstance(reply, ConfigReply)
        assert (reply.settings["max_queue"], reply.settings["keepalive_s"]) == (50, 30)
