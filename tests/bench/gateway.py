"""Round trips of 64-byte messages: plain UDP, taktora channels and gateways, the hand-written
floor, and the design a Python user would write without taktora (the peer).

Every ping-pong case keeps one message in flight between the measuring thread and an echo
thread of this process, so the cases compare directly:

- ``udp_raw_64B``: socket.sendto -> loopback -> echo thread recvfrom/sendto -> recv;
- ``channel_raw_64B``: ChannelWriter -> iceoryx2 -> echo thread's ChannelReader -> its
  ChannelWriter -> iceoryx2 -> ChannelReader (raw codec, envelope, CRC; no gateway);
- ``gateway_udp_64B``: app ChannelWriter -> iceoryx2 -> gateway ``left`` (outbound thread)
  -> UDP -> gateway ``right`` (its receiving thread) -> iceoryx2 -> echo thread -> iceoryx2 ->
  ``right`` outbound -> UDP -> ``left`` receiving thread -> iceoryx2 -> app. The gateways are
  real Gateway actors under a ConnectorHost on the in-process actor system base, so every
  thread involved is in this process;
- ``floor_udp_64B``: the same hops and threads written by hand (``_floor``: raw iceoryx2
  pub/sub + event service, WaitSet wake, notify after send; raw UDP sockets; no taktora
  code): app -> iceoryx2 -> bridge-out thread -> UDP -> bridge-in thread -> iceoryx2 -> echo
  thread -> iceoryx2 -> bridge-out -> UDP -> bridge-in -> iceoryx2 -> app. Payload only: no
  envelope, no CRC, no sequence tracking;
- ``mp_bridge_udp_64B`` (peer): a bridge process per side, each a UDP socket with a thread
  feeding it from a ``multiprocessing.Queue`` and a thread putting what arrives on another;
  the app and the echo thread stay in this process: app -> Queue -> bridge L -> UDP -> bridge
  R -> Queue -> echo -> Queue -> bridge R -> UDP -> bridge L -> Queue -> app;
- ``gateway_udp_mp_64B``: as gateway_udp_64B, the two gateways on the multi-process actor
  base (each Gateway actor, with its data-plane threads, in a process of its own);
- ``floor_udp_mp_64B``: the floor in that topology: each side's bridge-out and bridge-in
  threads in a process of its own, app and echo here (the least the multi-process design can
  cost: ``gateway_udp_mp / floor_udp_mp`` is what taktora adds there).

Pipelined cases (``floor_udp_pipelined_64B``, ``gateway_udp_pipelined_64B``): the same links
with ``WINDOW`` messages in flight; ``msgs_per_s`` = echoes received / time to the last one,
``lost`` = sent - received (must be 0).

The in-process cases run interleaved in rounds (order reversed every other round), so load
changes of a shared machine hit them alike; the multi-process cases likewise among themselves.

Fields: ``p50_us`` / ``p99_us`` round-trip latency, ``msgs_per_s`` round trips per second of
measured time, ``cpu_us_per_msg`` CPU time per round trip of this process (all threads) plus
the case's own processes (bridges, actor processes), ``n``.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import queue
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
import _floor
from taktora.actors.models.backoff import Backoff
from taktora.connectors import ChannelDescriptor, ChannelReader, ChannelWriter, Direction, Routing
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.host import ConnectorHost
from taktora.system.bootstrap import QUIET_LOGGING, start_system
from taktora.transport import Node

SIZE = 64
WINDOW = 64  # pipelined cases: messages in flight
BUFFER = 256  # channel queues: more than WINDOW, so the window never overflows one
WARMUP = 50
ROUNDS = 5
TIMEOUT_S = 5.0
IDLE_WAKE_S = 0.2  # how often an idle thread of a case checks its stop flag
SPAWN = mp.get_context("spawn")


@attrs.frozen
class Link:
    """One way to get a message echoed: ``send(payload)``, then ``recv(timeout)`` returns the
    echo (None on timeout). ``pids``: the case's processes besides this one (CPU counted)."""

    send: Callable[[bytes], Any]
    recv: Callable[[float], Any]
    pids: tuple[int, ...] = ()


