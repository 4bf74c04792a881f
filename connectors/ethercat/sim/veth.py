"""veth pairs for the software SubDevice (root): ``NAME`` for the MainDevice, ``NAMEs`` for the
simulator. Runs ``ip`` on the caller's thread (blocks until it returns); failures raise
:class:`~taktora.connectors.ethercat.errors.VethError` with ip's message."""

from __future__ import annotations

import os
import shutil
import subprocess

from taktora.connectors.ethercat.errors import VethError

MAX_NAME = 14  # IFNAMSIZ - 1, minus the "s" of the simulator's end


def sim_end(name: str) -> str:
    """The simulator's end of the pair ``name``."""
    return f"{name}s"


def available() -> str | None:
    """None if veth pairs can be made here, else the reason why not."""
    if os.geteuid() != 0:
        return "needs root (veth pairs and AF_PACKET sockets)"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is missing"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ip = shutil.which("ip")
    if ip is None:
        raise VethError("the 'ip' command (iproute2) is missing")
    done = subprocess.run([ip, *args], capture_output=True, text=True, check=False)
    if check and done.returncode:
        raise VethError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def up(name: str) -> tuple[str, str]:
    """Create and raise the pair ``name`` <-> ``name``s; returns (master end, simulator end)."""
    if not name or len(name) > MAX_NAME or "/" in name or " " in name:
        raise VethError(f"veth name {name!r}: 1..{MAX_NAME} characters, no '/' or spaces")
    peer = sim_end(name)
    _ip("link", "add", name, "type", "veth", "peer", "name", peer)
    try:
        for dev in (name, peer):
            _ip("link", "set", dev, "mtu", "1500")
            _ip("link", "set", dev, "up")
    except VethError:
        down(name)
        raise
    return name, peer


def down(name: str) -> bool:
    """Delete the pair (deleting one end removes both); False if it did not exist."""
    return _ip("link", "del", name, check=False).returncode == 0


def link(name: str, state: bool) -> None:
    """Set one end administratively up or down (link-down fault from outside the simulator)."""
    _ip("link", "set", name, "up" if state else "down")
