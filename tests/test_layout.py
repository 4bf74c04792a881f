"""The layout rules of spec/overview.rst: layering contracts, module size, Thespian-free values."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("transport", "actors", "connectors", "system")
MAX_LINES = 550


@pytest.mark.req("REQ_0002")
def test_import_linter_contracts_hold() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    lint = str(exe) if exe.exists() else shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (it is in the 'dev' extra: make lint)")
    proc = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.req("REQ_0003")
def test_no_module_is_longer_than_the_limit() -> None:
    long = {}
    for folder in PACKAGE_DIRS:
        for py in (ROOT / folder).rglob("*.py"):
            n = len(py.read_text().splitlines())
            if n > MAX_LINES:
                long[str(py.relative_to(ROOT))] = n
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.req("REQ_0003")
def test_values_import_without_thespian() -> None:
    code = ("import sys, taktora.actors, taktora.actors.models, taktora.connectors, "
            "taktora.connectors.gateway.config; "
            "assert 'thespian' not in sys.modules, sorted(m for m in sys.modules if 'thespian' in m)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
