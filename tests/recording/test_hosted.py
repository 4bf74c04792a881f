"""The recorder as an item of a system file's item host: killed with kill -9, restarted by its
supervisor, continuing in the next file (examples/recording/record_system.toml)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from rec_helpers import TAKTORA, run_cli, wait_for
from taktora.system.recording import iter_messages, read_info, recover
from taktora.system.recording import mcap_format as fmt

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "recording"
START_S = 60.0  # a dedicated process spawning on a loaded machine


def _messages(path: Path) -> int:
    try:
        return read_info(path).messages if path.exists() else 0
    except Exception:  # the header is being written right now
        return 0


@pytest.mark.slow
@pytest.mark.req("REQ_1018")
def test_a_hosted_recorder_killed_is_restarted_and_continues_in_a_new_file(tmp_path):
    for name in ("record_system.toml", "record_items.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    first, second = (tmp_path / "recordings" / f"cell_{i:03d}.mcap" for i in range(2))
    log = tmp_path / "run.log"
    with log.open("w") as sink:
        run = subprocess.Popen([TAKTORA, "run", str(tmp_path / "record_system.toml"), "--for",
                                "120"], stdout=sink, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "COLUMNS": "200"}, cwd=tmp_path)
    try:
        wait_for(lambda: _messages(first) > 20, START_S, "the first file on disk")
        pid = int(read_info(first).metadata[fmt.META_RECORDING]["pid"])
        assert pid != run.pid  # the recorder's own process (placement = "dedicated")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: _messages(second) > 20, START_S, "the restarted recorder's file")
    finally:
        run.send_signal(signal.SIGINT)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()
    text = log.read_text()
    assert run.returncode == 0, text
    assert "host recorder: running" in text, text
    killed, restarted = read_info(first), read_info(second)
    assert not killed.complete and restarted.complete
    assert sorted(p.name for p in first.parent.iterdir()) == ["cell_000.mcap", "cell_001.mcap"]
    meta = restarted.metadata
    assert meta[fmt.META_RECORDING]["pid"] != str(pid)
    assert meta[fmt.META_SYSTEM]["name"] == "recorded-cell"
    assert meta[fmt.META_SYSTEM]["toml"] == (tmp_path / "record_system.toml").read_text()
    fixed = tmp_path / "fixed.mcap"
    assert recover(first, fixed) >= 20
    ticks = [[json.loads(m.data)["n"] for c, m in iter_messages(p) if c.topic.startswith("cell/")]
             for p in (fixed, second)]
    # each file holds the ticks in order (what a starved recorder lost is a gap in it); the
    # second starts after the first one's last tick
    for got, p in zip(ticks, (fixed, second), strict=True):
        (channel,) = read_info(p).channels
        assert got == sorted(set(got)) and got[-1] - got[0] + 1 == len(got) + channel.overflow
    assert ticks[1][0] > ticks[0][-1]
    r = run_cli("info", str(second))
    assert r.returncode == 0 and "recorded-cell from" in r.stdout, r.stdout
