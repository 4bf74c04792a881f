"""Channel discovery, echo and hz against real iceoryx2 channels (in-process and CLI)."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import uuid

import pytest
from rec_helpers import TAKTORA, run_cli, wait_for
from taktora.connectors.channel import ChannelWriter
from taktora.connectors.model import ChannelDescriptor, Direction
from taktora.system.recording import ChannelNotFoundError, list_channels, select
from taktora.system.recording.discovery import find
from taktora.system.recording.tap import RateMeter, Tap, decode_any, render
from taktora.transport import ChannelSpec, Node, StructPayload


@pytest.mark.req("REQ_1001")
def test_list_channels_reads_iceoryx2_listing():
    with Node() as node:
        w = ChannelWriter(node, ChannelDescriptor("pose", Direction.OUTBOUND, codec="json",
                                                  buffer_size=5))
        with Node() as other:
            found = {c.name: c for c in list_channels(other)}
        assert set(found) == {"pose.out"}
        info = found["pose.out"]
        assert info.envelope and info.payload_type == "u8" and info.dynamic
        assert info.publishers == 1 and info.subscribers == 0 and info.buffer_size == 5
        w.close()


@pytest.mark.req("REQ_1001")
def test_select_by_name_and_glob():
    with Node() as node:
        for name in ("a", "b", "c"):
            ChannelWriter(node, ChannelDescriptor(name, Direction.OUTBOUND))
        channels = list_channels(node)
        assert [c.name for c in select(channels, ["a.out", "b*"])] == ["a.out", "b.out"]
        assert select(channels, ["zz*"]) == []  # a glob may match nothing (yet)
        with pytest.raises(ChannelNotFoundError, match=r"'nope.out'.*a.out, b.out, c.out"):
            select(channels, ["nope.out"])
        with pytest.raises(ChannelNotFoundError, match="matches 3 channels"):
            find(node, "*.out")


@pytest.mark.req("REQ_1002", "REQ_1003")
def test_tap_decodes_by_codec_and_meters_rate():
    with Node() as node:
        w = ChannelWriter(node, ChannelDescriptor("m", Direction.OUTBOUND, codec="msgpack"))
        tap = Tap(node, find(node, "m.out"))
        meter = RateMeter()
        for i in range(5):
            w.send({"i": i})
            got = tap.next(2.0)
            assert got is not None and got.header is not None
            assert decode_any(got) == {"i": i} and got.header.sequence == i + 1
            meter.add(got.received_ns)
        stats = meter.stats()
        assert stats is not None and stats.window == 4 and stats.min_s <= stats.max_s
        assert tap.next(0.01) is None
        tap.close()


SYSTEM = """
name = "seen"

[[gateways]]
name = "link"
connector = "udp"

[[gateways.channels]]
name = "blob"
direction = "outbound"
codec = "raw"
max_payload = 2048
routing = { kind = "udp", address = "127.0.0.1:47999" }

