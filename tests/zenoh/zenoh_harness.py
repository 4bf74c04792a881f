"""Test harness of the zenoh tests (tests/zenoh has no __init__.py on purpose: a package
named ``zenoh`` would shadow eclipse-zenoh): endpoints, plain-zenoh child processes."""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import socket
import time
from typing import Any

from polling import WAIT_S, collect, wait_until
from taktora.connectors import ChannelDescriptor, Direction, QoS, Routing
from zenoh_plain import peer

ctx = multiprocessing.get_context("spawn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def endpoint(port: int | None = None) -> str:
    return f"tcp/127.0.0.1:{port or free_port()}"


def zchan(name: str, direction: Direction, key: str, *, qos: QoS | None = None,
          codec: str = "raw", max_payload: int = 256, buffer_size: int = 256) -> ChannelDescriptor:
    return ChannelDescriptor(name, direction, codec=codec, max_payload=max_payload,
                             buffer_size=buffer_size, qos=qos or QoS(),
                             routing=Routing("zenoh", key))


class PlainPeer:
    """A plain eclipse-zenoh program in a spawned process (tests/zenoh/plain.py)."""

    def __init__(self, mode: str = "peer", listen: str | None = None,
                 connect: str | None = None) -> None:
        self.commands = ctx.SimpleQueue()
        self.results: Any = ctx.Queue()
        self.proc = ctx.Process(target=peer, args=(mode, listen, connect, self.commands,
                                                   self.results), daemon=True)
        self.backlog: list[tuple[Any, ...]] = []
        self.proc.start()
        self.expect("ready", 30.0)

    def send(self, *cmd: Any) -> None:
        self.commands.put(cmd)

    def expect(self, kind: str, timeout: float = WAIT_S) -> tuple[Any, ...]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"plain zenoh peer sent no {kind!r} within {timeout} s")
            try:
                item = self.results.get(timeout=left)
            except queue.Empty:
                continue
            if item[0] == kind:
                return tuple(item)
            self.backlog.append(tuple(item))

    def got(self, count: int, timeout: float = WAIT_S) -> list[bytes]:
        """Payloads the peer received on demo/to_plain (waits for ``count``)."""
        out = [b[1] for b in self.backlog if b[0] == "got"]
        self.backlog = [b for b in self.backlog if b[0] != "got"]
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            try:
                item = self.results.get(timeout=0.1)
            except queue.Empty:
                continue
            if item[0] == "got":
                out.append(item[1])
            else:
                self.backlog.append(tuple(item))
        return out

    def kill(self) -> None:
        """kill -9, then reap."""
        if self.proc.is_alive():
            os.kill(self.proc.pid or 0, signal.SIGKILL)
        self.proc.join(10)

    def stop(self) -> None:
        if self.proc.is_alive():
            self.send("stop")
            self.proc.join(10)
        if self.proc.is_alive():
            self.kill()
        self.results.close()
        self.results.join_thread()
        self.commands.close()






def two_host_app(netns: str, connect: str, results: Any) -> None:
    """Spawned child: enter network namespace ``netns``, run a zenoh gateway (dispatcher) and
    an app that round-trips 5 messages through the plain echo peer at ``connect``; report."""
    import ctypes

    from taktora.connectors import ChannelReader, ChannelWriter, Dispatcher, HealthState
    from taktora.connectors.zenoh import ZenohConfig, ZenohConnector
    from taktora.transport import Node

    libc = ctypes.CDLL(None, use_errno=True)
    with open(netns) as f:
        if libc.setns(f.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns failed")
    prefix = os.environ["TAKTORA_IOX_PREFIX"]
    out = zchan("echo/in", Direction.OUTBOUND, "echo/in")
    back = zchan("echo/out", Direction.INBOUND, "echo/out")
    conn = ZenohConnector(ZenohConfig(connect=(connect,)))
    disp = Dispatcher(prefix, conn, [out, back], name="gw-ns").start()
    try:
        with Node("app-ns", prefix=prefix) as node:
            writer: Any = ChannelWriter(node, out)
            reader: Any = ChannelReader(node, back)
            wait_until(lambda: conn.health() is HealthState.UP, 20)
            health = conn.health().value
            wait_until(lambda: (writer.send(b"probe"), reader.recv(0.2))[1] is not None, 20)
            while reader.recv(0.2) is not None:
                pass
            for i in range(5):
                writer.send(f"m{i}".encode())
            echoed = [g.value for g in collect(reader, 5)]
    finally:
        disp.stop()
    results.put({"health": health, "echoed": echoed})
