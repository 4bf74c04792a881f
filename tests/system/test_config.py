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
