"""What a recording says about where it came from: MCAP metadata records.

:data:`~.mcap_format.META_RECORDING`: host, pid, prefix, patterns, compression, start time and
the versions of python, taktora, iceoryx2 and mcap. :data:`~.mcap_format.META_SYSTEM`: the
system file the recorded system was started from (its path, name, SHA-256 and text), when the
recorder is told it (``config=``, ``taktora record --config FILE``, or the factory of a
recorder hosted in that system). Pure functions, any thread; reading the system file blocks
on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import time
import tomllib
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from taktora.system.recording.errors import RecordingError

MAX_CONFIG_BYTES = 1 << 20  # a system file is a few KB; refuse to embed anything huge


def versions() -> dict[str, str]:
    """python, taktora, iceoryx2 and mcap versions (``unknown`` for one not installed)."""
    out = {"python": platform.python_version()}
    for dist in ("taktora", "iceoryx2", "mcap"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def recording(prefix: str, patterns: Sequence[str], compression: str,
              extra: dict[str, str] | None = None) -> dict[str, str]:
    """The ``taktora.recording`` record of a recorder started now in this process."""
    return {"host": socket.gethostname(), "pid": str(os.getpid()), "prefix": prefix,
            "patterns": json.dumps(list(patterns)), "compression": compression,
            "started_ns": str(time.time_ns()), **versions(), **(extra or {})}


def declared_channels(path: str | Path) -> dict[str, tuple[str, str]]:
    """Service name -> (codec, who serves it) of every channel system file ``path``
    declares: its gateways' channels (``gateway NAME``) and the application's own
    ``[[channels]]`` (``application``). The codec is the descriptor's full name, e.g.
    ``cattrs-json:app.Pose`` (iceoryx2 knows neither). Raises the file's ConfigError."""
    from taktora.system.config import load

    config = load(path)
    out = {d.service_name: (d.codec, "application") for d in config.channels}
    for g in config.gateways:
        out.update((d.service_name, (d.codec, f"gateway {g.name}")) for d in g.channels)
    return out


def system_config(path: str | Path) -> dict[str, str]:
    """The ``taktora.system_config`` record of system file ``path``: RecordingError when it
    cannot be read or is not TOML (so a typo in ``--config`` fails before recording)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise RecordingError(f"system config {str(p)!r}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise RecordingError(f"system config {str(p)!r} is {len(data)} B: more than "
                             f"{MAX_CONFIG_BYTES} B is no system file")
    try:
        text = data.decode()
        name = str(tomllib.loads(text).get("name", ""))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RecordingError(f"system config {str(p)!r} is not a TOML system file: "
                             f"{exc}") from None
    return {"path": str(p.resolve()), "name": name,
            "sha256": hashlib.sha256(data).hexdigest(), "toml": text}
