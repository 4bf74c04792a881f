"""The software SubDevice process: an AF_PACKET socket on one network interface (EtherType
0x88A4) in front of a :class:`~taktora.connectors.ethercat.sim.line.Line`, with fault injection.

:func:`serve` runs in the simulator process's main (only) thread: it sleeps in a
``selectors`` select on the raw socket and an optional control file descriptor, processes each
EtherCAT frame in place and sends it back on the same socket (the kernel does not loop it back
to us; frames we sent ourselves are skipped by packet type). It returns when the control
stream ends (EOF), on a ``{"op": "stop"}`` command, or raises ``OSError`` if the interface
cannot be opened. It must never run as a thread of a MainDevice's process: pysoem holds the
GIL in its blocking calls, so a thread there would see no frames.

Control commands are JSON lines (from :class:`SimProcess`, or typed on stdin of
``taktora ethercat sim --control``); each is answered by one JSON line on ``reply``:

- ``{"op": "faults", "drop_every": N, "delay_ms": D, "link_down": B, "muted": [positions]}``
  (fields left out keep their value): drop every N-th frame, answer D ms late (order kept),
  answer nothing at all (link down), and SubDevices that pass frames without processing them
  (they stop answering: the working counter falls);
- ``{"op": "safeop", "position": P, "code": C}``: SubDevice P falls back to SAFE-OP with the
  error flag and AL status code C (default 0x001B, SyncManager watchdog);
- ``{"op": "al_control", "position": P, "state": S}``: SubDevice P handles a write of S to
  AL control (0x0120) as if a MainDevice had written it on the wire (ETG state machine; e.g.
  S=4 takes it from OP to SAFE-OP without error flag);
- ``{"op": "sii_checksum_error", "position": P}``: SubDevice P's SII has a wrong
  configuration-area CRC, reported in EEPROM status bit 11 (0x0840);
- ``{"op": "options", "count_outputs_outside_op": B}``: whether logical writes into the
  output SyncManager count in the working counter outside OP (``--count-outputs-outside-op``);
- ``{"op": "query"}``: states, AL status codes, frame counters, and per SubDevice the DC
  offset (0x0920), delay (0x0928) and the deviation of its system time from SubDevice 0's;
- ``{"op": "stop"}``.

Delayed frames wait in a FIFO of at most ``MAX_DELAYED`` frames; beyond that new frames are
dropped and counted (``overflow``).
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import attrs
from taktora.connectors.ethercat.sim.commands import ETHERTYPE
from taktora.connectors.ethercat.sim.device import DeviceDescription, builtin_dio
from taktora.connectors.ethercat.sim.line import Line
from taktora.connectors.ethercat.sim.loader import load_description
from taktora.connectors.ethercat.sim.registers import AL_SM_WATCHDOG

log = logging.getLogger(__name__)

PACKET_OUTGOING = 4
MAX_DELAYED = 1024
MAX_FRAME = 1536


@attrs.define
class Faults:
    """Faults applied by the simulator process (see the module docstring)."""

    drop_every: int = 0
    delay_ms: float = 0.0
    link_down: bool = False
    muted: tuple[int, ...] = ()


@attrs.define
class Counters:
    """What happened to received frames."""

    received: int = 0
    answered: int = 0
    dropped: int = 0
    link_down: int = 0
    overflow: int = 0
    ignored: int = 0


def describe(devices: Sequence[str], count: int = 1) -> list[DeviceDescription]:
    """Descriptions for a line: each entry a TOML path or ``builtin:dio``; the list repeated
    ``count`` times."""
    descs = [builtin_dio() if d == "builtin:dio" else load_description(d) for d in devices or ["builtin:dio"]]
    return descs * max(1, count)


class Simulator:
    """A line of SubDevices plus faults and counters; :meth:`handle_frame` is the whole data
    path (used by :func:`serve` and directly by unit tests)."""

    def __init__(self, line: Line) -> None:
        self.line = line
        self.faults = Faults()
        self.counters = Counters()

    def handle_frame(self, frame: bytearray) -> bool:
        """Process one frame in place; True if it is to be answered (then its source MAC has
        the locally administered bit set, as an ESC sets it)."""
        self.counters.received += 1
        if self.faults.link_down:
            self.counters.link_down += 1
            return False
        if self.faults.drop_every and self.counters.received % self.faults.drop_every == 0:
            self.counters.dropped += 1
            return False
        if not self.line.process(frame):
            self.counters.ignored += 1
            return False
        frame[6] |= 0x02  # as an ESC does: the source MAC's locally administered bit tells replies
        self.counters.answered += 1
        return True

    def command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Apply one control command; returns the reply."""
        op = cmd.get("op")
        if op == "faults":
            f = self.faults
            f.drop_every = int(cmd.get("drop_every", f.drop_every))
            f.delay_ms = float(cmd.get("delay_ms", f.delay_ms))
            f.link_down = bool(cmd.get("link_down", f.link_down))
            f.muted = tuple(int(p) for p in cmd.get("muted", f.muted))
            for i, esc in enumerate(self.line.escs):
                esc.muted = i in f.muted
            return {"ok": True}
        if op == "safeop":
            esc = self.line.escs[int(cmd.get("position", 0))]
            esc.fault_safeop(int(cmd.get("code", AL_SM_WATCHDOG)))
            return {"ok": True}
        if op == "al_control":
            esc = self.line.escs[int(cmd.get("position", 0))]
            esc.al_request(int(cmd["state"]))
            return {"ok": True, "state": esc.al_status, "code": esc.al_code}
        if op == "sii_checksum_error":
            self.line.escs[int(cmd.get("position", 0))].corrupt_sii_checksum()
            return {"ok": True}
        if op == "options":
            for esc in self.line.escs:
                esc.count_outputs_outside_op = bool(cmd.get("count_outputs_outside_op",
                                                         esc.count_outputs_outside_op))
            return {"ok": True}
        if op == "read":  # one object of one SubDevice, e.g. an output as the device sees it
            esc = self.line.escs[int(cmd.get("position", 0))]
            return {"ok": True, "value": esc.od.value(int(cmd["index"]), int(cmd.get("sub", 0)))}
        if op == "query":
            now = time.monotonic_ns()
            ref = self.line.escs[0].system_time(now) if self.line.escs else 0
            dc = [{"offset": int.from_bytes(e.mem[0x0920:0x0928], "little"),
                   "delay": int.from_bytes(e.mem[0x0928:0x092C], "little"),
                   "deviation_ns": _signed64(e.system_time(now) - ref)} for e in self.line.escs]
            return {"ok": True, "states": [e.state for e in self.line.escs], "dc": dc,
                    "codes": [e.al_code for e in self.line.escs],
                    "counters": attrs.asdict(self.counters), "malformed": self.line.malformed,
                    "forwarded": self.line.forwarded}
        if op == "stop":
            return {"ok": True, "stop": True}
        return {"ok": False, "error": f"unknown op {op!r}"}


