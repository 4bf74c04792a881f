"""Test helper process: publishes on channels until its stdin closes.

Channels (service names): ``pose.out`` json {"i": n} at 200 Hz, ``blob.out`` raw 1 KiB at
50 Hz, ``mp.out`` msgpack [n, "x"] at 50 Hz. Prints ``ready`` once the writers exist. The
iceoryx2 prefix comes from TAKTORA_IOX_PREFIX (the test's own).
"""

from __future__ import annotations

import sys
import threading
import time

from taktora.connectors.channel import ChannelWriter
from taktora.connectors.model import ChannelDescriptor, Direction
from taktora.transport import Node


def main() -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    with Node() as node:
        pose = ChannelWriter(node, ChannelDescriptor("pose", Direction.OUTBOUND, codec="json"))
        blob = ChannelWriter(node, ChannelDescriptor("blob", Direction.OUTBOUND, codec="raw",
                                                     max_payload=2048))
        mp = ChannelWriter(node, ChannelDescriptor("mp", Direction.OUTBOUND, codec="msgpack"))
        print("ready", flush=True)
        t0 = time.monotonic()
        n = 0
        while not stop.is_set():
            n += 1
            pose.send({"i": n})
            if n % 4 == 0:
                blob.send(bytes([n % 256]) * 1024)
                mp.send([n, "x"])
            stop.wait(max(0.0, t0 + n * 0.005 - time.monotonic()))


if __name__ == "__main__":
    main()
