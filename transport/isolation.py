"""Isolation prefixes for iceoryx2 and removal of what a prefix left on disk.

Every iceoryx2 resource (shared-memory segments in ``/dev/shm``, node and service files under
the iceoryx2 root path) carries the configured global prefix in its file name. Giving each test,
benchmark or application its own prefix keeps them from seeing each other's services; the
prefix travels to child processes through the ``TAKTORA_IOX_PREFIX`` environment variable.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

PREFIX_ENV = "TAKTORA_IOX_PREFIX"
"""Environment variable a child process reads its iceoryx2 prefix from."""

DEFAULT_PREFIX = "iox2_"
"""iceoryx2's own default prefix."""

SHM_DIR = Path("/dev/shm")
IOX_ROOT = Path("/tmp/iceoryx2")

_VALID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def unique_prefix(tag: str = "tk") -> str:
    """Return a fresh prefix such as ``tk_3f2a9c1e_`` (safe as a file-name start)."""
    return f"{tag}_{uuid.uuid4().hex[:10]}_"


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if iceoryx2 can use it as a file-name prefix, else raise ValueError."""
    if not _VALID.match(prefix):
        raise ValueError(
            f"iceoryx2 prefix {prefix!r} is invalid: use 1-64 characters of [A-Za-z0-9_.-]"
        )
    return prefix


def prefix_from_env(default: str = DEFAULT_PREFIX) -> str:
    """The prefix given to this process through ``TAKTORA_IOX_PREFIX``, or ``default``."""
    return os.environ.get(PREFIX_ENV, default)


GLOBAL_SEGMENT_SUFFIX = ".global_mgmt"
"""iceoryx2 keeps one management segment per prefix that outlives every node by design."""


def leftover_files(prefix: str) -> list[Path]:
    """Every shared-memory segment and iceoryx2 file whose name starts with ``prefix``."""
    found = [p for p in _iter_dir(SHM_DIR) if p.name.startswith(prefix)]
    # another process may remove its node folders while we walk: tolerate vanishing entries
    for root, dirs, files in os.walk(IOX_ROOT, onerror=lambda _err: None):
        found.extend(Path(root, n) for n in (*dirs, *files) if n.startswith(prefix))
    return sorted(found)


def purge_prefix(prefix: str) -> list[Path]:
    """Remove every file :func:`leftover_files` finds for ``prefix``; return what was removed.

    Only for prefixes no live process uses (a test's own prefix after its processes are gone):
    removing the files of a live node corrupts its services. Live systems use
    :meth:`taktora.transport.Node.cleanup_dead_nodes` instead.
    """
    if prefix in ("", DEFAULT_PREFIX):
        raise ValueError("refusing to purge the default iceoryx2 prefix: name a private one")
    removed = []
    for path in sorted(leftover_files(prefix), key=lambda p: len(p.parts), reverse=True):
        try:
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def private_prefix(tag: str = "tk") -> Iterator[str]:
    """A fresh prefix (:func:`unique_prefix`) exported as ``TAKTORA_IOX_PREFIX`` for the block,
    so processes started meanwhile use it too; at the end the variable is restored and the
    prefix's files are purged (:func:`purge_prefix`: nothing of the block may still run)."""
    prefix = unique_prefix(tag)
    saved = os.environ.get(PREFIX_ENV)
    os.environ[PREFIX_ENV] = prefix
    try:
        yield prefix
    finally:
        if saved is None:
            os.environ.pop(PREFIX_ENV, None)
        else:
            os.environ[PREFIX_ENV] = saved
        purge_prefix(prefix)


def leaked_files(prefix: str) -> list[Path]:
    """Like :func:`leftover_files`, without the per-prefix management segment."""
    return [p for p in leftover_files(prefix) if not p.name.endswith(GLOBAL_SEGMENT_SUFFIX)]


def _iter_dir(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except FileNotFoundError:
        return []
