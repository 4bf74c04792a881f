"""Item factories of examples/recording/record_system.toml: a writer and a supervised recorder.

``make_writer`` sends ``{"n": k}`` on ``cell/ticks`` at every tick; ``make_recorder`` records
every ``cell/*`` channel into ``recordings/cell_NNN.mcap`` next to this file, with the system
file embedded as metadata. The recorder's host runs in a process of its own (``placement =
"dedicated"``): kill it and its supervisor restarts it, and it continues in the next file.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from taktora.actors.executor import Context, ItemEnv
from taktora.system.recording import RecorderItem, recorder_item

HERE = Path(__file__).resolve().parent


def make_writer(env: ItemEnv) -> Callable[[Context], None]:
    """Every tick: ``{"n": k}`` on ``cell/ticks``."""
    writer = env.writer("cell/ticks")
    counter = itertools.count(1)

    def write(ctx: Context) -> None:
        writer.send({"n": next(counter)})

    return write


def make_recorder(env: ItemEnv) -> RecorderItem:
    """Record ``cell/*`` into ``recordings/cell_NNN.mcap`` (a new file per incarnation)."""
    return recorder_item(env, HERE / "recordings" / "cell.mcap", ["cell/*"],
                         config=HERE / "record_system.toml", flush_interval=0.1)
