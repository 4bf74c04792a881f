"""Process lifetime: ports, the owner watch, ``taktora stop``, giving up at the root, and the
CLI's attach (spec/system.rst, "Process lifetime")."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from listening import holders, tcp_listener_inodes
from polling import wait_until
from taktora.actors.control.messages import ErrorKind, ErrorReply, GetTree
from taktora.actors.control.supervision import ChildSpec, SupervisorSpec
from taktora.actors.control.supervisor import Supervisor
from taktora.actors.errors import ControlError
from taktora.connectors.gateway.messages import InjectCrash
from taktora.system import cli, processes, security
from taktora.system.attach import ROOT_NAME
from taktora.system.bootstrap import QUIET_LOGGING, port_listening, start_system
from taktora.system.errors import SystemError_

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parents[1] / "examples" / "udp_loopback.toml"
BOUND_S = 10.0  # every "promptly" below: generous for 2 busy cores, far below the old 45 s


def listeners_on(port: int) -> set[int]:
    """PIDs holding a TCP socket listening on ``port``."""
    return holders(tcp_listener_inodes(port))


# ---- helpers ---------------------------------------------------------------------------------
def udp_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def system_file(tmp_path: Path, *, connector: str | None = None,
                intensity: int | None = None) -> tuple[Path, list[int]]:
    """The UDP loopback example on free UDP ports (tests run in parallel), optionally with
    another connector class or supervisor intensity; returns (path, [cmd port, state port])."""
    ports = udp_ports(2)
    text = EXAMPLE.read_text().replace("47201", str(ports[0])).replace("47202", str(ports[1]))
    if connector is not None:
        text, n = re.subn(r'(?m)^connector = ".*"$', f'connector = "{connector}"', text)
        assert n == 2, text
    if intensity is not None:
        text = text.replace("intensity = 3", f"intensity = {intensity}")
    path = tmp_path / "system.toml"
    path.write_text(text)
    return path, ports


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(HERE), "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}


def taktora(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taktora.system.cli", *args],
                          capture_output=True, text=True, timeout=timeout, env=_env(), check=False)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def children_of(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    out.add(int(entry.name))
    return out


def reaper_of(owner: int) -> int:
    found = [p for p in children_of(owner)
             if b"reaper.py" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(found) == 1, found
    return found[0]


class Background:
    """``taktora run ...`` in the background, its output in files (no reader threads)."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.out_path, self.err_path = tmp_path / "run.out", tmp_path / "run.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "taktora.system.cli", *args],
                                         stdout=out, stderr=err, env=_env(),
                                         start_new_session=True)

    def out(self) -> str:
        return self.out_path.read_text()

    def err(self) -> str:
        return self.err_path.read_text()

    def wait_up(self, *names: str) -> None:
        ok = wait_until(lambda: all(f"{n}: connecting -> up" in self.out() for n in names)
                        or self.proc.poll() is not None, BOUND_S)
        assert ok and self.proc.poll() is None, self.out() + self.err()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(BOUND_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()


@pytest.fixture
def plain_server() -> Iterator[int]:
    """A TCP service that is not Thespian: accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.05)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conns.append(srv.accept()[0])

    thread = threading.Thread(target=serve, name="plain-server")
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for c in conns:
            c.close()
        srv.close()


# ---- ports ---------------------------------------------------------------------------------------
@pytest.mark.req("REQ_0450")
@pytest.mark.parametrize("port", ["99999", "65536", "-1", "x", "1.5", ""])
def test_invalid_ports_are_refused_at_once(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    for argv in (["run", str(EXAMPLE), "--mode", "multiprocess", f"--port={port}"],
                 ["status", f"--port={port}"], ["stop", f"--port={port}"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert f"argument --port: invalid port {port!r}" in err or \
            f"argument --port: invalid port {port}" in err, err
    assert time.monotonic() - t0 < 2.0  # refused before anything started
    with pytest.raises(SystemError_, match="admin_port: invalid port 99999"):
        start_system("multiprocess", admin_port=99999)


@pytest.mark.req("REQ_0450")
def test_attach_ports_exclude_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["status", "--port", "0"])
    assert info.value.code == 2 and "expected 1..65535" in capsys.readouterr().err


@pytest.mark.req("REQ_0451")
def test_port_zero_picks_a_free_port_and_prints_it(tmp_path: Path) -> None:
    path, _ = system_file(tmp_path)
    r = taktora("run", str(path), "--mode", "multiprocess", "--port", "0", "--for", "1.0")
    assert r.returncode == 0, r.stdout + r.stderr
    head = r.stdout.splitlines()[0]
    assert "admin port " in head, r.stdout
    port = int(head.rsplit("admin port ", 1)[1].rstrip(")"))
    assert 0 < port <= 65535
    assert "left: connecting -> up" in r.stdout and "right: connecting -> up" in r.stdout
    assert wait_until(lambda: not listeners_on(port), BOUND_S)


# ---- the owner watch -------------------------------------------------------------------------
@pytest.mark.req("REQ_0452")
def test_kill_9_of_the_owner_takes_the_whole_system_down(tmp_path: Path, admin_port: int) -> None:
    path, _ = system_file(tmp_path)
    run = Background(tmp_path, "run", str(path), "--mode", "multiprocess", "--port",
                     str(admin_port))
    try:
        run.wait_up("left", "right")
        session = processes.system_session(admin_port)
        assert session is not None
        system = processes.session_members(session)
        assert len(system) >= 6, system  # admin, logger, root, host supervisor, 2 gateways
        reaper = reaper_of(run.proc.pid)
        t0 = time.monotonic()
        run.proc.kill()
        run.proc.wait()
        assert wait_until(lambda: not listeners_on(admin_port)
                          and not any(processes.alive(p) for p in system | {reaper}), BOUND_S), \
            [p for p in system | {reaper} if processes.alive(p)]
        took = time.monotonic() - t0
        assert "died; shut it down" in run.err(), run.err()
        print(f"kill -9 of the owner -> nothing left: {took:.3f} s")
    finally:
        run.close()
    # the port is free for the next run
    r = taktora("run", str(path), "--mode", "multiprocess", "--port", str(admin_port),
                "--for", "1.0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "left: connecting -> up" in r.stdout


@pytest.mark.req("REQ_0453", "REQ_0458")
def test_taktora_stop_ends_a_system_that_lost_its_owner(tmp_path: Path, admin_port: int) -> None:
    path, _ = system_file(tmp_path)
    port = str(admin_port)
    run = Background(tmp_path, "run", str(path), "--mode", "multiprocess", "--port", port)
    try:
        run.wait_up("left", "right")
        r = taktora("stop", "--port", port)  # its owner still runs: refused
        assert r.returncode == 1 and "still has its owner" in one_line(r.stderr), r.stderr
        # rich markup in error text is printed as written
        r = taktora("control", "x[1]/gw", "stats", "--port", port)
        assert r.returncode == 1 and "'x[1]'" in one_line(r.stderr), r.stderr
        session = processes.session_members(processes.system_session(admin_port) or -1)
        # the owner loses its watch, then dies: nothing would end the system now
        reaper = reaper_of(run.proc.pid)
        os.kill(reaper, signal.SIGKILL)
        assert wait_until(lambda: not processes.alive(reaper))
        run.proc.kill()
        run.proc.wait()
        assert port_listening(admin_port)
        r = taktora("stop", "--port", port)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"stopped the taktora system on port {port}" in r.stdout
        assert wait_until(lambda: not listeners_on(admin_port)
                          and not any(processes.alive(p) for p in session), BOUND_S)
        r = taktora("stop", "--port", port)
        assert r.returncode == 2 and "nothing listens" in one_line(r.stderr)
    finally:
        run.close()


@pytest.mark.req("REQ_0453")
def test_a_forced_stop_ends_the_owner_too(tmp_path: Path, admin_port: int) -> None:
    path, _ = system_file(tmp_path)
    run = Background(tmp_path, "run", str(path), "--mode", "multiprocess", "--port",
                     str(admin_port))
    try:
        run.wait_up("left", "right")
        r = taktora("stop", "--port", str(admin_port), "--force")
        assert r.returncode == 0, r.stdout + r.stderr
        run.proc.wait(BOUND_S)
        assert run.proc.returncode == 1, run.out() + run.err()
        assert run.err().strip().splitlines()[-1].startswith(
            "failed: the root supervisor was stopped from outside its owner"), run.err()
        assert wait_until(lambda: not listeners_on(admin_port), BOUND_S)
    finally:
        run.close()


# ---- giving up at the root ---------------------------------------------------------------
@pytest.mark.req("REQ_0454", "REQ_0458")
@pytest.mark.parametrize("mode", ["inprocess", "multiprocess"])
def test_run_ends_promptly_when_the_root_gives_up_while_starting(tmp_path: Path, mode: str,
                                                                 admin_port: int) -> None:
    path, _ = system_file(tmp_path, connector="crashy:CrashOnOpen")
    port = ["--port", str(admin_port)] if mode == "multiprocess" else []
    t0 = time.monotonic()
    r = taktora("run", str(path), "--mode", mode, *port, "--for", "60")
    assert time.monotonic() - t0 < BOUND_S + 5, r.stderr  # process start-up included
    assert r.returncode == 1, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("failed: the root supervisor gave up: "), r.stderr
    assert "crashes on open" in last
    assert "Traceback" not in r.stderr


@pytest.mark.req("REQ_0454")
def test_run_ends_promptly_when_the_root_gives_up_later(tmp_path: Path, admin_port: int) -> None:
    path, _ = system_file(tmp_path, intensity=0)  # the host supervisor gives up on one crash
    run = Background(tmp_path, "run", str(path), "--mode", "multiprocess", "--port",
                     str(admin_port))
    try:
        run.wait_up("left", "right")
        a = cli.Attached(admin_port, 5.0)

        def host_running() -> bool:
            try:
                host = a.tree().find(("connectors",))
            except ControlError:  # the root is gone (the run is ending)
                return False
            return (host is not None and host.state == "running" and bool(host.children)
                    and all(c.state == "running" for c in host.children))

        try:
            # each crash makes the host supervisor give up (intensity 0); the root restarts it
            # once, and gives up at the second restart within its period (intensity 1 per 5 s)
            for _ in range(5):  # more rounds only if the load stretched one beyond 5 s
                assert wait_until(lambda: run.proc.poll() is not None or host_running(),
                                  BOUND_S)
                if run.proc.poll() is not None:
                    break
                t0 = time.monotonic()
                with contextlib.suppress(ControlError):
                    a.route(("connectors", "left"), InjectCrash())
                if wait_until(lambda: run.proc.poll() is not None, 1.0):
                    break
        finally:
            a.close()
        run.proc.wait(BOUND_S)
        print(f"root gave up -> taktora run exited: {time.monotonic() - t0:.3f} s")
        assert run.proc.returncode == 1, run.out() + run.err()
        last = run.err().strip().splitlines()[-1]
        assert last.startswith("failed: the root supervisor gave up: 2 restarts"), run.err()
        assert "Traceback" not in run.err()
    finally:
        run.close()


@pytest.mark.req("REQ_0454", "REQ_0459")
def test_a_root_that_gave_up_is_reported_and_never_recreated(admin_port: int,
                                                             capsys: pytest.CaptureFixture[str],
                                                             ) -> None:
    from crashy import CrashOnStart

    with start_system("multiprocess", admin_port=admin_port, root=SupervisorSpec(intensity=0),
                      logging_config=QUIET_LOGGING) as h:
        with pytest.raises(ControlError, match="supervisor 'root' gave up"):
            h.start_child(ChildSpec(id="bad", start=CrashOnStart))
        assert h.wait_failure(BOUND_S) is not None
        assert h.failure.startswith("gave up: ") and "bad" in h.failure
        with pytest.raises(ControlError, match="root supervisor is gone"):
            h.tree()  # fails at once instead of waiting for a reply that cannot come
        for _ in range(2):  # status does not create a fresh root in its place
            assert cli.main(["status", "--port", str(admin_port)]) == 1
            err = capsys.readouterr().err  # the root that gave up answers with its reason
            assert "gave up" in one_line(err) and "restart the system" in err, err
        t0 = time.monotonic()
    assert time.monotonic() - t0 < BOUND_S  # close() does not wait for the gone root


@pytest.mark.req("REQ_0459")
def test_a_supervisor_without_its_spec_answers_instead_of_crashing() -> None:
    with start_system() as h:
        stray = h.create_actor(Supervisor)
        reply = h.ask(stray, GetTree())
        assert isinstance(reply, ErrorReply) and reply.kind is ErrorKind.REJECTED
        assert "not initialised" in reply.detail


@pytest.mark.req("REQ_0455")
def test_run_fails_when_no_gateway_came_up(tmp_path: Path) -> None:
    path, ports = system_file(tmp_path)
    held = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in ports]
    try:
        for s, p in zip(held, ports, strict=True):
            s.bind(("127.0.0.1", p))  # every gateway's inbound port is taken
        r = taktora("run", str(path), "--for", "1.0")
    finally:
        for s in held:
            s.close()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Address already in use" in r.stdout
    assert r.stderr.strip().splitlines()[-1] == \
        "failed: no gateway came up during the run: left, right"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", ports[1]))  # only left's inbound port is taken
        r = taktora("run", str(path), "--for", "1.0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "right: connecting -> up" in r.stdout and "never came up: left" in r.stdout


# ---- attaching ---------------------------------------------------------------------------------
@pytest.mark.req("REQ_0456")
def test_attaching_to_a_service_that_is_not_thespian_fails_fast(
        plain_server: int, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    r = taktora("status", "--port", str(plain_server))
    took = time.monotonic() - t0
    assert r.returncode == 2, r.stdout + r.stderr
    assert "is not a Thespian actor system" in one_line(r.stderr)
    assert took < BOUND_S, took
    for argv in (["health"], ["control", "gw", "pause"], ["stop"]):
        t0 = time.monotonic()
        assert cli.main([*argv, "--port", str(plain_server), "--timeout", "1"]) == 2
        assert "is not a Thespian actor system" in one_line(capsys.readouterr().err)
        assert time.monotonic() - t0 < 3.0


@pytest.mark.req("REQ_0456", "REQ_0459")
def test_a_thespian_system_that_is_not_taktoras_is_left_alone(
        admin_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    from thespian.actors import ActorSystem
    from thespian.system.messages.status import Thespian_StatusReq

    security.apply_bind_policy(security.LOOPBACK)
    asys = ActorSystem("multiprocTCPBase", {"Admin Port": admin_port}, logDefs=QUIET_LOGGING,
                       transientUnique=True)
    try:
        for argv in (["status"], ["stop"], ["stop", "--force"]):
            assert cli.main([*argv, "--port", str(admin_port)]) == 2
            assert "is not a taktora system" in one_line(capsys.readouterr().err)
        status = asys.ask(asys._systemBase.adminAddr, Thespian_StatusReq(), 5.0)
        assert ROOT_NAME not in status.globalActors  # nothing was created in it
        assert not status.inShutdown
    finally:
        asys.shutdown()


@pytest.mark.req("REQ_0457")
@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf", "1e9", "soon"])
def test_invalid_timeouts_are_refused(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["status"], ["health"], ["stop"], ["control", "gw", "stats"]):
        with pytest.raises(SystemExit) as info:
            cli.main([*argv, "--port", "1", f"--timeout={value}"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --timeout: invalid duration" in err and "Traceback" not in err, err
    with pytest.raises(SystemExit):
        cli.main(["run", str(EXAMPLE), f"--for={value}"])
    assert "argument --for: invalid duration" in capsys.readouterr().err


@pytest.mark.req("REQ_0458")
def test_messages_keep_their_square_brackets(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text('name = "x"\n')
    assert cli.main(["run", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "[[gateways]]" in one_line(err), err
