"""What stopping a dispatcher achieved: :class:`StopReport` (threads stopped and not stopped
within the timeout), which the gateway turns into its ``GatewayStopped`` reply."""

from __future__ import annotations

import attrs


@attrs.frozen
class StopReport:
    """What :meth:`Dispatcher.stop` achieved within its timeout.

    ``not_stopped`` names the threads still running when the timeout passed (their iceoryx2
    ports are then left open rather than pulled from under them).
    """

    stopped: tuple[str, ...]
    not_stopped: tuple[str, ...]
    elapsed_s: float

    @property
    def clean(self) -> bool:
        return not self.not_stopped
