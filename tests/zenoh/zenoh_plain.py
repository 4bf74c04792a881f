"""Plain eclipse-zenoh programs for the interop tests, run in spawned child processes.

This module imports only zenoh and the standard library: it stands for "somebody else's zenoh
program" talking to a taktora gateway.
"""

from __future__ import annotations

import json
import queue
import time
from typing import Any

import zenoh


def config(mode: str = "peer", listen: str | None = None, connect: str | None = None) -> zenoh.Config:
    cfg = zenoh.Config()
    cfg.insert_json5("mode", json.dumps(mode))
    cfg.insert_json5("scouting/multicast/enabled", "false")
    # no zenoh shared-memory segments: they outlive a process that ends without exit handlers
    cfg.insert_json5("transport/shared_memory/enabled", "false")
    # zenoh's default (no listen/endpoints) listens on every interface: a test program stays on
    # loopback like the product does (a peer on a free port: peers that only connect reach each
    # other through it by gossip; a client does not listen)
    if listen or mode != "client":
        cfg.insert_json5("listen/endpoints", json.dumps([listen or "tcp/127.0.0.1:0"]))
    if connect:
        cfg.insert_json5("connect/endpoints", json.dumps([connect]))
    return cfg


def peer(mode: str, listen: str | None, connect: str | None, commands: Any, results: Any) -> None:
    """A plain zenoh program driven by ``commands`` (tuples), reporting on ``results``.

    - everything arriving on ``demo/to_plain`` is reported as ("got", payload);
    - ``echo/in`` is republished on ``echo/out`` (for round trips);
    - queryable ``demo/plain_q``: replies payload+b"-1", payload+b"-2", payload+b"-3";
    - queryable ``demo/slow_q``: replies b"early" now and b"late" after 0.8 s;
    - ("publish", key, [payloads]) publishes; ("query", key, payload, timeout) issues a get
      and reports ("replies", [payloads]); ("stop",) ends the program.
    """
    session = zenoh.open(config(mode, listen, connect))
    echo = session.declare_publisher("echo/out")
    late: queue.Queue[Any] = queue.Queue()

    def plain_q(q: zenoh.Query) -> None:
        body = q.payload.to_bytes() if q.payload is not None else b""
        for i in (1, 2, 3):
            q.reply(q.key_expr, body + f"-{i}".encode())
        q.drop()

    def slow_q(q: zenoh.Query) -> None:
        q.reply(q.key_expr, b"early")
        late.put((time.monotonic() + 0.8, q))

    subs = [
        session.declare_subscriber("demo/to_plain",
                                   lambda s: results.put(("got", s.payload.to_bytes()))),
        session.declare_subscriber("echo/in", lambda s: echo.put(s.payload.to_bytes())),
        session.declare_queryable("demo/plain_q", plain_q),
        session.declare_queryable("demo/slow_q", slow_q),
    ]
    results.put(("ready", str(session.info.zid())))
    while True:
        try:
            due, q = late.get_nowait()
            time.sleep(max(0.0, due - time.monotonic()))
            q.reply(q.key_expr, b"late")
            q.drop()
        except queue.Empty:
            pass
        if commands.empty():  # a SimpleQueue: the parent starts no feeder thread
            time.sleep(0.02)
            continue
        cmd = commands.get()
        if cmd[0] == "stop":
            break
        if cmd[0] == "publish":
            pub = session.declare_publisher(cmd[1])
            for payload in cmd[2]:
                pub.put(payload)
            pub.undeclare()
        elif cmd[0] == "query":
            replies = [r.ok.payload.to_bytes() if r.ok is not None else b"ERR:" + r.err.payload.to_bytes()
                       for r in session.get(cmd[1], payload=cmd[2], timeout=cmd[3],
                                            consolidation=zenoh.ConsolidationMode.NONE)]
            results.put(("replies", replies))
        elif cmd[0] == "peers":
            results.put(("peers", len(list(session.info.peers_zid()))))
    for sub in subs:
        sub.undeclare()
    session.close()


def echo_main(listen: str) -> None:
    """``python zenoh_plain.py LISTEN``: a plain peer that republishes ``echo/in`` on
    ``echo/out`` until stdin closes (run inside a network namespace by the two-host test)."""
    import sys

    session = zenoh.open(config("peer", listen, None))
    echo = session.declare_publisher("echo/out")
    sub = session.declare_subscriber("echo/in", lambda s: echo.put(s.payload.to_bytes()))
    print("ready", flush=True)
    sys.stdin.read()
    sub.undeclare()
    session.close()


if __name__ == "__main__":
    import sys

    echo_main(sys.argv[1])
