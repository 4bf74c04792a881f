"""Bit-granular copies between process images (LSB-first bit order, as on the wire).

Shared by the connector (channel values in and out of a SubDevice's image) and the software
SubDevice (FMMU mapping of logical datagrams). A pure function: any thread, never blocks.
"""

from __future__ import annotations


def copy_bits(src: bytes | bytearray | memoryview, sbit: int, dst: bytearray | memoryview, dbit: int,
              nbits: int) -> None:
    """Copy ``nbits`` bits from ``src`` at bit ``sbit`` into ``dst`` at bit ``dbit``; the other
    bits of ``dst`` stay as they are (LSB-first bit order, as on the wire)."""
    if not (sbit | dbit | nbits) & 7:
        s, d, n = sbit >> 3, dbit >> 3, nbits >> 3
        dst[d:d + n] = src[s:s + n]
        return
    raw = int.from_bytes(src[sbit >> 3:(sbit + nbits + 7) >> 3], "little")
    value = (raw >> (sbit & 7)) & ((1 << nbits) - 1)
    d0, d1 = dbit >> 3, (dbit + nbits + 7) >> 3
    shift = dbit & 7
    cur = int.from_bytes(dst[d0:d1], "little")
    cur = (cur & ~(((1 << nbits) - 1) << shift)) | (value << shift)
    dst[d0:d1] = cur.to_bytes(d1 - d0, "little")
