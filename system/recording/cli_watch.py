"""``taktora channels / echo / hz / bw / top``: watching a running system, read-only.

They attach under ``--prefix`` (default: ``TAKTORA_IOX_PREFIX``, else iceoryx2's ``iox2_``):
they list services and open subscribers, never publishers, and start nothing. A prefix
nothing ever ran under, or a channel that is not there, prints one line and exits 1; bad
arguments exit 2 (argparse). Everything runs on the main thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from taktora.system.args import port_arg, seconds_type
from taktora.system.recording.cli_common import (
    PROGRESS_S,
    attached,
    console,
    fail,
    guard,
    positive_float,
    positive_int,
    prefix_arg,
    until_signal,
)
from taktora.system.recording.discovery import find, list_channels
from taktora.system.recording.metadata import declared_channels

POLL_TOP_S = 0.02  # how often top empties its taps between refreshes


def cmd_channels(args: argparse.Namespace) -> int:
    """A table of every publish-subscribe service under the prefix."""
    from rich.markup import escape
    from rich.table import Table

    declared = declared_channels(args.config) if args.config is not None else None
    with attached(args) as node:
        channels = list_channels(node)
    columns = ["channel", "payload", "size", "publishers", "subscribers", "buffer"]
    table = Table(*columns, *(("codec", "served by") if declared is not None else ()),
                  title=f"iceoryx2 prefix {escape(node.prefix)}")
    for c in channels:
        kind = "envelope (bytes)" if c.envelope else escape(c.payload_type)
        size = "dynamic" if c.dynamic else f"{c.payload_size} B"
        row = [escape(c.name), kind, size, _n(c.publishers), _n(c.subscribers), str(c.buffer_size)]
        if declared is not None:
            row += [escape(x) for x in declared.get(c.name, ("?", "not in the system file"))]
        table.add_row(*row)
    console().print(table)
    if not channels:
        console().print("no channels")
    return 0


def _n(value: int) -> str:
    return "?" if value < 0 else str(value)


def cmd_echo(args: argparse.Namespace) -> int:
    """Print each sample of CHANNEL, decoded by its envelope's codec id."""
    from rich.markup import escape
    from taktora.system.recording.mcap_format import codec_name
    from taktora.system.recording.tap import Tap, render

    limit = 1 if args.once else args.count
    out = console()
    with attached(args) as node:
        tap = Tap(node, find(node, args.channel))
        try:
            n = 0
            while limit is None or n < limit:
                got = tap.next(args.timeout)
                if got is None:
                    return fail(f"no sample on {args.channel!r} within {args.timeout} s")
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

    out = console()
    with attached(args) as node, until_signal() as stop:
        tap = Tap(node, find(node, args.channel))
        try:
            next_print = time.monotonic() + PROGRESS_S
            while not stop.is_set() and (args.count is None or samples() < args.count):
                got = tap.next(min(args.timeout or PROGRESS_S, PROGRESS_S))
                if got is not None:
                    feed(got)
                elif args.timeout is not None and samples() == 0:
                    return fail(f"no sample on {args.channel!r} within {args.timeout} s")
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

    out = console()
    with attached(args) as node, until_signal() as stop, _keys() as key, \
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


def _sampling_args(p: argparse.ArgumentParser) -> None:
    """--count, --timeout and --prefix of the commands that read one channel."""
    p.add_argument("--count", type=positive_int, default=None, help="exit after N samples")
    p.add_argument("--timeout", type=positive_float, default=None,
                   help="fail (exit 1) when no sample comes within SECONDS")
    prefix_arg(p)


def register(subparsers: Any) -> None:
    """channels, echo, hz, bw, top."""
    p = subparsers.add_parser("channels", help="list the iceoryx2 channels of a running system")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="the system file: adds each channel's codec and the gateway serving it")
    prefix_arg(p)
    p.set_defaults(func=guard(cmd_channels))

    p = subparsers.add_parser("echo", help="print the samples of one channel")
    p.add_argument("channel", help="iceoryx2 service name, e.g. pose.out")
    p.add_argument("--once", action="store_true", help="print one sample and exit")
    _sampling_args(p)
    p.set_defaults(func=guard(cmd_echo))

    p = subparsers.add_parser("hz", help="measure the rate of one channel")
    p.add_argument("channel")
    p.add_argument("--window", type=positive_int, default=10_000,
                   help="intervals the statistics cover (default 10000)")
    _sampling_args(p)
    p.set_defaults(func=guard(cmd_hz))

    p = subparsers.add_parser("bw", help="measure the bandwidth of one channel")
    p.add_argument("channel")
    p.add_argument("--window", type=positive_float, default=10.0,
                   help="seconds the figures cover (default 10)")
    _sampling_args(p)
    p.set_defaults(func=guard(cmd_bw))

    p = subparsers.add_parser("top", help="a live view of every channel's rate and bandwidth")
    p.add_argument("--interval", type=positive_float, default=1.0,
                   help="seconds between refreshes (default 1)")
    p.add_argument("--iterations", type=positive_int, default=None,
                   help="exit after N refreshes (default: until q or Ctrl-C)")
    p.add_argument("--port", type=port_arg, default=None,
                   help="also show this running system's supervision tree, gateways (health, "
                        "restarts, loss ledger) and executor items")
    p.add_argument("--timeout", type=seconds_type(), default=5.0,
                   help="with --port: seconds to wait for each reply (default 5)")
    prefix_arg(p)
    p.set_defaults(func=guard(cmd_top))
