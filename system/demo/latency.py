"""Section 1 of ``make demo``: what taktora's zero-copy publish/subscribe costs.

Two processes exchange 64 B to 4 MiB payloads through taktora's zero-copy iceoryx2
publish/subscribe, and a table shows what it cost. This process publishes ~200 messages per
payload size (64 B, 4 KiB, 64 KiB, 1 MiB, 4 MiB), paced about 1 ms apart, writing each
payload straight into loaned shared memory (``Publisher.loan``). A subscriber process started
with multiprocessing spawn sleeps in ``Subscriber.wait``, reads each payload in place (a
read-only zero-copy view), checks every byte against the expected pattern and measures the
one-way latency from the sample's ``TransportHeader`` timestamp (CLOCK_MONOTONIC, system-wide)
to the moment it holds the sample. Lost samples come from the subscriber's sequence-gap
counters (``SubscriberStats.lost``). A last row sends 1 MiB through ``multiprocessing.Pipe``
for comparison: its latency grows with the size, the shared-memory one does not.

Columns: payload size, messages received, p50/p99 one-way latency in microseconds, MB/s moved
by the paced stream (payload bytes / wall time of the run; pacing caps it, it is not a
maximum), samples lost. Everything runs under a fresh iceoryx2 prefix that is removed at the
end. ``quick`` sends fewer messages.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table
from taktora.transport import BytesPayload, ChannelSpec, Node, OverflowPolicy, Subscriber, isolation

log = logging.getLogger("taktora.demo")

SIZES = (64, 4 << 10, 64 << 10, 1 << 20, 4 << 20)
PIPE_SIZE = 1 << 20
GAP_S = 0.001
TIMEOUT_S = 10.0
CYCLE = 251  # payload byte i of message seq is (seq + i) % 251


@attrs.frozen
class Result:
    """What the subscriber saw for one payload size on one transport."""

    transport: str
    size: int
    sent: int
    latencies_ns: list[int]
    lost: int
    bad: int
    seconds: float

    @property
    def received(self) -> int:
        return len(self.latencies_ns)

    def percentile_us(self, q: float) -> float:
        ordered = sorted(self.latencies_ns)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000 if ordered else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.size * self.received / self.seconds / 1e6 if self.seconds > 0 else 0.0


def _label(size: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} B"


def _spec(size: int) -> ChannelSpec:
    # BLOCK: the demo verifies every payload, so the publisher waits rather than overwrite
    # (the subscriber is another process: iceoryx2's blocking retry holds only our GIL)
    return ChannelSpec(f"demo/{size}", BytesPayload(size), buffer_size=16, max_publishers=1,
                       max_subscribers=1, max_borrowed=2, overflow=OverflowPolicy.BLOCK)


def _pattern(size: int) -> bytes:
    """Bytes from which every expected payload is a slice at offset ``seq % CYCLE``."""
    block = bytes(range(CYCLE))
    return block * ((size + CYCLE) // CYCLE + 1)


# ------------------------------------------------------------------ subscriber process
def _take(sub: Subscriber, expected: bytes, lat: list[int]) -> int:
    """Receive every queued sample: record its latency, check its bytes in place (zero-copy).
    Returns how many payloads were wrong."""
    bad = 0
    size = sub.spec.payload.max_size if isinstance(sub.spec.payload, BytesPayload) else 0
    while (sample := sub.receive()) is not None:
        with sample:
            lat.append(time.monotonic_ns() - sample.timestamp_ns)
            view = sample.payload
            if len(view) != size or not expected.startswith(view, sample.sequence % CYCLE):
                bad += 1
    return bad


def subscriber_main(prefix: str, sizes: Sequence[int], ctl: Connection, pipe: Connection) -> None:
    """Child process: receive and check every size in turn, then the pipe run; report each
    run's :class:`Result` on ``ctl``. The parent says ``("done", size, sent)`` after a run."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ[isolation.PREFIX_ENV] = prefix
    clock = time.monotonic_ns
    with Node("demo-subscriber", prefix=prefix) as node:
        subs = {size: node.subscriber(_spec(size)) for size in sizes}
        ctl.send("ready")
        for size in sizes:
            sub, expected = subs[size], _pattern(size)
            lat: list[int] = []
            bad = 0
            t0 = time.monotonic()
            while True:
                sub.wait(0.05)
                bad += _take(sub, expected, lat)
                if ctl.poll():  # "done": the last samples were sent before it
                    bad += _take(sub, expected, lat)
                    break
            _, _, sent = ctl.recv()
            ctl.send(Result("taktora", size, sent, lat, sub.stats.lost, bad, time.monotonic() - t0))
            log.info("%s: received %d, lost %d", _label(size), len(lat), sub.stats.lost)
    expected = _pattern(PIPE_SIZE)
    lat, bad, t0 = [], 0, time.monotonic()
    n = ctl.recv()
    for _ in range(n):
        data = pipe.recv_bytes()
        now = clock()
        lat.append(now - int.from_bytes(data[:8], "little"))
        seq = int.from_bytes(data[8:16], "little")
        if len(data) != PIPE_SIZE or not expected.startswith(memoryview(data)[16:], seq % CYCLE + 16):
            bad += 1
    ctl.send(Result("mp.Pipe", PIPE_SIZE, n, lat, 0, bad, time.monotonic() - t0))


