"""taktora.connectors: the connector framework and one subpackage per protocol.

The Gateway actor and the ConnectorHost import Thespian and load on first access.
"""

from taktora.actors.models.backoff import Backoff, ReconnectPolicy
from taktora.actors.models.health import HealthEvent, HealthMachine, HealthState, worst_of
from taktora.connectors.channel import (
    ChannelReader,
    ChannelWriter,
    ReaderStats,
    Received,
    WriterStats,
)
from taktora.connectors.codecs import (
    AttrsJsonCodec,
    AttrsMsgpackCodec,
    BaseCodec,
    Codec,
    CodecRegistry,
    CtypesCodec,
    JsonCodec,
    MsgpackCodec,
    RawCodec,
    codec_id_for,
    decode_for,
    default_registry,
    encode_for,
)
from taktora.connectors.connector import Connector, Inbound
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.errors import CodecError, ConnectorError, DescriptorError, LinkDownError
from taktora.connectors.gateway import (
    Dispatcher,
    DispatcherStats,
    GatewayConfig,
    GatewayStopped,
    InjectCrash,
    StopReport,
)
from taktora.connectors.model import (
    ChannelDescriptor,
    Congestion,
    Direction,
    FrozenMap,
    QoS,
    Reliability,
    Routing,
    converter,
    structure,
    unstructure,
)
from taktora.connectors.requests import ConnectorRequest
from taktora.transport.channel import OverflowPolicy
from taktora.transport.lazy import lazy_getattr

_LAZY = {
    "Gateway": "taktora.connectors.gateway.actor",
    "ConnectorHost": "taktora.connectors.gateway.host",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "AttrsJsonCodec",
    "AttrsMsgpackCodec",
    "Backoff",
    "BaseCodec",
    "ChannelDescriptor",
    "ChannelReader",
    "ChannelWriter",
    "Codec",
    "CodecError",
    "CodecRegistry",
    "Congestion",
    "Connector",
    "ConnectorContext",
    "ConnectorError",
    "ConnectorHost",
    "ConnectorRequest",
    "CtypesCodec",
    "DescriptorError",
    "Direction",
    "Dispatcher",
    "DispatcherStats",
    "Frame",
    "FrozenMap",
    "Gateway",
    "GatewayConfig",
    "GatewayStopped",
    "HealthEvent",
    "HealthMachine",
    "HealthState",
    "Inbound",
    "InjectCrash",
    "JsonCodec",
    "LinkDownError",
    "MsgpackCodec",
    "OverflowPolicy",
    "QoS",
    "RawCodec",
    "ReaderStats",
    "Received",
    "ReconnectPolicy",
    "Reliability",
    "Routing",
    "StopReport",
    "WriterStats",
    "codec_id_for",
    "converter",
    "decode_for",
    "default_registry",
    "encode_for",
    "structure",
    "unstructure",
    "worst_of",
]
