"""Finding connector classes: by short name through the ``taktora.connectors`` entry-point
group (python-can's ``can.interface`` model), or by an explicit ``"module:Class"`` path.

The project registers ``udp``, ``zenoh``, ``zenoh-query``, ``can`` and ``ethercat`` in its
``pyproject.toml``; a third-party package registers its own connectors the same way::

    [project.entry-points."taktora.connectors"]
    mybus = "mypkg.connector:MyBusConnector"

Resolving a short name imports only the module its entry point names. Resolving a
``"module:Class"`` path imports that module, whatever it is: a system file naming one is code,
so load only system files you trust (spec/config.rst says the same). Runs on the caller's
thread; raises :class:`ConnectorError`.
"""

from __future__ import annotations

import functools
import importlib
import re
from importlib import metadata

from taktora.connectors.connector import Connector
from taktora.connectors.errors import ConnectorError

ENTRY_POINT_GROUP = "taktora.connectors"
SHORT_NAME = re.compile(r"[a-z][a-z0-9_\-]{0,31}")
CLASS_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@functools.cache
def known() -> dict[str, str]:
    """Short name -> ``module:Class`` of every registered connector (read once per process:
    installing a package while a process runs is not noticed)."""
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def is_reference(ref: object) -> bool:
    """True when ``ref`` is a registered short name or has the form of a ``module:Class``
    path (whether that imports is only known when it is resolved)."""
    return isinstance(ref, str) and (ref in known() or bool(CLASS_PATH.fullmatch(ref)))


def resolve(ref: str) -> type[Connector]:
    """The connector class ``ref`` names (short name or ``module:Class``)."""
    if SHORT_NAME.fullmatch(ref):
        eps = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP, name=ref)]
        if not eps:
            raise ConnectorError(f"no connector is registered as {ref!r}; known: "
                                 f"{sorted(known())} (or name a class as 'module:Class')")
        try:
            cls = eps[0].load()
        except Exception as exc:
            raise ConnectorError(f"connector {ref!r} ({eps[0].value}) cannot be imported: "
                                 f"{exc}") from exc
    elif CLASS_PATH.fullmatch(ref):
        module, _, name = ref.partition(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except Exception as exc:  # a user's module may raise anything while it imports
            raise ConnectorError(f"cannot import connector {ref!r}: {exc}") from exc
    else:
        raise ConnectorError(f"connector {ref!r}: expected a registered short name "
                             f"({sorted(known())}) or 'module:Class'")
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConnectorError(f"{ref!r} is not a Connector subclass")
    return cls
