"""Starting and stopping systems; thread safety; timers; the loopback default."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from sysserve import Gateway
from taktora.actors.control.messages import GetStats, Pause, StatsReply
from taktora.actors.control.reconnect_policy import ReconnectPolicyActor
from taktora.actors.control.supervision import ChildSpec
from taktora.system import security
from taktora.system.bootstrap import QUIET_LOGGING, port_listening, start_system
from taktora.system.errors import SecurityError, SystemError_


def descendants(pid: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


def socket_inodes(pid: int) -> set[str]:
    out = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
    except OSError:
        pass
    return out


def listening_inodes(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and int(f[1].split(":")[1], 16) == port:
                found.add(f[9])
    return found


def system_pids(admin_port: int) -> set[int]:
    """Every process of the system: holders of the admin listener (the admin daemonizes, so
    it is no descendant of ours) and their descendants, plus our own descendants."""
    inodes = listening_inodes(admin_port)
    holders = {int(e.name) for e in Path("/proc").iterdir()
               if e.name.isdigit() and socket_inodes(int(e.name)) & inodes}
    out = set(holders) | descendants(os.getpid())
    for p in holders:
        out |= descendants(p)
    out.discard(os.getpid())
    # multiprocessing's resource tracker is this interpreter's helper, not part of the system
    return {p for p in out if b"resource_tracker" not in _cmdline(p)}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def listeners_of(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket owned by ``pids`` (from /proc)."""
    inodes: set[str] = set()
    for pid in pids:
        inodes |= socket_inodes(pid)
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A = LISTEN
                continue
            hexaddr, hexport = f[1].split(":")
            if v6:
                addr = "::" if int(hexaddr, 16) == 0 else hexaddr
            else:
                addr = ".".join(str(b) for b in bytes.fromhex(hexaddr)[::-1])
            out.append((addr, int(hexport, 16)))
    return out


@pytest.mark.req("REQ_0400")
def test_inprocess_ask_from_many_threads_and_timers_on_time():
    with start_system() as h:
        h.start_child(ChildSpec(id="gw", start=Gateway))
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(50):
                    assert h.control("gw", Pause()).detail == "paused"
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        # a timer fires although no caller is inside the actor system (control thread pumps)
        h.start_child(ChildSpec(id="rp", start=ReconnectPolicyActor,
                                args={"settings": {"initial_s": 0.2, "jitter": 0.0}}))
        from taktora.actors.control.reconnect_policy import AttemptReconnect, ConnectionLost

        h.control("rp", ConnectionLost())
        t0 = time.monotonic()
        time.sleep(0.5)  # nobody calls into the system meanwhile
        m = h.receive(0.01)
        assert isinstance(m, AttemptReconnect)
        assert time.monotonic() - t0 >= 0.5
    assert not [t for t in threading.enumerate() if t.name == "taktora-control"]


@pytest.mark.req("REQ_0401")
def test_multiprocess_leaves_nothing_behind(admin_port):
    with start_system("multiprocess", admin_port=admin_port, logging_config=QUIET_LOGGING) as h:
        h.start_child(ChildSpec(id="gw", start=Gateway))
        r = h.control("gw", GetStats())
        assert isinstance(r, StatsReply) and r.stats["pid"] != os.getpid()
        assert port_listening(admin_port)
        pids = system_pids(admin_port)
        assert r.stats["pid"] in pids
        assert len(pids) >= 4, pids  # admin, logger, root, gw
    deadline = time.monotonic() + 10
    pids = {p for p in pids if b"resource_tracker" not in _cmdline(p)}
    while time.monotonic() < deadline and ({p for p in pids if Path(f"/proc/{p}").exists()
                                            and "Z" not in Path(f"/proc/{p}/stat").read_text()
                                            .rsplit(")", 1)[1].split()[0]}
                                           or port_listening(admin_port)):
        time.sleep(0.05)
    alive = {p for p in pids if Path(f"/proc/{p}").exists()
             and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"}
    assert not alive, [(p, _cmdline(p)[:80]) for p in alive]
    assert not port_listening(admin_port)
    assert not [t for t in threading.enumerate() if t.name.startswith("taktora")]


@pytest.mark.req("REQ_0401")
def test_second_system_on_a_busy_port_is_refused(admin_port):
    with start_system("multiprocess", admin_port=admin_port, logging_config=QUIET_LOGGING):
        with pytest.raises(SystemError_, match="already listens"):
            start_system("multiprocess", admin_port=admin_port, logging_config=QUIET_LOGGING)


@pytest.mark.req("REQ_0410", "REQ_0460")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_every_listener_is_on_loopback_by_default(admin_port, method):
    # spawned actor processes do not inherit the bind wrapper: they get it from the capabilities
    with start_system("multiprocess", admin_port=admin_port, logging_config=QUIET_LOGGING,
                      start_method=method) as h:
        h.start_child(ChildSpec(id="gw", start=Gateway))
        h.control("gw", Pause())  # the thread's reply endpoint exists too
        pids = system_pids(admin_port) | {os.getpid()}
        assert len(pids) >= 5, pids
        socks = listeners_of(pids)
        assert len(socks) >= 5, socks  # admin, logger, root, gw (+ this process's endpoints)
        assert admin_port in {p for _, p in socks}
        assert all(addr.startswith("127.") for addr, _ in socks), socks


@pytest.mark.req("REQ_0411")
def test_opening_beyond_loopback_needs_the_opt_in(admin_port):
    with pytest.raises(SecurityError, match="allow_remote"):
        start_system("multiprocess", admin_port=admin_port, bind_address="0.0.0.0")
    with pytest.raises(SecurityError, match="allow_remote"):
        start_system("multiprocess", admin_port=admin_port, bind_address=None)
    try:
        with start_system("multiprocess", admin_port=admin_port, allow_remote=True,
                          bind_address=None, logging_config=QUIET_LOGGING):
            socks = listeners_of(system_pids(admin_port) | {os.getpid()})
            assert ("0.0.0.0", admin_port) in socks, socks
    finally:
        security.apply_bind_policy(security.LOOPBACK)
