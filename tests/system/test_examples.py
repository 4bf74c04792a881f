"""Every example system file runs: ``taktora run FILE --for SECONDS`` as a user types it.

Each test copies an example to its own directory with what must be unique while tests run in
parallel (UDP/TCP ports, the CAN channel or multicast port, the veth pair), starts
``python -m taktora.system.cli run COPY --for SECONDS`` as a subprocess and, while it runs,
writes into the app-facing OUTBOUND channel and reads the INBOUND one of the other end with
ChannelWriter / ChannelReader under the test's own iceoryx2 prefix (which the subprocess
inherits as TAKTORA_IOX_PREFIX). It asserts the value arrived, then that the system stopped on
its own with exit status 0 and no gateway restart.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from polling import WAIT_S
from taktora.connectors import ChannelReader, ChannelWriter
from taktora.connectors.model import ChannelDescriptor, Direction
from taktora.system.config import SystemConfig, load
from taktora.transport import Node

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
RUN_S = 3.0  # --for: long enough to start, move the data and stop on a loaded 2-core machine
EXIT_S = 30.0  # bound of the whole run (start, --for, orderly stop)

#: The example every test below runs, by connector (short names of the entry points).
RUN_BY_TEST = {
    "demo.toml": "udp",
    "udp_loopback.toml": "udp",
    "app_loopback.toml": "udp",  # with [[hosts]]: items from examples/app_items.py
    "zenoh_peers.toml": "zenoh",
    "can_virtual.toml": "can",
    "can_udp_multicast.toml": "can",
    "ethercat_sim.toml": "ethercat",
    "mqtt.toml": "mqtt",  # its run test needs the broker fixture: tests/mqtt/test_mqtt_example.py
    # several connectors; the demo's control section runs it: tests/system/test_demo_control.py
    "demo_control.toml": "can,udp,zenoh,ethercat",
}
#: Connectors without an example of their own, and why.
NO_EXAMPLE = {"zenoh-query": "query/reply needs an app answering queries: tests/zenoh"}

#: Signal values written on DBC channels (examples/can/vehicle.dbc), exact in the DBC's scaling.
DBC_VALUES: dict[str, dict[str, float]] = {
    "dbc:EngineStatus": {"EngineSpeed": 1500.25, "CoolantTemp": 90, "ThrottlePos": 12.5},
    "dbc:DriveCommand": {"TargetTorque": -12.5, "Mode": 2},
}


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    """A port nothing is bound to right now (UDP by default)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def copy_example(name: str, tmp_path: Path, replace: dict[str, str]) -> Path:
    """``examples/NAME`` written to ``tmp_path`` with each key of ``replace`` replaced."""
    text = (EXAMPLES / name).read_text()
    for old, new in replace.items():
        assert old in text, f"{name} no longer contains {old!r}"
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


def channel(config: SystemConfig, gateway: str, name: str) -> ChannelDescriptor:
    """The descriptor of channel ``name`` of ``gateway`` (the app opens the same one)."""
    g = next(g for g in config.gateways if g.name == gateway)
    return next(c for c in g.channels if c.name == name)


def value_for(d: ChannelDescriptor) -> Any:
    if d.codec == "json":
        return {"example": d.name, "n": 1}
    if d.codec in DBC_VALUES:
        return DBC_VALUES[d.codec]
    assert d.codec == "raw", d.codec
    return bytes(range(0x31, 0x31 + min(d.max_payload, 4)))


class Run:
    """``taktora run PATH --for SECONDS`` in a subprocess (its output in files next to PATH,
    so that a chatty failure cannot block on a full pipe); killed and reaped on exit."""

    def __init__(self, path: Path, seconds: float) -> None:
        self.out = path.with_suffix(".out")
        self.err = path.with_suffix(".err")
        env = dict(os.environ, PYTHONIOENCODING="utf-8", COLUMNS="200")
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "taktora.system.cli", "run", str(path), "--for",
                 str(seconds)], stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True,
                env=env, cwd=path.parent)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return f"--- stdout\n{self.out.read_text()}--- stderr\n{self.err.read_text()}"

    def wait(self) -> int:
        """The exit status (the run stops on its own after --for)."""
        return self.proc.wait(EXIT_S)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def run(path: Path, seconds: float = RUN_S) -> Iterator[Run]:
    r = Run(path, seconds)
    try:
        yield r
    finally:
        r.kill()


