"""taktora.connectors.ethercat: EtherCAT on pysoem (SOEM) and the software SubDevice
(:mod:`taktora.connectors.ethercat.sim`).

- :class:`Bus` (``bus.py``): bring-up (ARCH_0040), cyclic exchange, SDO access with project
  errors (:class:`~taktora.connectors.ethercat.errors.BringUpError`, ``SdoAbortError``);
- :class:`EthercatConnector` (``connector.py``): the connector on a drift-free executor
  interval with working-counter health and bit-slice routing;
- ``taktora ethercat sim|veth`` (``cli.py``).

pysoem is imported only when a Bus is created (extra ``ethercat``).
"""

from taktora.connectors.ethercat.bus import Bus, BusConfig, ExpectedSubDevice, PdoAssignment, SoemTimeouts
from taktora.connectors.ethercat.connector import EthercatConnector
from taktora.connectors.ethercat.settings import BitRoute, EthercatOptions

__all__ = ["BitRoute", "Bus", "BusConfig", "EthercatConnector", "EthercatOptions", "ExpectedSubDevice",
           "PdoAssignment", "SoemTimeouts"]
