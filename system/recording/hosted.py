"""The recorder as an item of an item host: supervised, restarted, continuing in a new file.

A ``[[hosts.items]]`` entry of a system file names a factory (``"module:function"``) that the
item host calls with an :class:`~taktora.actors.executor.ItemEnv`; an item factory of the
application returns :func:`recorder_item` from it (examples/recording/record_items.py)::

    def make_recorder(env: ItemEnv) -> RecorderItem:
        return recorder_item(env, HERE / "recordings" / "cell.mcap", ["cell/*"],
                             config=HERE / "record_system.toml")

The files are always numbered (``cell_000.mcap``, ``cell_001.mcap`` ...): when the recorder
crashes (its process is killed, the item raises), its supervisor restarts the host, the
factory runs again and the new recorder continues the series in the next file; the file of
the crashed one stays readable and ``taktora recover`` finishes it.

The item runs on the trigger its spec declares (``trigger = { every_s = 0.05 }``): at each
run it drains every channel, so each channel's buffer must hold one period of samples, and
every ``rescan_interval`` it takes on channels matching its globs that appeared meanwhile.
Threads: the factory runs where the host builds its executor (the ItemHost actor's thread, or
the dedicated process); the item runs in that executor's thread.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path

from taktora.actors.executor import ItemEnv
from taktora.system.recording.discovery import list_channels, select
from taktora.system.recording.recorder import RecorderItem, is_glob


def recorder_item(env: ItemEnv, output: str | Path, patterns: Sequence[str], *,
                  config: str | Path | None = None, compression: str = "zstd",
                  flush_interval: float = 0.5, rescan_interval: float = 1.0,
                  split_bytes: int | None = None, split_seconds: float | None = None,
                  types: Sequence[type[ctypes.Structure]] = ()) -> RecorderItem:
    """A :class:`RecorderItem` on ``env``'s node recording ``patterns`` (names or globs; an
    exact name must exist now) into the numbered series of ``output``; ``config``: the system
    file, embedded as metadata. Raises RecordingError (the host's build fails, and its
    supervisor decides) for a name that is not there or a file that cannot be written."""
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    channels = select(list_channels(env.node), list(patterns))
    return RecorderItem(env.node, channels, out, patterns=patterns, compression=compression,
                        flush_interval=flush_interval, split_bytes=split_bytes,
                        split_seconds=split_seconds, rotate=True, types=types, config=config,
                        rescan_interval=rescan_interval if any(map(is_glob, patterns)) else None)