def _signed64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v


def serve(iface: str, sim: Simulator, control: int | None = None, reply: IO[str] | None = None) -> None:
    """Answer EtherCAT frames on ``iface`` until the control stream ends or says stop."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE))
    try:
        sock.bind((iface, ETHERTYPE))
        sock.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ, "net")
        if control is not None:
            os.set_blocking(control, False)
            sel.register(control, selectors.EVENT_READ, "ctl")
        if reply is not None:
            reply.write(json.dumps({"ready": True, "iface": iface, "count": len(sim.line.escs)}) + "\n")
            reply.flush()
        _loop(sock, sel, sim, control, reply)
    finally:
        sock.close()


def _loop(sock: socket.socket, sel: selectors.BaseSelector, sim: Simulator, control: int | None,
          reply: IO[str] | None) -> None:
    buf = bytearray(MAX_FRAME)
    pending = b""
    delayed: deque[tuple[float, bytes]] = deque()
    while True:
        timeout = None if not delayed else max(0.0, delayed[0][0] - time.monotonic())
        for key, _ in sel.select(timeout):
            if key.data == "ctl":
                assert control is not None
                try:
                    chunk = os.read(control, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    return
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if not line.strip():
                        continue
                    try:
                        answer = sim.command(json.loads(line))
                    except (ValueError, TypeError, IndexError, KeyError) as exc:
                        answer = {"ok": False, "error": str(exc)}
                    if reply is not None:
                        reply.write(json.dumps(answer) + "\n")
                        reply.flush()
                    if answer.get("stop"):
                        return
                continue
            for _ in range(64):
                try:
                    n, addr = sock.recvfrom_into(buf)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                frame = buf[:n]
                if not sim.handle_frame(frame):
                    continue
                if sim.faults.delay_ms > 0:
                    if len(delayed) >= MAX_DELAYED:
                        sim.counters.overflow += 1
                        continue
                    delayed.append((time.monotonic() + sim.faults.delay_ms / 1000, bytes(frame)))
                    continue
                _send(sock, frame)
        now = time.monotonic()
        while delayed and delayed[0][0] <= now:
            _send(sock, delayed.popleft()[1])


def _send(sock: socket.socket, frame: bytes | bytearray) -> None:
    try:
        sock.send(frame)
    except OSError as exc:  # interface went down: the MainDevice sees a lost frame
        log.debug("send failed: %s", exc)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m taktora.connectors.ethercat.sim --iface IF [--device F]... [--count N]
    [--control]``: the simulator process (also what ``taktora ethercat sim`` runs)."""
    import argparse

    p = argparse.ArgumentParser(prog="taktora-ethercat-sim")
    add_arguments(p)
    args = p.parse_args(argv)
    return run(args)


