"""Counters in shared memory that outlive the process that counts (``kill -9`` included).

A :class:`SharedCounters` block is a small file in ``/dev/shm`` holding a fixed, named set of
unsigned 64-bit counters::

    offset  size  field
    0       4     magic        b"TKCT"
    4       4     version      1
    8       4     count        number of counters
    12      4     names_len    bytes of the JSON list of names that follows
    16      ...   names        UTF-8 JSON array of the counter names, in slot order
    ...     8*n   values       little-endian uint64 per counter, 8-byte aligned

The process that counts writes through :attr:`SharedCounters.values` (a ``memoryview`` of
format ``Q``: ``values[i] += 1`` is one aligned 8-byte store, seen whole by readers in other
processes); a reader in another process (a restarted incarnation, a monitor, a CLI) opens the
same file and reads them, also after the writer died. Nothing is flushed: the pages belong to
the file, not to the process.

Thread-safety: an increment is a read-modify-write; concurrent writers of the same counter
must hold a lock of their own (the gateway's counters are each written by one thread or
under the channel's lock). Files are named under the iceoryx2 prefix
(:func:`counters_path`), so a test's prefix isolation finds and purges them.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from collections.abc import Sequence
from pathlib import Path

from taktora.transport.errors import TransportError
from taktora.transport.isolation import SHM_DIR, validate_prefix

MAGIC = b"TKCT"
VERSION = 1
_HEAD = struct.Struct("<4sIII")
#: at most this many counters in one block (a gateway with 64 channels needs ~1500)
MAX_COUNTERS = 65_536


def counters_path(prefix: str, name: str) -> Path:
    """The file of block ``name`` under iceoryx2 ``prefix``: ``/dev/shm/<prefix>counters_<name>``.
    ``name`` may hold ``[A-Za-z0-9_.-]`` only (a gateway name does)."""
    validate_prefix(prefix)
    if not name or not all(c.isalnum() or c in "_.-" for c in name):
        raise TransportError(f"counter block name {name!r}: use letters, digits, '_', '.', '-'")
    return SHM_DIR / f"{prefix}counters_{name}"


def _layout(names: Sequence[str]) -> tuple[bytes, int, int]:
    blob = json.dumps(list(names), separators=(",", ":")).encode()
    offset = _HEAD.size + len(blob)
    offset += -offset % 8
    return blob, offset, offset + 8 * len(names)


class SharedCounters:
    """A block of named uint64 counters in a shared-memory file (see the module docstring).

    Build one with :meth:`create` (a fresh block, all zero), :meth:`open` (an existing one,
    values kept) or :meth:`open_or_create`. Raises :class:`TransportError` naming the file for
    a file that is not such a block or cannot be mapped.
    """

    def __init__(self, path: Path, mm: mmap.mmap, names: tuple[str, ...], offset: int) -> None:
        self.path = path
        self.names = names
        self._mm = mm
        self._index = {n: i for i, n in enumerate(names)}
        self._views = [memoryview(mm)]
        self._views.append(self._views[0][offset:offset + 8 * len(names)])
        self.values: memoryview = self._views[1].cast("Q")

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, names: Sequence[str]) -> SharedCounters:
        """A fresh block at ``path`` (an existing file is replaced), every counter 0."""
        names = tuple(names)
        if len(set(names)) != len(names) or len(names) > MAX_COUNTERS:
            raise TransportError(f"counter block {path}: names must be unique and at most "
                                 f"{MAX_COUNTERS}, got {len(names)}")
        blob, _, size = _layout(names)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.ftruncate(fd, size)
                os.pwrite(fd, _HEAD.pack(MAGIC, VERSION, len(names), len(blob)) + blob, 0)
            finally:
                os.close(fd)
            os.replace(tmp, path)  # readers never see a half-written header
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise TransportError(f"counter block {path}: cannot create it: {exc}") from exc
        return cls.open(path)

    @classmethod
    def open(cls, path: Path) -> SharedCounters:
        """The existing block at ``path`` (its values as they are)."""
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise TransportError(f"counter block {path}: cannot open it: {exc}") from exc
        try:
            size = os.fstat(fd).st_size
            if size < _HEAD.size:
                raise TransportError(f"counter block {path}: {size} bytes, not a counter block")
            mm = mmap.mmap(fd, size)
        except OSError as exc:
            raise TransportError(f"counter block {path}: cannot map it: {exc}") from exc
        finally:
            os.close(fd)
        try:
            magic, version, count, names_len = _HEAD.unpack_from(mm, 0)
            if magic != MAGIC or version != VERSION:
                raise TransportError(f"counter block {path}: magic {magic!r} version {version}, "
                                     f"expected {MAGIC!r} version {VERSION}")
            names = tuple(json.loads(bytes(mm[_HEAD.size:_HEAD.size + names_len])))
            _, offset, end = _layout(names)
            if len(names) != count or end > size:
                raise TransportError(f"counter block {path}: truncated or inconsistent")
        except (ValueError, struct.error) as exc:
            mm.close()
            raise TransportError(f"counter block {path}: unreadable names: {exc}") from exc
        except TransportError:
            mm.close()
            raise
        return cls(path, mm, names, offset)

    @classmethod
    def open_or_create(cls, path: Path, names: Sequence[str]) -> SharedCounters:
        """The block at ``path`` if it holds exactly ``names`` (values kept), else a fresh one."""
        if path.exists():
            try:
                block = cls.open(path)
            except TransportError:
                return cls.create(path, names)
            if block.names == tuple(names):
                return block
            block.close()
        return cls.create(path, names)

    # ---- access ------------------------------------------------------------------------------
    def index(self, name: str) -> int:
        """The slot of ``name`` (for ``values[i]`` on the hot path)."""
        try:
            return self._index[name]
        except KeyError:
            raise TransportError(f"counter block {self.path}: no counter {name!r}") from None

    def get(self, name: str) -> int:
        return int(self.values[self.index(name)])

    def add(self, name: str, n: int = 1) -> None:
        self.values[self.index(name)] += n

    def snapshot(self) -> dict[str, int]:
        """Every counter by name (a consistent copy of each value, not of the whole block)."""
        return dict(zip(self.names, self.values.tolist(), strict=True))

    def close(self) -> None:
        """Unmap (the file stays); idempotent."""
        if self._mm.closed:
            return
        self.values.release()
        for view in reversed(self._views):
            view.release()
        self._mm.close()

    def unlink(self) -> None:
        """Close and remove the file."""
        self.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> SharedCounters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
