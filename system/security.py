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
too). With ``allow_remote=True`` and no address, Thespian's default (every interface) is
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


def current_bind() -> str | None:
    """The bind address in force (None: Thespian's default)."""
    return _bind_address