# ---- measuring -----------------------------------------------------------------------------
class Tally:
    """What one case accumulated over the rounds."""

    def __init__(self) -> None:
        self.lat: list[float] = []
        self.wall = 0.0
        self.cpu = 0.0
        self.count = 0
        self.sent = 0
        self.lost = 0


def _cpu(link: Link) -> float:
    return time.process_time() + _bench.cpu_s(link.pids)


def pingpong(case: str, link: Link, n: int, tally: Tally) -> None:
    payload = bytes(range(SIZE))
    lat = tally.lat
    send, recv = link.send, link.recv
    clock = time.perf_counter_ns
    cpu0, wall0 = _cpu(link), time.perf_counter()
    for _ in range(n):
        t = clock()
        send(payload)
        if recv(TIMEOUT_S) is None:
            raise TimeoutError(f"{case}: no echo within {TIMEOUT_S} s")
        lat.append((clock() - t) / 1000)
    tally.wall += time.perf_counter() - wall0
    tally.cpu += _cpu(link) - cpu0
    tally.count += n


def pipelined(case: str, link: Link, n: int, tally: Tally) -> None:
    """``n`` messages with at most WINDOW in flight; a gap of 1 s ends the batch (the rest
    counts as lost)."""
    pack = struct.Struct("<Q").pack
    pad = bytes(SIZE - 8)
    send, recv = link.send, link.recv
    sent = got = 0
    cpu0, t0 = _cpu(link), time.perf_counter()
    last = t0
    while got < n:
        while sent < n and sent - got < WINDOW:
            send(pack(sent) + pad)
            sent += 1
        if recv(1.0) is None:
            break
        got += 1
        last = time.perf_counter()
    tally.wall += last - t0
    tally.cpu += _cpu(link) - cpu0
    tally.count += got
    tally.sent += sent
    tally.lost += sent - got
    while recv(0.05) is not None:  # a late echo must not land in the next batch
        tally.lost -= 1


def rounds(links: dict[str, Link], n: int, run: Callable[[str, Link, int, Tally], None],
           warmup: int = WARMUP) -> dict[str, Tally]:
    """Run every link ``n`` times in total, interleaved in ROUNDS rounds."""
    tallies = {case: Tally() for case in links}
    warm = _tagged(pingpong)
    for case, link in links.items():
        warm(case, link, warmup, Tally())
    order = list(links)
    for r in range(ROUNDS):
        for case in order if r % 2 == 0 else order[::-1]:
            run(case, links[case], n // ROUNDS, tallies[case])
    return tallies


def pingpong_row(case: str, t: Tally) -> dict[str, Any]:
    return _bench.summarize(case, t.lat, msgs_per_s=round(t.count / t.wall, 1),
                            cpu_us_per_msg=round(t.cpu / t.count * 1e6, 1))


def pipelined_row(case: str, t: Tally) -> dict[str, Any]:
    return {"case": case, "n": t.count, "sent": t.sent, "lost": t.lost, "window": WINDOW,
            "msgs_per_s": round(t.count / t.wall, 1) if t.wall else None,
            "cpu_us_per_msg": round(t.cpu / max(1, t.count) * 1e6, 1)}


# ---- plain UDP -----------------------------------------------------------------------------
def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def udp_socket(port: int = 0, timeout: float | None = IDLE_WAKE_S) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("127.0.0.1", port))
    s.settimeout(timeout)
    return s