# ------------------------------------------------------------------ publisher (this process)
def _publish(node: Node, size: int, count: int) -> int:
    pattern = memoryview(_pattern(size))
    with node.publisher(_spec(size)) as pub:
        for seq in range(1, count + 1):
            with pub.loan(size) as view:  # written straight into shared memory
                off = seq % CYCLE
                view[:] = pattern[off:off + size]
            time.sleep(GAP_S)
        return pub.stats.sent


def _pipe_run(conn: Connection, count: int) -> None:
    pattern = _pattern(PIPE_SIZE)
    buf = bytearray(PIPE_SIZE)
    for seq in range(1, count + 1):
        off = seq % CYCLE + 16
        buf[16:] = pattern[off:off + PIPE_SIZE - 16]
        buf[8:16] = seq.to_bytes(8, "little")
        buf[:8] = time.monotonic_ns().to_bytes(8, "little")
        conn.send_bytes(buf)
        time.sleep(GAP_S)


def _expect(ctl: Connection) -> Any:
    if not ctl.poll(TIMEOUT_S):
        raise TimeoutError("the subscriber process did not answer")
    return ctl.recv()


def run(count: int, sizes: Sequence[int] = SIZES) -> list[Result]:
    """Start the subscriber process, publish ``count`` messages per size, return the results."""
    prefix = isolation.unique_prefix("tkdemo")
    ctx = mp.get_context("spawn")
    ctl, child_ctl = ctx.Pipe()
    pipe_rx, pipe_tx = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=subscriber_main, name="demo-subscriber",
                       args=(prefix, list(sizes), child_ctl, pipe_rx))
    results: list[Result] = []
    log.info("iceoryx2 prefix %s; starting the subscriber process", prefix)
    try:
        with Node("demo-publisher", prefix=prefix) as node:
            proc.start()
            child_ctl.close()
            pipe_rx.close()
            if _expect(ctl) != "ready":
                raise RuntimeError("the subscriber process did not start")
            for size in sizes:
                log.info("publishing %d x %s", count, _label(size))
                sent = _publish(node, size, count)
                ctl.send(("done", size, sent))
                results.append(_expect(ctl))
        log.info("sending %d x %s through multiprocessing.Pipe", count, _label(PIPE_SIZE))
        ctl.send(count)
        _pipe_run(pipe_tx, count)
        results.append(_expect(ctl))
        proc.join(TIMEOUT_S)
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        isolation.purge_prefix(prefix)
    return results


def table(results: Sequence[Result]) -> Table:
    """The rich table of the results."""
    t = Table(title="taktora pub/sub across two processes (one-way latency)")
    for name in ("transport", "payload", "n", "p50 us", "p99 us", "MB/s", "lost", "bad"):
        t.add_column(name, justify="left" if name == "transport" else "right")
    for r in results:
        t.add_row(r.transport, _label(r.size), str(r.received), f"{r.percentile_us(0.50):,.1f}",
                  f"{r.percentile_us(0.99):,.1f}", f"{r.mb_per_s:,.2f}", str(r.lost), str(r.bad))
    return t


def run_latency(quick: bool) -> int:
    """Section 1: the latency table; 0 if every payload arrived intact."""
    results = run(50 if quick else 100)
    Console(width=100).print(table(results))
    failed = [r for r in results if r.bad or r.received + r.lost != r.sent]
    for r in failed:
        log.error("%s %s: sent %d, received %d, lost %d, bad %d", r.transport, _label(r.size),
                  r.sent, r.received, r.lost, r.bad)
    return 1 if failed else 0
