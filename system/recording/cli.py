"""The ``taktora`` subcommands of this package: channels, echo, hz, bw, top, record, replay,
info, recover.

``channels`` / ``echo`` / ``hz`` / ``bw`` / ``top`` attach read-only under ``--prefix`` (default:
``TAKTORA_IOX_PREFIX``, else iceoryx2's ``iox2_``): they list services and open subscribers,
never publishers, and start nothing. A prefix nothing ever ran under, or a channel that is not
there, prints one line and exits 1; bad arguments exit 2 (argparse). Everything runs on the
main thread; SIGINT / SIGTERM end ``record`` and ``replay`` cleanly (the file is finished).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from taktora.system.args import port_arg, seconds_type
from taktora.system.recording.discovery import check_prefix, find, list_channels
from taktora.system.recording.errors import RecordingError
from taktora.transport.errors import TaktoraError
from taktora.transport.isolation import prefix_from_env
from taktora.transport.node import Node

PROGRESS_S = 1.0  # how often record / hz print a progress line
POLL_TOP_S = 0.02  # how often top empties its taps between refreshes


def _out() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _fail(text: object) -> int:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[red]error:[/red] {escape(str(text))}")
    return 1


def _positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {value}: expected >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number > 0")
    return value


def _offset(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: expected seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: expected seconds >= 0")
    return value


@contextmanager
def _attached(args: argparse.Namespace) -> Iterator[Node]:
    prefix = check_prefix(args.prefix or prefix_from_env())
    node = Node(prefix=prefix)
    try:
        yield node
    finally:
        node.close()


@contextmanager
def _until_signal() -> Iterator[threading.Event]:
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _guard(body: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from taktora.actors.errors import AttachError
        from taktora.system.session import error

        try:
            return body(args)
        except RecordingError as exc:
            return _fail(exc)
        except AttachError as exc:  # top --port: nothing taktora listens there
            error(exc)
            return 2
        except TaktoraError as exc:  # top --port: e.g. the root gave up meanwhile
            error(exc)
            return 1
    run.__doc__ = body.__doc__
    return run


# -- seeing --------------------------------------------------------------------------------------
def cmd_channels(args: argparse.Namespace) -> int:
    """A table of every publish-subscribe service under the prefix."""
    from rich.markup import escape
    from rich.table import Table

    with _attached(args) as node:
        channels = list_channels(node)
    table = Table("channel", "payload", "size", "publishers", "subscribers", "buffer",
                  title=f"iceoryx2 prefix {escape(node.prefix)}")
    for c in channels:
        kind = "envelope (bytes)" if c.envelope else escape(c.payload_type)
        size = "dynamic" if c.dynamic else f"{c.payload_size} B"
        table.add_row(escape(c.name), kind, size, _n(c.publishers), _n(c.subscribers),
                      str(c.buffer_size))
    _out().print(table)
    if not channels:
        _out().print("no channels")
    return 0


def _n(value: int) -> str:
    return "?" if value < 0 else str(value)


def cmd_echo(args: argparse.Namespace) -> int:
    """Print each sample of CHANNEL, decoded by its envelope's codec id."""
    from rich.markup import escape
    from taktora.system.recording.mcap_format import codec_name
    from taktora.system.recording.tap import Tap, render

    limit = 1 if args.once else args.count
    out = _out()
    with _attached(args) as node:
        tap = Tap(node, find(node, args.channel))
        try:
            n = 0
            while limit is None or n < limit:
                got = tap.next(args.timeout)
                if got is None:
                    return _fail(f"no sample on {args.channel!r} within {args.timeout} s")
                h = got.header
                head = (f"seq {h.sequence} codec {codec_name(h.codec_id)} {h.payload_len} B"
                        if h is not None else f"{len(got.payload)} B (no envelope)")
                out.print(f"--- {escape(head)}")
                out.print(escape(render(got)))
                n += 1
        finally:
            tap.close()
    return 0


def cmd_hz(args: argparse.Namespace) -> int:
    """Print the receive rate of CHANNEL (min/max/std of the interval) once a second."""
    from taktora.system.recording.tap import RateMeter

    meter = RateMeter(args.window)

    def line() -> str | None:
        s = meter.stats()
        return s.line() if s is not None else None

    return _measure(args, lambda: meter.samples, lambda got: meter.add(got.received_ns), line,
                    "fewer than two samples: no rate")


