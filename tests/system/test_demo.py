"""Smoke test of ``make demo``: the latency section (two-process publish/subscribe), the
supervised-gateway section and the control section (tests/system/test_demo_control.py checks it
in detail) run unattended and report what they must."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

SIZES = ["64 B", "4 KiB", "64 KiB", "1 MiB", "4 MiB"]


@pytest.mark.req("REQ_0120", "REQ_0537")
def test_demo_runs_unattended_and_loses_nothing() -> None:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", COLUMNS="100")
    proc = subprocess.run(
        [sys.executable, "-m", "taktora.system.demo", "--quick"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    latency, _, gateways = proc.stdout.partition("supervised UDP gateways")
    gateways, _, control = gateways.partition("a control application")  # section 3
    assert "1 kHz" in control and "Traceback" not in proc.stdout  # its own test checks more
    rows = [
        [c.strip() for c in re.split(r"[│|]", line) if c.strip()]
        for line in latency.splitlines()
        if re.search(r"(taktora|mp\.Pipe)\s*[│|]", line)
    ]
    # transport, payload, n, p50 us, p99 us, MB/s, lost, bad
    assert [r[1] for r in rows if r[0] == "taktora"] == SIZES, proc.stdout
    assert [r[1] for r in rows if r[0] == "mp.Pipe"] == ["1 MiB"], proc.stdout
    for r in rows:
        assert len(r) == 8, r
        assert int(r[2]) > 0, r
        assert r[6] == "0" and r[7] == "0", f"lost/bad samples: {r}"
    assert "lost" in proc.stdout and "p50 us" in proc.stdout
    # section 2: supervised gateways, faults, a crash and the restart, counts by phase
    assert gateways, proc.stdout
    for phase in ("steady", "link-down", "corrupt", "crash", "tail"):
        assert f"phase {phase}" in gateways
    assert re.search(r"left\s+up -> down\s+link down", gateways), gateways
    assert re.search(r"right\s+up -> down\s+crashed", gateways), gateways
    assert re.search(r"link running \(worker\) restarts=1", gateways), gateways  # right/link
    table = [[c.strip() for c in re.split(r"[│|]", line) if c.strip()]
             for line in gateways.splitlines() if re.match(r"[│|]\s*(steady|tail|total)\b", line)]
    total = next(r for r in table if r[0] == "total")
    sent, received, lost = (int(x) for x in total[1:4])
    assert sent == received + lost and sent > 0 and lost > 0  # the faults lost messages
    for r in table:
        if r[0] in ("steady", "tail"):
            assert int(r[3]) > 0, r  # received: the tail arrived after the restart
    assert "in.malformed.crc" in gateways and "out.dropped.down" in gateways
    assert re.search(r"left\s*[│|]\s*up", gateways) and re.search(r"right\s*[│|]\s*up", gateways)
