"""The Recorder: a :class:`~.recorder.RecorderItem` in an executor of its own thread.

Threads: :meth:`Recorder.start` starts the thread ``taktora-recorder`` and blocks until the
subscribers and the file are open there (or raises what failed); the executor then runs in
that thread (in slices of ``rescan_interval`` when a glob may match channels that appear
later), and :meth:`Recorder.stop` wakes it and joins it. Stats are readable from any thread.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taktora.actors.executor import Executor
from taktora.system.recording.discovery import ChannelInfo, list_channels, select
from taktora.system.recording.errors import ChannelNotFoundError, RecordingError
from taktora.system.recording.recorder import RecorderItem, RecorderStats, is_glob
from taktora.transport.errors import TaktoraError
from taktora.transport.node import Node

log = logging.getLogger(__name__)


class Recorder:
    """A :class:`RecorderItem` in an executor of its own thread (``taktora-recorder``).

    :meth:`start` discovers the channels matching ``patterns`` (names or globs) under
    ``prefix`` (default: ``TAKTORA_IOX_PREFIX``), opens them and the file in the recorder
    thread, and returns once recording runs (or raises what went wrong there). With a glob
    among the patterns the thread looks for new matching channels every ``rescan_interval``
    seconds and records them from then on. ``split_bytes`` / ``split_seconds`` split the
    recording into finished files ``{stem}_000.mcap``, ``{stem}_001.mcap`` ... (checked at
    each flush); ``rotate`` numbers the files even without a bound (continuing the series
    found there). ``types`` (ctypes classes of struct channels) and ``config`` (the system
    file, embedded as metadata) are passed to the :class:`RecorderItem`. :meth:`stop`
    wakes the executor, waits for the thread to finish the file (at most ``timeout`` s) and
    returns the final stats. The owner of a started Recorder must stop it.
    """

    def __init__(self, output: str | Path, patterns: Sequence[str], *, prefix: str | None = None,
                 compression: str = "zstd", chunk_size: int = 1 << 20,
                 flush_interval: float = 0.5, metadata: dict[str, str] | None = None,
                 rescan_interval: float = 1.0, split_bytes: int | None = None,
                 split_seconds: float | None = None, rotate: bool = False,
                 types: Sequence[type[ctypes.Structure]] = (),
                 config: str | Path | None = None) -> None:
        self.output = Path(output)
        self.rescan_interval = rescan_interval
        self._stopping = threading.Event()
        self.patterns = tuple(patterns)
        self.prefix = prefix
        self._kwargs: dict[str, Any] = {"compression": compression, "chunk_size": chunk_size,
                                        "flush_interval": flush_interval, "metadata": metadata,
                                        "split_bytes": split_bytes,
                                        "split_seconds": split_seconds, "rotate": rotate,
                                        "types": tuple(types), "config": config}
        self._item: RecorderItem | None = None
        self._executor: Executor | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.channels: list[ChannelInfo] = []

    def start(self, timeout: float = 10.0) -> Recorder:
        if self._thread is not None:
            raise RecordingError("recorder already started")
        self._thread = threading.Thread(target=self._main, name="taktora-recorder", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RecordingError(f"recorder did not start within {timeout} s")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def _main(self) -> None:
        node = None
        try:
            node = Node() if self.prefix is None else Node(prefix=self.prefix)
            try:
                self.channels = select(list_channels(node), self.patterns)
            except ChannelNotFoundError as exc:
                raise ChannelNotFoundError(f"prefix {node.prefix!r}: {exc}") from None
            self._item = RecorderItem(node, self.channels, self.output, patterns=self.patterns,
                                      **self._kwargs)
            self._executor = Executor("recorder", signals=False)
            self._executor.add(self._item)
        except BaseException as exc:
            self._error = exc
            if self._item is not None:
                self._item.finish()
            if node is not None:
                node.close()
            self._ready.set()
            return
        self._ready.set()
        globs = [p for p in self.patterns if is_glob(p)]
        try:
            if not globs:
                self._executor.run()
            while globs and not self._stopping.is_set():
                self._executor.run_for(self.rescan_interval)
                if self._stopping.is_set():
                    break
                try:
                    extra = self._item.add_channels(node, select(list_channels(node), globs))
                except TaktoraError as exc:  # e.g. a channel that vanished while we opened it
                    log.warning("recorder: rescan failed, trying again in %s s: %s",
                                self.rescan_interval, exc)
                    continue
                if extra is not None:
                    self._executor.add(extra)
        finally:
            self._executor.close()  # runs on_stop: finishes the file
            node.close()

    @property
    def recorded(self) -> list[str]:
        """Names of the channels being recorded (grows as globs match new channels)."""
        return self._item.recorded if self._item is not None else []

    def stats(self) -> RecorderStats:
        if self._item is None:
            raise RecordingError("recorder not started")
        return self._item.stats()

    def stop(self, timeout: float = 10.0) -> RecorderStats:
        if self._thread is None or self._executor is None or self._item is None:
            raise RecordingError("recorder not started")
        self._stopping.set()
        self._executor.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RecordingError(f"recorder thread did not finish within {timeout} s")
        return self._item.stats()

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.stop()
