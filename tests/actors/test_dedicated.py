"""Dedicated placement: an item host's executor in a spawned process of its own (REQ_0230..9).

Real Thespian systems (in-process and multi-process) and real executors with a 1 kHz interval
item. Assertions are on counts and conditions reached within generous waits, never on
latencies, so the tests hold on a loaded machine.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from actorkit import MODES, node, open_system, wait_for
from taktora.actors.control import messages as m
from taktora.actors.control.dedicated import (
    DedicatedCapabilityError,
    DedicatedError,
    DedicatedExecutor,
    DedicatedOptions,
)
from taktora.actors.control.item_host import ItemHost, StartExecutor, StopExecutor
from taktora.actors.control.supervision import ChildSpec, SupervisorSpec
from taktora.actors.errors import ActorConfigError

pytestmark = pytest.mark.slow

NO_CPU = 4095  # no machine here has it: sched_setaffinity fails with EINVAL, also as root


# ---- recipes the child builds (importable by name: this module is on the child's sys.path) ---
def ticking_executor() -> Any:
    """A real executor with a monitor and a 1 kHz interval item ``tick``."""
    from taktora.actors.executor import ExecutionMonitor, Executor, every, item

    ex = Executor("dedicated-test", monitor=ExecutionMonitor())
    ex.add(item(lambda ctx: None, [every(0.001)], name="tick"))
    return ex


def spec_tick(env: Any) -> Any:
    """An ExecutorSpec item factory: a function item doing nothing per tick."""
    return lambda ctx: None


class TickSpec:
    """An ExecutorSpec-like recipe: ``build(prefix)`` returns the ticking executor."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def build(self, prefix: str | None) -> Any:
        logging.getLogger("dedicated.test").warning("built %s with prefix %s", self.tag, prefix)
        return ticking_executor()


class Stubborn:
    """An executor that ignores stop requests (and SIGTERM too when ``ignore_term``); it prints
    and logs once it runs."""

    def __init__(self, ignore_term: bool = False) -> None:
        self.ignore_term = ignore_term

    def __call__(self) -> Stubborn:
        return self

    def run(self) -> None:
        if self.ignore_term:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stubborn-stdout-line", flush=True)
        logging.getLogger("dedicated.test").warning("stubborn-log-record %d", 7)
        while True:
            time.sleep(0.01)

    def stoppable(self) -> Stubborn:
        return self

    def stop(self) -> None:
        pass

    def monitor_snapshot(self) -> dict[str, Any]:
        return {"stubborn": True}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _tick_runs(stats: dict[str, Any]) -> int:
    mon = stats.get("monitor") or {"items": ()}
    return next((it["runs"] for it in mon["items"] if it["name"] == "tick"), 0)


def _stats(h: Any) -> dict[str, Any]:
    reply = h.control("ih", m.GetStats())
    return reply.stats if isinstance(reply, m.StatsReply) else {}


def _host(args: dict[str, Any]) -> ChildSpec:
    return ChildSpec(id="ih", start=ItemHost, args={"factory": "test_dedicated:ticking_executor",
                                                    "placement": "dedicated", **args})


# ---- through the item host ---------------------------------------------------------------
@pytest.mark.req("REQ_0230", "REQ_0239")
@pytest.mark.parametrize("mode", MODES)
def test_dedicated_host_runs_a_1khz_interval_in_its_own_process(mode, admin_port):
    with open_system(mode, admin_port) as h:
        h.start_child(_host({"affinity": [0]}))
        st = wait_for(lambda: (s := _stats(h)) and _tick_runs(s) >= 200 and s,
                      what="200 ticks in the dedicated process")
        ded = st["dedicated"]
        assert st["placement"] == "dedicated" and st["running"] is True
        pid = ded["pid"]
        assert pid != os.getpid() and _alive(pid)
        assert ded["options"]["affinity"] == [0] and ded["applied"]["affinity"] == [0]
        assert ded["applied"]["refused"] == []
        tick = next(i for i in ded["executor_stats"]["items"] if i["name"] == "tick")
        assert tick["runs"] >= 200
        assert h.control("ih", StopExecutor()).detail == "stopped"
        assert not _alive(pid)
        assert _stats(h)["running"] is False
        assert h.control("ih", StartExecutor()).detail == "started"
        new = wait_for(lambda: _tick_runs(s := _stats(h)) > 0 and s["dedicated"]["pid"],
                       what="ticks after a restart of the executor")
        assert new != pid