@contextlib.contextmanager
def udp_raw() -> Iterator[Link]:
    echo, client = udp_socket(), udp_socket(timeout=TIMEOUT_S)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = echo.recvfrom(2048)
            except TimeoutError:
                continue
            echo.sendto(data, addr)

    t = threading.Thread(target=serve, name="udp-echo", daemon=True)
    t.start()
    target = echo.getsockname()

    def recv(_timeout: float) -> bytes | None:
        try:
            return client.recv(2048)
        except TimeoutError:
            return None

    try:
        yield Link(lambda p: client.sendto(p, target), recv)
    finally:
        stop.set()
        t.join(2)
        echo.close()
        client.close()


# ---- channels (with or without gateways) ---------------------------------------------------
def desc(name: str, direction: Direction, port: int = 0) -> ChannelDescriptor:
    return ChannelDescriptor(name, direction, codec="raw", max_payload=SIZE, buffer_size=BUFFER,
                             routing=Routing("udp", f"127.0.0.1:{port}"))


@contextlib.contextmanager
def channel_link(out_ping: ChannelDescriptor, in_ping: ChannelDescriptor,
                 out_pong: ChannelDescriptor, in_pong: ChannelDescriptor,
                 pids: tuple[int, ...] = ()) -> Iterator[Link]:
    """App writes ping (out), echo reads ping (in) and writes pong (out), app reads pong (in)."""
    stop = threading.Event()
    ready = threading.Event()

    def serve() -> None:
        with Node("bench-echo") as node:
            reader: ChannelReader[bytes] = ChannelReader(node, in_ping)
            writer: ChannelWriter[bytes] = ChannelWriter(node, out_pong)
            ready.set()
            while not stop.is_set():
                got = reader.recv(IDLE_WAKE_S)
                if got is not None:
                    writer.send(got.value)

    t = threading.Thread(target=serve, name="channel-echo", daemon=True)
    t.start()
    ready.wait(10)
    try:
        with Node("bench-app") as node:
            writer: ChannelWriter[bytes] = ChannelWriter(node, out_ping)
            reader: ChannelReader[bytes] = ChannelReader(node, in_pong)
            time.sleep(0.3)  # every port connected
            yield Link(writer.send, reader.recv, pids)
    finally:
        stop.set()
        t.join(2)


@contextlib.contextmanager
def channel_raw() -> Iterator[Link]:
    # INBOUND and OUTBOUND descriptors of one name open different services: use the direction
    # the gateway would publish (".in") for both ends, so no gateway is involved.
    ping, pong = desc("bench/ping", Direction.INBOUND), desc("bench/pong", Direction.INBOUND)
    with channel_link(ping, ping, pong, pong) as link:
        yield link


def gateway_pair(tag: str) -> tuple[GatewayConfig, GatewayConfig]:
    p_ping, p_pong = free_udp_port(), free_udp_port()
    fast = Backoff(initial_s=0.1, max_s=1.0)
    left = GatewayConfig(name=f"{tag}-left", connector="udp",
                         channels=(desc(f"{tag}/ping", Direction.OUTBOUND, p_ping),
                                   desc(f"{tag}/pong", Direction.INBOUND, p_pong)), reconnect=fast)
    right = GatewayConfig(name=f"{tag}-right", connector="udp",
                          channels=(desc(f"{tag}/ping", Direction.INBOUND, p_ping),
                                    desc(f"{tag}/pong", Direction.OUTBOUND, p_pong)), reconnect=fast)
    return left, right


@contextlib.contextmanager
def gateway_udp() -> Iterator[Link]:
    left, right = gateway_pair("gw")
    with start_system("inprocess", logging_config=QUIET_LOGGING) as handle:
        host = ConnectorHost(handle, [left, right]).start()
        try:
            with channel_link(left.channels[0], right.channels[0], right.channels[1],
                              left.channels[1]) as link:
                yield link
        finally:
            host.stop()


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def gateway_udp_mp() -> Iterator[Link]:
    """The gateways as actors of the multi-process base; the CPU of the actor system's
    processes (admin, logger, supervisors, gateways: forks of this process) is counted."""
    left, right = gateway_pair("gwmp")
    before = _bench.forks_of_me()
    with start_system("multiprocess", admin_port=free_tcp_port(),
                      logging_config=QUIET_LOGGING) as handle:
        host = ConnectorHost(handle, [left, right]).start()
        try:
            pids = _bench.forks_of_me() - before
            with channel_link(left.channels[0], right.channels[0], right.channels[1],
                              left.channels[1], tuple(sorted(pids))) as link:
                yield link
        finally:
            host.stop()


