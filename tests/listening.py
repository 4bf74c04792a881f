"""Which sockets the product's processes listen on, read from /proc (Linux, this network
namespace). Importable by every test folder (tests/ is on sys.path).

- :func:`listeners` lists every TCP socket in LISTEN state and every bound UDP socket (local
  port != 0: it receives what is sent to that port) that ``pids`` hold, from
  ``/proc/net/{tcp,tcp6,udp,udp6}`` matched to the socket inodes of ``/proc/PID/fd``;
- :class:`SystemProcesses` names the processes of a running system: this process, its
  descendants, and the Thespian admin (found as the holder of the admin port's listener: it
  detaches from its creator) with its descendants (logger, actors);
- :class:`Sampler` samples their listeners from a thread of its own while a system runs (so a
  listener opened for a moment is seen too) and keeps every one it saw.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taktora.transport.net import is_loopback

TCP_LISTEN = "0A"


@dataclass(frozen=True)
class Listener:
    """One listening socket: ``proto`` tcp/udp, its local ``address`` and ``port``, the
    ``pid`` holding it (a socket inherited across fork is listed once per holder) and that
    process's ``command`` line when it was sampled (not compared)."""

    proto: str
    address: str
    port: int
    pid: int
    inode: str
    command: str = field(default="?", compare=False)

    @property
    def loopback(self) -> bool:
        """Reachable from this host only (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104)."""
        return is_loopback(self.address)

    def __str__(self) -> str:
        return f"{self.proto} {self.address}:{self.port} (pid {self.pid}: {self.command})"


def cmdline(pid: int) -> str:
    """The command line of ``pid`` (shortened), or '?' when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:120] or "?"


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets ``pid`` holds (empty when it is gone)."""
    out = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def parent_map() -> dict[int, list[int]]:
    """ppid -> pids of every live (non-zombie) process."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            kids.setdefault(int(fields[1]), []).append(int(entry.name))
    return kids


def descendants(pids: Iterable[int], kids: dict[int, list[int]] | None = None) -> set[int]:
    """Every live descendant of ``pids`` (not the pids themselves)."""
    kids = parent_map() if kids is None else kids
    out: set[int] = set()
    todo = list(pids)
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


def _address(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc/net/*6 prints the address as four 32-bit words in host (little-endian) order
    return str(ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))))


Row = tuple[str, str, int, str, str]  # proto, address, port, state, inode


def sockets() -> list[Row]:
    """Every IP socket of this network namespace from /proc/net/{tcp,tcp6,udp,udp6}.

    Reading /proc/net/tcp walks the kernel's whole connection table (~10 ms here however few
    sockets there are): read it once per sample and pass the rows on."""
    rows = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            hexaddr, hexport = f[1].split(":")
            rows.append((proto, _address(hexaddr), int(hexport, 16), f[3], f[9]))
    return rows


def tcp_listener_inodes(port: int, rows: list[Row] | None = None) -> set[str]:
    """Inodes of the TCP sockets listening on ``port`` (any address)."""
    return {inode for proto, _, p, state, inode in (sockets() if rows is None else rows)
            if proto.startswith("tcp") and state == TCP_LISTEN and p == port}


def holders(inodes: set[str]) -> set[int]:
    """PIDs of the processes holding any of the socket ``inodes``."""
    if not inodes:
        return set()
    return {int(e.name) for e in Path("/proc").iterdir()
            if e.name.isdigit() and socket_inodes(int(e.name)) & inodes}


def listeners(pids: Iterable[int], rows: list[Row] | None = None) -> set[Listener]:
    """Every TCP socket in LISTEN state and every bound UDP socket that ``pids`` hold."""
    by_inode: dict[str, list[int]] = {}
    for pid in pids:
        for inode in socket_inodes(pid):
            by_inode.setdefault(inode, []).append(pid)
    out = set()
    for proto, address, port, state, inode in (sockets() if rows is None else rows):
        if inode not in by_inode:
            continue
        if proto.startswith("tcp") and state != TCP_LISTEN:
            continue  # an accepted or outgoing connection, not a listener
        if port == 0:
            continue  # an unbound UDP socket receives nothing
        for pid in by_inode[inode]:
            out.add(Listener(proto[:3], address, port, pid, inode, cmdline(pid)))
    return out


def packet_socket_inodes() -> set[str]:
    """Inodes of the raw AF_PACKET sockets of this network namespace (/proc/net/packet)."""
    try:
        lines = Path("/proc/net/packet").read_text().splitlines()[1:]
    except OSError:
        return set()
    return {line.split()[-1] for line in lines if line.split()}


class SystemProcesses:
    """The processes of a running system (see the module doc); call it for the current set.

    ``admin_port``: the Thespian admin's port (None for an in-process system). Helpers of the
    interpreter that are no part of the product (multiprocessing's resource tracker) are left
    out. Any thread.
    """

    def __init__(self, admin_port: int | None = None) -> None:
        self.admin_port = admin_port
        self._admins: set[int] = set()

    def __call__(self, rows: list[Row] | None = None) -> set[int]:
        """The system's PIDs now (``rows``: a :func:`sockets` reading to reuse)."""
        kids = parent_map()
        alive = {p for ps in kids.values() for p in ps}
        if self.admin_port is not None and not self._admins & alive:
            inodes = tcp_listener_inodes(self.admin_port, rows)
            self._admins = holders(inodes) - {os.getpid()}
        roots = {os.getpid()} | (self._admins & alive)
        pids = roots | descendants(roots, kids)
        return {p for p in pids if "resource_tracker" not in cmdline(p)}


class Sampler:
    """Samples the listeners of ``pids`` (a :class:`SystemProcesses`) every ``period_s`` on
    its own thread (``listener-sampler``) between ``with`` entry and exit, and once more on
    each :meth:`sample` and at exit; :attr:`seen` keeps every listener seen. Exit joins the
    thread and raises AssertionError if a sample on it failed. A sample costs ~10 ms of CPU
    (see :func:`sockets`).
    """

    def __init__(self, pids: SystemProcesses, period_s: float = 0.1) -> None:
        self.pids = pids
        self.period_s = period_s
        self.seen: set[Listener] = set()
        self.samples = 0
        self.error: Exception | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="listener-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        if self.error is not None:
            raise AssertionError(f"the listener sampler failed: {self.error!r}") from self.error

    def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception as exc:  # reported at exit: a sampler that stopped saw nothing
                self.error = exc
                return
            if self._stop.wait(self.period_s):
                return

    def sample(self) -> set[Listener]:
        """Sample now; returns this sample's listeners (also added to :attr:`seen`)."""
        rows = sockets()
        now = listeners(self.pids(rows), rows)
        with self._lock:
            self.seen |= now
            self.samples += 1
        return now

    def beyond_loopback(self, exempt: Callable[[Listener], bool] = lambda _: False) -> list[str]:
        """Every listener seen that is not on loopback and not ``exempt``, described."""
        with self._lock:
            seen = sorted(self.seen, key=lambda li: (li.pid, li.proto, li.port))
        return [str(li) for li in seen if not li.loopback and not exempt(li)]
