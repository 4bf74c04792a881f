"""Keep Thespian's TCP listeners on loopback unless the user opens them on purpose.

Thespian's TCP base binds every listening socket (admin, logger, each actor) to ``0.0.0.0``
and accepts **unauthenticated pickles**: anyone who can reach a port can run code in the
process. taktora therefore binds to loopback by default. Two things are needed, measured on
Thespian 4.0.1:

1. ``THESPIAN_BASE_IPADDR=<address>`` makes Thespian *advertise* that address (and stops it
   probing for a "public" one);
2. a small wrapper of ``IPActorAddress.__init__`` makes the *bind* use that same address
   (Thespian binds external addresses to ``('', port)``, every interface).

Both are process-wide and inherited by every forked actor process, so :func:`apply_bind_policy`
runs before the system starts (and in a CLI before it attaches: the CLI's reply socket listens
too); spawned actor processes get it from a :class:`SpawnedBind` in the logging definitions. With
``allow_remote=True`` and no address, Thespian's default (every interface) is
restored; with ``allow_remote=True`` and an address, the listeners bind to that one address
(the multi-host set-up).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from taktora.system.errors import SecurityError
from taktora.transport.net import is_loopback

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
ENV = "THESPIAN_BASE_IPADDR"
#: the key of the logging definitions that carries a :class:`SpawnedBind`
SPAWNED_BIND = "taktora.bind"

_lock = threading.Lock()
_bind_address: str | None = None
_installed = False


def resolve_bind(bind_address: str | None, allow_remote: bool) -> str | None:
    """The address to bind to, or None for Thespian's default (every interface).

    Raises :class:`SecurityError` when the listeners would leave loopback without
    ``allow_remote=True``.
    """
    if bind_address is None:
        if not allow_remote:
            raise SecurityError("bind_address=None listens on every interface: pass "
                                "allow_remote=True to accept that (Thespian's TCP base accepts "
                                "unauthenticated pickles)")
        return None
    if not is_loopback(bind_address) and not allow_remote:
        raise SecurityError(f"bind_address {bind_address!r} is not loopback: pass "
                            f"allow_remote=True to open the control plane beyond this host "
                            f"(Thespian's TCP base accepts unauthenticated pickles)")
    return LOOPBACK if bind_address == "localhost" else bind_address


def _install_wrapper() -> None:
    global _installed
    if _installed:
        return
    from thespian.system.transport import IPBase

    original = IPBase.IPActorAddress.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        original(self, *args, **kwargs)
        if _bind_address is not None and self.bindname[0] == "":
            self.bindname = self.sockname

    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    IPBase.IPActorAddress.__init__ = __init__
    _installed = True


def apply_bind_policy(bind_address: str | None) -> None:
    """Make Thespian TCP listeners created from now on bind to ``bind_address``.

    None restores Thespian's default (every interface). Process-wide; call it before starting
    or attaching to a system (forked actors inherit it). Thread-safe; does not block.
    """
    global _bind_address
    with _lock:
        _install_wrapper()
        _bind_address = bind_address
        if bind_address is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = bind_address
    log.debug("thespian bind policy: %s", bind_address or "every interface")


class SpawnedBind:
    """The bind policy for actor processes that are spawned, not forked (a spawned process
    inherits the environment but not :func:`apply_bind_policy`'s wrapper).

    It travels in the system's logging definitions, which Thespian pickles into every process
    it spawns; unpickling it there - before the process opens its listener - applies the policy.
    It applies only where ``THESPIAN_BASE_IPADDR`` already names the same address (a process
    of this system), never in a process elsewhere that merely receives the capabilities.
    """

    def __init__(self, address: str) -> None:
        self.address = address

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_spawned_bind, (self.address,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpawnedBind) and other.address == self.address

    def __hash__(self) -> int:
        return hash(self.address)

    def __repr__(self) -> str:
        return f"SpawnedBind({self.address!r})"


def _spawned_bind(address: str) -> SpawnedBind:
    if os.environ.get(ENV) == address and _bind_address != address:
        apply_bind_policy(address)
    return SpawnedBind(address)


def spawned_bind(bind: str | None) -> dict[str, SpawnedBind]:
    """The entry of the Thespian logging definitions that carries the bind policy into spawned
    processes (Thespian passes them to every process it starts, its logger included;
    ``logging.config.dictConfig`` ignores the extra key)."""
    return {} if bind is None else {SPAWNED_BIND: SpawnedBind(bind)}


def current_bind() -> str | None:
    """The bind address in force (None: Thespian's default)."""
    return _bind_address