# ---- the floor: the gateway topology by hand -----------------------------------------------
def _bridge_out(name: str, service: str, sock: socket.socket, dest: tuple[str, int],
                stop: _floor.Stop, ready: threading.Barrier) -> None:
    """iceoryx2 -> UDP: wake on the channel, send every queued sample from shared memory."""
    ports: list[Any] = [_floor.node(name)]
    sub = _floor.Sub(ports[0], service)
    waiter = _floor.Waiter([sub], stop)
    ports += [sub, waiter]
    u8 = ctypes.c_uint8
    sendto = sock.sendto
    try:
        ready.wait()
        while not stop.is_set:
            waiter.wait(IDLE_WAKE_S)
            while (s := sub.take()) is not None:
                sendto((u8 * s.header.number_of_elements).from_address(s.payload_ptr), dest)
                del s
    finally:
        _floor.close_all(ports)


def _bridge_in(name: str, service: str, sock: socket.socket, stop: _floor.Stop,
               ready: threading.Barrier) -> None:
    """UDP -> iceoryx2: block in recv, publish each datagram and notify."""
    ports: list[Any] = [_floor.node(name)]
    pub = _floor.Pub(ports[0], service, SIZE)
    ports.append(pub)
    buf = (ctypes.c_uint8 * 2048)()
    recv_into, send = sock.recv_into, pub.send
    try:
        ready.wait()
        while not stop.is_set:
            try:
                n = recv_into(buf)
            except TimeoutError:
                continue
            send(buf, n)
    finally:
        _floor.close_all(ports)


def _floor_echo(stop: _floor.Stop, ready: threading.Barrier, root: str = "floor") -> None:
    ports: list[Any] = [_floor.node(f"{root}-echo")]
    sub = _floor.Sub(ports[0], f"{root}/ping.in")
    pub = _floor.Pub(ports[0], f"{root}/pong.out", SIZE)
    waiter = _floor.Waiter([sub], stop)
    ports += [sub, pub, waiter]
    send = pub.send_from
    try:
        ready.wait()
        while not stop.is_set:
            waiter.wait(IDLE_WAKE_S)
            while (s := sub.take()) is not None:
                send(s.payload_ptr, s.header.number_of_elements)
                del s
    finally:
        _floor.close_all(ports)


@contextlib.contextmanager
def floor_udp() -> Iterator[Link]:
    l_in, r_in = udp_socket(), udp_socket()  # left receives pongs, right receives pings
    l_out, r_out = udp_socket(), udp_socket()
    stop = _floor.Stop()
    ready = threading.Barrier(6, timeout=10)
    threads = [
        threading.Thread(target=_bridge_out, name="floor-left-out", args=(
            "floor-left-out", "floor/ping.out", l_out, r_in.getsockname(), stop, ready)),
        threading.Thread(target=_bridge_in, name="floor-right-in", args=(
            "floor-right-in", "floor/ping.in", r_in, stop, ready)),
        threading.Thread(target=_floor_echo, name="floor-echo", args=(stop, ready)),
        threading.Thread(target=_bridge_out, name="floor-right-out", args=(
            "floor-right-out", "floor/pong.out", r_out, l_in.getsockname(), stop, ready)),
        threading.Thread(target=_bridge_in, name="floor-left-in", args=(
            "floor-left-in", "floor/pong.in", l_in, stop, ready)),
    ]
    ports: list[Any] = [_floor.node("floor-app")]
    try:
        pub = _floor.Pub(ports[0], "floor/ping.out", SIZE)
        sub = _floor.Sub(ports[0], "floor/pong.in")
        waiter = _floor.Waiter([sub])
        ports += [pub, sub, waiter]
        for t in threads:
            t.start()
        ready.wait()
        time.sleep(0.3)  # every port connected
        yield Link(pub.send, lambda timeout: _floor.recv(sub, waiter, timeout))
    finally:
        stop.set()
        for t in threads:
            t.join(2)
        _floor.close_all(ports)
        stop.close()
        for s in (l_in, r_in, l_out, r_out):
            s.close()


