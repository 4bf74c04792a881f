"""``taktora ethercat veth`` and ``taktora ethercat sim`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from taktora.connectors.ethercat.sim import veth
from taktora.system.cli import main

from .conftest import need_bus


@pytest.mark.req("REQ_0810")
@pytest.mark.root
def test_veth_and_sim_commands(capsys):
    need_bus()
    import pysoem

    name = f"tkc{os.getpid() % 100000}"
    veth.down(name)
    assert main(["ethercat", "veth", "up", name]) == 0
    proc = None
    try:
        assert f"{name}s" in capsys.readouterr().out
        proc = subprocess.Popen([sys.executable, "-m", "taktora.system.cli", "ethercat", "sim", "--iface",
                                 f"{name}s", "--count", "2", "--control"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        if proc.stdout is None or proc.stdin is None:
            raise AssertionError("no pipes")
        assert json.loads(proc.stdout.readline())["count"] == 2
        master = pysoem.Master()
        master.open(name)
        try:
            assert master.config_init() == 2
        finally:
            master.close()
        proc.stdin.write('{"op": "query"}\n')
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["states"] == [2, 2]
        proc.stdin.close()  # end of the control stream ends the simulator
        assert proc.wait(10) == 0
    finally:
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        assert main(["ethercat", "veth", "down", name]) == 0
    assert main(["ethercat", "veth", "down", name]) == 1  # already gone
    assert main(["ethercat", "veth", "up", "x" * 20]) == 1
