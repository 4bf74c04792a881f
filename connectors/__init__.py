"""taktora.connectors: the connector framework and one subpackage per protocol."""

from taktora.actors.health import HealthMachine, worst_of
from taktora.actors.messages import HealthEvent, HealthState
from taktora.actors.reconnect import ReconnectPolicy, ReconnectPolicySettings
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
from taktora.connectors.connector import Connector, Frame, Inbound
from taktora.connectors.dispatch import Dispatcher, DispatcherStats, StopReport
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
from taktora.transport.channel import OverflowPolicy
from taktora.transport.errors import (
    CodecError,
    ConnectorError,
    DescriptorError,
    LinkDownError,
)

__all__ = [
    "AttrsJsonCodec",
    "AttrsMsgpackCodec",
    "BaseCodec",
    "ChannelDescriptor",
    "ChannelReader",
    "ChannelWriter",
    "Codec",
    "CodecError",
    "CodecRegistry",
    "Congestion",
    "Connector",
    "ConnectorError",
    "CtypesCodec",
    "DescriptorError",
    "Direction",
    "Dispatcher",
    "DispatcherStats",
    "Frame",
    "FrozenMap",
    "HealthEvent",
    "HealthMachine",
    "HealthState",
    "Inbound",
    "JsonCodec",
    "LinkDownError",
    "MsgpackCodec",
    "OverflowPolicy",
    "QoS",
    "RawCodec",
    "ReaderStats",
    "Received",
    "ReconnectPolicy",
    "ReconnectPolicySettings",
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
