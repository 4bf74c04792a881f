"""``taktora record / replay / info / recover`` through the real command, and a recorder
killed with kill -9 in its own process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess

import pytest
from mcap.reader import make_reader
from rec_helpers import TAKTORA, run_cli
from taktora.connectors.channel import ChannelReader, ChannelWriter
from taktora.connectors.model import ChannelDescriptor, Direction
from taktora.system.recording import RecorderItem, iter_messages, list_channels, read_info
from taktora.system.recording import mcap_format as fmt
from taktora.transport import Node


def _spawn_record(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([TAKTORA, "record", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})


@pytest.mark.req("REQ_1040", "REQ_1017")
def test_record_info_replay_through_the_cli(publisher, tmp_path):
    out = tmp_path / "cli.mcap"
    system = tmp_path / "cell.toml"
    system.write_text('name = "cell-7"  # the system being recorded\n')
    rec = _spawn_record("-o", str(out), "pose.out", "mp.*", "--flush-interval", "0.2",
                        "--config", str(system))
    try:
        assert rec.stdout is not None
        assert "recording mp.out, pose.out" in rec.stdout.readline()
        line = rec.stdout.readline()  # first progress line: about a second of data
        assert re.match(r"recorded \d+ messages", line), line
    finally:
        rec.send_signal(signal.SIGINT)
        stdout, stderr = rec.communicate(timeout=10)
    assert rec.returncode == 0, stderr
    assert "done:" in stdout
    info = read_info(out)
    assert info.complete and {c.topic for c in info.channels} == {"pose.out", "mp.out"}
    pose = next(c for c in info.channels if c.topic == "pose.out")
    assert pose.messages > 50 and 50 < pose.rate_hz < 400  # published at 200 Hz
    r = run_cli("info", str(out))
    assert r.returncode == 0, r.stderr
    assert re.search(r"pose.out\s.*json\s.*\d+\s.*Hz", r.stdout) and "msgpack" in r.stdout
    # the metadata: host, versions, the system file
    assert info.metadata[fmt.META_SYSTEM]["toml"] == system.read_text()
    versions = info.metadata[fmt.META_RECORDING]
    assert re.search(rf"host\s+{re.escape(socket.gethostname())}", r.stdout), r.stdout
    for dist in ("taktora", "python", "iceoryx2", "mcap"):
        assert versions[dist] != "unknown" and f"{dist} {versions[dist]}" in r.stdout
    assert re.search(r"system\s+cell-7 from .*cell\.toml \(sha256 [0-9a-f]{12}\)", r.stdout)
    r = run_cli("info", str(out), "--config")
    assert r.returncode == 0 and 'name = "cell-7"' in r.stdout, r.stdout
    # replay, remapped, onto a channel a reader of ours listens to
    with Node() as node:
        reader = ChannelReader(node, ChannelDescriptor("copy", Direction.OUTBOUND, codec="json",
                                                       buffer_size=1024))
        replay = subprocess.Popen([TAKTORA, "replay", str(out), "--rate", "2", "--channel",
                                   "pose.out", "--remap", "pose.out=copy.out"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        got = []
        # read while the replay runs: iceoryx2 drops a publisher's unread samples when it goes
        while len(got) < pose.messages and (replay.poll() is None or reader.stats().received
                                            > len(got)):
            item = reader.recv(0.2)
            if item is not None:
                got.append(item.value["i"])
        stdout, stderr = replay.communicate(timeout=20)
        reader.close()
    assert replay.returncode == 0, stderr
    assert f"replayed {pose.messages} messages" in stdout and "lateness p50" in stdout
    recorded = [json.loads(m.data)["i"] for _c, m in iter_messages(out, topics=["pose.out"])]
    assert got == recorded and len(got) == pose.messages  # what was recorded, in its order


@pytest.mark.req("REQ_1040")
def test_cli_argument_errors_are_clear(tmp_path):
    r = run_cli("record", "pose.out")
    assert r.returncode == 2 and "-o/--output" in r.stderr
    r = run_cli("replay", str(tmp_path / "nope.mcap"))
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"not an mcap file at all")
    r = run_cli("info", str(bad))
    assert r.returncode == 1 and "not an MCAP file" in r.stderr
    r = run_cli("replay", str(bad), "--rate", "-1")
    assert r.returncode == 2 and "expected a number > 0" in r.stderr
    r = run_cli("replay", str(bad), "--remap", "x")
    assert r.returncode == 1 and "not an MCAP file" in r.stderr
    r = run_cli("record", "-o", str(tmp_path / "x.mcap"), "pose.out", "--prefix", "tk_absent_")
    assert r.returncode == 1 and "no iceoryx2 system runs under prefix" in r.stderr
    with Node():  # something runs under the prefix: the next errors are the arguments'
        r = run_cli("record", "-o", str(tmp_path / "x.mcap"), "pose.out", "--config",
                    str(tmp_path / "none.toml"))
        assert r.returncode == 1 and "none.toml" in r.stderr and "Traceback" not in r.stderr
        r = run_cli("record", "-o", str(tmp_path / "x.mcap"), "pose.out", "--type", "json:nope")
        assert r.returncode == 1 and "--type 'json:nope'" in r.stderr, r.stderr


@pytest.mark.req("REQ_1030")
def test_a_recorder_killed_with_kill_9_leaves_a_recoverable_file(publisher, tmp_path):
    out = tmp_path / "killed.mcap"
    rec = _spawn_record("-o", str(out), "*.out", "--flush-interval", "0.1")
    on_disk = 0
    try:
        assert rec.stdout is not None
        rec.stdout.readline()
        while on_disk == 0:  # progress lines come once a second
            m = re.match(r"recorded \d+ messages \((\d+) on disk\)", rec.stdout.readline())
            assert m, "recorder stopped printing progress"
            on_disk = int(m.group(1))
    finally:
        rec.send_signal(signal.SIGKILL)
        rec.communicate(timeout=10)
    assert rec.returncode == -signal.SIGKILL
    info = read_info(out)
    assert not info.complete and info.messages >= on_disk
    r = run_cli("info", str(out))
    assert r.returncode == 0 and "incomplete" in r.stdout and "taktora recover" in r.stdout
    fixed = tmp_path / "fixed.mcap"
    r = run_cli("recover", str(out), "-o", str(fixed))
    assert r.returncode == 0, r.stderr
    with open(fixed, "rb") as f:
        reader = make_reader(f)
        data = [(c.topic, m) for _s, c, m in reader.iter_messages()]
        assert reader.get_summary() is not None
    pose = [json.loads(m.data)["i"] for t, m in data if t == "pose.out"]
    assert len([1 for t, _m in data if t != "/taktora/gaps"]) >= on_disk
    # in order; whatever a starved recorder lost to its queue is in the file as a gap
    fixed_info = read_info(fixed)
    lost = next(c for c in fixed_info.channels if c.topic == "pose.out").overflow
    assert pose == sorted(set(pose)) and pose[-1] - pose[0] + 1 == len(pose) + lost
    assert fixed_info.complete


@pytest.mark.req("REQ_1025", "REQ_1040")
def test_replay_loop_shows_progress_and_stops_on_sigint(tmp_path):
    out = tmp_path / "loop.mcap"
    with Node() as node:
        w = ChannelWriter(node, ChannelDescriptor("tick", Direction.OUTBOUND, buffer_size=64))
        item = RecorderItem(node, list_channels(node), out)
        for i in range(20):
            w.send(b"%d" % i)
        item.execute(None)
        item.finish()
    replay = subprocess.Popen([TAKTORA, "replay", str(out), "--loop", "--rate", "50"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert replay.stdout is not None
        line = replay.stdout.readline()
        assert re.match(r"replayed \d+ of \.\.\.", line), line
    finally:
        replay.send_signal(signal.SIGINT)
        stdout, stderr = replay.communicate(timeout=10)
    assert replay.returncode == 0, stderr
    assert "(stopped)" in stdout
