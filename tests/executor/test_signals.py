"""SIGINT and SIGTERM stop an executor cleanly, in the main thread and in a worker thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("_signal_child.py")


@pytest.mark.req("REQ_0213")
@pytest.mark.parametrize("mode", ["main", "worker"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_gives_clean_exit_within_2s(mode: str, sig: int) -> None:
    proc = subprocess.Popen([sys.executable, str(CHILD), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(0.05)  # a few more ticks
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert f"STOPPED signal={int(sig)} ticks=True" in out, (out, err)
    assert took < 2.0
