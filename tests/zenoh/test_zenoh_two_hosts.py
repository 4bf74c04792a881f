"""Two "hosts": network namespaces joined by a veth pair. A plain zenoh peer listens in one;
a taktora app with its zenoh gateway runs in the other and round-trips data through it.
Needs root and iproute2 (skipped with the reason otherwise); the namespaces are removed in a
finally."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from zenoh_harness import ctx, two_host_app

HERE = Path(__file__).parent


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.mark.root
@pytest.mark.req("REQ_0616")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces and veth")
@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's `ip` command")
def test_two_hosts_over_a_veth_pair(iox_prefix: str) -> None:
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b, va, vb = f"tkza{tag}", f"tkzb{tag}", f"tkza{tag}", f"tkzb{tag}"
    peer = None
    try:
        ip("netns", "add", ns_a)
        ip("netns", "add", ns_b)
        ip("link", "add", va, "type", "veth", "peer", "name", vb)
        ip("link", "set", va, "netns", ns_a)
        ip("link", "set", vb, "netns", ns_b)
        for ns, dev, addr in ((ns_a, va, "10.201.7.1/24"), (ns_b, vb, "10.201.7.2/24")):
            ip("-n", ns, "addr", "add", addr, "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        peer = subprocess.Popen(
            ["ip", "netns", "exec", ns_b, sys.executable, str(HERE / "zenoh_plain.py"),
             "tcp/10.201.7.2:7447"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert peer.stdout is not None and peer.stdout.readline().strip() == "ready"
        results = ctx.Queue()
        app = ctx.Process(target=two_host_app,
                          args=(f"/var/run/netns/{ns_a}", "tcp/10.201.7.2:7447", results))
        app.start()
        try:
            outcome = results.get(timeout=60)
        finally:
            app.join(30)
            results.close()
            results.join_thread()
        assert app.exitcode == 0
        assert outcome == {"health": "up", "echoed": [b"m0", b"m1", b"m2", b"m3", b"m4"]}
    finally:
        if peer is not None:
            assert peer.stdin is not None
            peer.stdin.close()
            try:
                peer.wait(10)
            except subprocess.TimeoutExpired:
                peer.kill()
                peer.wait(10)
        for ns in (ns_a, ns_b):  # deleting a namespace removes its veth end (and the pair)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