@pytest.mark.req("REQ_0231")
@pytest.mark.parametrize("mode", MODES)
def test_an_executor_spec_is_built_in_the_dedicated_process(mode, admin_port, iox_prefix):
    spec_mod = pytest.importorskip("taktora.actors.executor.spec")
    spec = spec_mod.ExecutorSpec(name="dedspec", items=[spec_mod.ItemSpec(
        name="tick", factory="test_dedicated:spec_tick",
        trigger=spec_mod.TriggerSpec(every_s=0.001))])
    with open_system(mode, admin_port) as h:
        h.start_child(ChildSpec(id="ih", start=ItemHost, args={
            "executor": spec, "iox_prefix": iox_prefix, "placement": "dedicated",
            "gc": "freeze"}))
        st = wait_for(lambda: (s := _stats(h)) and _tick_runs(s) >= 50 and s,
                      what="the spec's item ticking in the dedicated process")
        assert st["dedicated"]["pid"] != os.getpid()
        assert h.control("ih", StopExecutor()).detail == "stopped"


@pytest.mark.req("REQ_0233")
@pytest.mark.parametrize("mode", MODES)
def test_kill_9_of_the_child_restarts_the_host_with_a_new_child(mode, admin_port):
    with open_system(mode, admin_port, root=SupervisorSpec(intensity=20, period_s=60)) as h:
        h.start_child(_host({}))
        old = wait_for(lambda: _tick_runs(s := _stats(h)) > 10 and s["dedicated"]["pid"],
                       what="the first child ticking")
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: node(h, "ih").restarts >= 1, what="item host restarted")
        new = wait_for(lambda: _tick_runs(s := _stats(h)) > 10 and s["dedicated"]["pid"],
                       what="the restarted host's child ticking")
        assert new != old and _alive(new) and not _alive(old)
        events = " | ".join(h.tree().events)
        assert "killed by signal 9 (SIGKILL)" in events and str(old) in events
        h.control("ih", StopExecutor())
        assert not _alive(new)


@pytest.mark.req("REQ_0234")
def test_a_refused_option_is_a_clear_error_unless_best_effort(admin_port):
    with open_system("inprocess", admin_port) as h:
        h.start_child(_host({"autostart": False, "affinity": [NO_CPU]}))
        reply = h.control("ih", StartExecutor())
        assert isinstance(reply, m.ErrorReply) and reply.kind is m.ErrorKind.REJECTED
        assert f"CPU affinity [{NO_CPU}]" in reply.detail and "best_effort=True" in reply.detail
        assert node(h, "ih").restarts == 0  # rejected, not crashed
        assert _stats(h)["running"] is False
    with pytest.raises(DedicatedCapabilityError, match=r"CPU affinity \[4095\]"):
        DedicatedExecutor("test_dedicated:ticking_executor",
                          DedicatedOptions(affinity=[NO_CPU]), name="refused").start()


@pytest.mark.req("REQ_0234")
def test_best_effort_logs_and_reports_a_refusal(admin_port):
    with open_system("inprocess", admin_port) as h:
        h.start_child(_host({"affinity": [NO_CPU], "best_effort": True, "priority": 1,
                             "mlock": True}))
        st = wait_for(lambda: (s := _stats(h)) and _tick_runs(s) > 10 and s, what="ticks")
        applied = st["dedicated"]["applied"]
        assert "affinity" in applied["refused"]
        # priority 1 is granted with CAP_SYS_NICE (root here) and refused without: both reported
        assert (applied["policy"] == "SCHED_FIFO") != ("priority" in applied["refused"])
        assert (applied["locked_kb"] > 0) != ("mlock" in applied["refused"])
        assert st["dedicated"]["options"]["mlock"] is True
        h.control("ih", StopExecutor())


@pytest.mark.req("REQ_0236")
def test_gc_freeze_freezes_disables_and_collects_in_an_item(admin_port):
    with open_system("inprocess", admin_port) as h:
        h.start_child(_host({"gc": "freeze", "gc_period_s": 0.05}))
        st = wait_for(lambda: (s := _stats(h)) and (s["dedicated"]["gc"] or {}).get(
            "idle_collections", 0) >= 3 and s, what="idle-time collections")
        ded = st["dedicated"]
        assert ded["applied"]["gc_enabled"] is False and ded["applied"]["frozen"] > 0
        assert ded["gc"]["enabled"] is False and ded["gc"]["idle_collect_max_us"] > 0
        assert any(i["name"] == "taktora-gc" for i in st["monitor"]["items"])
        h.control("ih", StopExecutor())