[[channels]]
name = "pose"
direction = "outbound"
codec = "json"
"""


@pytest.mark.req("REQ_1001", "REQ_1002", "REQ_1003")
def test_cli_channels_echo_hz_against_a_running_publisher(publisher, tmp_path):
    r = run_cli("channels")
    assert r.returncode == 0, r.stderr
    for name in ("pose.out", "blob.out", "mp.out"):
        assert re.search(rf"{re.escape(name)}\s.*envelope", r.stdout), r.stdout
    system = tmp_path / "seen.toml"
    system.write_text(SYSTEM)
    r = run_cli("channels", "--config", str(system))  # who serves what, with which codec
    assert r.returncode == 0, r.stderr
    assert re.search(r"blob\.out\s.*envelope.*\braw\b.*gateway link", r.stdout), r.stdout
    assert re.search(r"pose\.out\s.*\bjson\b.*application", r.stdout), r.stdout
    assert re.search(r"mp\.out\s.*\?.*not in the system file", r.stdout), r.stdout
    r = run_cli("echo", "pose.out", "--count", "3", "--timeout", "5")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("codec json") == 3 and re.search(r'\{"i": \d+\}', r.stdout)
    r = run_cli("echo", "mp.out", "--once", "--timeout", "5")
    assert r.returncode == 0 and "codec msgpack" in r.stdout and "'x']" in r.stdout, r.stderr
    r = run_cli("echo", "blob.out", "--once", "--timeout", "5")
    assert r.returncode == 0 and "codec raw 1024 B" in r.stdout, r.stderr
    assert re.search(r"([0-9a-f]{2} ){16}", r.stdout)  # raw bytes shown as hex
    r = run_cli("hz", "pose.out", "--count", "60", "--timeout", "5")
    assert r.returncode == 0, r.stderr
    rate = float(re.findall(r"average rate: ([\d.]+) Hz", r.stdout)[-1])
    assert 50 < rate < 400, r.stdout  # the publisher runs at 200 Hz; the machine is shared
    assert "std dev" in r.stdout and "window: 59" in r.stdout
    r = run_cli("bw", "blob.out", "--count", "20", "--timeout", "5")
    assert r.returncode == 0, r.stderr
    assert re.search(r"[\d.]+ KB/s from 20 messages, mean 1024 B, min 1024 B, max 1024 B",
                     r.stdout), r.stdout


@pytest.mark.req("REQ_1004")
def test_cli_wrong_prefix_channel_or_arguments_fail_clearly(publisher):
    r = run_cli("channels", "--prefix", "tk_nothing_here_")
    assert r.returncode == 1 and "no iceoryx2 system runs under prefix 'tk_nothing_here_'" \
        in r.stderr and "Traceback" not in r.stderr
    r = run_cli("echo", "nope.out", "--once")
    assert r.returncode == 1 and "no channel 'nope.out'" in r.stderr and "pose.out" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("hz", "pose.out", "--count", "0")
    assert r.returncode == 2 and "expected >= 1" in r.stderr
    r = run_cli("echo", "pose.out", "--prefix", "bad prefix!")
    assert r.returncode == 1 and "invalid" in r.stderr


class Pose(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("tick", ctypes.c_uint32)]

    @staticmethod
    def type_name() -> str:
        return "test::Pose.v1"


@pytest.mark.req("REQ_1001", "REQ_1002")
def test_struct_channels_are_listed_and_tapped_as_hex():
    spec = ChannelSpec("pose/struct", StructPayload(Pose))
    with Node() as node:
        pub = node.publisher(spec)
        with Node() as other:
            info = find(other, "pose/struct")
            assert (info.payload_type, info.dynamic, info.payload_size) == ("test::Pose.v1", False,
                                                                            ctypes.sizeof(Pose))
            assert not info.envelope and info.publishers == 1
            tap = Tap(other, info)
            pub.send_copy(Pose(1.5, -2.0, 7))
            got = tap.next(2.0)
            assert got is not None and got.header is None
            assert Pose.from_buffer_copy(got.payload).tick == 7
            assert render(got) == got.payload.hex(" ")
            tap.close()


@pytest.mark.req("REQ_1005")
def test_cli_top_shows_rates_of_every_channel(publisher):
    r = run_cli("top", "--iterations", "2", "--interval", "0.5")
    assert r.returncode == 0, r.stderr
    last = r.stdout[r.stdout.rindex("taktora top"):]
    rates = {m.group(1): float(m.group(2))
             for m in re.finditer(r"(\w+\.out)\s.*?([\d.]+) Hz", last)}
    assert set(rates) == {"pose.out", "blob.out", "mp.out"}, last
    # published at 200 / 50 Hz; a loaded machine stalls and catches up within an interval
    assert 50 < rates["pose.out"] < 500 and 10 < rates["blob.out"] < 150, rates
    assert re.search(r"blob\.out\s.*KB/s", last), last


@pytest.mark.req("REQ_1005")
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")
def test_top_in_a_real_terminal_refreshes_and_quits_on_q(publisher, iox_prefix):
    sock = f"tk-{uuid.uuid4().hex[:8]}"  # a tmux server of this test's own

    def tmux(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                              timeout=10)

    try:
        tmux("new-session", "-d", "-s", "top", "-x", "140", "-y", "20", "env",
             f"TAKTORA_IOX_PREFIX={iox_prefix}", TAKTORA, "top", "--interval", "0.3")
        screen = ""

        def shows_rates() -> bool:
            nonlocal screen
            screen = tmux("capture-pane", "-p", "-t", "top").stdout
            return bool(re.search(r"pose\.out\s.*\b[1-9]\d+\.\d Hz", screen))

        wait_for(shows_rates, what="top showing the rate of pose.out")
        assert "blob.out" in screen and "mp.out" in screen and screen.count("taktora top") == 1
        tmux("send-keys", "-t", "top", "q")
        wait_for(lambda: tmux("has-session", "-t", "top").returncode != 0, what="top to quit")
    finally:
        tmux("kill-server")