def cross(node: Node, system: Run, outbound: ChannelDescriptor, inbound: ChannelDescriptor,
          value: Any) -> Any:
    """Write ``value`` on ``outbound`` until it is read on ``inbound`` (a gateway drops what
    arrives before it is Up), while the system runs; the value read, or None."""
    assert outbound.direction is Direction.OUTBOUND and inbound.direction is Direction.INBOUND
    writer: ChannelWriter[Any] = ChannelWriter(node, outbound)
    reader: ChannelReader[Any] = ChannelReader(node, inbound)
    try:
        deadline = time.monotonic() + WAIT_S
        while system.running and time.monotonic() < deadline:
            writer.send(value)
            got = reader.recv(0.1)
            while got is not None:
                if got.value == value:
                    return got.value
                got = reader.try_recv()  # e.g. EtherCAT inputs before the outputs were set
        return None
    finally:
        writer.close()
        reader.close()


def check_exit(system: Run, gateways: list[str]) -> None:
    status = system.wait()
    out = system.output()
    assert status == 0, out
    for g in gateways:
        assert re.search(rf"^{g}: connecting -> up", out, re.M), out
    assert "stopped" in out and "crashed" not in out, out


def run_and_cross(path: Path, pairs: list[tuple[str, str, str, str]], iox_prefix: str,
                  seconds: float = RUN_S) -> None:
    """Run ``path``; for each (gateway, outbound, gateway, inbound) channel pair the app's value
    crosses; the exit is clean."""
    config = load(path)
    with run(path, seconds) as system:
        with Node("example-app", prefix=iox_prefix) as node:
            for gw_out, out, gw_in, inb in pairs:
                o, i = channel(config, gw_out, out), channel(config, gw_in, inb)
                got = cross(node, system, o, i, value_for(o))
                assert got == value_for(o), (f"{out} ({gw_out}) -> {inb} ({gw_in}): nothing "
                                             f"arrived\n{system.output()}")
        check_exit(system, sorted({p[0] for p in pairs} | {p[2] for p in pairs}))


# ---- every connector has a runnable example, every example a test ----------------------------
@pytest.mark.req("REQ_0446")
def test_every_connector_has_an_example_and_every_example_a_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from taktora.connectors import registry

    monkeypatch.chdir(ROOT)  # the examples name their files relative to the repository root
    files = {p.name for p in EXAMPLES.glob("*.toml")}
    assert files == set(RUN_BY_TEST), "an example without a test below (or a test without one)"
    for name, connector in RUN_BY_TEST.items():
        assert {g.connector for g in load(EXAMPLES / name).gateways} == set(
            connector.split(",")), name
        header = (EXAMPLES / name).read_text().split("\nname = ", 1)[0]
        assert header.startswith("#") and "Run it" in header, f"{name}: header comment"
    assert set(registry.known()) - set(NO_EXAMPLE) <= {
        c for v in RUN_BY_TEST.values() for c in v.split(",")}


# ---- UDP ----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.req("REQ_0446")
@pytest.mark.parametrize(("example", "cmd", "state"), [
    ("udp_loopback.toml", "loop/cmd", "loop/state"),
    ("demo.toml", "demo/cmd", "demo/state"),
])
def test_udp_example_runs(example: str, cmd: str, state: str, tmp_path: Path,
                          iox_prefix: str) -> None:
    ports = sorted(set(re.findall(r'"127\.0\.0\.1:(\d+)"', (EXAMPLES / example).read_text())))
    assert len(ports) == 2, ports
    path = copy_example(example, tmp_path, {f"127.0.0.1:{p}": f"127.0.0.1:{free_port()}"
                                            for p in ports})
    run_and_cross(path, [("left", cmd, "right", cmd), ("right", state, "left", state)],
                  iox_prefix)


@pytest.mark.slow
@pytest.mark.req("REQ_0446", "REQ_0448")
def test_app_example_runs_its_items(tmp_path: Path, iox_prefix: str) -> None:
    """The hosts run next to the gateways: what the app writes still crosses, and the run
    prints each host's items with their runs (the counter ran only on echoed data)."""
    import shutil

    text = (EXAMPLES / "app_loopback.toml").read_text()
    ports = sorted(set(re.findall(r'"127\.0\.0\.1:(\d+)"', text)))
    path = copy_example("app_loopback.toml", tmp_path, {f"127.0.0.1:{p}": f"127.0.0.1:{free_port()}"
                                                        for p in ports})
    shutil.copy(EXAMPLES / "app_items.py", tmp_path / "app_items.py")  # found next to the file
    run_and_cross(path, [("left", "loop/cmd", "right", "loop/cmd"),
                         ("right", "loop/state", "left", "loop/state")], iox_prefix)
    out = path.with_suffix(".out").read_text()
    m = re.search(r"^host control: running, writer (\d+) runs 0 failures, counter (\d+) runs",
                  out, re.M)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, out
    assert re.search(r"^host plant: running, echo [1-9]\d* runs", out, re.M), out


