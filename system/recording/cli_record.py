"""``taktora record / replay / info / recover``: recordings from the command line.

``record`` attaches under ``--prefix`` like the watching commands; SIGINT / SIGTERM end
``record`` and ``replay`` cleanly (the file is finished). A file or channel problem prints one
line and exits 1; bad arguments exit 2 (argparse). Everything runs on the main thread, but
the recorder (its own thread) and the replay's signal relay.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from taktora.system.recording import mcap_format as fmt
from taktora.system.recording.cli_common import (
    PROGRESS_S,
    console,
    guard,
    offset,
    positive_float,
    prefix_arg,
    until_signal,
)
from taktora.system.recording.discovery import check_prefix
from taktora.system.recording.errors import RecordingError
from taktora.system.recording.metadata import system_config
from taktora.transport.isolation import prefix_from_env


def cmd_record(args: argparse.Namespace) -> int:
    """Record CHANNELs (names or globs) into an MCAP file until Ctrl-C / SIGTERM / --duration."""
    from rich.markup import escape
    from taktora.system.recording.recorder_thread import Recorder

    prefix = check_prefix(args.prefix or prefix_from_env())
    if args.config is not None:
        system_config(args.config)  # a bad --config fails before anything starts
    recorder = Recorder(args.output, args.channels, prefix=prefix, compression=args.compression,
                        flush_interval=args.flush_interval,
                        split_bytes=None if args.split_size is None else round(args.split_size * 1e6),
                        split_seconds=args.split_duration, config=args.config,
                        types=[_ctypes_class(t) for t in args.type])
    out = console()
    with until_signal() as stop:
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
                remap=args.remap, prefix=prefix) as player, until_signal() as stop:
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
    console().print(f"replayed {report.messages} messages{timing}"
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
    out = console()
    out.print(table)
    rec = info.metadata.get(fmt.META_RECORDING, {})
    if rec:
        about = Table("recorded", "", show_header=False, box=None)
        for key in ("host", "pid", "prefix", "patterns", "compression", "part"):
            about.add_row(key, escape(rec.get(key, "?")))
        started = int(rec.get("started_ns", "0")) / 1e9
        about.add_row("started", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)))
        about.add_row("versions", escape(", ".join(f"{k} {rec.get(k, '?')}" for k in (
            "taktora", "python", "iceoryx2", "mcap"))))
        system = info.metadata.get(fmt.META_SYSTEM)
        if system is not None:
            about.add_row("system", escape(f"{system.get('name', '?')} from "
                                           f"{system.get('path', '?')} (sha256 "
                                           f"{system.get('sha256', '?')[:12]})"))
        out.print(about)
    if args.config:
        system = info.metadata.get(fmt.META_SYSTEM)
        out.print(escape(system["toml"]) if system is not None else
                  "no system config in this recording (record with --config FILE)")
    if not info.complete:
        out.print(f"[yellow]incomplete:[/yellow] the file has no summary (its recorder was "
                  f"killed?); figures cover the complete chunks. Run `taktora recover "
                  f"{escape(str(args.file))} -o OUT` to write a finished copy.")
    return 0


def _ctypes_class(path: str) -> Any:
    """``module:Class`` of ``--type``: a ctypes Structure (RecordingError otherwise)."""
    import ctypes
    import importlib

    module, _, name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise RecordingError(f"--type {path!r}: cannot import it ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, ctypes.Structure)):
        raise RecordingError(f"--type {path!r} is not a ctypes.Structure subclass")
    return cls


def cmd_recover(args: argparse.Namespace) -> int:
    """Write the complete part of an unfinished recording into a new, finished file."""
    from taktora.system.recording.reader import recover

    n = recover(args.file, args.output)
    console().print(f"recovered {n} messages into {args.output}")
    return 0


def register(subparsers: Any) -> None:
    """record, replay, info, recover."""
    p = subparsers.add_parser("record", help="record channels into an MCAP file")
    p.add_argument("channels", nargs="+", metavar="CHANNEL", help="names or globs ('*.out')")
    p.add_argument("-o", "--output", required=True, help="MCAP file to write")
    p.add_argument("--compression", choices=("zstd", "lz4", "none"), default="zstd")
    p.add_argument("--duration", type=positive_float, default=None,
                   help="stop after SECONDS (default: until Ctrl-C / SIGTERM)")
    p.add_argument("--flush-interval", type=positive_float, default=0.5,
                   help="seconds between flushes to disk (what a crash can lose)")
    p.add_argument("--split-size", type=positive_float, default=None, metavar="MB",
                   help="start a new file (FILE_000.mcap, FILE_001.mcap ...) after MB megabytes")
    p.add_argument("--split-duration", type=positive_float, default=None, metavar="SECONDS",
                   help="start a new file after SECONDS")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="the system file the recorded system runs (embedded as metadata)")
    p.add_argument("--type", action="append", default=[], metavar="MODULE:CLASS",
                   help="ctypes class of a struct channel, recorded as JSON (repeatable)")
    prefix_arg(p)
    p.set_defaults(func=guard(cmd_record))

    p = subparsers.add_parser("replay", help="publish a recording back onto its channels")
    p.add_argument("file")
    p.add_argument("--rate", type=positive_float, default=1.0, help="speed factor (default 1)")
    p.add_argument("--fast", action="store_true", help="as fast as possible")
    p.add_argument("--loop", action="store_true", help="start over at the end, until Ctrl-C")
    p.add_argument("--start", type=offset, default=None, help="seconds from the first message")
    p.add_argument("--end", type=offset, default=None, help="seconds from the first message")
    p.add_argument("--channel", action="append", default=[],
                   help="replay only this recorded channel (name or glob; repeatable)")
    p.add_argument("--remap", action="append", default=[], metavar="FROM=TO",
                   help="publish channel FROM on TO (repeatable)")
    prefix_arg(p)
    p.set_defaults(func=guard(cmd_replay))

    p = subparsers.add_parser("info", help="summarise a recording")
    p.add_argument("file")
    p.add_argument("--config", action="store_true",
                   help="also print the system file embedded in the recording")
    p.set_defaults(func=guard(cmd_info))

    p = subparsers.add_parser("recover", help="finish a recording whose recorder was killed")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True, help="the finished copy to write")
    p.set_defaults(func=guard(cmd_recover))
