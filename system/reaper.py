"""The owner watch: a multi-process system does not outlive the process that started it.

Thespian's admin detaches from its creator (``setsid()`` and a second ``fork()``), so neither a
parent-death signal nor the owner's process group reaches it: after ``kill -9`` of the owner
the admin, the logger and every actor would run on, holding the admin port. (A parent-death
signal set in the admin's creator is cleared for the admin by the fork, and the admin's
parent is the intermediate process that exits at once.)

So :func:`~taktora.system.bootstrap.start_system` starts a small watcher process, the
*reaper*, before the Thespian system (``python reaper.py --port P --host H --owner PID``, in a session
of its own so that signals to the owner's process group do not reach it). The owner holds the
write end of a pipe that is the reaper's stdin:

- ``session N``: the owner tells the reaper the session id its system's processes share
  (:mod:`taktora.system.processes`) once the root supervisor is up;
- ``done``: the owner closed the system itself; the reaper exits;
- end of file without ``done``: the owner died (however: ``kill -9``, a crash, the OOM
  killer). The reaper attaches to the admin port, checks that the system there is this
  owner's (:data:`~taktora.system.attach.OWNER_CAPABILITY`), shuts it down through Thespian
  (actors stop in order), then ends whatever is left of the session (SIGTERM, then SIGKILL).
  It prints one line to stderr saying what it did, and exits.

Only the owner process holds the pipe's write end: forked children of the owner (the Thespian
admin is one) close it right after the fork (``os.register_at_fork``), so their lives do not
keep the pipe open.

This file runs as a script (so the watcher starts in ~20 ms on the standard library alone);
it imports taktora only once it has to shut a system down.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time

_lock = threading.Lock()
_owner_fds: set[int] = set()  # write ends of this process's reapers' pipes


def _close_in_child() -> None:
    # runs in every child forked from this process: only the owner itself holds the pipes
    for fd in list(_owner_fds):
        with contextlib.suppress(OSError):
            os.close(fd)
    _owner_fds.clear()


os.register_at_fork(after_in_child=_close_in_child)


class Reaper:
    """The owner's side of the watch (see the module docstring). Not thread-safe: the thread
    that starts the system calls :meth:`announce` and :meth:`release`."""

    def __init__(self, admin_port: int, host: str = "127.0.0.1") -> None:
        """Start the watcher process for a system about to start on ``host:admin_port``.
        Blocks only for the spawn (a few ms)."""
        self.admin_port = admin_port
        self.owner_pid = os.getpid()
        read_fd, self._fd = os.pipe()
        with _lock:
            _owner_fds.add(self._fd)
        try:
            self.process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--port", str(admin_port),
                 "--host", host, "--owner", str(self.owner_pid)],
                stdin=read_fd, stdout=subprocess.DEVNULL, start_new_session=True,
                close_fds=True)
        except BaseException:
            self._close_fd()
            raise
        finally:
            os.close(read_fd)

    @property
    def pid(self) -> int:
        """The watcher's process id."""
        return self.process.pid

    def announce(self, session: int) -> None:
        """Tell the watcher the session id the system's processes share."""
        self._write(f"session {session}\n")

    def release(self, timeout: float = 2.0) -> None:
        """The owner closed the system itself: let the watcher exit and reap it (killed if it
        has not exited within ``timeout``). Idempotent; a no-op in forked children."""
        if os.getpid() != self.owner_pid:
            return
        self._write("done\n")
        self._close_fd()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _write(self, line: str) -> None:
        if self._fd < 0 or os.getpid() != self.owner_pid:
            return
        with contextlib.suppress(OSError):  # the watcher is gone: nothing to tell it
            os.write(self._fd, line.encode())

    def _close_fd(self) -> None:
        with _lock:
            if self._fd >= 0:
                _owner_fds.discard(self._fd)
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = -1


# ---- the watcher process -----------------------------------------------------------------------
def _watch(stream: int) -> tuple[bool, int | None]:
    """Read the owner's lines until ``done`` or end of file: (owner died?, session id)."""
    session: int | None = None
    buffer = b""
    while True:
        try:
            chunk = os.read(stream, 4096)
        except InterruptedError:
            continue
        if not chunk:
            return True, session
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            words = line.decode(errors="replace").split()
            if words == ["done"]:
                return False, session
            if len(words) == 2 and words[0] == "session" and words[1].isdigit():
                session = int(words[1])


def main(argv: list[str]) -> int:
    """The watcher: ``reaper.py --port P --host H --owner PID``, the owner's pipe on stdin."""
    args = dict(zip(argv[0::2], argv[1::2], strict=False))
    port, host, owner = int(args["--port"]), args["--host"], int(args["--owner"])
    died, session = _watch(0)
    if not died:
        return 0
    # the owner is gone: import the product only now (the watcher must start fast)
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)  # this file's folder holds modules that must not shadow others
    from taktora.system.stop import stop_orphan

    t0 = time.monotonic()
    report = stop_orphan(port, owner, session, host)
    if report:
        with contextlib.suppress(OSError):  # the owner's stderr may be gone with it
            print(f"taktora: the owner (pid {owner}) of the actor system on port {port} died; "
                  f"{report} in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
