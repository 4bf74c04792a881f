"""Address checks every layer's listeners share: what counts as loopback."""

from __future__ import annotations

import ipaddress


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also as an IPv4-mapped address, ``[::1]`` in brackets) and
    ``localhost``; False for every other address or name (``0.0.0.0`` and ``::`` included)."""
    host = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))
