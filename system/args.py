"""Checks of the numbers a user gives the system layer (ports, timeouts), and the argparse
types of the ``taktora`` command line built on them.

Each ``*_problem`` function returns None for a good value, else a one-line reason; callers
raise their own error with it (``SystemError_``, ``AttachError``), and the argparse types turn
it into a usage error (exit status 2, one line, no traceback).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

#: The longest ``--timeout`` the CLI accepts, in seconds.
MAX_TIMEOUT_S = 3600.0
#: The longest ``taktora run --for`` (a year), in seconds.
MAX_RUN_S = 365 * 86400.0


def port_problem(port: object, *, allow_zero: bool = False) -> str | None:
    """Why ``port`` is not a TCP port number (1..65535; 0 too when ``allow_zero``)."""
    low = 0 if allow_zero else 1
    if isinstance(port, bool) or not isinstance(port, int):
        return f"invalid port {port!r}: expected an integer {low}..65535"
    if not low <= port <= 65535:
        return f"invalid port {port}: expected {low}..65535"
    return None


def seconds_problem(value: object, *, maximum: float = MAX_TIMEOUT_S) -> str | None:
    """Why ``value`` is not a finite number of seconds in (0, ``maximum``]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"invalid duration {value!r}: expected a finite number of seconds"
    if not 0 < value <= maximum:
        return f"invalid duration {value!r}: expected seconds > 0 and <= {maximum:g}"
    return None


def _int(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected an integer") from None


def port_arg(text: str) -> int:
    """argparse type: a TCP port 1..65535."""
    port = _int(text)
    problem = port_problem(port)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return port


def port_or_zero_arg(text: str) -> int:
    """argparse type: a TCP port 1..65535, or 0 for "pick a free one"."""
    port = _int(text)
    problem = port_problem(port, allow_zero=True)
    if problem:
        raise argparse.ArgumentTypeError(problem + " (0 picks a free port)")
    return port


def seconds_type(maximum: float = MAX_TIMEOUT_S) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds > 0 and at most ``maximum``."""

    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid duration {text!r}: expected a number of "
                                             f"seconds") from None
        problem = seconds_problem(value, maximum=maximum)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    seconds.__name__ = "seconds"  # argparse names the type in its messages
    return seconds
