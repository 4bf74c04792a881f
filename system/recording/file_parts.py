"""The files of one recording: naming, starting, splitting and finishing MCAP parts.

A recording is one file, or with a size / duration bound or ``rotate`` a numbered series
``{stem}_000.mcap``, ``{stem}_001.mcap`` ... Numbering starts after the highest number already
there, so a recorder restarted by its supervisor (or run again) continues the series and
never overwrites what an earlier incarnation wrote. Each part is a complete MCAP file with its
own header, metadata, schemas and channels: :attr:`PartWriter.generation` tells the recorder
when to register its channels again.

Threads: used by the recorder's thread only; every call blocks on file writes (and chunk
compression).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from taktora.system.recording import mcap_format as fmt
from taktora.system.recording.errors import RecordingError
from taktora.system.recording.mcap_writer import ChunkWriter

COMPRESSIONS = {"zstd": "zstd", "lz4": "lz4", "none": ""}  # option -> MCAP chunk compression


def next_index(output: Path) -> int:
    """One past the highest ``{stem}_NNN{suffix}`` next to ``output`` (0 when there is none)."""
    suffix = output.suffix or ".mcap"
    pattern = re.compile(rf"^{re.escape(output.stem)}_(\d{{3,}}){re.escape(suffix)}$")
    found = [int(m.group(1)) for p in output.parent.glob(f"{output.stem}_*{suffix}")
             if (m := pattern.match(p.name))]
    return max(found, default=-1) + 1


class PartWriter:
    """Writes the parts of one recording (see the module docstring).

    ``metadata``: records written at the start of every part (name -> key/values; the
    :data:`~.mcap_format.META_RECORDING` one gets its ``part`` number added).
    """

    def __init__(self, output: str | Path, *, compression: str = "zstd",
                 chunk_size: int = 1 << 20, metadata: Mapping[str, Mapping[str, str]],
                 numbered: bool = False, split_bytes: int | None = None,
                 split_seconds: float | None = None) -> None:
        if compression not in COMPRESSIONS:
            raise RecordingError(f"compression {compression!r} is not one of "
                                 f"{sorted(COMPRESSIONS)}")
        if split_bytes is not None and split_bytes < 1:
            raise RecordingError(f"split_bytes={split_bytes}: expected bytes >= 1 (or None)")
        if split_seconds is not None and not split_seconds > 0:
            raise RecordingError(f"split_seconds={split_seconds}: expected seconds > 0 (or None)")
        self.output = Path(output)
        self.compression = compression
        self.chunk_size = chunk_size
        self.metadata = {k: dict(v) for k, v in metadata.items()}
        self.split_bytes = split_bytes
        self.split_seconds = split_seconds
        self.numbered = numbered or split_bytes is not None or split_seconds is not None
        self._index = next_index(self.output) if self.numbered else 0
        self.files: list[Path] = []
        self.generation = 0
        self.writer: ChunkWriter
        self.gap_channel = 0
        self._file: IO[bytes] | None = None
        self._schemas: dict[object, int] = {}
        self._started = 0.0

    def _path(self) -> Path:
        if not self.numbered:
            return self.output
        out = self.output
        return out.with_name(f"{out.stem}_{self._index:03d}{out.suffix or '.mcap'}")

    def open(self) -> None:
        """Start the next part: header, metadata, the gap channel, flushed to disk."""
        path = self._path()
        try:
            self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise RecordingError(f"cannot write {str(path)!r}: {exc.strerror}") from None
        self._index += 1
        self.files.append(path)
        self.generation += 1
        self.writer = ChunkWriter(self._file, chunk_size=self.chunk_size,
                                  compression=COMPRESSIONS[self.compression])
        self.writer.start(profile=fmt.PROFILE, library=fmt.LIBRARY)
        for name, values in self.metadata.items():
            part = {"part": str(len(self.files) - 1)} if name == fmt.META_RECORDING else {}
            self.writer.add_metadata(name, {**values, **part})
        self._schemas.clear()
        gap = fmt.GAP_SCHEMA
        self.gap_channel = self.writer.register_channel(fmt.GAP_TOPIC, "json",
                                                        self.schema(gap.name, gap))
        self._started = time.monotonic()
        self.flush()

    def schema(self, key: object, schema: fmt.SchemaDef) -> int:
        """The id of ``schema`` in this part (registered once per ``key``)."""
        sid = self._schemas.get(key)
        if sid is None:
            sid = self._schemas[key] = self.writer.register_schema(schema.name, schema.encoding,
                                                                   schema.data)
        return sid

    def channel(self, topic: str, encoding: str, schema_id: int, meta: dict[str, str]) -> int:
        """Register an MCAP channel in this part."""
        return self.writer.register_channel(topic, encoding, schema_id, meta)

    def gap(self, record: bytes, log_time: int) -> None:
        self.writer.add_message(self.gap_channel, log_time, record, log_time)

    def flush(self) -> None:
        """Write the chunk in progress to the file."""
        self.writer.flush()

    def split_due(self) -> bool:
        if self._file is None:
            return False
        if self.split_bytes is not None and self.writer.position >= self.split_bytes:
            return True
        return self.split_seconds is not None and \
            time.monotonic() - self._started >= self.split_seconds

    def close(self, stats: dict[str, str]) -> None:
        """Finish the part: the stats metadata, the summary; the file is closed."""
        if self._file is None:
            return
        try:
            self.writer.add_metadata(fmt.META_STATS, stats)
            self.writer.finish()
        finally:
            self._file.close()
            self._file = None
