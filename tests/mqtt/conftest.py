"""Fixtures of the MQTT tests: a real mosquitto per test (never a mock).

``.ci/system-deps`` installs the Debian packages ``mosquitto`` and ``mosquitto-clients`` when
missing (as root); without them every test here skips and says what to run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_harness import MOSQUITTO, Broker

NO_BROKER = ("mosquitto is not installed: run `sudo apt-get install -y mosquitto "
             "mosquitto-clients` (or .ci/system-deps as root)")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A started mosquitto on a free loopback port; killed (and reaped) in teardown."""
    if MOSQUITTO is None:
        pytest.skip(NO_BROKER)
    b = Broker(tmp_path).start()
    try:
        yield b
    finally:
        b.kill()


@pytest.fixture
def clients() -> None:
    """Skip unless mosquitto_pub / mosquitto_sub are installed."""
    if shutil.which("mosquitto_pub") is None or shutil.which("mosquitto_sub") is None:
        pytest.skip(NO_BROKER)
