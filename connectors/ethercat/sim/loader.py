"""Reading device descriptions from files: the project's TOML form (:mod:`.device`) or a
vendor's ESI XML (:mod:`.esi`).

Runs on the caller's thread; blocks while the file is read; raises
:class:`~taktora.connectors.errors.DescriptorError` naming the file or the offending field.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from taktora.connectors.errors import DescriptorError
from taktora.connectors.ethercat.sim.device import DeviceDescription, from_dict
from taktora.connectors.ethercat.sim.esi import from_esi


def load_description(path: str | Path) -> DeviceDescription:
    """Read a device description: TOML, or a vendor's ESI XML (``.xml``; first device, or
    ``file.xml#N`` for device N). Caller's thread; raises DescriptorError."""
    text = str(path)
    base, _, number = text.partition("#") if ".xml#" in text.lower() else (text, "", "")
    if base.lower().endswith(".xml"):
        return from_esi(base, int(number) if number.isdigit() else 0)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DescriptorError(f"device description {path}: {exc}") from None
    return from_dict(data)