def add_arguments(p: Any) -> None:
    """The simulator's command-line options (shared with ``taktora ethercat sim``)."""
    p.add_argument("--iface", required=True, help="network interface (e.g. one end of a veth pair)")
    p.add_argument("--device", action="append", default=[],
                   help="device description TOML (repeatable; default: builtin:dio)")
    p.add_argument("--count", type=int, default=1, help="repeat the device list N times")
    p.add_argument("--drift-ppm", type=float, default=0.0,
                   help="local clock drift of SubDevice i: (i+1) * X ppm, alternating sign")
    p.add_argument("--count-outputs-outside-op", action="store_true",
                   help="count logical output writes outside OP in the working counter, as many "
                        "ESCs do (default: not counted, SAFE-OP lowers the working counter)")
    p.add_argument("--control", action="store_true",
                   help="read JSON-line fault commands on stdin, answer on stdout")


def run(args: Any) -> int:
    """Run the simulator from parsed arguments until stopped; the exit status."""
    descs = describe(args.device, args.count)
    drifts = [(i + 1) * args.drift_ppm * (-1 if i % 2 else 1) for i in range(len(descs))]
    sim = Simulator(Line.of(descs, drifts, count_outputs_outside_op=args.count_outputs_outside_op))
    control = sys.stdin.fileno() if args.control else None
    names = ", ".join(d.name for d in descs)
    print(f"taktora ethercat sim: {len(descs)} SubDevice(s) on {args.iface} ({names}); "
          "Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        serve(args.iface, sim, control, sys.stdout if args.control else None)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"taktora ethercat sim: {args.iface}: {exc}", file=sys.stderr)
        return 1
    return 0


class SimProcess:
    """The simulator in its own process, driven from code (tests, tools).

    ``start`` launches ``python -m taktora.connectors.ethercat.sim`` and blocks until it has
    bound the interface (or raises ``RuntimeError`` with its stderr); :meth:`command` writes one
    JSON line and blocks for the answer; :meth:`stop` ends it (stop command, then terminate,
    then kill) and reaps it. Use it as a context manager. Not thread-safe: one owner thread.
    """

    def __init__(self, iface: str, devices: Sequence[str | Path] = ("builtin:dio",), count: int = 1,
                 drift_ppm: float = 0.0, count_outputs_outside_op: bool = False) -> None:
        self.iface = iface
        self.argv = [sys.executable, "-m", "taktora.connectors.ethercat.sim", "--iface", iface,
                     "--count", str(count), "--drift-ppm", str(drift_ppm), "--control"]
        if count_outputs_outside_op:
            self.argv.append("--count-outputs-outside-op")
        for d in devices:
            self.argv += ["--device", str(d)]
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20.0) -> SimProcess:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        first = self._readline(timeout)
        if not first or not json.loads(first).get("ready"):
            err = self._finish()
            raise RuntimeError(f"EtherCAT simulator on {self.iface} did not start: {first!r} {err}")
        return self

    def _readline(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout):
                return ""
        finally:
            sel.close()
        return self.proc.stdout.readline()

    def command(self, timeout: float = 5.0, **cmd: Any) -> dict[str, Any]:
        """Send one control command and return the answer (RuntimeError on no answer)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self._readline(timeout)
        if not line:
            raise RuntimeError(f"EtherCAT simulator gave no answer to {cmd}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _finish(self) -> str:
        proc = self.proc
        if proc is None:
            return ""
        try:
            if proc.stdin is not None and proc.poll() is None:
                try:
                    proc.stdin.write(json.dumps({"op": "stop"}) + "\n")
                    proc.stdin.close()
                except OSError:
                    pass
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            err = proc.stderr.read() if proc.stderr is not None else ""
        finally:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            self.proc = None
        return err

    def stop(self) -> None:
        """Stop and reap the process (idempotent)."""
        self._finish()

    def __enter__(self) -> SimProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
