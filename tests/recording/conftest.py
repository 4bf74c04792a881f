"""Fixtures of the recording tests: a publisher process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from rec_helpers import HERE


@pytest.fixture
def publisher() -> Iterator[subprocess.Popen[str]]:
    """tests/recording/publisher.py in its own process (pose.out, blob.out, mp.out)."""
    proc = subprocess.Popen([sys.executable, str(HERE / "publisher.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
