"""Fixtures of the EtherCAT tests: a veth pair per test (root), removed in teardown."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from taktora.connectors.ethercat.sim import veth

_names = itertools.count()


def need_bus() -> None:
    """Skip with the reason when veth pairs or pysoem are not available."""
    reason = veth.available()
    if reason:
        pytest.skip(f"EtherCAT bus tests: {reason}")
    pytest.importorskip("pysoem", reason="pysoem (extra 'ethercat') is not installed")


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    """A fresh veth pair: (MainDevice end, simulator end); deleted after the test."""
    need_bus()
    name = f"tke{os.getpid() % 100000}x{next(_names)}"
    veth.down(name)  # a leftover of a crashed run
    ends = veth.up(name)
    try:
        yield ends
    finally:
        veth.down(name)
