"""``taktora`` CLI attaching to a running multi-process system."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from taktora.system import cli

HERE = Path(__file__).resolve().parent
TAKTORA = str(Path(sys.executable).parent / "taktora")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TAKTORA, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})


@contextlib.contextmanager
def serving(script: Path, admin_port: int, pythonpath: Path = HERE) -> Iterator[int]:
    """Run ``script ADMIN_PORT`` (a system that prints "ready" and runs until its stdin
    closes); yield the port once it is ready, stop it afterwards."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    proc = subprocess.Popen([sys.executable, str(script), str(admin_port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield admin_port
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@pytest.fixture
def running_system(admin_port):
    with serving(HERE / "sysserve.py", admin_port) as port:
        yield port


@pytest.mark.req("REQ_0420")
def test_status_health_control_against_a_running_system(running_system):
    port = str(running_system)
    r = run_cli("status", "--port", port)
    assert r.returncode == 0, r.stderr
    for text in ("root", "line1", "rest_for_one", "gw", "hm", "running", "restarts=0"):
        assert text in r.stdout
    r = run_cli("health", "--port", port)
    assert r.returncode == 1, r.stderr  # scriptable: hm is not Up
    assert "not up: line1/hm" in r.stderr
    assert "line1/hm" in r.stdout and "connecting" in r.stdout
    assert "line1/gw" in r.stdout and "n/a" in r.stdout
    r = run_cli("control", "line1/gw", "pause", "--port", port)
    assert r.returncode == 0 and "ok paused" in r.stdout, r.stderr
    r = run_cli("control", "line1/gw", "stats", "--port", port)
    assert r.returncode == 0 and "paused: True" in r.stdout
    r = run_cli("control", "line1/nope", "pause", "--port", port)
    assert r.returncode == 1 and "not_found" in r.stderr
    # attaching twice did not disturb (or shut down) the system
    assert run_cli("status", "--port", port).returncode == 0


@pytest.mark.req("REQ_0421")
def test_cli_against_a_free_port_fails_cleanly_and_starts_nothing(admin_port, capsys):
    assert cli.main(["status", "--port", str(admin_port)]) == 2
    err = capsys.readouterr().err
    assert "nothing listens" in err and "start the system first" in err
    from taktora.system.bootstrap import port_listening

    assert not port_listening(admin_port)


@pytest.mark.req("REQ_0420")
def test_version_and_help():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("taktora ")
    r = run_cli("control", "--help")
    assert "pause" in r.stdout and "reconnect" in r.stdout


@pytest.mark.req("REQ_0339")
def test_children_and_child_commands(running_system):
    port = ["--port", str(running_system)]
    r = run_cli("children", *port)
    assert r.returncode == 0, r.stderr
    assert "line1" in r.stdout and "supervisor" in r.stdout
    assert "specs=1 active=1 supervisors=1 workers=0" in r.stdout
    r = run_cli("children", "line1", *port)
    assert r.returncode == 0, r.stderr
    assert "gw" in r.stdout and "hm" in r.stdout and "running" in r.stdout
    assert "specs=2 active=2 supervisors=0 workers=2" in r.stdout
    r = run_cli("child", "delete", "line1/gw", *port)
    assert r.returncode == 1 and "running:" in r.stderr and "terminate it first" in r.stderr
    r = run_cli("child", "terminate", "line1/hm", *port)
    assert r.returncode == 0 and "terminated line1/hm" in r.stdout, r.stderr
    r = run_cli("children", "line1", *port)
    assert "stopped" in r.stdout and "specs=2 active=1" in r.stdout
    r = run_cli("child", "restart", "line1/hm", *port)
    assert r.returncode == 0 and "restarted line1/hm" in r.stdout, r.stderr
    r = run_cli("child", "restart", "line1/nope", *port)
    assert r.returncode == 1 and "not_found" in r.stderr and "'nope'" in r.stderr
    assert run_cli("child", "terminate", "line1/hm", *port).returncode == 0
    r = run_cli("child", "delete", "line1/hm", *port)
    assert r.returncode == 0 and "deleted line1/hm" in r.stdout, r.stderr
    assert "specs=1 active=1" in run_cli("children", "line1", *port).stdout
    assert run_cli("child", "terminate", "/", *port).returncode == 2


@pytest.mark.req("REQ_0338", "REQ_0340")
def test_cli_reports_a_root_that_gave_up(admin_port, capsys):
    from crashy import CrashOnStart
    from taktora.actors.control.supervision import ChildSpec, SupervisorSpec
    from taktora.actors.errors import ControlError
    from taktora.system.bootstrap import QUIET_LOGGING, start_system

    with start_system("multiprocess", admin_port=admin_port, root=SupervisorSpec(intensity=0),
                      logging_config=QUIET_LOGGING) as h:
        with pytest.raises(ControlError, match="supervisor 'root' gave up"):
            h.start_child(ChildSpec(id="bad", start=CrashOnStart))
        assert h.wait_failure(15.0) is not None
        port = ["--port", str(admin_port)]
        for argv in (["status"], ["health"], ["control", "bad", "pause"], ["children"],
                     ["children", "bad"], ["child", "restart", "bad"], ["stats"],
                     ["param", "get", "bad"], ["param", "set", "bad", "x=1"], ["status"]):
            assert cli.main([*argv, *port]) == 1, argv
            err = " ".join(capsys.readouterr().err.split())
            assert "supervisor 'root' gave up: " in err and "bad" in err, (argv, err)
            assert err.rstrip().endswith("; restart the system"), (argv, err)
            assert "Traceback" not in err
