"""The application part of a system file: ``[[hosts]]`` with their items, ``[[channels]]``.

Structuring and every validation error with its key path; ``ExecutorSpec.build()`` running
real items on real iceoryx2 channels; ``taktora run`` starting the hosts under ``apps/``
(their stats reachable with ``taktora control``); ``taktora check``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from polling import WAIT_S, wait_until
from taktora.actors.control.supervision import Restart
from taktora.actors.executor import (
    ChainSpec,
    Context,
    ExecutorConfigError,
    ExecutorSpec,
    GraphSpec,
    Item,
    ItemEnv,
    ItemSpec,
    TriggerSpec,
)
from taktora.actors.executor.timing import MissedTickPolicy
from taktora.system.app_config import AppChannel, HostSpec, Placement
from taktora.system.cli import main
from taktora.system.config import load, loads
from taktora.system.errors import ConfigError
from test_config import _paths, _replace  # the same document mutations

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

APP = """
name = "app"

[[channels]]
name = "t/data"
direction = "outbound"
codec = "json"
buffer_size = 64

[[hosts]]
name = "ctl"
restart = "transient"
placement = "dedicated"
affinity = [0]
priority = 10
mlock = true
best_effort = true
gc = "freeze"
gc_period_s = 0.2

[[hosts.items]]
name = "writer"
factory = "test_app_config:make_writer"
writes = ["t/data"]
trigger = { every_s = 0.01, policy = "catch_up" }

[[hosts.items]]
name = "reader"
factory = "test_app_config:make_reader"
trigger = { on_data = "t/data" }

[[hosts.items]]
name = "after"
factory = "test_app_config:make_item"
error_policy = "log_and_continue"
budget_s = 0.5

[[hosts.chains]]
items = ["reader", "after"]
"""

#: What the factories below saw and did (they run in this process when a test builds).
SEEN: dict[str, Any] = {}


def make_writer(env: ItemEnv) -> Any:
    writer = env.writer("t/data")

    def write(ctx: Context) -> None:
        SEEN["written"] = SEEN.get("written", 0) + 1
        writer.send({"n": SEEN["written"]})

    return write


def make_reader(env: ItemEnv) -> Any:
    reader = env.reader("t/data")

    def read(ctx: Context) -> None:
        assert ctx.source is reader  # the trigger waits on the item's own reader
        SEEN.setdefault("values", []).extend(got.value["n"] for got in reader.drain())

    return read


class After(Item):
    """An Item returned by a factory: the spec's name, policy and budget apply."""

    def execute(self, ctx: Context) -> None:
        SEEN["after"] = SEEN.get("after", 0) + 1

    def on_stop(self) -> None:
        SEEN["stopped"] = True


def make_item(env: ItemEnv) -> Item:
    return After()


def make_nothing(env: ItemEnv) -> Any:
    return 42


# ---- structuring ----------------------------------------------------------------------------
@pytest.mark.req("REQ_0447")
def test_hosts_structure_into_host_and_executor_specs(tmp_path: Path) -> None:
    config = loads(APP)
    assert not config.gateways and len(config.channels) == 1
    (host,) = config.hosts
    assert isinstance(host, HostSpec) and host.name == "ctl"
    assert host.restart is Restart.TRANSIENT and host.placement is Placement.DEDICATED
    ex = host.executor
    assert isinstance(ex, ExecutorSpec) and ex.name == "ctl" and ex.workers == 0
    assert [i.name for i in ex.items] == ["writer", "reader", "after"]
    assert ex.items[0].trigger == TriggerSpec(every_s=0.01, policy=MissedTickPolicy.CATCH_UP)
    assert ex.items[1].trigger is not None and ex.items[1].trigger.on_data == "t/data"
    assert ex.items[2].trigger is None and ex.items[2].budget_s == 0.5
    assert ex.chains == (ChainSpec(items=("reader", "after")),)
    # an own channel is read and written by the application
    (channel,) = ex.channels
    assert isinstance(channel, AppChannel) and channel.readable and channel.writable
    args = host.args()
    assert args == {"executor": ex, "placement": "dedicated", "affinity": [0], "priority": 10,
                    "mlock": True, "best_effort": True, "gc": "freeze", "gc_period_s": 0.2}
    child = host.child_spec()
    assert child.id == "ctl" and child.start == "taktora.actors.control.item_host:ItemHost"
    assert child.restart is Restart.TRANSIENT and child.args["executor"] == ex
    assert ex.search_path == ()  # loads(): no file, no directory to search
    path = tmp_path / "app.toml"
    path.write_text(APP)
    assert load(path).hosts[0].executor.search_path == (str(tmp_path.resolve()),)
    import pickle

    assert pickle.loads(pickle.dumps(args)) == args  # ItemHost args cross processes


