"""How a multi-process actor system starts its processes: fork or spawn.

Thespian's multi-process base forks each actor's process from its parent's. Forking is fast
(a gateway restart after ``kill -9`` takes ~40 ms here) but copies the parent's process state,
and two libraries do not survive that: a process forked from one that had created an iceoryx2
node creates nodes that iceoryx2 never reports dead after a ``kill -9`` (their ports are never
reclaimed: after a few restarts a gateway cannot open its ports, ``ExceedsMaxSupportedPublishers``),
and a zenoh session opened before the fork hangs the children's sessions.

``start_method="auto"`` (the default of :func:`taktora.system.bootstrap.start_system`) forks
when the starting process used neither, and spawns otherwise (each actor process then starts
a fresh interpreter: slower, ~0.3 s per actor start, and correct). ``"fork"`` or ``"spawn"``
force one. Spawning re-imports the main module in every actor process: a script that starts a
system must guard its top level with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

from taktora.system.errors import SystemError_
from taktora.transport.node import iceoryx2_used

log = logging.getLogger(__name__)

StartMethod = Literal["auto", "fork", "spawn"]
#: the Thespian capability that selects it
CAPABILITY = "Process Startup Method"


def why_spawn() -> str | None:
    """Why forking from this process would break actor processes, or None if it would not."""
    if iceoryx2_used():
        return "this process created iceoryx2 nodes before starting the system"
    if "zenoh" in sys.modules:
        return "this process loaded zenoh before starting the system"
    return None


def resolve(method: str) -> str:
    """The start method to use for ``method`` (``auto``, ``fork`` or ``spawn``); logs why when
    ``auto`` picks spawn. Raises :class:`SystemError_` for anything else."""
    if method not in ("auto", "fork", "spawn"):
        raise SystemError_(f"start_method {method!r}: use 'auto', 'fork' or 'spawn'")
    if method != "auto":
        return method
    reason = why_spawn()
    if reason is None:
        return "fork"
    log.info("actor processes are spawned, not forked: %s (see taktora.system.start_method)",
             reason)
    return "spawn"
