"""taktora.connectors.udp: the UDP reference connector with fault injection."""

from taktora.connectors.udp.connector import MAX_DATAGRAM, UdpConnector, UdpSettings, parse_address
from taktora.connectors.udp.faults import Decision, FaultInjector, Verdict

__all__ = [
    "MAX_DATAGRAM",
    "Decision",
    "FaultInjector",
    "UdpConnector",
    "UdpSettings",
    "Verdict",
    "parse_address",
]
