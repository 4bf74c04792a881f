"""Cross-process CAN: the connector in this process, a plain python-can program (no taktora) in
a spawned process, on python-can's ``udp_multicast`` interface (no vcan on these machines).

udp_multicast quirks (see spec/can.rst): a sender also receives its own frames whatever
``receive_own_messages`` says (the connector counts them as filtered), and a host whose only
interface is ``lo`` needs ``ip route add 239.0.0.0/8 dev lo``.
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import socket
import subprocess
from typing import Any

import pytest
from canrig import Rig, collect, inp, out, wait_until
from taktora.connectors import HealthState
from taktora.connectors.can import CanBusConfig

GROUP = "239.74.163.2"
N = 20


def _multicast_route() -> str | None:
    if shutil.which("ip") is None:
        return "the 'ip' tool is missing (cannot check the multicast route)"
    res = subprocess.run(["ip", "route", "get", GROUP], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return f"no route to {GROUP}: run 'ip route add 239.0.0.0/8 dev lo' ({res.stderr.strip()})"
    return None


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def plain_peer(port: int, ready: Any, result: Any) -> None:
    """Spawned child, python-can only: receive N frames of id 0x10, answer with N of id 0x20."""
    import time

    import can

    with can.Bus(interface="udp_multicast", channel=GROUP, port=port) as bus:
        ready.set()
        seen: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(seen) < N and time.monotonic() < deadline:
            msg = bus.recv(0.2)
            if msg is not None and msg.arbitration_id == 0x10 and not msg.is_error_frame:
                seen.append(bytes(msg.data))
        for i in range(N):
            bus.send(can.Message(arbitration_id=0x20, is_extended_id=False, data=bytes([i, 0xAA])))
            time.sleep(0.002)
        result.put(seen)


@pytest.mark.req("REQ_0711")
def test_frames_cross_processes_on_udp_multicast(iox_prefix: str) -> None:
    why = _multicast_route()
    if why:
        pytest.skip(why)
    port = _free_udp_port()
    ctx = mp.get_context("spawn")
    ready, result = ctx.Event(), ctx.Queue()
    child = ctx.Process(target=plain_peer, args=(port, ready, result))
    child.start()
    bus = CanBusConfig(name="mc", interface="udp_multicast", channel=GROUP,
                       options={"port": port})
    rig = None
    try:
        assert ready.wait(30)
        rig = Rig(iox_prefix, [bus], [out("o", "mc", 0x10), inp("i", "mc", 0x20)])
        for i in range(N):
            rig.writers["o"].send(bytes([i, 0x55]))
            assert wait_until(lambda i=i: rig.conn.stats().get("mc.frames_out", 0) == i + 1)
        assert result.get(timeout=30) == [bytes([i, 0x55]) for i in range(N)]
        got = collect(rig.readers["i"], N, timeout=15)
        assert [g.value for g in got] == [bytes([i, 0xAA]) for i in range(N)]
        assert rig.conn.health() is HealthState.UP
        # its own frames come back on udp_multicast: they match no reader and are counted
        assert wait_until(lambda: rig.conn.stats().get("mc.filtered", 0) == N)
    finally:
        if rig is not None:
            rig.close()
        child.join(30)
        if child.is_alive():
            child.kill()
            child.join()
        result.close()
        result.join_thread()
