"""What the ``taktora`` subcommands of this package share: output, argument types, attaching
to a prefix, signals, and turning the package's errors into one line and an exit status.

Everything here runs on the main thread of the command.
"""

from __future__ import annotations

import argparse
import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from taktora.system.recording.discovery import check_prefix
from taktora.system.recording.errors import RecordingError
from taktora.transport.errors import TaktoraError
from taktora.transport.isolation import prefix_from_env
from taktora.transport.node import Node

PROGRESS_S = 1.0  # how often record / hz print a progress line


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def fail(text: object) -> int:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[red]error:[/red] {escape(str(text))}")
    return 1


def positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {value}: expected >= 1")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number > 0")
    return value


def offset(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: expected seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: expected seconds >= 0")
    return value


@contextmanager
def attached(args: argparse.Namespace) -> Iterator[Node]:
    prefix = check_prefix(args.prefix or prefix_from_env())
    node = Node(prefix=prefix)
    try:
        yield node
    finally:
        node.close()


@contextmanager
def until_signal() -> Iterator[threading.Event]:
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def guard(body: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from taktora.actors.errors import AttachError
        from taktora.system.session import error

        try:
            return body(args)
        except RecordingError as exc:
            return fail(exc)
        except AttachError as exc:  # top --port: nothing taktora listens there
            error(exc)
            return 2
        except TaktoraError as exc:  # top --port: e.g. the root gave up meanwhile
            error(exc)
            return 1
    run.__doc__ = body.__doc__
    return run


def prefix_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prefix", default=None,
                   help="iceoryx2 prefix of the system (default: $TAKTORA_IOX_PREFIX or iox2_)")
