"""Smoke test of ``make demo``: the two-process publish/subscribe demo runs on its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

SIZES = ["64 B", "4 KiB", "64 KiB", "1 MiB", "4 MiB"]


@pytest.mark.req("REQ_0120")
def test_demo_runs_unattended_and_loses_nothing() -> None:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", COLUMNS="100")
    proc = subprocess.run(
        [sys.executable, "-m", "taktora.system.demo", "--quick"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [
        [c.strip() for c in re.split(r"[│|]", line) if c.strip()]
        for line in proc.stdout.splitlines()
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
