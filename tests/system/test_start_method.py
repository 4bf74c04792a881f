"""How multi-process systems start their processes (REQ_0460)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from taktora.system import start_method
from taktora.system.errors import SystemError_

PROBE = """
import sys
from taktora.system import start_method
print(start_method.resolve("auto"))
if sys.argv[1] == "node":
    from taktora.transport import Node
    with Node("probe", prefix=sys.argv[2]):
        pass
    print(start_method.resolve("auto"), start_method.why_spawn())
"""


@pytest.mark.req("REQ_0460")
def test_auto_forks_from_a_clean_process_and_spawns_after_iceoryx2(iox_prefix: str) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, "node", iox_prefix], capture_output=True,
                         text=True, check=True, timeout=60).stdout.splitlines()
    assert out[0] == "fork"  # nothing used yet: fast forks
    assert out[1].startswith("spawn ") and "iceoryx2" in out[1]


@pytest.mark.req("REQ_0460")
def test_explicit_methods_and_bad_ones() -> None:
    assert start_method.resolve("fork") == "fork"
    assert start_method.resolve("spawn") == "spawn"
    with pytest.raises(SystemError_, match="use 'auto', 'fork' or 'spawn'"):
        start_method.resolve("vfork")
