"""The paho client the MQTT connector drives: paho-mqtt 2's ``Client`` with a read buffer.

paho reads every packet with at least three ``recv`` system calls (the command byte, the
remaining length one byte at a time, then the rest) after one ``select`` each, which makes
its network thread - the connector's inbound path - spend a third of its time in the kernel
at a few thousand messages per second. :class:`BufferedSocket` serves those small reads from
one large ``recv`` per burst. It implements paho's ``SocketLike`` (``recv``, ``send``,
``close``, ``fileno``, ``setblocking``) plus ``pending()``, the hook paho already uses for TLS
sockets (``_loop`` does not sleep in ``select`` while ``pending() > 0``), so buffered packets
are read without waiting for the socket to become readable again; everything else is
forwarded to the wrapped socket (a plain or a TLS socket: a TLS socket's own decrypted bytes
are counted in ``pending`` too). :class:`Client` returns it from ``_create_socket``, paho's
own place for socket wrappers (it wraps websockets there).

Threads: the socket is read only by paho's network thread and written under paho's own
rules (its network thread, or ``publish`` when no loop thread runs); the buffer belongs to
the reading thread.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

READ_SIZE = 65536
"""Bytes asked of the kernel per ``recv`` when the buffer is empty."""
READ_BATCH = 16
"""Packets :meth:`Client.loop_read` reads from the buffer per wake-up of paho's loop."""


class BufferedSocket:
    """A socket whose ``recv`` is served from a buffer refilled by one large ``recv``."""

    __slots__ = ("_buf", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        """Up to ``size`` buffered bytes; refills from the socket when the buffer is empty
        (raises what the socket raises: BlockingIOError, ``ssl.SSLWantReadError`` ...;
        ``b""`` at the end of the stream)."""
        pos, buf = self._pos, self._buf
        if pos >= len(buf):
            buf = self._sock.recv(max(size, READ_SIZE))
            if not buf:
                return b""
            self._buf, pos = buf, 0
        end = min(pos + size, len(buf))
        self._pos = end
        return buf[pos:end] if pos or end < len(buf) else buf

    def buffered(self) -> int:
        """Bytes in this buffer (not counting a TLS socket's own)."""
        return len(self._buf) - self._pos

    def pending(self) -> int:
        """Bytes readable without the kernel: buffered here, or decrypted inside a TLS socket."""
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (inner() if inner is not None else 0)

    def send(self, data: bytes | bytearray) -> int:
        return int(self._sock.send(data))

    def close(self) -> None:
        self._buf, self._pos = b"", 0
        self._sock.close()

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class Client(mqtt.Client):
    """paho's client reading through a :class:`BufferedSocket` (TCP and TLS transports;
    websockets keep paho's own wrapper)."""

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if self._transport == "websockets":
            return sock
        return BufferedSocket(sock)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's ``loop_read``, repeated while whole packets may still be buffered (at most
        READ_BATCH packets per wake-up, so writes and keepalives are not held back long)."""
        rc = super().loop_read(max_packets)
        sock = self._sock
        if not isinstance(sock, BufferedSocket):
            return rc
        buffered = sock.buffered
        n = 1
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and n < READ_BATCH and buffered() and (
                self._sock is sock):
            rc = super().loop_read(max_packets)
            n += 1
        return rc
