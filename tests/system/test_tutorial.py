"""Every file of examples/tutorial/ runs as the tutorial (spec/tutorial/) tells a user to run it.

Each test starts a tutorial file in a subprocess the way its page says (``python FILE``,
``bash SCRIPT``, ``taktora run FILE``), with the virtual environment's ``bin`` first on PATH,
under the test's own iceoryx2 prefix (inherited as TAKTORA_IOX_PREFIX) and, for the CLI steps,
the test's own admin port; it checks the exit status and the lines the page says you will
see. A subprocess that does not end in time is killed with its whole session, and the test
fails showing its output. ``test_every_tutorial_file_is_shown_and_run`` fails when a file of
examples/tutorial/ has no test here or is not shown on a page, or when a page holds a code
block that is not a file of examples/tutorial/.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "examples" / "tutorial"
PAGES = ROOT / "spec" / "tutorial"
BIN = Path(sys.executable).parent
RUN_S = 90.0  # bound of one subprocess on a loaded 2-core machine (they take a few seconds)

#: Every file of examples/tutorial/ and the test below that runs it.
RUN_BY_TEST = {
    "first_item.py": "test_first_item_runs_two_items_on_a_channel",
    "echo_connector.py": "test_first_connector_tries_the_echo_connector_without_a_gateway",
    "first_connector.py": "test_first_connector_tries_the_echo_connector_without_a_gateway",
    "echo.toml": "test_taktora_run_finds_the_connector_on_pythonpath_only",
    "echo_app.py": "test_run_echo_starts_the_gateway_and_the_app_gets_replies",
    "run_echo.sh": "test_run_echo_starts_the_gateway_and_the_app_gets_replies",
    "control.sh": "test_control_script_drives_the_cli_against_a_multiprocess_system",
}

LITERALINCLUDE = re.compile(r"^\.\. literalinclude::\s*(\S+)\s*$", re.M)
#: code blocks that are not a file: code directives, and literal blocks ("::" ending a paragraph)
OTHER_CODE = re.compile(r"^\s*\.\. (code-block|code|sourcecode|highlight)::"
                        r"|^(?!\s*\.\. )[^\n]*::[ \t]*$", re.M)


def tutorial_files() -> set[str]:
    """The files of examples/tutorial/ (without the bytecode Python leaves when it runs them)."""
    return {p.relative_to(TUTORIAL).as_posix() for p in TUTORIAL.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def run(args: list[str], *, cwd: Path = ROOT, pythonpath: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    """``args`` in a session of its own; killed with everything it started after RUN_S."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONIOENCODING="utf-8", PYTHONDONTWRITEBYTECODE="1", COLUMNS="200")
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=RUN_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(args)} did not end within {RUN_S} s\n--- stdout\n{out}"
                    f"--- stderr\n{err}")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def show(r: subprocess.CompletedProcess[str]) -> str:
    return f"exit {r.returncode}\n--- stdout\n{r.stdout}--- stderr\n{r.stderr}"


# ---- the tutorial's completeness -------------------------------------------------------------
@pytest.mark.req("REQ_1301")
def test_every_tutorial_file_is_shown_and_run() -> None:
    files = tutorial_files()
    assert files == set(RUN_BY_TEST), ("a tutorial file without a test here (or a test entry "
                                       f"without a file): {sorted(files ^ set(RUN_BY_TEST))}")
    for name, test in RUN_BY_TEST.items():
        assert callable(globals().get(test)), f"{name}: no test {test!r} in this module"
    pages = sorted(PAGES.glob("*.rst"))
    assert pages, f"no tutorial pages in {PAGES}"
    shown: set[str] = set()
    for page in pages:
        text = page.read_text()
        other = [m.group(0).strip() for m in OTHER_CODE.finditer(text)]
        assert not other, f"{page.name}: code blocks that are not tutorial files: {other}"
        for target in LITERALINCLUDE.findall(text):
            path = (page.parent / target).resolve()
            assert path.parent == TUTORIAL and path.is_file(), f"{page.name}: {target}"
            shown.add(path.name)
    assert shown == files, f"tutorial files no page shows: {sorted(files - shown)}"


# ---- step 1 -----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.req("REQ_1301")
def test_first_item_runs_two_items_on_a_channel(iox_prefix: str) -> None:
    r = run([sys.executable, str(TUTORIAL / "first_item.py")])
    assert r.returncode == 0, show(r)
    got = re.findall(r"^got reading (\d+): [+-]\d\.\d{3} \(seq (\d+)\)$", r.stdout, re.M)
    assert len(got) >= 5, show(r)  # 10 ticks in 1 s; a loaded machine may skip some
    assert all(count == seq for count, seq in got), show(r)
    summary = re.search(r"^produce ran (\d+) times, consume ran (\d+) times, 0 lost$",
                        r.stdout, re.M)
    assert summary and int(summary[1]) >= len(got), show(r)