def cmd_bw(args: argparse.Namespace) -> int:
    """Print the bandwidth of CHANNEL (envelope payload bytes) once a second."""
    from taktora.system.recording.tap import ByteMeter

    meter = ByteMeter(args.window)
    return _measure(args, lambda: meter.samples,
                    lambda got: meter.add(got.received_ns, len(got.payload)), meter.line,
                    "fewer than two samples: no bandwidth")


def _measure(args: argparse.Namespace, samples: Callable[[], int], feed: Callable[[Any], None],
             line: Callable[[], str | None], nothing: str) -> int:
    """The loop of hz and bw: feed every sample of CHANNEL to a meter, print its line once a
    second, stop on --count samples, Ctrl-C, or --timeout without any sample."""
    from taktora.system.recording.tap import Tap

    out = _out()
    with _attached(args) as node, _until_signal() as stop:
        tap = Tap(node, find(node, args.channel))
        try:
            next_print = time.monotonic() + PROGRESS_S
            while not stop.is_set() and (args.count is None or samples() < args.count):
                got = tap.next(min(args.timeout or PROGRESS_S, PROGRESS_S))
                if got is not None:
                    feed(got)
                elif args.timeout is not None and samples() == 0:
                    return _fail(f"no sample on {args.channel!r} within {args.timeout} s")
                if time.monotonic() >= next_print and (text := line()) is not None:
                    out.print(text)
                    next_print += PROGRESS_S
        finally:
            tap.close()
    out.print(line() or nothing)
    return 0


def _top_table(rows: list[Any], prefix: str) -> Any:
    from rich.markup import escape
    from rich.table import Table
    from taktora.system.recording.tap import si

    table = Table("channel", "payload", "pub", "sub", "rate", "bandwidth", "tap lost",
                  title=f"taktora top: prefix {escape(prefix)}  (q or Ctrl-C quits)")
    for r in rows:
        table.add_row(escape(r.name), escape(r.payload), _n(r.publishers), _n(r.subscribers),
                      f"{r.rate_hz:.1f} Hz", f"{si(r.bytes_per_s)}B/s", str(r.tap_lost))
    return table


@contextmanager
def _keys() -> Iterator[Callable[[], str]]:
    """A non-blocking key reader for a terminal (cbreak mode), else one that reads nothing."""
    import os
    import select

    if not sys.stdin.isatty():
        yield lambda: ""
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield lambda: os.read(fd, 16).decode(errors="replace") \
            if select.select([fd], [], [], 0)[0] else ""
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextmanager
def _system_view(args: argparse.Namespace) -> Iterator[Any]:
    """With ``--port``: a read-only view of that system's control plane (else None)."""
    if args.port is None:
        yield None
        return
    from taktora.system.session import Attached
    from taktora.system.top_view import SystemView

    attached = Attached(args.port, args.timeout)
    try:
        yield SystemView(attached)
    finally:
        attached.close()


def cmd_top(args: argparse.Namespace) -> int:
    """A live table of every channel: ports, rate, bandwidth; with ``--port`` also the
    supervision tree, each gateway's health, restarts and loss ledger, each executor item's
    timing. Refreshed every --interval."""
    from rich.live import Live
    from taktora.system.recording.top import ChannelWatch

    out = _out()
    with _attached(args) as node, _until_signal() as stop, _keys() as key, \
            _system_view(args) as view:
        watch = ChannelWatch(node)
        live = Live(_top_table([], node.prefix), console=out, auto_refresh=False,
                    transient=False) if out.is_terminal else None
        try:
            if live is not None:
                live.start()
            shown = 0
            while not stop.is_set() and (args.iterations is None or shown < args.iterations):
                deadline = time.monotonic() + args.interval
                while not stop.is_set() and time.monotonic() < deadline:
                    watch.poll()
                    if "q" in key():
                        stop.set()
                    stop.wait(min(POLL_TOP_S, max(0.0, deadline - time.monotonic())))
                if stop.is_set():
                    break
                table = _top_table(watch.rows(), node.prefix)
                if view is not None:  # --port: the supervision tree, gateways, executor items
                    from rich.console import Group
                    from taktora.system.top_view import render

                    table = Group(table, render(view.snapshot()))
                if live is not None:
                    live.update(table, refresh=True)
                else:
                    out.print(table)
                shown += 1
                watch.rescan()
        finally:
            if live is not None:
                live.stop()
            watch.close()
    return 0