@pytest.mark.req("REQ_0447")
def test_gateway_channels_are_read_inbound_and_written_outbound() -> None:
    config = load(EXAMPLES / "app_loopback.toml")
    control = next(h for h in config.hosts if h.name == "control").executor
    roles = {(c.name, c.descriptor.direction.value): (c.readable, c.writable)
             for c in control.channels}
    assert roles == {("loop/cmd", "outbound"): (False, True), ("loop/cmd", "inbound"): (True, False),
                     ("loop/state", "outbound"): (False, True),
                     ("loop/state", "inbound"): (True, False)}
    assert control.channel("loop/state", write=False).descriptor.direction.value == "inbound"
    with pytest.raises(ExecutorConfigError, match=r"no channel 'nope' to write \(known: loop/cmd"):
        control.channel("nope", write=True)


ITEM1 = 'name = "reader"\nfactory = "test_app_config:make_reader"\ntrigger = { on_data = "t/data" }'


@pytest.mark.req("REQ_0447")
@pytest.mark.parametrize(("old", "new", "path", "reason"), [
    ('on_data = "t/data" }', 'on_data = "x" }', "hosts[0].items[1].trigger.on_data",
     "unknown channel 'x' (known: t/data)"),
    ('writes = ["t/data"]', 'writes = ["t/data", "y"]', "hosts[0].items[0].writes[1]",
     "unknown channel 'y'"),
    ('every_s = 0.01,', 'every_s = 0,', "hosts[0].items[0].trigger.every_s", "> 0"),
    ('every_s = 0.01,', 'every_s = "fast",', "hosts[0].items[0].trigger.every_s", "expected float"),
    ('policy = "catch_up"', 'policy = "later"', "hosts[0].items[0].trigger.policy",
     "'skip', 'catch_up', 'burst'"),
    ('{ on_data = "t/data" }', '{ on_data = "t/data", every_s = 1.0 }',
     "hosts[0].items[1].trigger.every_s", "exactly one of every_s"),
    ('{ on_data = "t/data" }', '{ deadline_s = 1.0 }', "hosts[0].items[1].trigger.every_s",
     "exactly one of every_s"),
    ('{ on_data = "t/data" }', '{ on_data = "t/data", policy = "skip" }',
     "hosts[0].items[1].trigger.policy", "only an every_s trigger"),
    ('{ on_data = "t/data" }', '{ on_data = "t/data", colour = 1 }', "hosts[0].items[1].trigger",
     "unknown key(s) ['colour']"),
    ('factory = "test_app_config:make_writer"', 'factory = "make_writer"',
     "hosts[0].items[0].factory", "'module:function'"),
    ('name = "reader"', 'name = "writer"', "hosts[0].items[1].name", "duplicate item name"),
    ('items = ["reader", "after"]', 'items = ["reader", "zz"]', "hosts[0].chains[0].items",
     "unknown item 'zz'"),
    ('[[hosts.chains]]\nitems = ["reader", "after"]', '', "hosts[0].items[2].trigger",
     "'after' needs a trigger"),
    ('name = "after"', 'name = "after"\ntrigger = { every_s = 1.0 }', "hosts[0].items[2].trigger",
     "only the head"),
    ('restart = "transient"', 'restart = "sometimes"', "hosts[0].restart",
     "'permanent', 'transient', 'temporary'"),
    ('placement = "dedicated"', 'placement = "moon"', "hosts[0].placement", "'thread'"),
    ('affinity = [0]', 'affinity = [-1]', "hosts[0].affinity", "CPU ids >= 0"),
    ('priority = 10', 'priority = 100', "hosts[0].priority", "<= 99"),
    ('mlock = true', 'mlock = "yes"', "hosts[0].mlock", "expected bool"),
    ('mlock = true', 'mlock = true\ncolour = "red"', "hosts[0]", "colour"),
    ('mlock = true', 'mlock = true\nchannels = []', "hosts[0].channels", "not a host key"),
    ('mlock = true', 'mlock = true\nworkers = -1', "hosts[0].workers", ">= 0"),
    ('name = "ctl"', 'name = "c t l"', "hosts[0].name", "expected"),
    ('direction = "outbound"\ncodec = "json"', 'direction = "outbound"\ncodec = "yaml"',
     "channels[0].codec", "yaml"),
])
def test_invalid_hosts_name_the_key_path(old: str, new: str, path: str, reason: str) -> None:
    assert old in APP, old
    with pytest.raises(ConfigError) as info:
        loads(APP.replace(old, new, 1))
    problems = dict(info.value.problems)  # type: ignore[attr-defined]
    assert path in problems, problems
    assert reason in problems[path], problems
    assert f"{path}: " in str(info.value)