# ---- step 2 -----------------------------------------------------------------------------------
@pytest.mark.req("REQ_1301")
def test_first_connector_tries_the_echo_connector_without_a_gateway() -> None:
    r = run([sys.executable, str(TUTORIAL / "first_connector.py")])
    assert r.returncode == 0, show(r)
    lines = r.stdout.splitlines()
    assert lines[0] == "health: up (echoing 1 channel(s))", show(r)
    for text in ("one", "two", "three"):
        assert f"sent {text!r} on echo/request, back on echo/reply: b{text!r}" in lines, show(r)
    assert "stats: {'echoed': 3, 'refused': 0}" in lines, show(r)
    assert re.search(r"^slow: [23] of 5 frames accepted, health reports: up \(echoing 1 "
                     r"channel\(s\)\), degraded \(echo queue full\), up \(echo queue has room "
                     r"again\)$", r.stdout, re.M), show(r)
    assert "bad setting: 'delay_s' must be <= 1.0: 5.0" in lines, show(r)
    assert any(line.startswith("bad channel: channel 'echo/request': routing 'udp'")
               for line in lines), show(r)


# ---- step 3 -----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.req("REQ_1301")
def test_taktora_run_finds_the_connector_on_pythonpath_only(iox_prefix: str,
                                                            tmp_path: Path) -> None:
    system = str(TUTORIAL / "echo.toml")
    r = run(["taktora", "run", system, "--for", "1"])  # the folder is not importable
    assert r.returncode == 2, show(r)
    assert "cannot import connector 'echo_connector:EchoConnector'" in r.stderr, show(r)
    assert "No module named 'echo_connector'" in r.stderr, show(r)

    text = (TUTORIAL / "echo.toml").read_text()
    bad = tmp_path / "echo.toml"  # bad settings fail at load, naming the key
    for value, message in [('"fast"', "gateways[0].settings.delay_s: expected float, got str"),
                           ("5", "gateways[0].settings: 'delay_s' must be <= 1.0: 5.0")]:
        bad.write_text(text.replace("delay_s = 0.01", f"delay_s = {value}"))
        r = run(["taktora", "run", str(bad), "--for", "1"], pythonpath=TUTORIAL)
        assert r.returncode == 2 and message in r.stderr, show(r)

    r = run(["taktora", "run", system, "--for", "1"], pythonpath=TUTORIAL)
    assert r.returncode == 0, show(r)
    assert re.match(r"echo-tutorial: 1 gateway\(s\).* running \(inprocess\)$", r.stdout,
                    re.M), show(r)
    assert re.search(r"^echo: connecting -> up \(connected\)$", r.stdout, re.M), show(r)
    assert r.stdout.splitlines()[-1] == "stopped", show(r)


@pytest.mark.slow
@pytest.mark.req("REQ_1301")
def test_run_echo_starts_the_gateway_and_the_app_gets_replies(iox_prefix: str) -> None:
    r = run(["bash", str(TUTORIAL / "run_echo.sh")], cwd=Path("/"))  # it finds its folder
    assert r.returncode == 0, show(r)
    out = r.stdout
    assert re.search(r"^echo: connecting -> up \(connected\)$", out, re.M), show(r)
    replies = re.findall(r"^reply to request (\d+) after \d+\.\d ms$", out, re.M)
    assert len(replies) == 5, show(r)
    assert re.search(r"^5 replies; \d+ requests sent, \d+ of them before the gateway was up$",
                     out, re.M), show(r)
    assert out.splitlines()[-1] == "stopped" and "crashed" not in out + r.stderr, show(r)


# ---- step 4 -----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.req("REQ_1301")
def test_control_script_drives_the_cli_against_a_multiprocess_system(iox_prefix: str,
                                                                      admin_port: int) -> None:
    r = run(["bash", str(TUTORIAL / "control.sh"), str(admin_port)], cwd=Path("/"))
    assert r.returncode == 0, show(r)
    out = r.stdout
    expected = [
        rf"^echo-tutorial: 1 gateway\(s\).* running \(multiprocess, admin port {admin_port}\)$",
        r"^echo: connecting -> up \(connected\)$",
        r"^root running \(supervisor one_for_one\) restarts=0",  # taktora status
        r"echo running \(gateway rest_for_one\) restarts=0",
        r"link running \(worker\) restarts=0",
        r"connectors/echo\s*│\s*up\s*│\s*connected",  # taktora health
        r"^5 replies; ",  # the app
        r"connectors/echo\s*│\s*echo/request\s*│\s*out\s*│\s*[5-9]\s",  # taktora stats
        r"connectors/echo\s*│\s*echo/reply\s*│\s*in\s*│\s*[5-9]\s",
        r"^pause: ok paused$", r"^resume: ok resumed$",  # taktora control
        r"^health: up$", r"^paused: False$", r"^connector\.echoed: [5-9]$",
        r"^connector\.refused: 0$",
        r"^echo \(echo_connector:EchoConnector\)$", r"delay_s = 0\.01$",  # param get
        r"max_pending = 32$",
        r"^echo: applied 1 setting\(s\) \(live\)$", r"^  delay_s = 0\.05$",  # param set
        r"^echo: connecting -> up \(reconnected \(#1\)\)$",
        r"^echo: applied 1 setting\(s\) \(reconnect\)$", r"^  max_pending = 8$",
    ]
    for pattern in expected:
        assert re.search(pattern, out, re.M), f"{pattern!r} not in the output\n{show(r)}"
    assert out.splitlines()[-1] == "stopped" and "crashed" not in out + r.stderr, show(r)
