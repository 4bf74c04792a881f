"""``taktora param get|set`` against a real multi-process system whose ``connectors/gw`` is the
ParamsMixin test gateway of tests/connectors/test_params.py (real UDP), plus the parsing and
printing functions.

Run as a script (``python test_param_cli.py ADMIN_PORT``, with tests/ on PYTHONPATH), this
module serves that system until stdin closes; it prints "ready" once the tree is up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from taktora.actors.control.messages import ConfigReply
from taktora.system import cli, param_cli
from test_cli import serving

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
TAKTORA = str(Path(sys.executable).parent / "taktora")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TAKTORA, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})


def serve(admin_port: int) -> None:
    """The system the CLI attaches to (a child process of the test)."""
    from connectors.test_params import free_udp_port, gateway_tree, udp_config
    from taktora.system.bootstrap import QUIET_LOGGING, start_system
    from taktora.transport import isolation

    config = udp_config(free_udp_port(), prefix=os.environ[isolation.PREFIX_ENV])
    with start_system("multiprocess", admin_port=admin_port, logging_config=QUIET_LOGGING) as h:
        h.start_child(gateway_tree(config))
        print("ready", flush=True)
        sys.stdin.read()


@pytest.fixture
def running_system(admin_port: int) -> Iterator[str]:
    with serving(Path(__file__), admin_port, TESTS) as port:
        yield str(port)


@pytest.mark.req("REQ_1207", "REQ_1202", "REQ_1205", "REQ_1206")
def test_param_get_and_set_against_a_running_system(running_system: str) -> None:
    port = running_system
    r = run_cli("param", "get", "connectors/gw", "--port", port)
    assert r.returncode == 0, r.stderr
    assert "gw (taktora.connectors.udp:UdpConnector)" in r.stdout
    assert 'name = "udp-a"' in r.stdout and "allow_remote = false" in r.stdout

    r = run_cli("param", "set", "connectors/gw", "allow_remote=true", "--port", port)
    assert r.returncode == 0, r.stderr
    assert "gw: applied 1 setting(s) (live)" in r.stdout and "allow_remote = true" in r.stdout

    r = run_cli("param", "set", "connectors/gw", "name=udp-b", "--port", port)  # bare: a string
    assert r.returncode == 0, r.stderr
    assert "(reconnect)" in r.stdout and 'name = "udp-b"' in r.stdout

    r = run_cli("param", "set", "connectors/gw", 'name="udp-b"', "--port", port)
    assert r.returncode == 0 and "unchanged" in r.stdout, r.stderr

    r = run_cli("param", "get", "connectors/gw", "--port", port)
    assert 'name = "udp-b"' in r.stdout and "allow_remote = true" in r.stdout


@pytest.mark.req("REQ_1208", "REQ_1203", "REQ_1204")
def test_param_set_refusals_exit_1_with_the_reason(running_system: str) -> None:
    port = running_system
    r = run_cli("param", "set", "connectors/gw", "allow_remote=1", "--port", port)
    assert r.returncode == 1
    assert "rejected" in r.stderr and "settings.allow_remote: expected bool, got int" in r.stderr
    r = run_cli("param", "set", "connectors/gw", "bogus=1", "--port", port)
    assert r.returncode == 1 and "settings.bogus: unknown key" in r.stderr
    r = run_cli("param", "get", "connectors/nope", "--port", port)
    assert r.returncode == 1 and "not_found" in r.stderr
    r = run_cli("param", "get", "connectors", "--port", port)  # a supervisor: no ConfigReply
    assert r.returncode == 1
    r = run_cli("param", "get", "connectors/gw", "--port", port)
    assert 'name = "udp-a"' in r.stdout and "allow_remote = false" in r.stdout  # unchanged


@pytest.mark.req("REQ_1208")
def test_param_attach_failure_and_usage_errors_exit_2(admin_port: int,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["param", "get", "connectors/gw", "--port", str(admin_port)]) == 2
    assert "nothing listens" in capsys.readouterr().err
    for argv in (["param", "set", "connectors/gw", "novalue", "--port", "1"],
                 ["param", "set", "connectors/gw", "=1", "--port", "1"],
                 ["param", "set", "connectors/gw", "a..b=1", "--port", "1"],
                 ["param", "get", "/", "--port", "1"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2, argv
    from taktora.system.bootstrap import port_listening

    assert not port_listening(admin_port)


@pytest.mark.req("REQ_1207")
def test_values_are_toml_or_strings() -> None:
    cases = {"500000": 500000, '"10.0.0.1"': "10.0.0.1", "true": True, "0.5": 0.5,
             "[1, 2]": [1, 2], "{initial_s = 0.5}": {"initial_s": 0.5}, "localhost": "localhost",
             "10.0.0.1": "10.0.0.1", "": "", "1\nx = 2": "1\nx = 2", "a b": "a b"}
    for text, value in cases.items():
        assert param_cli.parse_value(text) == value, text
    assert param_cli.assignment(" buses.0.bitrate = 250000") == ("buses.0.bitrate", 250000)
    assert param_cli.assignment("host=") == ("host", "")


@pytest.mark.req("REQ_1207")
def test_printing_of_settings_and_of_what_was_applied() -> None:
    from rich.console import Console

    reply = ConfigReply(correlation_id="c", gateway="gw", connector="can", how="reconnect",
                        applied=("buses.0.bitrate", "poll_s"),
                        settings={"buses": [{"name": "c0", "bitrate": 500000, "fd": False}],
                                  "reconnect": None, "poll_s": 0.01, "tags": ["a", "b"]})
    assert param_cli.describe_applied(reply) == [
        "gw: applied 2 setting(s) (reconnect)", "  buses.0.bitrate = 500000", "  poll_s = 0.01"]
    console = Console(record=True, width=120)
    console.print(param_cli.render_settings(reply))
    text = console.export_text()
    for line in ("gw (can)", "buses", "0", 'name = "c0"', "fd = false", "reconnect = (unset)",
                 'tags = ["a", "b"]'):
        assert line in text, text
    same = ConfigReply(correlation_id="c", gateway="gw", connector="udp")
    assert "unchanged" in param_cli.describe_applied(same)[0]


if __name__ == "__main__":
    serve(int(sys.argv[1]))