@pytest.mark.req("REQ_0447")
def test_cross_host_rules_and_graphs() -> None:
    twice = APP + APP[APP.index("[[hosts]]"):]
    with pytest.raises(ConfigError, match=r"hosts\[1\]\.name: duplicate host name 'ctl'"):
        loads(twice)
    shadow = load(EXAMPLES / "udp_loopback.toml")
    assert shadow.hosts == ()
    text = (EXAMPLES / "udp_loopback.toml").read_text()
    with pytest.raises(ConfigError, match=r"channels\[0\]\.name: 'loop/cmd' is a gateway "):
        loads(text + '\n[[channels]]\nname = "loop/cmd"\ndirection = "outbound"\ncodec = "json"\n')
    wrong_way = text + ('\n[[hosts]]\nname = "h"\n[[hosts.items]]\nname = "w"\nfactory = "m:f"\n'
                        'writes = ["loop/zz"]\ntrigger = { every_s = 1.0 }\n')
    with pytest.raises(ConfigError, match=r"hosts\[0\]\.items\[0\]\.writes\[0\]: unknown channel"):
        loads(wrong_way)
    # graphs: roots are triggered, a cycle is named
    items = (ItemSpec(name="a", factory="m:f", trigger=TriggerSpec(every_s=1.0)),
             ItemSpec(name="b", factory="m:f"), ItemSpec(name="c", factory="m:f"))
    spec = ExecutorSpec(name="g", items=items,
                        graphs=(GraphSpec(name="dag", edges=(("a", "b"), ("a", "c"))),))
    assert spec.graphs[0].roots() == ["a"]
    with pytest.raises(ExecutorConfigError, match=r"graphs\[0\]\.edges.*cycle"):
        ExecutorSpec(name="g", items=items, graphs=(GraphSpec(
            name="dag", edges=(("a", "b"), ("b", "c"), ("c", "b"))),))
    with pytest.raises(ExecutorConfigError, match="already in chains"):
        ExecutorSpec(name="g", items=items, chains=(ChainSpec(items=("a", "b")),),
                     graphs=(GraphSpec(name="dag", edges=(("a", "c"),)),))
    with pytest.raises(ExecutorConfigError, match="at least one item"):
        ExecutorSpec(name="g", items=())
    with pytest.raises(ExecutorConfigError, match="spin_s"):
        TriggerSpec(every_s=0.01, spin_s=0.02)
    with pytest.raises(ExecutorConfigError, match="set on_data"):
        TriggerSpec(every_s=0.01, deadline_s=1.0)


# ---- building and running -------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.req("REQ_0448")
def test_build_runs_real_items_on_iceoryx2_channels(iox_prefix: str) -> None:
    SEEN.clear()
    spec = loads(APP).hosts[0].executor
    executor = spec.build(iox_prefix)
    try:
        assert executor.name == "ctl" and executor.node.prefix == iox_prefix
        executor.run_for(1.0)
        snapshot = executor.monitor_snapshot()
    finally:
        executor.close()
    assert SEEN["written"] >= 10, SEEN
    values = SEEN.get("values", [])
    assert len(values) >= 5 and values == sorted(values), values  # every/on_data crossed
    assert SEEN["after"] >= 1 and SEEN["stopped"] is True  # the chain's second step ran
    runs = {t.name: t.runs for t in snapshot.items}
    assert runs["writer"] == SEEN["written"] and runs["after"] == SEEN["after"]


@pytest.mark.req("REQ_0448")
def test_build_errors_name_the_item_and_close_what_was_opened(iox_prefix: str) -> None:
    spec = loads(APP).hosts[0].executor
    items = list(spec.items)
    bad = ExecutorSpec(name="bad", items=[*items[:2], ItemSpec(
        name="n", factory="test_app_config:make_nothing", trigger=TriggerSpec(every_s=1.0))],
        channels=spec.channels)
    with pytest.raises(ExecutorConfigError, match="factory 'test_app_config:make_nothing' "
                                                  "returned a int"):
        bad.build(iox_prefix)
    missing = ExecutorSpec(name="bad", items=[ItemSpec(
        name="n", factory="no_such_module_here:f", trigger=TriggerSpec(every_s=1.0))])
    with pytest.raises(ExecutorConfigError, match="cannot import item factory"):
        missing.build(iox_prefix)
    no_channels = ExecutorSpec(name="bad", items=items[:1])
    with pytest.raises(ExecutorConfigError, match="no channel 't/data' to write"):
        no_channels.build(iox_prefix)


# ---- taktora run / control / check ----------------------------------------------------------
def _copy_app(tmp_path: Path) -> Path:
    from test_examples import free_port

    text = (EXAMPLES / "app_loopback.toml").read_text()
    for port in sorted(set(re.findall(r'"127\.0\.0\.1:(\d+)"', text))):
        text = text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}")
    shutil.copy(EXAMPLES / "app_items.py", tmp_path / "app_items.py")
    path = tmp_path / "app_loopback.toml"
    path.write_text(text)
    return path