# ---- the DedicatedExecutor alone -----------------------------------------------------------
def _running(ded: DedicatedExecutor) -> tuple[threading.Thread, list[str]]:
    result: list[str] = []

    def run() -> None:
        try:
            ded.run()
            result.append("returned")
        except DedicatedError as exc:
            result.append(str(exc))

    t = threading.Thread(target=run, name="test-dedicated-run")
    t.start()
    return t, result


@pytest.mark.req("REQ_0232")
def test_options_are_validated():
    with pytest.raises(ActorConfigError, match="priority"):
        DedicatedOptions(priority=100)
    with pytest.raises(ActorConfigError, match="gc"):
        DedicatedOptions(gc="never")
    with pytest.raises(ActorConfigError, match="affinity"):
        DedicatedOptions(affinity=[])
    with pytest.raises(ActorConfigError, match="mlock"):
        DedicatedOptions(mlock="yes")  # type: ignore[arg-type]
    assert DedicatedOptions(affinity=[1, 0]).describe()["affinity"] == [0, 1]


@pytest.mark.req("REQ_0231", "REQ_0238")
def test_a_build_recipe_gets_the_prefix_and_the_childs_logs_reach_the_parent(caplog):
    caplog.set_level(logging.INFO)
    ded = DedicatedExecutor(TickSpec("spec-1"), name="spec", prefix="pfx-test")
    ded.start()
    t, result = _running(ded)
    try:
        wait_for(lambda: _tick_runs({"monitor": ded.monitor_snapshot()}) > 50, what="ticks")
    finally:
        ded.stop()
        t.join(10)
        ded.close()
    assert result == ["returned"] and not _alive(ded.pid or 0)
    rec = [r for r in caplog.records if "built spec-1" in r.getMessage()]
    assert rec and rec[0].process == ded.pid and "pfx-test" in rec[0].getMessage()


@pytest.mark.req("REQ_0231")
def test_an_unpicklable_or_broken_recipe_is_a_clear_error():
    with pytest.raises(DedicatedError, match="cannot send the recipe"):
        DedicatedExecutor(lambda: None, name="lambda").start()
    with pytest.raises(DedicatedError, match=r"did not start: .*no attribute 'missing'"):
        DedicatedExecutor("test_dedicated:missing", name="missing").start()


@pytest.mark.req("REQ_0235", "REQ_0238")
@pytest.mark.parametrize("ignore_term", [False, True])
def test_stop_escalates_to_sigterm_then_sigkill(ignore_term, caplog):
    ded = DedicatedExecutor(Stubborn(ignore_term), name="stubborn", stop_timeout_s=0.5,
                            kill_timeout_s=0.5)
    ded.start()
    t, result = _running(ded)
    wait_for(lambda: any("stubborn-log-record 7" in r.getMessage() for r in caplog.records),
             what="the child's log record")
    wait_for(lambda: any("stubborn-stdout-line" in r.getMessage() for r in caplog.records),
             what="the child's stdout line")
    ded.stop()
    t.join(10)
    ded.close()
    assert result == ["returned"]  # a requested stop, however forced, is not a failure
    assert ded._proc.exitcode == (-signal.SIGKILL if ignore_term else -signal.SIGTERM)
    assert not _alive(ded.pid or 0)


@pytest.mark.req("REQ_0233")
def test_an_unrequested_end_of_the_child_is_an_error_naming_it():
    ded = DedicatedExecutor("test_dedicated:ticking_executor", name="term")
    ded.start()
    t, result = _running(ded)
    wait_for(lambda: _tick_runs({"monitor": ded.monitor_snapshot()}) > 5, what="ticks")
    os.kill(ded.pid or 0, signal.SIGTERM)  # the child's executor stops cleanly on it
    t.join(10)
    ded.close()
    assert result and "stopped by SIGTERM, not by its host" in result[0]


PARENT = """
import sys, time
sys.path[:0] = {path!r}
from taktora.actors.control.dedicated import DedicatedExecutor
if __name__ == "__main__":
    d = DedicatedExecutor("test_dedicated:ticking_executor", name="orphan")
    d.start()
    print(d.pid, flush=True)
    d.run()
"""


@pytest.mark.req("REQ_0237")
def test_the_child_ends_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT.format(path=[str(Path(__file__).parent), *sys.path]))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait(10)
        wait_for(lambda: not _alive(child), timeout=15, what="the orphaned child to end")
    finally:
        parent.kill()
        parent.wait(10)
