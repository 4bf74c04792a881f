"""Item factories of examples/app_loopback.toml (``factory = "app_items:make_writer"``).

``taktora run`` / ``taktora check`` import this module from the system file's directory. Each
factory is called once per executor build, in the ItemHost actor's thread, with an
:class:`~taktora.actors.executor.spec.ItemEnv`; it opens its channels there and returns the
function the executor runs on every trigger (in the executor thread; an exception is handled
by the item's error policy).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from taktora.actors.executor import Context, ItemEnv

log = logging.getLogger("app_items")

Step = Callable[[Context], None]


def make_writer(env: ItemEnv) -> Step:
    """Every tick: send ``{"n": k}`` on ``loop/cmd`` (gateway "left" takes it to UDP)."""
    writer = env.writer("loop/cmd")
    counter = itertools.count(1)

    def write(ctx: Context) -> None:
        writer.send({"n": next(counter)})

    return write


def make_echo(env: ItemEnv) -> Step:
    """On every ``loop/cmd`` that arrived through gateway "right": send it back on
    ``loop/state``."""
    reader, writer = env.reader("loop/cmd"), env.writer("loop/state")

    def echo(ctx: Context) -> None:
        for got in reader.drain():
            writer.send(got.value)

    return echo


def make_counter(env: ItemEnv) -> Step:
    """On ``loop/state`` (back through gateway "left"): count the values; log the count every
    100 (INFO, logger ``app_items``)."""
    reader = env.reader("loop/state")
    seen: dict[str, Any] = {"n": 0}

    def count(ctx: Context) -> None:
        for _ in reader.drain():
            seen["n"] += 1
            if seen["n"] % 100 == 0:
                log.info("%s received %d values", env.item_name, seen["n"])

    return count