# -- recording -----------------------------------------------------------------------------------
def cmd_record(args: argparse.Namespace) -> int:
    """Record CHANNELs (names or globs) into an MCAP file until Ctrl-C / SIGTERM / --duration."""
    from rich.markup import escape
    from taktora.system.recording.recorder import Recorder

    prefix = check_prefix(args.prefix or prefix_from_env())
    recorder = Recorder(args.output, args.channels, prefix=prefix, compression=args.compression,
                        flush_interval=args.flush_interval,
                        split_bytes=None if args.split_size is None else round(args.split_size * 1e6),
                        split_seconds=args.split_duration)
    out = _out()
    with _until_signal() as stop:
        recorder.start()
        names = ", ".join(c.name for c in recorder.channels) or "(no channel yet)"
        globs = [p for p in args.channels if any(ch in p for ch in "*?[")]
        later = f"; new channels matching {', '.join(globs)} join" if globs else ""
        out.print(escape(f"recording {names} -> {args.output}{later}"))
        deadline = None if args.duration is None else time.monotonic() + args.duration
        try:
            while not stop.is_set():
                left = PROGRESS_S if deadline is None else min(PROGRESS_S, deadline - time.monotonic())
                if left <= 0 or stop.wait(left):
                    break
                s = recorder.stats()
                print(f"recorded {s.written} messages ({s.flushed} on disk)", flush=True)
        finally:
            stats = recorder.stop()
    lost = sum(c.overflow for c in stats.channels)
    where = ", ".join(str(f) for f in stats.files)
    out.print(f"done: {stats.written} messages in {escape(where)}"
              + (f", [yellow]{lost} lost to overflow[/yellow]" if lost else ""))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Publish a recording's messages back onto their services."""
    from taktora.system.recording.player import Player

    prefix = args.prefix or prefix_from_env()
    rate = None if args.fast else args.rate
    with Player(args.file, rate=rate, start=args.start, end=args.end, channels=args.channel,
                remap=args.remap, prefix=prefix) as player, _until_signal() as stop:
        player.open()
        total = sum(c.messages for c in player.info.channels if c.topic in player.topics)

        def relay() -> None:
            # a signal handler must not block: this thread relays it, and shows progress
            while not stop.wait(PROGRESS_S):
                print(f"replayed {player.played} of {total if not args.loop else '...'}",
                      flush=True)
            player.stop()

        watcher = threading.Thread(target=relay, name="taktora-replay-signal", daemon=True)
        watcher.start()
        report = player.run(repeat=0 if args.loop else 1)
        stop.set()
        watcher.join()
    late = sorted(report.lateness_ns)
    timing = (f", lateness p50 {late[len(late) // 2] / 1e3:.0f} us p99 "
              f"{late[min(len(late) - 1, int(len(late) * 0.99))] / 1e3:.0f} us" if late else "")
    _out().print(f"replayed {report.messages} messages{timing}"
                 + (" (stopped)" if report.stopped else ""))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """A table of a recording: channels, counts, rates, duration, gaps."""
    from rich.markup import escape
    from rich.table import Table
    from taktora.system.recording.reader import read_info

    info = read_info(args.file)
    table = Table("channel", "encoding", "messages", "rate", "gaps", "overflow", "source lost",
                  title=f"{escape(str(info.path))}: {info.messages} messages, "
                        f"{info.duration_s:.3f} s")
    for c in info.channels:
        table.add_row(escape(c.topic), escape(c.encoding), str(c.messages),
                      f"{c.rate_hz:.1f} Hz", str(c.gaps), str(c.overflow), str(c.source_lost))
    out = _out()
    out.print(table)
    rec = info.metadata.get("taktora.recording", {})
    if rec:
        out.print(escape(f"host {rec.get('host', '?')}, prefix {rec.get('prefix', '?')}, "
                         f"taktora {rec.get('taktora', '?')}, compression "
                         f"{rec.get('compression', '?')}"))
    if not info.complete:
        out.print(f"[yellow]incomplete:[/yellow] the file has no summary (its recorder was "
                  f"killed?); figures cover the complete chunks. Run `taktora recover "
                  f"{escape(str(args.file))} -o OUT` to write a finished copy.")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    """Write the complete part of an unfinished recording into a new, finished file."""
    from taktora.system.recording.reader import recover

    n = recover(args.file, args.output)
    _out().print(f"recovered {n} messages into {args.output}")
    return 0


def _prefix_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prefix", default=None,
                   help="iceoryx2 prefix of the system (default: $TAKTORA_IOX_PREFIX or iox2_)")


