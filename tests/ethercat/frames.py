"""Raw EtherCAT frames for the SubDevice unit tests (no network)."""

from __future__ import annotations

import struct

from taktora.connectors.ethercat.sim.line import Line

ETH = bytes.fromhex("ffffffffffff" "010101010101" "88a4")


def frame(*grams: tuple[int, int, int, bytes]) -> bytearray:
    """A frame of datagrams (cmd, adp, ado, data); for logical commands adp/ado = low/high of
    the 32-bit address."""
    body = b""
    for i, (cmd, adp, ado, data) in enumerate(grams):
        more = 0x8000 if i < len(grams) - 1 else 0
        body += struct.pack("<BBHHHH", cmd, i, adp, ado, len(data) | more, 0) + data + b"\x00\x00"
    return bytearray(ETH + struct.pack("<H", len(body) | 0x1000) + body)


def results(f: bytearray) -> list[tuple[int, int, bytes, int]]:
    """(adp, ado, data, wkc) of every datagram of a processed frame."""
    out = []
    p = 16
    while True:
        _cmd, _idx, adp, ado, ln = struct.unpack_from("<BBHHH", f, p)
        n = ln & 0x7FF
        out.append((adp, ado, bytes(f[p + 10:p + 10 + n]), struct.unpack_from("<H", f, p + 10 + n)[0]))
        if not ln & 0x8000:
            return out
        p += 12 + n


def run(line: Line, *grams: tuple[int, int, int, bytes]) -> list[tuple[int, int, bytes, int]]:
    f = frame(*grams)
    assert line.process(f)
    return results(f)


def one(line: Line, cmd: int, adp: int, ado: int, data: bytes) -> tuple[bytes, int]:
    """Process one datagram; returns (data, wkc)."""
    r = run(line, (cmd, adp, ado, data))[0]
    return r[2], r[3]


def logical(cmd: int, addr: int, data: bytes) -> tuple[int, int, int, bytes]:
    return (cmd, addr & 0xFFFF, addr >> 16, data)