# ---- Zenoh --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.req("REQ_0446")
def test_zenoh_peers_example_runs(tmp_path: Path, iox_prefix: str) -> None:
    port = free_port(socket.SOCK_STREAM)
    path = copy_example("zenoh_peers.toml", tmp_path,
                        {"tcp/127.0.0.1:47401": f"tcp/127.0.0.1:{port}",
                         "demo/zpeers/": f"{iox_prefix}/zpeers/"})  # keys of this test only
    run_and_cross(path, [("left", "zpeers/cmd", "right", "zpeers/cmd"),
                         ("right", "zpeers/state", "left", "zpeers/state")], iox_prefix)


# ---- CAN ----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.req("REQ_0446")
def test_can_virtual_example_runs_with_its_dbc_channels(tmp_path: Path, iox_prefix: str) -> None:
    dbc = EXAMPLES / "can" / "vehicle.dbc"
    path = copy_example("can_virtual.toml", tmp_path, {
        '"tk-example"': f'"tk-{iox_prefix}"',
        '"examples/can/vehicle.dbc"': f'"{dbc}"'})
    # loading the copy registers the DBC's codecs here too: the app writes and reads signals
    run_and_cross(path, [("left", "vcan/cmd", "right", "vcan/cmd"),
                         ("right", "vcan/engine", "left", "vcan/engine"),
                         ("left", "vcan/drive", "right", "vcan/drive")], iox_prefix)


@pytest.mark.slow
@pytest.mark.req("REQ_0446")
def test_can_udp_multicast_example_runs_between_processes(tmp_path: Path,
                                                          iox_prefix: str) -> None:
    import can

    group, port = "239.74.163.2", free_port(host="0.0.0.0")
    try:  # this process is a third node on the bus: frames cross processes both ways
        peer = can.Bus(interface="udp_multicast", channel=group, port=port, fd=False)
    except (OSError, can.CanError) as exc:
        pytest.skip(f"python-can udp_multicast cannot open here ({exc}); it needs a route to "
                    "239.0.0.0/8, e.g. ip route add 239.0.0.0/8 dev lo")
    try:
        try:
            peer.send(can.Message(arbitration_id=0x7FF, data=b"probe", is_extended_id=False))
        except (OSError, can.CanError) as exc:
            pytest.skip(f"python-can udp_multicast cannot send here ({exc}); it needs a route "
                        "to 239.0.0.0/8, e.g. ip route add 239.0.0.0/8 dev lo")
        path = copy_example("can_udp_multicast.toml", tmp_path,
                            {"port = 47501": f"port = {port}"})
        run_and_cross(path, [("left", "mcan/cmd", "right", "mcan/cmd"),
                             ("right", "mcan/state", "left", "mcan/state")], iox_prefix)
        cmd = value_for(channel(load(path), "left", "mcan/cmd"))
        seen = []
        while (msg := peer.recv(0)) is not None:  # what crossed to this process meanwhile
            seen.append((msg.arbitration_id, bytes(msg.data)))
        assert (0x321, cmd) in seen, seen
    finally:
        peer.shutdown()


# ---- EtherCAT -----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.req("REQ_0446")
@pytest.mark.root
def test_ethercat_sim_example_runs_against_the_software_subdevice(tmp_path: Path,
                                                                  iox_prefix: str) -> None:
    from taktora.connectors.ethercat.sim import veth

    reason = veth.available()
    if reason:
        pytest.skip(f"EtherCAT example: {reason}")
    pytest.importorskip("pysoem", reason="pysoem (extra 'ethercat') is not installed")
    from taktora.connectors.ethercat.sim import SimProcess

    name = f"tkx{os.getpid() % 100000}"
    veth.down(name)  # a leftover of a crashed run
    master, sim_end = veth.up(name)
    try:
        path = copy_example("ethercat_sim.toml", tmp_path, {'iface = "tkec0"':
                                                            f'iface = "{master}"'})
        with SimProcess(sim_end, [EXAMPLES / "ethercat" / "dio.toml"]):
            run_and_cross(path, [("plc", "ec/do", "plc", "ec/di")], iox_prefix, seconds=4.0)
    finally:
        veth.down(name)
