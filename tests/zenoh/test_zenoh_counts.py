"""Per key counters stay exact when zenoh runs a subscriber's callback on several of its
threads at once: two plain zenoh sessions (two links) put on one key together (REQ_0603)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import zenoh
from taktora.connectors import Direction, Dispatcher, HealthState
from taktora.connectors.errors import ConnectorError
from taktora.connectors.zenoh import KeyCounts, ZenohConfig, ZenohConnector
from zenoh_harness import endpoint, wait_until, zchan
from zenoh_plain import config

PER_PEER = 3000


def _matched(pub: Any) -> bool:
    status: Any = pub.matching_status  # a MatchingStatus (1.10; stubs: bool)
    return bool(getattr(status, "matching", status))


@pytest.mark.req("REQ_0603")
def test_inbound_count_is_exact_with_two_links_delivering_at_once(iox_prefix: str) -> None:
    ep = endpoint()
    inn = zchan("c/data", Direction.INBOUND, "c/data", buffer_size=64)
    conn = ZenohConnector(ZenohConfig(listen=(ep,), min_peers=2))
    disp = Dispatcher(iox_prefix, conn, [inn], name="gw-count").start()
    peers = [zenoh.open(config("peer", None, ep)) for _ in range(2)]
    try:
        assert wait_until(lambda: conn.health() is HealthState.UP)
        pubs = [p.declare_publisher("c/data", congestion_control=zenoh.CongestionControl.BLOCK)
                for p in peers]
        assert wait_until(lambda: all(_matched(p) for p in pubs))
        go = threading.Barrier(len(pubs))

        def put_all(pub: Any) -> None:
            go.wait(10)
            for _ in range(PER_PEER):
                pub.put(b"x")

        threads = [threading.Thread(target=put_all, args=(p,)) for p in pubs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        total = PER_PEER * len(pubs)
        assert wait_until(lambda: conn.stats().get("c/data|in", 0) >= total, timeout=30)
        assert conn.stats()["c/data|in"] == total
        stats = disp.stats()
        assert stats.inbound_forwarded + sum(stats.inbound_dropped.values()) == total
    finally:
        for p in peers:
            p.close()
        report = disp.stop()
    assert report.clean


@pytest.mark.req("REQ_0603")
def test_a_counter_is_either_single_writer_or_shared() -> None:
    counts = KeyCounts()
    counts.cell("k", "out").n += 2
    shared = counts.shared_cell("k", "in")
    shared.add()
    shared.add(2)
    counts.add("k", "dropped:no_peer")
    assert counts.snapshot() == {"k|out": 2, "k|in": 3, "k|dropped:no_peer": 1}
    assert counts.shared_cell("k", "in") is shared
    with pytest.raises(ConnectorError, match="one thread only"):
        counts.shared_cell("k", "out")