def _sampling_args(p: argparse.ArgumentParser) -> None:
    """--count, --timeout and --prefix of the commands that read one channel."""
    p.add_argument("--count", type=_positive_int, default=None, help="exit after N samples")
    p.add_argument("--timeout", type=_positive_float, default=None,
                   help="fail (exit 1) when no sample comes within SECONDS")
    _prefix_arg(p)


def register(subparsers: Any) -> None:
    """channels, echo, hz, bw, top, record, replay, info, recover."""
    p = subparsers.add_parser("channels", help="list the iceoryx2 channels of a running system")
    _prefix_arg(p)
    p.set_defaults(func=_guard(cmd_channels))

    p = subparsers.add_parser("echo", help="print the samples of one channel")
    p.add_argument("channel", help="iceoryx2 service name, e.g. pose.out")
    p.add_argument("--once", action="store_true", help="print one sample and exit")
    _sampling_args(p)
    p.set_defaults(func=_guard(cmd_echo))

    p = subparsers.add_parser("hz", help="measure the rate of one channel")
    p.add_argument("channel")
    p.add_argument("--window", type=_positive_int, default=10_000,
                   help="intervals the statistics cover (default 10000)")
    _sampling_args(p)
    p.set_defaults(func=_guard(cmd_hz))

    p = subparsers.add_parser("bw", help="measure the bandwidth of one channel")
    p.add_argument("channel")
    p.add_argument("--window", type=_positive_float, default=10.0,
                   help="seconds the figures cover (default 10)")
    _sampling_args(p)
    p.set_defaults(func=_guard(cmd_bw))

    p = subparsers.add_parser("top", help="a live view of every channel's rate and bandwidth")
    p.add_argument("--interval", type=_positive_float, default=1.0,
                   help="seconds between refreshes (default 1)")
    p.add_argument("--iterations", type=_positive_int, default=None,
                   help="exit after N refreshes (default: until q or Ctrl-C)")
    p.add_argument("--port", type=port_arg, default=None,
                   help="also show this running system's supervision tree, gateways (health, "
                        "restarts, loss ledger) and executor items")
    p.add_argument("--timeout", type=seconds_type(), default=5.0,
                   help="with --port: seconds to wait for each reply (default 5)")
    _prefix_arg(p)
    p.set_defaults(func=_guard(cmd_top))

    p = subparsers.add_parser("record", help="record channels into an MCAP file")
    p.add_argument("channels", nargs="+", metavar="CHANNEL", help="names or globs ('*.out')")
    p.add_argument("-o", "--output", required=True, help="MCAP file to write")
    p.add_argument("--compression", choices=("zstd", "lz4", "none"), default="zstd")
    p.add_argument("--duration", type=_positive_float, default=None,
                   help="stop after SECONDS (default: until Ctrl-C / SIGTERM)")
    p.add_argument("--flush-interval", type=_positive_float, default=0.5,
                   help="seconds between flushes to disk (what a crash can lose)")
    p.add_argument("--split-size", type=_positive_float, default=None, metavar="MB",
                   help="start a new file (FILE_000.mcap, FILE_001.mcap ...) after MB megabytes")
    p.add_argument("--split-duration", type=_positive_float, default=None, metavar="SECONDS",
                   help="start a new file after SECONDS")
    _prefix_arg(p)
    p.set_defaults(func=_guard(cmd_record))

    p = subparsers.add_parser("replay", help="publish a recording back onto its channels")
    p.add_argument("file")
    p.add_argument("--rate", type=_positive_float, default=1.0, help="speed factor (default 1)")
    p.add_argument("--fast", action="store_true", help="as fast as possible")
    p.add_argument("--loop", action="store_true", help="start over at the end, until Ctrl-C")
    p.add_argument("--start", type=_offset, default=None, help="seconds from the first message")
    p.add_argument("--end", type=_offset, default=None, help="seconds from the first message")
    p.add_argument("--channel", action="append", default=[],
                   help="replay only this recorded channel (name or glob; repeatable)")
    p.add_argument("--remap", action="append", default=[], metavar="FROM=TO",
                   help="publish channel FROM on TO (repeatable)")
    _prefix_arg(p)
    p.set_defaults(func=_guard(cmd_replay))

    p = subparsers.add_parser("info", help="summarise a recording")
    p.add_argument("file")
    p.set_defaults(func=_guard(cmd_info))

    p = subparsers.add_parser("recover", help="finish a recording whose recorder was killed")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True, help="the finished copy to write")
    p.set_defaults(func=_guard(cmd_recover))

