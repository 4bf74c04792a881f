"""The control plane across two hosts: two network namespaces joined by a veth pair."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

NODE = Path(__file__).with_name("multihost_node.py")
IP_A, IP_B = "10.203.77.1", "10.203.77.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def two_hosts() -> Iterator[tuple[str, str]]:
    """Namespaces A and B, each with lo up and one end of a veth pair (10.203.77.0/24)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces and a veth pair")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 ('ip'): apt-get install iproute2")
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b = f"tka{tag}", f"tkb{tag}"
    try:
        _ip("netns", "add", ns_a)
        _ip("netns", "add", ns_b)
        _ip("link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}")
        for ns, dev, ip in ((ns_a, f"va{tag}", IP_A), (ns_b, f"vb{tag}", IP_B)):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _spawn(ns: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(NODE.parent))
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(NODE), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


@pytest.mark.req("REQ_0402")
@pytest.mark.root
def test_member_joins_the_leaders_convention_across_namespaces(two_hosts, admin_port):
    ns_a, ns_b = two_hosts
    # a member registers with the leader when it starts: the leader must be up first
    leader = _spawn(ns_a, "leader", IP_A, str(admin_port))
    member = None
    try:
        assert leader.stdout is not None and leader.stdout.readline().strip() == "READY"
        member = _spawn(ns_b, "member", IP_B, str(admin_port), IP_A)
        out, err = leader.communicate(timeout=60)
        assert leader.returncode == 0, (out, err)
        probe = [line for line in out.splitlines() if line.startswith("PROBE ")]
        assert probe, (out, err)
        interfaces = probe[0].removeprefix("PROBE ").split(",")
        # the probe ran in namespace B: it sees B's end of the veth pair, not A's
        assert any(i.startswith("vb") for i in interfaces), interfaces
        assert not any(i.startswith("va") for i in interfaces), interfaces
    finally:
        for proc in (member, leader):
            if proc is None:
                continue
            if proc.poll() is None:
                try:
                    proc.communicate(timeout=20)  # closes stdin: the member shuts down
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
