"""System config: TOML -> frozen attrs values, key paths in errors, ``taktora run``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from taktora.actors.control.supervision import Strategy
from taktora.connectors import Direction
from taktora.connectors.gateway.config import GatewayConfig
from taktora.system.config import SystemConfig, load, loads, structure
from taktora.system.errors import ConfigError

FUZZ = int(os.environ.get("TAKTORA_FUZZ_EXAMPLES", "100"))  # `make bench` may raise it
EXAMPLES = sorted(Path(__file__).resolve().parents[2].joinpath("examples").glob("*.toml"))

VALID = """
name = "t"
[supervision]
strategy = "rest_for_one"
intensity = 2
period_s = 3.0
[policies]
shutdown_timeout_s = 1.5
[policies.reconnect]
initial_s = 0.2
[[gateways]]
name = "left"
connector = "taktora.connectors.udp:UdpConnector"
settings = { name = "udp-left" }
[[gateways.channels]]
name = "a/cmd"
direction = "outbound"
codec = "json"
routing = { kind = "udp", address = "127.0.0.1:40001" }
[[gateways.channels]]
name = "a/state"
direction = "inbound"
qos = { priority = 2 }
routing = { kind = "udp", address = "127.0.0.1:40002" }
"""


@pytest.mark.req("REQ_0440")
def test_examples_exist_and_every_one_loads() -> None:
    assert {p.name for p in EXAMPLES} >= {"demo.toml", "udp_loopback.toml"}
    for path in EXAMPLES:
        config = load(path)
        assert isinstance(config, SystemConfig) and config.gateways, path
        for g in config.gateway_configs():
            assert isinstance(g, GatewayConfig)
            g.connector_class()  # importable


@pytest.mark.req("REQ_0440")
def test_a_valid_document_becomes_frozen_values_with_policies_merged() -> None:
    config = loads(VALID)
    assert config.supervision.strategy is Strategy.REST_FOR_ONE
    assert config.supervision.intensity == 2
    g = config.gateway_configs(iox_prefix="tkx_")[0]
    assert g.shutdown_timeout_s == 1.5 and g.reconnect.initial_s == 0.2 and g.iox_prefix == "tkx_"
    assert [c.direction for c in g.channels] == [Direction.OUTBOUND, Direction.INBOUND]
    assert g.channels[1].qos.priority == 2 and g.settings == {"name": "udp-left"}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.name = "other"  # type: ignore[misc]


BAD = [
    ('priority = 2 }', 'priority = 9 }', "gateways[0].channels[1].qos.priority", "1..7"),
    ('priority = 2 }', 'priority = "2" }', "gateways[0].channels[1].qos.priority", "expected int"),
    ('direction = "inbound"', 'direction = "sideways"', "gateways[0].channels[1].direction",
     "sideways"),
    ('intensity = 2', 'intensity = -1', "supervision.intensity", ">= 0"),
    ('strategy = "rest_for_one"', 'strategy = "all_for_none"', "supervision.strategy", ""),
    ('initial_s = 0.2', 'initial_s = 0.2\nmax_s = 0.1', "policies.reconnect.max_s", "below"),
    ('settings = { name = "udp-left" }', 'settings = { nme = "x" }', "gateways[0].settings",
     "nme"),
    ('udp:UdpConnector', 'udp:NoSuchConnector', "gateways[0].connector", "cannot import"),
    ('name = "t"', 'name = "t"\nextra = 1', "<document>", "extra"),
    ('codec = "json"', 'codec = "json"\ncolour = "red"', "gateways[0].channels[0]", "colour"),
    ('name = "left"', 'name = 5', "gateways[0].name", "expected str"),
    ('address = "127.0.0.1:40001"', 'address = 40001', "gateways[0].channels[0].routing.address",
     ""),
    ('shutdown_timeout_s = 1.5', 'shutdown_timeout_s = 0', "policies.shutdown_timeout_s", "> 0"),
]


@pytest.mark.req("REQ_0441")
@pytest.mark.parametrize(("old", "new", "path", "reason"), BAD)
def test_invalid_documents_name_the_key_path_and_the_reason(old: str, new: str, path: str,
                                                            reason: str) -> None:
    assert old in VALID
    with pytest.raises(ConfigError) as info:
        loads(VALID.replace(old, new, 1))
    problems = dict(info.value.problems)  # type: ignore[attr-defined]
    assert path in problems, problems
    assert reason in problems[path] and path in str(info.value)


@pytest.mark.req("REQ_0441")
def test_cross_field_rules() -> None:
    twice = VALID + VALID[VALID.index("[[gateways]]"):]
    with pytest.raises(ConfigError, match=r"gateways\[1\]\.name: duplicate gateway name"):
        loads(twice)
    with pytest.raises(ConfigError, match="gateways: declare at least one"):
        loads('name = "empty"')
    dup = VALID.replace('name = "a/state"\ndirection = "inbound"', 'name = "a/cmd"\n'
                        'direction = "outbound"')
    with pytest.raises(ConfigError, match=r"gateways\[0\]\.channels\[1\]\.name: duplicate"):
        loads(dup)
    with pytest.raises(ConfigError, match="not valid TOML"):
        loads("x = ")
    with pytest.raises(ConfigError, match="cannot read"):
        load("/nonexistent/system.toml")


# ---- fuzzing: only ConfigError, never another exception -------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 1 << 40), st.floats(allow_nan=True),
                    st.text(max_size=12))
keys = st.sampled_from(["name", "gateways", "channels", "connector", "settings", "supervision",
                        "policies", "reconnect", "qos", "priority", "routing", "kind", "address",
                        "direction", "codec", "strategy", "intensity", "period_s", "backoff",
                        "initial_s", "max_s", "x"])
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=5)), max_leaves=20)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _replace(doc[head], rest, value)}
    copy = list(doc)
    copy[head] = _replace(copy[head], rest, value)
    return copy


BASE_DOC = tomllib.loads(VALID)
BASE_PATHS = _paths(BASE_DOC)


@pytest.mark.req("REQ_0441")
@settings(max_examples=FUZZ + FUZZ // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_documents_raise_only_config_error(doc: Any) -> None:
    try:
        structure(doc)
    except ConfigError:
        pass


@pytest.mark.req("REQ_0441")
@settings(max_examples=2 * FUZZ, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(BASE_PATHS), documents)
def test_mutated_valid_documents_raise_only_config_error(path: tuple[Any, ...], value: Any) -> None:
    try:
        structure(_replace(BASE_DOC, path, value))
    except ConfigError as exc:
        assert exc.problems  # type: ignore[attr-defined]


@pytest.mark.req("REQ_0441")
@settings(max_examples=FUZZ, deadline=None)
@given(st.text(max_size=60))
def test_random_text_raises_only_config_error(text: str) -> None:
    try:
        loads(text)
    except ConfigError:
        pass


# ---- taktora run ---------------------------------------------------------------------------------
def _taktora(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "taktora.system.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


@pytest.mark.req("REQ_0442", "REQ_0441")
def test_run_rejects_an_invalid_file_before_starting_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(VALID.replace("priority = 2 }", "priority = 0 }"))
    proc = _taktora("run", str(bad), "--for", "5")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "gateways[0].channels[1].qos.priority" in proc.stderr.replace("\n", "")
    assert "running" not in proc.stdout


@pytest.mark.req("REQ_0442")
def test_run_starts_the_example_and_stops_on_its_own(tmp_path: Path) -> None:
    # a copy of the example on free ports (tests run in parallel)
    text = (EXAMPLES[[p.name for p in EXAMPLES].index("udp_loopback.toml")]).read_text()
    ports = []
    for _ in range(2):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    path = tmp_path / "loop.toml"
    path.write_text(text.replace("47201", str(ports[0])).replace("47202", str(ports[1])))
    proc = _taktora("run", str(path), "--for", "1.0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "2 gateway(s) running" in out and "stopped" in out
    assert "left: connecting -> up" in out and "right: connecting -> up" in out


@pytest.mark.req("REQ_0442")
def test_start_host_is_a_context_manager_that_starts_once(admin_port: int) -> None:
    from taktora.system import start_host, start_system

    text = (EXAMPLES[[p.name for p in EXAMPLES].index("udp_loopback.toml")]).read_text()
    for old in ("47201", "47202"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            text = text.replace(old, str(s.getsockname()[1]))
    config = loads(text)
    with start_system("inprocess") as handle, start_host(handle, config) as host:
        assert {g.name for g in host.gateways} == {g.name for g in config.gateways}
        assert set(host.health()) == {g.name for g in config.gateways}


# ---- connector settings, short names, routings (REQ_0443, REQ_0444) -------------------------
def _gateway(connector: str, settings: str, channel: str) -> str:
    return (f'[[gateways]]\nname = "g"\nconnector = "{connector}"\n{settings}\n'
            f'[[gateways.channels]]\n{channel}\n')


UDP_CH = 'name = "c"\ndirection = "outbound"\nrouting = { kind = "udp", address = "127.0.0.1:40001" }'
ZENOH_CH = 'name = "c"\ndirection = "outbound"\nrouting = { kind = "zenoh", address = "demo/c" }'
CAN_SETTINGS = ('[[gateways.settings.buses]]\nname = "can0"\ninterface = "virtual"\n'
                'channel = "tk-demo"')
CAN_CH = ('name = "c"\ndirection = "outbound"\ncodec = "raw"\n'
          'routing = { kind = "can", address = "can0", options = { can_id = 0x100 } }')
EC_SETTINGS = '[gateways.settings]\ncycle_s = 0.001\n[gateways.settings.bus]\niface = "tkec0"'
EC_CH = ('name = "c"\ndirection = "outbound"\ncodec = "raw"\n'
         'routing = { kind = "ethercat", address = "", options = { subdevice = 0, bit_offset = 0, '
         'bit_length = 8 } }')

GOOD = {
    "udp": _gateway("udp", 'settings = { name = "u" }', UDP_CH),
    "zenoh": _gateway("zenoh", 'settings = { mode = "peer", listen = ["tcp/127.0.0.1:47999"] }',
                      ZENOH_CH),
    "can": _gateway("can", CAN_SETTINGS, CAN_CH),
    "ethercat": _gateway("ethercat", EC_SETTINGS, EC_CH),
}

BAD_SETTINGS = [
    ("udp", 'settings = { name = "u" }', 'settings = { nmae = "u" }', "gateways[0].settings",
     "nmae"),
    ("zenoh", 'mode = "peer"', 'mode = "mesh"', "gateways[0].settings.mode", "mesh"),
    ("can", 'interface = "virtual"', 'interface = "virtual"\nbitrate = "fast"',
     "gateways[0].settings.buses[0].bitrate", "int"),
    ("ethercat", 'cycle_s = 0.001', 'cycle_s = 0.001\nspeed = 1',
     "gateways[0].settings", "speed"),
]

BAD_ROUTINGS = [
    ("udp", "127.0.0.1:40001", "127.0.0.1:99999", "port"),
    ("udp", "127.0.0.1:40001", "127.0.0.1", "HOST:PORT"),
    ("udp", 'kind = "udp"', 'kind = "can"', "kind"),
    ("zenoh", "demo/c", "demo/**/x/**/#", "key expression"),
    ("can", 'address = "can0"', 'address = "can9"', "can9"),
    ("can", "can_id = 0x100", "can_id = 0x800", "11 bits"),
    ("ethercat", "bit_length = 8", "bit_len = 8", "bit_length"),
]


@pytest.mark.req("REQ_0443")
@pytest.mark.parametrize("connector", sorted(GOOD))
def test_each_connector_loads_from_a_system_file(connector: str) -> None:
    config = loads(GOOD[connector])
    g = config.gateways[0]
    settings_class = g.connector_class().settings_class
    assert settings_class is not None and isinstance(g.connector_settings(), settings_class)


@pytest.mark.req("REQ_0443")
@pytest.mark.parametrize(("connector", "old", "new", "path", "reason"), BAD_SETTINGS)
def test_a_bad_settings_key_is_rejected_at_load_with_its_key_path(
        connector: str, old: str, new: str, path: str, reason: str) -> None:
    text = GOOD[connector]
    assert old in text
    with pytest.raises(ConfigError) as info:
        loads(text.replace(old, new, 1))
    problems = dict(info.value.problems)  # type: ignore[attr-defined]
    assert path in problems, problems
    assert reason in problems[path], problems


@pytest.mark.req("REQ_0443")
@pytest.mark.parametrize(("connector", "old", "new", "reason"), BAD_ROUTINGS)
def test_routings_are_checked_at_load_per_connector(connector: str, old: str, new: str,
                                                    reason: str) -> None:
    text = GOOD[connector]
    assert old in text
    with pytest.raises(ConfigError) as info:
        loads(text.replace(old, new, 1))
    problems = dict(info.value.problems)  # type: ignore[attr-defined]
    assert "gateways[0].channels[0].routing" in problems, problems
    assert reason in problems["gateways[0].channels[0].routing"], problems


@pytest.mark.req("REQ_0443")
def test_unknown_codecs_and_oversized_udp_frames_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"gateways\[0\]\.channels\[0\]\.codec: codec 'yaml'"):
        loads(GOOD["udp"].replace('name = "c"', 'name = "c"\ncodec = "yaml"'))
    with pytest.raises(ConfigError, match=r"channels\[0\]\.routing: .*does not fit one UDP"):
        loads(GOOD["udp"].replace('name = "c"', 'name = "c"\nmax_payload = 65500'))


@pytest.mark.req("REQ_0444")
def test_connectors_are_found_by_short_name_through_entry_points() -> None:
    from taktora.connectors import registry

    assert set(registry.known()) >= {"udp", "zenoh", "zenoh-query", "can", "ethercat"}
    assert registry.resolve("udp").__name__ == "UdpConnector"
    with pytest.raises(ConfigError, match=r"gateways\[0\]\.connector: .*'udp'"):
        loads(GOOD["udp"].replace('connector = "udp"', 'connector = "nosuch"'))
    as_path = GOOD["udp"].replace('connector = "udp"',
                                  'connector = "taktora.connectors.udp:UdpConnector"')
    assert loads(as_path).gateways[0].connector_class() is registry.resolve("udp")


@pytest.mark.req("REQ_0445")
def test_hostile_files_raise_config_error_with_a_place(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nested too deeply"):
        loads("x = " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match=r"gateways: expected an array of tables \(\[\[gateways"):
        loads('gateways = "left"')
    with pytest.raises(ConfigError, match=r"gateways\[0\]: expected a table"):
        loads('gateways = ["left"]')
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'name = "x"\n\n[[gateways]]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"line 4, column 12: not UTF-8"):
        load(bad)
    for value in ("nan", "inf", "-inf", "1e-9", "1e300"):
        with pytest.raises(ConfigError, match=r"policies\.health_poll_s"):
            loads(VALID.replace("shutdown_timeout_s = 1.5", f"health_poll_s = {value}"))
    with pytest.raises(ConfigError, match="'sideways' is not one of 'outbound', 'inbound'"):
        loads(VALID.replace('direction = "inbound"', 'direction = "sideways"'))


# ---- schema-based fuzzing: valid files built from the schema, then mutated -------------------
HOSTILE = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e-300, 1e300, -1, 0, 2**63,
                     "", "x" * 300, True, [], {}, [[[[[]]]]], {"x": {"y": {"z": 1}}}]),
    st.integers(), st.floats(), st.text(max_size=20), st.binary(max_size=8).map(repr))
CHANNELS = {
    "udp": st.builds(lambda port, d: {"name": "c", "direction": d, "routing": {
        "kind": "udp", "address": f"127.0.0.1:{port}"}}, st.integers(1, 65535),
        st.sampled_from(["inbound", "outbound"])),
    "can": st.builds(lambda cid, d: {"name": "c", "direction": d, "codec": "raw", "routing": {
        "kind": "can", "address": "can0", "options": {"can_id": cid}}}, st.integers(0, 0x7FF),
        st.sampled_from(["inbound", "outbound"])),
}
SETTINGS = {
    "udp": st.just({"name": "u"}),
    "can": st.just({"buses": [{"name": "can0", "interface": "virtual", "channel": "tk-fz"}]}),
}


@st.composite
def system_documents(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(CHANNELS)))
    return {
        "name": "fz",
        "supervision": {"strategy": draw(st.sampled_from(["one_for_one", "rest_for_one"])),
                        "intensity": draw(st.integers(0, 5)),
                        "period_s": draw(st.floats(0.1, 60))},
        "policies": {"health_poll_s": draw(st.floats(0.001, 1)),
                     "reconnect": {"initial_s": 0.1, "max_s": draw(st.floats(0.1, 30))}},
        "gateways": [{"name": "g", "connector": kind, "settings": draw(SETTINGS[kind]),
                      "channels": [draw(CHANNELS[kind])]}],
    }


def _mutate(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    return _replace(doc, path, value)


@pytest.mark.req("REQ_0445")
@settings(max_examples=FUZZ, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(system_documents(), st.data())
def test_schema_built_files_load_and_their_mutations_raise_config_error(doc: dict[str, Any],
                                                                        data: st.DataObject) -> None:
    import time

    assert isinstance(structure(doc), SystemConfig)
    path = data.draw(st.sampled_from(_paths(doc)))
    mutation = data.draw(st.one_of(HOSTILE, st.just("__delete__"), st.just("__extra__")))
    if mutation == "__extra__" and isinstance(_get(doc, path), dict):
        mutated = _replace(doc, path, {**_get(doc, path), "unexpected_key": 1})
    elif mutation == "__delete__" and path:
        parent = _get(doc, path[:-1])
        mutated = _replace(doc, path[:-1], {k: v for k, v in parent.items() if k != path[-1]}
                           if isinstance(parent, dict) else parent[:-1])
    else:
        mutated = _mutate(doc, path, mutation)
    began = time.monotonic()
    try:
        structure(mutated)
    except ConfigError as exc:
        assert exc.problems  # type: ignore[attr-defined]
        assert all(key for key, _ in exc.problems)  # type: ignore[attr-defined]
    assert time.monotonic() - began < 1.0


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@pytest.mark.req("REQ_0445")
@settings(max_examples=FUZZ, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_on_disk_raise_only_config_error(tmp_path_factory: pytest.TempPathFactory,
                                                      raw: bytes) -> None:
    path = tmp_path_factory.mktemp("fz") / "system.toml"
    path.write_bytes(raw)
    try:
        load(path)
    except ConfigError:
        pass


@pytest.mark.req("REQ_0416")
def test_udp_listens_beyond_loopback_only_when_opened() -> None:
    inbound = GOOD["udp"].replace('direction = "outbound"', 'direction = "inbound"').replace(
        "127.0.0.1:40001", "0.0.0.0:40001")
    with pytest.raises(ConfigError, match=r"channels\[0\]\.routing: .*'0\.0\.0\.0' is not "
                                          r"loopback.*allow_remote"):
        loads(inbound)
    opened = inbound.replace('settings = { name = "u" }',
                             'settings = { name = "u", allow_remote = true }')
    assert loads(opened).gateways[0].connector_settings().allow_remote is True
    from taktora.connectors import ChannelDescriptor, ConnectorError, Direction, Routing
    from taktora.connectors.testing import RecordingContext
    from taktora.connectors.udp import UdpConnector

    wide = ChannelDescriptor("w", Direction.INBOUND, routing=Routing("udp", "0.0.0.0:0"))
    with pytest.raises(ConnectorError, match="not loopback"):
        UdpConnector().open(RecordingContext([wide]))
