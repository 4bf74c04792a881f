"""Test isolation shared by the whole suite.

- each test gets its own iceoryx2 prefix (``iox_prefix``), exported to child processes;
- each test that needs one gets its own Thespian admin port (``admin_port``);
- an autouse guard fails a test that leaves a thread, a child process or a shared-memory
  segment of its prefix behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from taktora.transport import isolation

SETTLE_S = 3.0  # how long a test's threads and processes get to go after teardown


def _children(pid: int) -> set[int]:
    kids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: split after the last ')'
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            kids.add(int(entry.name))
    return kids


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listeners_on(port: int) -> set[int]:
    """PIDs of the processes holding a TCP socket listening on ``port`` (any address)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    if inodes:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                fds = list((proc / "fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(fd) in inodes:
                        pids.add(int(proc.name))
                        break
                except OSError:
                    continue
    return pids


@pytest.fixture
def admin_port() -> Iterator[int]:
    """A Thespian admin port of this test's own. The Thespian admin detaches from the test
    process (the child-process check cannot see it), so teardown checks the port itself: an
    admin still listening after the test is killed and fails the test."""
    port = free_port()
    yield port
    deadline = time.monotonic() + SETTLE_S
    while (pids := listeners_on(port) - {os.getpid()}) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pids:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail(f"actor system still listening on admin port {port} after the test "
                    f"(pids {sorted(pids)}, killed)", pytrace=False)


@pytest.fixture
def iox_prefix() -> str:
    """This test's own iceoryx2 prefix (set by ``isolate``, exported as TAKTORA_IOX_PREFIX)."""
    return os.environ[isolation.PREFIX_ENV]


@pytest.fixture(autouse=True)
def isolate(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give every test its own iceoryx2 prefix, and fail it if it leaves threads, child
    processes or files of that prefix behind."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    prefix = isolation.unique_prefix(f"{suite_root()}{worker}")
    saved = os.environ.get(isolation.PREFIX_ENV)
    os.environ[isolation.PREFIX_ENV] = prefix
    threads_before = set(threading.enumerate())
    kids_before = _children(os.getpid())
    yield
    if saved is None:
        os.environ.pop(isolation.PREFIX_ENV, None)
    else:
        os.environ[isolation.PREFIX_ENV] = saved
    deadline = time.monotonic() + SETTLE_S
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        kids = _children(os.getpid()) - kids_before
        files = isolation.leaked_files(prefix)
        if not (threads or kids or files) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    problems = []
    if threads:
        problems.append(f"threads still running: {[t.name for t in threads]}")
    if kids:
        problems.append(f"child processes still running: {sorted(kids)}")
    if files:
        problems.append(f"iceoryx2 files of prefix {prefix!r} left: {[p.name for p in files[:5]]}")
        isolation.purge_prefix(prefix)  # do not let the next test trip over them
    if not kids:
        isolation.purge_prefix(prefix)  # the prefix's management segment, once nothing uses it
    if problems and not request.node.get_closest_marker("allow_leaks"):
        pytest.fail("test did not clean up: " + "; ".join(problems), pytrace=False)


SESSION_ENV = "TAKTORA_TEST_SESSION"


def suite_root() -> str:
    """Prefix root of this test run: ``tkt`` + a run id shared by the xdist workers (they
    inherit the controller's environment), so concurrent runs on one machine stay apart."""
    return f"tkt{os.environ[SESSION_ENV]}"


def pytest_configure(config: pytest.Config) -> None:
    """Start multiprocessing's resource tracker up front: it is the test process's own helper
    (started on first use of a spawn semaphore) and must not count as a test's leftover."""
    from multiprocessing import resource_tracker

    os.environ.setdefault(SESSION_ENV, os.urandom(3).hex())
    resource_tracker.ensure_running()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole run (the xdist controller, or a plain run): no file of any test prefix
    may remain in /dev/shm or the iceoryx2 root; a leftover fails the run."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    left = isolation.leftover_files(suite_root())
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nshared-memory leak: {len(left)} iceoryx2 files of the suite remain, e.g. "
              f"{[p.name for p in left[:5]]}")