def floor_side_main(side: str, in_port: int, out_dest: tuple[str, int], out_service: str,
                    in_service: str, ready: Any, stop: Any) -> None:
    """One side of ``floor_udp_mp``: a process with that side's bridge-out and bridge-in
    threads (the floor's code), as a gateway process holds its outbound and receive threads."""
    sock_in, sock_out = udp_socket(in_port), udp_socket()
    halt = _floor.Stop()
    started = threading.Barrier(3, timeout=30)
    threads = [threading.Thread(target=_bridge_out, args=(f"floormp-{side}-out", out_service,
                                                          sock_out, out_dest, halt, started)),
               threading.Thread(target=_bridge_in, args=(f"floormp-{side}-in", in_service,
                                                         sock_in, halt, started))]
    for t in threads:
        t.start()
    started.wait()
    ready.set()
    stop.wait()
    halt.set()
    for t in threads:
        t.join(5)
    halt.close()
    sock_in.close()
    sock_out.close()


@contextlib.contextmanager
def floor_udp_mp() -> Iterator[Link]:
    """The floor with each side's two bridge threads in a process of its own (the topology of
    ``gateway_udp_mp_64B``: app and echo here, one process per side)."""
    p_left_in, p_right_in = free_udp_port(), free_udp_port()
    stop = SPAWN.Event()
    readies = [SPAWN.Event(), SPAWN.Event()]
    procs = [SPAWN.Process(target=floor_side_main, name="floormp-left", daemon=True, args=(
                 "left", p_left_in, ("127.0.0.1", p_right_in), "floormp/ping.out",
                 "floormp/pong.in", readies[0], stop)),
             SPAWN.Process(target=floor_side_main, name="floormp-right", daemon=True, args=(
                 "right", p_right_in, ("127.0.0.1", p_left_in), "floormp/pong.out",
                 "floormp/ping.in", readies[1], stop))]
    halt = _floor.Stop()
    echo_ready = threading.Barrier(2, timeout=30)
    echo = threading.Thread(target=_floor_echo, args=(halt, echo_ready, "floormp"))
    ports: list[Any] = [_floor.node("floormp-app")]
    try:
        for p in procs:
            p.start()
        for r in readies:
            if not r.wait(60):
                raise RuntimeError("floor process did not start")
        echo.start()
        echo_ready.wait()
        pub = _floor.Pub(ports[0], "floormp/ping.out", SIZE)
        sub = _floor.Sub(ports[0], "floormp/pong.in")
        waiter = _floor.Waiter([sub])
        ports += [pub, sub, waiter]
        time.sleep(0.3)  # every port connected
        yield Link(pub.send, lambda timeout: _floor.recv(sub, waiter, timeout),
                   tuple(p.pid for p in procs if p.pid))
    finally:
        stop.set()
        halt.set()
        echo.join(2)
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        _floor.close_all(ports)
        halt.close()


