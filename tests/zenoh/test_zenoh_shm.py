"""Zenoh sessions opened from a ZenohConfig leave nothing in /dev/shm (REQ_0619)."""

from __future__ import annotations

import json
import os
import time

import pytest
import zenoh
from taktora.connectors.zenoh import ZenohConfig
from zenoh_harness import endpoint


def _segments() -> set[str]:
    return {f for f in os.listdir("/dev/shm") if f.endswith(".zenoh")}


@pytest.mark.req("REQ_0619")
def test_sessions_from_a_zenoh_config_create_no_shared_memory_segment() -> None:
    assert json.loads(ZenohConfig().to_zenoh().get_json("transport/shared_memory/enabled")) \
        is False
    assert json.loads(ZenohConfig(shared_memory=True).to_zenoh().get_json(
        "transport/shared_memory/enabled")) is True
    before = _segments()
    ep = endpoint()
    a = zenoh.open(ZenohConfig(listen=(ep,)).to_zenoh())
    b = zenoh.open(ZenohConfig(connect=(ep,)).to_zenoh())
    try:
        got: list[bytes] = []
        sub = a.declare_subscriber("shm/k", lambda s: got.append(s.payload.to_bytes()))
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:  # until the link carried a sample
            b.put("shm/k", b"x" * 4096)
            time.sleep(0.02)
        assert got, "the two sessions never exchanged a sample"
        assert _segments() - before == set()  # nothing while they run, so nothing to leak
        sub.undeclare()
    finally:
        b.close()
        a.close()
