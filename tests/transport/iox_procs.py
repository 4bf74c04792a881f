"""Child-process bodies for the transport tests (importable, so multiprocessing spawn works).

Each child reads its iceoryx2 prefix from TAKTORA_IOX_PREFIX, inherited from the test.
"""

from __future__ import annotations

import os
import time
from typing import Any

from taktora.transport import BytesPayload, ChannelSpec, Node, ServiceSpec


def spec_for(name: str, max_size: int) -> ChannelSpec:
    return ChannelSpec(name, BytesPayload(max_size, growable=True), buffer_size=16, history=0)


def pattern(size: int, seq: int) -> bytes:
    """A payload whose every byte depends on its size and sequence (checked end to end)."""
    block = bytes((seq + i) % 251 for i in range(251))
    return (block * (size // 251 + 1))[:size]


def echo_back(prefix: str, name: str, max_size: int, count: int, ready: Any) -> None:
    """Receive ``count`` samples on NAME/in and send each payload back on NAME/out."""
    os.environ["TAKTORA_IOX_PREFIX"] = prefix
    with Node("echo") as node:
        sub = node.subscriber(spec_for(f"{name}/in", max_size))
        pub = node.publisher(spec_for(f"{name}/out", max_size))
        ready.set()
        done = 0
        deadline = time.monotonic() + 60
        while done < count and time.monotonic() < deadline:
            sub.wait(0.5)
            sub.consume_wakeups()
            for sample in sub.drain():
                pub.send_copy(sample.payload)
                done += 1


def publish_forever(prefix: str, name: str, ready: Any) -> None:
    """Publish a counter until killed (for kill -9 tests)."""
    os.environ["TAKTORA_IOX_PREFIX"] = prefix
    node = Node("doomed")
    pub = node.publisher(spec_for(name, 64))
    ready.set()
    i = 0
    while True:
        i += 1
        pub.send_copy(i.to_bytes(8, "little"))
        time.sleep(0.001)


def serve(prefix: str, name: str, requests: int, ready: Any) -> None:
    """Answer ``requests`` requests: three streamed responses each (upper-cased, numbered)."""
    os.environ["TAKTORA_IOX_PREFIX"] = prefix
    spec = ServiceSpec(name, BytesPayload(256), BytesPayload(256))
    with Node("server") as node:
        server = node.server(spec)
        ready.set()
        handled = 0
        deadline = time.monotonic() + 30
        while handled < requests and time.monotonic() < deadline:
            server.wait(0.2)
            server.consume_wakeups()
            while (req := server.receive()) is not None:
                with req:
                    body = bytes(req.payload).upper()
                    for i in range(3):
                        req.respond(body + b"#%d" % i)
                handled += 1
        time.sleep(0.2)  # let the client read the end of the last stream


def slow_drain(prefix: str, spec: ChannelSpec, count: int, ready: Any, results: Any) -> None:
    """Read ``count`` samples slowly (so a BLOCK publisher has to wait); report them."""
    os.environ["TAKTORA_IOX_PREFIX"] = prefix
    got: list[bytes] = []
    with Node("slow") as node:
        sub = node.subscriber(spec)
        ready.set()
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            data = sub.receive_copy()
            if data is None:
                sub.wait(0.05)
            else:
                got.append(data)
                time.sleep(0.002)
        results.put((got, sub.stats.lost))