# ---- the peer: bridge processes fed by multiprocessing.Queue ------------------------------
def mp_bridge_main(port: int, remote: tuple[str, int], to_udp: Any, from_udp: Any,
                   ready: Any, stop: Any) -> None:
    """A bridge process: one UDP socket; a thread sends what ``to_udp`` yields (None ends it),
    the main thread puts every datagram received on ``from_udp``."""
    sock = udp_socket(port)

    def pump() -> None:
        while (m := to_udp.get()) is not None:
            sock.sendto(m, remote)

    t = threading.Thread(target=pump, name="bridge-out")
    t.start()
    ready.set()
    while not stop.is_set():
        try:
            data = sock.recv(2048)
        except TimeoutError:
            continue
        from_udp.put(data)
    t.join(5)
    sock.close()


@contextlib.contextmanager
def mp_bridge_udp() -> Iterator[Link]:
    p_left, p_right = free_udp_port(), free_udp_port()
    app_out, app_in, echo_in, echo_out = (SPAWN.Queue() for _ in range(4))
    stop = SPAWN.Event()
    readies = [SPAWN.Event(), SPAWN.Event()]
    procs = [SPAWN.Process(target=mp_bridge_main, name="bridge-left", daemon=True, args=(
                 p_left, ("127.0.0.1", p_right), app_out, app_in, readies[0], stop)),
             SPAWN.Process(target=mp_bridge_main, name="bridge-right", daemon=True, args=(
                 p_right, ("127.0.0.1", p_left), echo_out, echo_in, readies[1], stop))]

    def echo() -> None:
        while (m := echo_in.get()) is not None:
            echo_out.put(m)

    t = threading.Thread(target=echo, name="mp-echo", daemon=True)
    t.start()

    def recv(timeout: float) -> bytes | None:
        try:
            return app_in.get(timeout=timeout)  # type: ignore[no-any-return]
        except queue.Empty:
            return None

    try:
        for p in procs:
            p.start()
        for r in readies:
            if not r.wait(60):
                raise RuntimeError("mp bridge process did not start")
        yield Link(app_out.put, recv, tuple(p.pid for p in procs if p.pid))
    finally:
        stop.set()
        app_out.put(None)
        echo_out.put(None)
        echo_in.put(None)
        t.join(2)
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        for q in (app_out, app_in, echo_in, echo_out):
            q.close()
            q.join_thread()


# ---- running -------------------------------------------------------------------------------
def open_links(stack: contextlib.ExitStack, makers: dict[str, Callable[[], Any]],
               errors: list[dict[str, Any]]) -> dict[str, Link]:
    """Enter every case's context; a case that cannot start gets an error row instead."""
    links = {}
    for case, make in makers.items():
        try:
            links[case] = stack.enter_context(make())
        except Exception as exc:
            import traceback

            traceback.print_exc()
            errors.append({"case": case, "error": f"{type(exc).__name__}: {exc}"[:300]})
    return links


def measure(makers: dict[str, Callable[[], Any]], n: int,
            pipelined_cases: dict[str, str] | None = None, n_pipe: int = 0) -> list[dict[str, Any]]:
    """Ping-pong every case of ``makers`` (interleaved), then pipeline those named in
    ``pipelined_cases`` (ping-pong case -> pipelined case name). A case whose set-up or run
    fails gets an error row; the others still run."""
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        links = open_links(stack, makers, rows)
        for case, t in _rounds_safe(links, n, pingpong, rows).items():
            rows.append(pingpong_row(case, t))
        if pipelined_cases:
            failed = {r["case"] for r in rows if "error" in r}
            pipe_links = {pipelined_cases[c]: link for c, link in links.items()
                          if c in pipelined_cases and c not in failed}
            for case, t in _rounds_safe(pipe_links, n_pipe, pipelined, rows, warmup=0).items():
                rows.append(pipelined_row(case, t))
    return rows


