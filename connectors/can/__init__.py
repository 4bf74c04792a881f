"""taktora.connectors.can: CAN and CAN FD through python-can, with DBC signal codecs.

See :mod:`taktora.connectors.can.connector` for the send/receive paths,
:mod:`taktora.connectors.can.interface` for one interface's reading, recovery and health,
:mod:`taktora.connectors.can.errors` for the errors, and spec/can.rst for the requirements.
Needs the ``can`` extra (python-can, cantools).

Production (SocketCAN; bit rates are set on the link, ``ip link set can0 type can bitrate
500000 dbitrate 2000000 fd on``)::

    conn = CanConnector([CanBusConfig(name="can0", interface="socketcan", channel="can0",
                                      fd=True)],
                        reconnect=Backoff(initial_s=0.1, max_s=5.0))
    cmd = ChannelDescriptor("drive/cmd", Direction.OUTBOUND, max_payload=8,
                            routing=can_routing("can0", 0x181))
    state = ChannelDescriptor("drive/state", Direction.INBOUND, max_payload=64,
                              routing=can_routing("can0", 0x280, mask=0x7F0))
    Dispatcher(None, conn, [cmd, state]).start()

There the compiled reader filter becomes the kernel's ``CAN_RAW_FILTER`` (``filter_mode``
``auto`` -> ``bus``) and error frames arrive through ``CAN_RAW_ERR_FILTER``. Tests use
``interface="virtual"`` (one process) or ``"udp_multicast"`` (several; needs a route for
239.0.0.0/8, e.g. ``ip route add 239.0.0.0/8 dev lo`` where ``lo`` is the only interface).
"""

from taktora.connectors.can.config import (
    CAN_EFF_MASK,
    CAN_SFF_MASK,
    FD_LENGTHS,
    CanBusConfig,
    CanRouting,
    CanSettings,
    can_routing,
    check_dbc_channel,
    dbc_descriptor,
    dbc_routing,
    routing_of,
)
from taktora.connectors.can.connector import CanConnector, inject
from taktora.connectors.can.dbc import (
    DBC_CODEC_ID,
    DbcCodec,
    load_dbc,
    register_dbc,
    use_dbc,
)
from taktora.connectors.can.errorframes import BusState, ErrorFrame, classify, error_frame_data
from taktora.connectors.can.errors import CanBusError, CanConfigError, CanError
from taktora.connectors.can.filters import Demux, FilterEntry, compile_filters, subsumes
from taktora.connectors.can.interface import filters_in_bus

__all__ = [
    "CAN_EFF_MASK",
    "CAN_SFF_MASK",
    "DBC_CODEC_ID",
    "FD_LENGTHS",
    "BusState",
    "CanBusConfig",
    "CanBusError",
    "CanConfigError",
    "CanConnector",
    "CanError",
    "CanRouting",
    "CanSettings",
    "DbcCodec",
    "Demux",
    "ErrorFrame",
    "FilterEntry",
    "can_routing",
    "check_dbc_channel",
    "classify",
    "compile_filters",
    "dbc_descriptor",
    "dbc_routing",
    "error_frame_data",
    "filters_in_bus",
    "inject",
    "load_dbc",
    "register_dbc",
    "routing_of",
    "subsumes",
    "use_dbc",
]
