"""Things that crash on purpose, for the process-lifetime tests (importable by child processes
through PYTHONPATH=tests/system).

- ``CrashOnOpen``: a UDP connector whose ``open`` raises RuntimeError (a bug, not a
  ConnectorError, so the gateway crashes in ``on_start`` instead of reconnecting): every start
  of its gateway fails;
- ``CrashOnStart``: a bare actor whose ``on_start`` raises.
"""

from __future__ import annotations

from typing import Any

from taktora.actors.control.base import TaktoraActor
from taktora.connectors.udp import UdpConnector


class CrashOnOpen(UdpConnector):
    def open(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("crashes on open (test helper)")


class CrashOnStart(TaktoraActor):
    def on_start(self) -> None:
        raise RuntimeError("crashes on start (test helper)")