def _rounds_safe(links: dict[str, Link], n: int, run: Callable[[str, Link, int, Tally], None],
                 errors: list[dict[str, Any]], warmup: int = WARMUP) -> dict[str, Tally]:
    """:func:`rounds`; when one case fails, the failed case gets an error row and the rest
    are measured again without it."""
    links = dict(links)
    while links:
        try:
            return rounds(links, n, _tagged(run), warmup)
        except _CaseFailed as failed:
            errors.append({"case": failed.case, "error": failed.error})
            print(f"{failed.case} failed: {failed.error}", file=sys.stderr, flush=True)
            links.pop(failed.case)
    return {}


class _CaseFailed(Exception):
    def __init__(self, case: str, error: str) -> None:
        super().__init__(case, error)
        self.case, self.error = case, error


def _tagged(run: Callable[[str, Link, int, Tally], None]) -> Callable[[str, Link, int, Tally], None]:
    def tagged(case: str, link: Link, n: int, tally: Tally) -> None:
        try:
            run(case, link, n, tally)
        except Exception as exc:
            raise _CaseFailed(case, f"{type(exc).__name__}: {exc}"[:300]) from exc

    return tagged


def main() -> None:
    args = _bench.parse_args(__doc__.splitlines()[0] if __doc__ else "gateway")
    _bench.private_prefix("tkbgw")
    n = 500 if args.quick else 5000
    n_pipe = 5000 if args.quick else 50000
    results = measure({"udp_raw_64B": udp_raw, "channel_raw_64B": channel_raw,
                       "floor_udp_64B": floor_udp, "gateway_udp_64B": gateway_udp}, n,
                      {"floor_udp_64B": "floor_udp_pipelined_64B",
                       "gateway_udp_64B": "gateway_udp_pipelined_64B"}, n_pipe)
    results += measure({"mp_bridge_udp_64B": mp_bridge_udp, "floor_udp_mp_64B": floor_udp_mp,
                        "gateway_udp_mp_64B": gateway_udp_mp}, n)
    pipe = {r["case"]: r for r in results if "lost" in r}
    ratios = {
        "gateway_udp/floor_udp p50": _bench.target(results, "gateway_udp_64B", "floor_udp_64B",
                                                   "<=", 1.25),
        "gateway_udp/floor_udp pipelined msgs_per_s": _bench.target(
            results, "gateway_udp_pipelined_64B", "floor_udp_pipelined_64B", ">=", 0.8,
            "msgs_per_s"),
        "pipelined lost (must be 0)": {c: r["lost"] for c, r in pipe.items()},
        "gateway_udp_mp/mp_bridge_udp p50": _bench.target(results, "gateway_udp_mp_64B",
                                                          "mp_bridge_udp_64B", "<=", 0.5),
        "gateway_udp_mp/floor_udp_mp p50": _bench.ratio(results, "gateway_udp_mp_64B",
                                                        "floor_udp_mp_64B"),
        "floor_udp_mp/mp_bridge_udp p50": _bench.ratio(results, "floor_udp_mp_64B",
                                                       "mp_bridge_udp_64B"),
        "gateway_udp/mp_bridge_udp p50": _bench.ratio(results, "gateway_udp_64B",
                                                      "mp_bridge_udp_64B"),
        "floor_udp/udp_raw p50": _bench.ratio(results, "floor_udp_64B", "udp_raw_64B"),
        "gateway_udp/udp_raw p50": _bench.ratio(results, "gateway_udp_64B", "udp_raw_64B"),
        "gateway_udp/channel_raw p50": _bench.ratio(results, "gateway_udp_64B", "channel_raw_64B"),
        "channel_raw/udp_raw p50": _bench.ratio(results, "channel_raw_64B", "udp_raw_64B"),
        "gateway_udp/floor_udp cpu": _bench.ratio(results, "gateway_udp_64B", "floor_udp_64B",
                                                  "cpu_us_per_msg"),
        "gateway_udp/udp_raw cpu": _bench.ratio(results, "gateway_udp_64B", "udp_raw_64B",
                                                "cpu_us_per_msg"),
    }
    _bench.write("gateway", results, args.json_out, ratios)


if __name__ == "__main__":
    main()
