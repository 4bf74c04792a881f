"""The processes of a multi-process actor system, found and ended through Linux ``/proc``.

Thespian's admin starts itself with ``setsid()`` and a second ``fork()`` (it detaches from
its creator), so every process of one multi-process system (admin, logger, every actor and
whatever an actor forks) shares one session id that nothing else on the host has: the id of
the short-lived intermediate process. :func:`system_session` finds it from the process that
listens on the admin port, :func:`end_session` ends every member of it.

Everything here reads ``/proc`` only (stdlib, no Thespian); calls block at most for the grace
periods they are given.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, session, ...)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: split after the last ')'
    return text.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def session_of(pid: int) -> int | None:
    """The session id of ``pid`` (None if it is gone)."""
    fields = _stat(pid)
    return int(fields[3]) if fields is not None else None


def session_members(session: int) -> set[int]:
    """The live (non-zombie) processes of ``session``."""
    out = set()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None and fields[0] != "Z" and int(fields[3]) == session:
            out.add(int(entry.name))
    return out


def listener_pids(port: int) -> set[int]:
    """The processes holding a TCP socket that listens on ``port`` (any address)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    pids: set[int] = set()
    if not inodes:
        return pids
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    pids.add(int(entry.name))
                    break
    return pids


def system_session(port: int) -> int | None:
    """The session id shared by the processes of the actor system whose admin listens on
    ``port``, or None if nothing listens there, the listeners disagree, or the listener is not
    a detached admin (a session leader, or in this process's own session)."""
    sessions = set()
    for pid in listener_pids(port):
        session = session_of(pid)
        if session is None or session == pid:  # gone, or a session leader: not an admin
            return None
        sessions.add(session)
    if len(sessions) != 1:
        return None
    session = sessions.pop()
    return session if safe_session(session) else None


def safe_session(session: int) -> bool:
    """False for sessions that must never be swept: init's, and this process's own."""
    return session > 1 and session != os.getsid(0)


def end_session(session: int, *, term_s: float = 1.0, kill_s: float = 2.0) -> set[int]:
    """End every process of ``session``: SIGTERM (Thespian actors exit in order on it), and
    SIGKILL for what is still there after ``term_s``; wait up to ``kill_s`` more for them to go.

    Returns the pids that were still alive when this was called. Refuses (returns an empty set)
    for sessions :func:`safe_session` rejects and for a session whose leader lives (a system's
    session has none: its leader was Thespian's short-lived intermediate process, so a live
    leader means the id now names another session). Blocks up to ``term_s + kill_s`` seconds.
    """
    if not safe_session(session):
        return set()
    found = session_members(session)
    if not found or session in found:
        return set()
    _signal_all(found, signal.SIGTERM)
    if _wait_gone(session, term_s):
        return found
    _signal_all(session_members(session), signal.SIGKILL)
    _wait_gone(session, kill_s)
    return found


def wait_session_gone(session: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds until ``session`` has no live process; True if so."""
    return _wait_gone(session, timeout)


def _signal_all(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(session: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while session_members(session):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
