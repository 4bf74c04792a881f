"""Control-plane benchmark: ask latency, restart latency and death notice, through taktora and
raw Thespian.

Cases: ``thespian_raw_ask_inprocess`` / ``ask_inprocess`` / ``ask_multiprocess`` (ask round
trip), ``restart_inprocess`` (crash -> answering again), ``restart_after_kill`` (kill -9 of a
multi-process worker -> a new one answers), ``thespian_raw_child_exit`` (kill -9 of a raw
Thespian child -> its parent's ChildActorExited) and ``down_after_kill`` / ``up_after_kill``
(kill -9 of a gateway process -> the ConnectorHost's DOWN event / its next UP event). Every
listener stays on 127.0.0.1.

Usage: python tests/bench/control.py [--quick] --json OUT
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "actors"))

from _bench import forks_of_me, parse_args, private_prefix, ratio, run_case, summarize, target, write
from actorkit import Worker
from taktora.actors.control.messages import Ack, ChildInfo, GetStats, Pause, Resume, StatsReply
from taktora.actors.control.supervision import ChildSpec, SupervisorSpec
from taktora.actors.models.backoff import Backoff
from taktora.actors.models.health import HealthState
from taktora.connectors import ChannelDescriptor, Direction, Routing
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.host import ConnectorHost
from taktora.system import security
from taktora.system.bootstrap import QUIET_LOGGING, start_system
from thespian.actors import Actor, ActorSystem, ChildActorExited

ROOT = SupervisorSpec(intensity=100_000, period_s=1.0)


class RawEcho(Actor):  # type: ignore[misc]
    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, str):
            self.send(sender, msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_thread(fn: Any) -> Any:
    """Run ``fn`` on a fresh (non-actor) thread and return its result."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), name="bench-caller")
    t.start()
    t.join()
    return out[0]


#: extra kills per death-notice case that measure the kill -> process-gone floor (0: no pidfds)
FLOOR_KILLS = 5 if hasattr(os, "pidfd_open") else 0


def pidfd_or_none(pid: int, floor: bool) -> int | None:
    """A pidfd on ``pid`` for a floor sample (opened before the kill), else None."""
    return os.pidfd_open(pid) if floor else None


def exit_floor_us(fd: int | None, t0: float, into: list[float]) -> None:
    """Floor samples: block until the pidfd ``fd`` is readable (the killed process is gone: the
    kernel finished its exit, before which nobody can notice the death) and append the
    microseconds since ``t0`` to ``into``; closes ``fd``. A no-op for ``fd`` None."""
    if fd is None:
        return
    try:
        if select.select([fd], [], [], 5.0)[0]:
            into.append((time.perf_counter() - t0) * 1e6)
    finally:
        os.close(fd)