def _taktora(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "taktora.system.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


@pytest.mark.slow
@pytest.mark.req("REQ_0448")
def test_run_starts_the_hosts_under_apps_and_control_reaches_their_stats(tmp_path: Path) -> None:
    path = _copy_app(tmp_path)
    out = tmp_path / "run.out"
    env = dict(os.environ, PYTHONIOENCODING="utf-8", COLUMNS="200")
    with out.open("w") as sink:  # run from elsewhere: app_items is found next to the file
        proc = subprocess.Popen([sys.executable, "-m", "taktora.system.cli", "run", str(path),
                                 "--for", "6", "--mode", "multiprocess", "--port", "0"],
                                stdout=sink, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=ROOT)
    try:
        assert wait_until(lambda: "admin port" in out.read_text(), 30), out.read_text()
        port = re.search(r"admin port (\d+)", out.read_text())
        assert port, out.read_text()
        counted: list[int] = []

        def counter_ran() -> bool:
            r = _taktora("control", "apps/control", "stats", "--port", port.group(1))
            m = re.search(r"'name': 'counter', 'runs': (\d+)", r.stdout.replace("\n", ""))
            counted.append(int(m.group(1)) if m else -1)
            return r.returncode == 0 and "running: True" in r.stdout and counted[-1] > 0

        assert wait_until(counter_ran, WAIT_S), (counted, out.read_text())
        assert proc.wait(40) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text()
    m = re.search(r"host control: running, writer (\d+) runs 0 failures, counter (\d+) runs", text)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, text
    assert re.search(r"host plant: running, echo [1-9]\d* runs", text) and "stopped" in text, text


@pytest.mark.req("REQ_0449")
def test_check_prints_what_would_run_and_starts_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # check imports from the file's directory
    monkeypatch.setenv("COLUMNS", "200")
    path = _copy_app(tmp_path)
    before = time.monotonic()
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert time.monotonic() - before < 10
    for line in ("app-loopback", "supervision: one_for_one, at most 3 restart(s) per 5 s",
                 "left (udp)", "loop/cmd outbound json udp 127.0.0.1:", "hosts (2, under apps/)",
                 "control (thread, restart permanent, 0 worker(s))",
                 "writer: every 0.01 s (skip); writes loop/cmd; factory app_items:make_writer",
                 "counter: on_data loop/state; factory app_items:make_counter",
                 "echo: deadline 1 s on loop/cmd; writes loop/state"):
        assert line in out, out
    chained = tmp_path / "chained.toml"
    chained.write_text(APP)
    assert main(["check", str(chained)]) == 0
    assert "chain: reader -> after" in capsys.readouterr().out


@pytest.mark.req("REQ_0449", "REQ_0470")
def test_check_and_run_refuse_bad_files_with_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("COLUMNS", "200")
    path = _copy_app(tmp_path)
    good = path.read_text()
    path.write_text(good.replace('on_data = "loop/state"', 'on_data = "loop/nope"'))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert "hosts[0].items[1].trigger.on_data: unknown channel 'loop/nope' (known: loop/cmd, " \
           "loop/state)" in err, err
    # a factory that cannot be imported: found by check and run before anything starts
    path.write_text(good.replace("app_items:make_echo", "app_items:make_ech"))
    assert main(["check", str(path), "--no-import"]) == 0
    capsys.readouterr()
    assert main(["check", str(path)]) == 2
    assert "hosts[1].items[0].factory: cannot import item factory 'app_items:make_ech'" in \
        capsys.readouterr().err.replace("\n", "")
    assert main(["run", str(path), "--for", "1"]) == 2
    assert "hosts[1].items[0].factory" in capsys.readouterr().err.replace("\n", "")


# ---- fuzzing: a mutated host document raises ConfigError or loads --------------------------
def _mutations() -> Any:
    import tomllib

    from hypothesis import strategies as st

    doc = tomllib.loads(APP)

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 1 << 40),
                        st.floats(allow_nan=True), st.text(max_size=8))
    values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(
            ["name", "every_s", "on_data", "items", "edges", "factory", "x"]), inner, max_size=3)),
        max_leaves=8)
    return doc, st.sampled_from(_paths(doc)), values


_DOC, _PATHS, _VALUES = _mutations()


@pytest.mark.req("REQ_0447")
def test_mutated_host_documents_raise_only_config_error() -> None:
    from hypothesis import HealthCheck, given, settings
    from taktora.system.config import structure

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_PATHS, _VALUES)
    def check(path: tuple[Any, ...], value: Any) -> None:
        try:
            structure(_replace(_DOC, path, value))
        except ConfigError as exc:
            assert exc.problems  # type: ignore[attr-defined]

    check()
