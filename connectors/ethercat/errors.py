"""EtherCAT's errors (``taktora.connectors.ethercat``)."""

from __future__ import annotations

from taktora.connectors.errors import ConnectorError


class EthercatError(ConnectorError):
    """An EtherCAT bus operation failed."""


class BringUpError(EthercatError):
    """EtherCAT bring-up failed; names the SubDevice, the state it reached and its AL status
    code (attributes ``subdevice``, ``state``, ``al_status_code``)."""

    def __init__(self, message: str, subdevice: int = 0, state: int = 0, al_status_code: int = 0) -> None:
        super().__init__(message)
        self.subdevice = subdevice
        self.state = state
        self.al_status_code = al_status_code


class SdoAbortError(EthercatError):
    """A SubDevice aborted an SDO transfer (attributes ``subdevice``, ``index``, ``subindex``,
    ``abort_code``: the ETG abort code)."""

    def __init__(self, message: str, subdevice: int = 0, index: int = 0, subindex: int = 0,
                 abort_code: int = 0) -> None:
        super().__init__(message)
        self.subdevice = subdevice
        self.index = index
        self.subindex = subindex
        self.abort_code = abort_code


class VethError(EthercatError):
    """Creating or removing the veth pair of a software SubDevice failed (``ip`` missing, not
    root, a bad name); the message carries ``ip``'s own words."""
