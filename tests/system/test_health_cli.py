"""``taktora health`` and ``taktora stats`` against a real system file with real UDP gateways:
scriptable exit status, a gateway whose process was killed shows as Down with the reason while
it restarts, and the loss ledger per channel keeps its totals across the kill."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from polling import wait_until
from taktora.connectors import ChannelWriter, Direction
from taktora.system import cli, config
from taktora.transport import Node, isolation
from test_lifetime import BOUND_S, Background, system_file, taktora


def gateway_pid(port: int, name: str) -> int:
    a = cli.Attached(port, 5.0)
    try:
        node = a.tree().find(("connectors", name, "link"))
    finally:
        a.close()
    assert node is not None and node.pid is not None and node.state == "running", node
    return node.pid


@pytest.mark.req("REQ_0422", "REQ_0544")
def test_health_exits_non_zero_while_a_killed_gateway_restarts(tmp_path: Path, admin_port: int,
                                                                iox_prefix: str) -> None:
    path, _ = system_file(tmp_path)
    text = path.read_text().replace(
        "period_s = 5.0", "period_s = 5.0\nbackoff = { initial_s = 60.0, max_s = 60.0, jitter = 0.0 }")
    path.write_text(text)
    run = Background(tmp_path, "run", str(path), "--mode", "multiprocess", "--port",
                     str(admin_port))
    try:
        run.wait_up("left", "right")
        port = str(admin_port)
        r = taktora("health", "--port", port)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "connectors/left" in r.stdout and "connectors/right" in r.stdout
        os.kill(gateway_pid(admin_port, "left"), signal.SIGKILL)
        assert wait_until(lambda: "left: up -> down (exited: killed)" in run.out(), BOUND_S), \
            run.out()
        r = taktora("health", "--port", port)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "exited: killed" in r.stdout and "not up: connectors/left" in r.stderr
        assert "not_found" not in r.stdout  # the monitor answers during the restart backoff
        r = taktora("status", "--port", port)
        assert r.returncode == 0 and "backoff" in r.stdout, r.stdout
    finally:
        run.close()
        isolation.purge_prefix(iox_prefix)  # the killed gateway's iceoryx2 files (REQ_0534)


@pytest.mark.req("REQ_0423", "REQ_0543")
def test_stats_prints_the_ledger_per_channel_across_a_kill(tmp_path: Path, admin_port: int,
                                                           iox_prefix: str) -> None:
    path, _ = system_file(tmp_path)
    left = next(g for g in config.load(path).gateway_configs() if g.name == "left")
    cmd = next(d for d in left.channels if d.direction is Direction.OUTBOUND)
    run = Background(tmp_path, "run", str(path), "--mode", "multiprocess", "--port",
                     str(admin_port))
    port = str(admin_port)

    def ledger() -> dict[str, Any]:
        r = taktora("stats", "--json", "--port", port)
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout)  # type: ignore[no-any-return]

    def monitor_total(n: int) -> bool:
        r = taktora("control", "connectors/left/monitor", "stats", "--port", port)
        return f"total.ch.{cmd.name}.out.forwarded: {n}" in r.stdout

    try:
        run.wait_up("left", "right")
        with Node("stats-app", prefix=iox_prefix) as node, ChannelWriter(node, cmd) as writer:
            for i in range(10):
                writer.send({"i": i})
            assert wait_until(lambda: ledger()["connectors/right"][cmd.name]["in"]
                              .get("forwarded") == 10, BOUND_S)
            assert wait_until(lambda: monitor_total(10), BOUND_S)  # reported before the kill
            os.kill(gateway_pid(admin_port, "left"), signal.SIGKILL)
            assert wait_until(lambda: "left: down -> connecting" in run.out(), BOUND_S)
            run.wait_up("left")
            assert wait_until(lambda: gateway_pid(admin_port, "left") > 0, BOUND_S)
            for i in range(5):
                writer.send({"i": i})
            assert wait_until(lambda: ledger()["connectors/left"][cmd.name]["out"]
                              .get("forwarded") == 15, BOUND_S)
        r = taktora("stats", "left", "--port", port)
        assert r.returncode == 0 and cmd.name in r.stdout and "15" in r.stdout, r.stdout
        assert taktora("stats", "nope", "--port", port).returncode == 1
    finally:
        run.close()
        isolation.purge_prefix(iox_prefix)


@pytest.mark.req("REQ_0424")
def test_top_with_port_shows_tree_gateways_and_their_ledger(tmp_path: Path, admin_port: int,
                                                            iox_prefix: str) -> None:
    path, _ = system_file(tmp_path)
    run = Background(tmp_path, "run", str(path), "--mode", "multiprocess", "--port",
                     str(admin_port))
    try:
        run.wait_up("left", "right")
        r = taktora("top", "--port", str(admin_port), "--iterations", "1", "--interval", "0.2")
        assert r.returncode == 0, r.stdout + r.stderr
        for text in ("gateways (totals across restarts)", "connectors/left", "connectors/right",
                     "rest_for_one", "monitor", "policy", "link"):
            assert text in r.stdout, (text, r.stdout)
        assert "up" in r.stdout and "Traceback" not in r.stdout + r.stderr
    finally:
        run.close()
    free = taktora("top", "--port", str(admin_port), "--iterations", "1")
    assert free.returncode == 2 and "Traceback" not in free.stderr, free.stderr


@pytest.mark.req("REQ_0471")
def test_a_killed_item_host_is_seen_down_then_up_again(tmp_path: Path, admin_port: int,
                                                       iox_prefix: str) -> None:
    from test_app_config import _copy_app

    path = _copy_app(tmp_path)
    run = Background(tmp_path, "run", str(path), "--mode", "multiprocess", "--port",
                     str(admin_port))
    try:
        assert wait_until(lambda: "control: connecting -> up (running)" in run.out()
                          or run.proc.poll() is not None, BOUND_S), run.out() + run.err()
        a = cli.Attached(admin_port, 5.0)
        try:
            node = a.tree().find(("apps", "control"))
        finally:
            a.close()
        assert node is not None and node.pid is not None
        os.kill(node.pid, signal.SIGKILL)
        events = ("control: up -> down (exited: killed)", "control: down -> connecting (restarting)")
        assert wait_until(lambda: all(e in run.out() for e in events)
                          and run.out().count("control: connecting -> up (running)") == 2,
                          BOUND_S), run.out()
    finally:
        run.close()
        isolation.purge_prefix(iox_prefix)
