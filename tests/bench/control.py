"""Control-plane benchmark: ask latency and restart latency, through taktora and raw Thespian.

Usage: python tests/bench/control.py [--quick] --json OUT
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "actors"))

from _bench import parse_args, ratio, summarize, write
from actorkit import Worker
from taktora.actors.control.messages import Ack, GetStats, Pause, Resume, StatsReply
from taktora.actors.control.supervision import ChildSpec, SupervisorSpec
from taktora.system.bootstrap import QUIET_LOGGING, start_system
from thespian.actors import Actor, ActorSystem

ROOT = SupervisorSpec(intensity=100_000, period_s=1.0)


class RawEcho(Actor):  # type: ignore[misc]
    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, str):
            self.send(sender, msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_thread(fn: Any) -> Any:
    """Run ``fn`` on a fresh (non-actor) thread and return its result."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), name="bench-caller")
    t.start()
    t.join()
    return out[0]


def raw_ask_inprocess(n: int) -> list[float]:
    asys = ActorSystem("simpleSystemBase", logDefs=False, transientUnique=True)
    try:
        echo = asys.createActor(RawEcho)
        samples = []
        for _ in range(n // 10):
            asys.ask(echo, "warm", 1)
        for _ in range(n):
            t0 = time.perf_counter()
            asys.ask(echo, "x", 1)
            samples.append((time.perf_counter() - t0) * 1e6)
        return samples
    finally:
        asys.shutdown()


def taktora_ask(mode: str, n: int) -> list[float]:
    with start_system(mode, admin_port=free_port() if mode == "multiprocess" else None,  # type: ignore[arg-type]
                      logging_config=QUIET_LOGGING, root=ROOT) as h:
        h.start_child(ChildSpec(id="w", start=Worker))
        target = h.create_actor(Worker)

        def run() -> list[float]:
            samples = []
            for _ in range(max(10, n // 10)):
                h.ask(target, Pause())
            for _ in range(n):
                msg = Pause()
                t0 = time.perf_counter()
                reply = h.ask(target, msg)
                samples.append((time.perf_counter() - t0) * 1e6)
                assert isinstance(reply, Ack)
            return samples

        return in_thread(run)  # type: ignore[no-any-return]


def answering_again(h: Any, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if isinstance(h.control("w", Pause(), timeout=1.0), Ack):
                return
        except Exception:
            pass
        time.sleep(0.0002)
    raise RuntimeError("child did not come back")


def restart_inprocess(n: int) -> list[float]:
    with start_system("inprocess", root=ROOT) as h:
        h.start_child(ChildSpec(id="w", start=Worker))
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            h.control("w", Resume())  # the handler raises: a crash
            answering_again(h)
            samples.append((time.perf_counter() - t0) * 1e6)
        return samples


def restart_after_kill(n: int) -> list[float]:
    with start_system("multiprocess", admin_port=free_port(), logging_config=QUIET_LOGGING,
                      root=ROOT) as h:
        h.start_child(ChildSpec(id="w", start=Worker))
        samples = []
        for _ in range(n):
            pid = h.control("w", GetStats()).stats["pid"]  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            while True:  # the root knows a new, running w (asking w itself before the root
                # noticed the death would send into the void) ...
                w = h.tree().find(("w",))
                if w is not None and w.state == "running" and w.pid not in (None, pid):
                    break
                time.sleep(0.0002)
            reply = h.control("w", GetStats(), timeout=2.0)  # ... and that new w answers
            assert isinstance(reply, StatsReply) and reply.stats["pid"] != pid
            samples.append((time.perf_counter() - t0) * 1e6)
        return samples


def main() -> None:
    args = parse_args(__doc__ or "control plane")
    q = args.quick
    results = [
        summarize("thespian_raw_ask_inprocess", raw_ask_inprocess(2000 if q else 20000)),
        summarize("ask_inprocess", taktora_ask("inprocess", 2000 if q else 20000)),
        summarize("ask_multiprocess", taktora_ask("multiprocess", 300 if q else 3000)),
        summarize("restart_inprocess", restart_inprocess(50 if q else 500)),
        summarize("restart_after_kill", restart_after_kill(10 if q else 50)),
    ]
    ratios = {"ask_inprocess/thespian_raw_ask_inprocess":
              ratio(results, "ask_inprocess", "thespian_raw_ask_inprocess")}
    write("control", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
