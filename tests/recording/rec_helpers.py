"""Helpers of the recording tests: running the CLI, waiting for a condition."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TAKTORA = str(Path(sys.executable).parent / "taktora")


def wait_for(predicate: Callable[[], bool], timeout: float = 8.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds (fail after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TAKTORA, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"})
