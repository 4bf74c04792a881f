"""Shared-memory counter blocks: survive the counting process (kill -9), refuse bad files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from taktora.transport.errors import TransportError
from taktora.transport.shared_counters import SharedCounters, counters_path

CHILD = """
import sys, time
from pathlib import Path
from taktora.transport.shared_counters import SharedCounters
block = SharedCounters.open(Path(sys.argv[1]))
i = block.index("b")
for _ in range(1000):
    block.values[i] += 1
print("counted", flush=True)
time.sleep(60)
"""


@pytest.mark.req("REQ_0543")
def test_counts_survive_a_kill9_of_the_counting_process(iox_prefix: str) -> None:
    path = counters_path(iox_prefix, "gw-1")
    with SharedCounters.create(path, ["a", "b"]) as block:
        block.add("a", 5)
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "counted"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        with SharedCounters.open(path) as again:
            assert again.snapshot() == {"a": 5, "b": 1000}
        block.unlink()
    assert not path.exists()


@pytest.mark.req("REQ_0543")
def test_open_or_create_keeps_matching_blocks_and_replaces_others(iox_prefix: str) -> None:
    path = counters_path(iox_prefix, "gw")
    with SharedCounters.create(path, ["x"]) as block:
        block.add("x", 3)
    with SharedCounters.open_or_create(path, ["x"]) as same:
        assert same.get("x") == 3
    with SharedCounters.open_or_create(path, ["x", "y"]) as other:
        assert other.snapshot() == {"x": 0, "y": 0}
        with pytest.raises(TransportError, match="no counter 'z'"):
            other.get("z")
        other.unlink()


def test_bad_files_and_names_are_refused(iox_prefix: str, tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="use letters"):
        counters_path(iox_prefix, "a/b")
    bad = tmp_path / "bad"
    bad.write_bytes(b"NOPE" + bytes(40))
    with pytest.raises(TransportError, match="magic"):
        SharedCounters.open(bad)
    bad.write_bytes(b"xx")
    with pytest.raises(TransportError, match="not a counter block"):
        SharedCounters.open(bad)
    with pytest.raises(TransportError, match="cannot open"):
        SharedCounters.open(tmp_path / "missing")
    with pytest.raises(TransportError, match="unique"):
        SharedCounters.create(tmp_path / "dup", ["a", "a"])
