"""SIGINT and SIGTERM stop an executor cleanly, in the main thread and in a worker thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("_signal_child.py")


@pytest.mark.req("REQ_0213")
@pytest.mark.parametrize("mode", ["main", "worker"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_gives_clean_exit_within_2s(mode: str, sig: int) -> None:
    proc = subprocess.Popen([sys.executable, str(CHILD), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(0.05)  # a few more ticks
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert f"STOPPED signal={int(sig)} ticks=True" in out, (out, err)
    assert took < 2.0


@pytest.mark.req("REQ_0222")
def test_a_signal_that_interrupts_the_wait_does_not_stop_the_executor() -> None:
    import threading

    from taktora.actors import Executor, Runner, every, item

    ticks: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: None)  # a handler makes the wait EINTR
    try:
        ex = Executor(name="eintr")
        ex.add(item(lambda ctx: ticks.append(1), [every(0.002)], name="tick"))
        with Runner(ex):
            deadline = time.monotonic() + 5
            while not ticks and time.monotonic() < deadline:
                time.sleep(0.01)
            worker = next(t for t in threading.enumerate() if t.name == "eintr-runner")
            for _ in range(20):
                signal.pthread_kill(worker.ident, signal.SIGUSR1)  # type: ignore[arg-type]
                time.sleep(0.005)
            before = len(ticks)
            time.sleep(0.1)
            assert worker.is_alive() and len(ticks) > before, "the executor stopped on EINTR"
        assert ex.interrupts > 0
    finally:
        signal.signal(signal.SIGUSR1, previous)