def raw_ask_inprocess(n: int) -> list[float]:
    asys = ActorSystem("simpleSystemBase", logDefs=False, transientUnique=True)
    try:
        echo = asys.createActor(RawEcho)
        samples = []
        for _ in range(n // 10):
            asys.ask(echo, "warm", 1)
        for _ in range(n):
            t0 = time.perf_counter()
            asys.ask(echo, "x", 1)
            samples.append((time.perf_counter() - t0) * 1e6)
        return samples
    finally:
        asys.shutdown()


def taktora_ask(mode: str, n: int) -> list[float]:
    with start_system(mode, admin_port=free_port() if mode == "multiprocess" else None,  # type: ignore[arg-type]
                      logging_config=QUIET_LOGGING, root=ROOT) as h:
        h.start_child(ChildSpec(id="w", start=Worker))
        target = h.create_actor(Worker)

        def run() -> list[float]:
            samples = []
            for _ in range(max(10, n // 10)):
                h.ask(target, Pause())
            for _ in range(n):
                msg = Pause()
                t0 = time.perf_counter()
                reply = h.ask(target, msg)
                samples.append((time.perf_counter() - t0) * 1e6)
                assert isinstance(reply, Ack)
            return samples

        return in_thread(run)  # type: ignore[no-any-return]


def answering_again(h: Any, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if isinstance(h.control("w", Pause(), timeout=1.0), Ack):
                return
        except Exception:
            pass
        time.sleep(0.0002)
    raise RuntimeError("child did not come back")


def restart_inprocess(n: int) -> list[float]:
    with start_system("inprocess", root=ROOT) as h:
        h.start_child(ChildSpec(id="w", start=Worker))
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            h.control("w", Resume())  # the handler raises: a crash
            answering_again(h)
            samples.append((time.perf_counter() - t0) * 1e6)
        return samples


def restart_after_kill(n: int) -> list[float]:
    with start_system("multiprocess", admin_port=free_port(), logging_config=QUIET_LOGGING,
                      root=ROOT) as h:
        h.start_child(ChildSpec(id="w", start=Worker))
        samples = []
        for _ in range(n):
            pid = h.control("w", GetStats()).stats["pid"]  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            while True:  # the root knows a new, running w (asking w itself before the root
                # noticed the death would send into the void) ...
                w = h.tree().find(("w",))
                if w is not None and w.state == "running" and w.pid not in (None, pid):
                    break
                time.sleep(0.0002)
            reply = h.control("w", GetStats(), timeout=2.0)  # ... and that new w answers
            assert isinstance(reply, StatsReply) and reply.stats["pid"] != pid
            samples.append((time.perf_counter() - t0) * 1e6)
        return samples


# ---- death notice: raw Thespian ---------------------------------------------------------------
class RawChild(Actor):  # type: ignore[misc]
    """Answers "pid" with its process id."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == "pid":
            self.send(sender, os.getpid())


class RawParent(Actor):  # type: ignore[misc]
    """"spawn" -> creates a RawChild (its own process) and answers ("pid", child pid);
    ChildActorExited -> tells the "spawn" caller ("exited", time.time_ns() at receipt)."""

    caller: Any = None

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, ChildActorExited):
            stamp = time.time_ns()  # first thing: the receipt time of the notice
            if self.caller is not None:
                self.send(self.caller, ("exited", stamp))
        elif msg == "spawn":
            self.caller = sender
            self.send(self.createActor(RawChild), "pid")
        elif isinstance(msg, int) and not isinstance(msg, bool):
            self.send(self.caller, ("pid", msg))


def raw_child_exit(n: int) -> dict[str, Any]:
    """kill -9 of a raw Thespian child actor -> ``ChildActorExited`` in its parent.

    No taktora code runs in the measured path: a bare ``multiprocTCPBase`` system (its own free
    admin port; listeners on 127.0.0.1 through the same bind policy the taktora cases use), a
    RawParent actor, and per sample a new RawChild process. Timing: the caller takes
    ``time.time_ns()`` right before ``os.kill(child_pid, SIGKILL)``; the parent takes
    ``time.time_ns()`` as the first statement of its ``ChildActorExited`` handler and sends it
    back. ``p50_us`` / ``p99_us`` are parent stamp - kill stamp: both processes read the same
    host clock (CLOCK_REALTIME), so the difference is sound to well under a microsecond unless
    the clock is stepped during the run (NTP slewing is ppm-level). ``caller_p50_us`` /
    ``caller_p99_us`` are the caller's ``perf_counter`` from before the kill until the
    parent's note arrived in its ``listen`` (one more hop, parent -> caller: the analogue of
    ``down_after_kill``, which also measures until the application has the event).
    ``exit_p50_us``: :data:`FLOOR_KILLS` more kills (not in the other figures), each timed from
    the kill until a pidfd on the child, opened by the caller, is readable: how long the
    kernel takes to end this process, the floor of any notice of its death.
    """
    security.apply_bind_policy(security.LOOPBACK)
    asys = ActorSystem("multiprocTCPBase", {"Admin Port": free_port()}, logDefs=QUIET_LOGGING,
                       transientUnique=True)
    try:
        parent = asys.createActor(RawParent)
        notice_us: list[float] = []
        caller_us: list[float] = []
        exit_us: list[float] = []
        for i in range(n + FLOOR_KILLS):
            reply = asys.ask(parent, "spawn", 10)
            assert isinstance(reply, tuple) and reply[0] == "pid", reply
            pid = reply[1]
            fd = pidfd_or_none(pid, i >= n)
            kill_ns = time.time_ns()
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            exit_floor_us(fd, t0, exit_us)
            note = asys.listen(5)
            t1 = time.perf_counter()
            if not (isinstance(note, tuple) and note[0] == "exited"):
                raise RuntimeError(f"no ChildActorExited within 5 s (got {note!r})")
            if fd is None:
                notice_us.append((note[1] - kill_ns) / 1e3)
                caller_us.append((t1 - t0) * 1e6)
        caller = summarize("caller", caller_us)
        row: dict[str, Any] = summarize("thespian_raw_child_exit", notice_us,
                                        caller_p50_us=caller.get("p50_us"),
                                        caller_p99_us=caller.get("p99_us"),
                                        exit_p50_us=summarize("exit", exit_us).get("p50_us"))
        return row
    finally:
        asys.shutdown()  # the parent and any child left


# ---- death notice: taktora ConnectorHost -----------------------------------------------------
GW = "gw"  # the gateway's name (not "link", "monitor", "policy" or the host id)
DOWN_WAIT_S = 5.0  # a DOWN later than this after the kill counts as a timeout
UP_WAIT_S = 15.0  # the restarted gateway must be Up again within this (else: stop sampling)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def udp_gateway() -> GatewayConfig:
    """One UDP gateway on loopback: t/in arrives on one port, t/out goes to another."""
    def chan(name: str, direction: Direction, port: int) -> ChannelDescriptor:
        return ChannelDescriptor(name, direction, codec="json", max_payload=128, buffer_size=64,
                                 routing=Routing("udp", f"127.0.0.1:{port}"))

    return GatewayConfig(name=GW, connector="udp", settings={"name": "udp-bench"},
                         channels=(chan("t/out", Direction.OUTBOUND, free_udp_port()),
                                   chan("t/in", Direction.INBOUND, free_udp_port())),
                         reconnect=Backoff(initial_s=0.1, max_s=0.4, jitter=0.0),
                         health_poll_s=0.05)


def gateway_pid(tree: ChildInfo, host_id: str) -> int | None:
    """The pid of the gateway actor's process, whatever the host's subtree looks like: the
    deepest *leaf* (an actor, not a supervisor) below ``host_id`` whose id is the gateway's
    name (``<host>/<gw>``) or ``"link"`` (a gateway as a group
    ``<host>/<gw>/{monitor,policy,link}``), running, with a pid of its own (not the host
    supervisor's, not this process's). None while there is none (e.g. the link restarting:
    never the group's supervisor instead)."""
    host = tree.find((host_id,))
    if host is None:
        return None
    exclude = {host.pid, os.getpid()}
    found: list[tuple[int, int]] = []  # (depth, pid)

    def walk(node: ChildInfo, depth: int) -> None:
        for c in node.children:
            if (c.id in (GW, "link") and not c.children and c.strategy is None  # an actor
                    and c.pid is not None and c.pid not in exclude and c.state == "running"):
                found.append((depth, c.pid))
            walk(c, depth + 1)

    walk(host, 1)
    return max(found)[1] if found else None


def wait_gateway_pid(h: Any, host_id: str, not_pid: int | None,
                     deadline_s: float = 10.0) -> int | None:
    """:func:`gateway_pid` once the tree names one other than ``not_pid``; None after
    ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            pid = gateway_pid(h.tree(timeout=2.0), host_id)
        except Exception:
            pid = None
        if pid is not None and pid != not_pid:
            return pid
        time.sleep(0.005)
    return None


def down_after_kill(n: int) -> list[dict[str, Any]]:
    """kill -9 of the gateway's process -> ``ConnectorHost.next_event()`` returns DOWN.

    A multi-process taktora system (free admin port, loopback) with a ConnectorHost running
    one UDP gateway (transient, restarted by its supervisor; intensity 100000 per 1 s so the
    kills never make it give up). Per sample: wait until the
    gateway is Up and the tree names its process (:func:`gateway_pid`), drain the host's
    event queue, take ``perf_counter`` and ``time.time_ns()``, ``os.kill(pid, SIGKILL)``, then
    read ``host.next_event()`` in this thread. ``down_after_kill`` = kill -> the first DOWN
    event in the application's hands (same clock, same thread: no cross-process clock);
    ``emit_p50_us`` / ``emit_p99_us`` = the DOWN event's own ``timestamp_ns`` (taken where it
    was created) - the kill's ``time.time_ns()`` (same host clock; compare with
    thespian_raw_child_exit's p50; the monitor creates it the moment its pidfd on the gateway's
    process is readable, so it is bounded below by the kernel's exit of that process: a
    multi-threaded ~40 MB process whose memory teardown takes longer than the small raw
    child's). ``up_after_kill`` = kill -> the UP event that ends the
    sample (the restarted incarnation). ``exit_p50_us``: :data:`FLOOR_KILLS` more kills (not
    in the other figures) timed until a pidfd on the gateway's process, opened here before the
    kill, is readable: the kernel's exit of that process, the floor of any Down (compare with
    thespian_raw_child_exit's ``exit_p50_us``). No DOWN within 5 s is a timeout (``timeouts``; a
    case without any DOWN reports n=0); ``down_after_up`` counts DOWNs that came after the
    new incarnation's UP (the sample then ends with that DOWN and that UP).
    """
    private_prefix("tkbctl")
    host_id = "connectors"
    down_us: list[float] = []
    emit_us: list[float] = []
    up_us: list[float] = []
    exit_us: list[float] = []
    timeouts = down_after_up = no_up = 0
    no_up_detail = ""
    sources: set[str] = set()
    with start_system("multiprocess", admin_port=free_port(), logging_config=QUIET_LOGGING,
                      root=ROOT) as h:
        host = ConnectorHost(h, [udp_gateway()], host_id=host_id,
                             supervision=SupervisorSpec(intensity=100_000, period_s=1.0))
        host.start()
        try:
            up = False
            end = time.monotonic() + 15.0
            while not up and time.monotonic() < end:
                e = host.next_event(0.2)
                up = e is not None and e.state is HealthState.UP
            if not up:
                raise RuntimeError("the gateway did not come Up")
            pid: int | None = None
            for i in range(n + FLOOR_KILLS):
                pid = wait_gateway_pid(h, host_id, pid)
                if pid is None:
                    no_up_detail = "no running gateway process in the tree within 10 s"
                    break
                host.drain_events()
                fd = pidfd_or_none(pid, i >= n)
                kill_ns = time.time_ns()
                t0 = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                exit_floor_us(fd, t0, exit_us)
                down_at = up_at = None
                while True:
                    elapsed = time.perf_counter() - t0
                    if up_at is not None and (down_at is not None or elapsed > DOWN_WAIT_S):
                        break
                    if elapsed > UP_WAIT_S:
                        break
                    e = host.next_event(0.05)
                    if e is None:
                        continue
                    now = time.perf_counter() - t0
                    if e.state is HealthState.DOWN and down_at is None and now <= DOWN_WAIT_S:
                        down_at = now
                        sources.add(e.source)
                        if fd is None:
                            emit_us.append((e.timestamp_ns - kill_ns) / 1e3)
                        if up_at is not None:  # the restarted incarnation was Up first
                            down_after_up += 1
                    elif e.state is HealthState.UP and up_at is None:
                        up_at = now
                if down_at is None:
                    timeouts += 1
                elif fd is None:
                    down_us.append(down_at * 1e6)
                if up_at is None:  # stop sampling; say what the supervisor last saw
                    no_up += 1
                    try:
                        node = h.tree(timeout=2.0).find((host_id, GW))
                        no_up_detail = "; ".join(node.events[-4:]) if node else "no gateway node"
                    except Exception as exc:
                        no_up_detail = f"tree: {type(exc).__name__}: {exc}"
                    break
                if fd is None:
                    up_us.append(up_at * 1e6)
        finally:
            host.stop()
    emit = summarize("emit", emit_us)
    down = summarize("down_after_kill", down_us, timeouts=timeouts, down_after_up=down_after_up,
                     emit_p50_us=emit.get("p50_us"), emit_p99_us=emit.get("p99_us"),
                     exit_p50_us=summarize("exit", exit_us).get("p50_us"),
                     sources=",".join(sorted(sources)))
    up = summarize("up_after_kill", up_us, no_up=no_up)
    if no_up_detail:
        up["no_up_detail"] = no_up_detail[:300]
    return [down, up]


def cross_ratio(results: list[dict[str, Any]], num: str, num_field: str, den: str,
                den_field: str) -> float | None:
    """``num[num_field] / den[den_field]``, or None if either is missing."""
    by = {r["case"]: r for r in results}
    a, b = by.get(num, {}).get(num_field), by.get(den, {}).get(den_field)
    return round(a / b, 3) if a is not None and b else None


def main() -> None:
    args = parse_args(__doc__ or "control plane")
    q = args.quick
    results = [
        summarize("thespian_raw_ask_inprocess", raw_ask_inprocess(2000 if q else 20000)),
        summarize("ask_inprocess", taktora_ask("inprocess", 2000 if q else 20000)),
        summarize("ask_multiprocess", taktora_ask("multiprocess", 300 if q else 3000)),
        summarize("restart_inprocess", restart_inprocess(50 if q else 500)),
        summarize("restart_after_kill", restart_after_kill(10 if q else 50)),
        run_case("thespian_raw_child_exit", raw_child_exit, 10 if q else 50),
    ]
    kills = 10 if q else 20  # a p50 of 5 kills moved by 2x between runs
    try:
        results += down_after_kill(kills)
    except Exception as exc:  # one broken case must not hide the others' numbers
        import traceback

        traceback.print_exc()
        results.append({"case": "down_after_kill", "error": f"{type(exc).__name__}: {exc}"[:300]})
    ratios = {
        "ask_inprocess/thespian_raw_ask_inprocess":
            ratio(results, "ask_inprocess", "thespian_raw_ask_inprocess"),
        "restart_after_kill/thespian_raw_child_exit":
            ratio(results, "restart_after_kill", "thespian_raw_child_exit"),
        "down_after_kill/thespian_raw_child_exit":
            target(results, "down_after_kill", "thespian_raw_child_exit", "<=", 2.0),
        # the same pair measured alike at both ends (informative, no target): where the notice
        # is created (DOWN's timestamp_ns / the parent's stamp), and in the application's hands
        # (next_event() / the caller's listen())
        "down_after_kill.emit/thespian_raw_child_exit":
            cross_ratio(results, "down_after_kill", "emit_p50_us", "thespian_raw_child_exit",
                        "p50_us"),
        "down_after_kill/thespian_raw_child_exit.caller":
            cross_ratio(results, "down_after_kill", "p50_us", "thespian_raw_child_exit",
                        "caller_p50_us"),
        # the floor under both (informative): kill -> the killed process is gone, for the
        # gateway's process / the raw child's; down_after_kill/thespian_raw_child_exit cannot
        # go much below it
        "down_after_kill.exit/thespian_raw_child_exit.exit":
            cross_ratio(results, "down_after_kill", "exit_p50_us", "thespian_raw_child_exit",
                        "exit_p50_us"),
    }
    write("control", results, args.json_out, ratios)
    left = forks_of_me()
    if left:
        print(f"warning: processes of this run still alive: {sorted(left)}", file=sys.stderr)


if __name__ == "__main__":
    main()
