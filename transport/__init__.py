"""taktora.transport: the iceoryx2 data plane.

Nodes under isolation prefixes, channel descriptions, publish-subscribe with zero-copy
read-only samples, events, request/response, and the connector envelope wire format.
"""

from taktora.transport.channel import (
    BytesPayload,
    ChannelSpec,
    EventSpec,
    OverflowPolicy,
    ServiceSpec,
    StructPayload,
)
from taktora.transport.envelope import (
    HEADER_SIZE,
    CodecId,
    EnvelopeCounters,
    EnvelopeHeader,
    FrameKind,
)
from taktora.transport.errors import (
    ChannelConfigError,
    EnvelopeError,
    LoanError,
    PayloadError,
    RequestError,
    SampleReleasedError,
    ServiceOpenError,
    TaktoraError,
    TransportError,
)
from taktora.transport.events import Listener, Notifier
from taktora.transport.node import CleanupReport, Node
from taktora.transport.pubsub import (
    NotifyOutcome,
    Publisher,
    PublisherStats,
    Subscriber,
    SubscriberStats,
    TransportHeader,
)
from taktora.transport.reqresp import ActiveRequest, Client, PendingRequest, RpcHeader, Server
from taktora.transport.sample import FrozenStruct, Sample

__all__ = [
    "HEADER_SIZE",
    "ActiveRequest",
    "BytesPayload",
    "ChannelConfigError",
    "ChannelSpec",
    "CleanupReport",
    "Client",
    "CodecId",
    "EnvelopeCounters",
    "EnvelopeError",
    "EnvelopeHeader",
    "EventSpec",
    "FrameKind",
    "FrozenStruct",
    "Listener",
    "LoanError",
    "Node",
    "Notifier",
    "NotifyOutcome",
    "OverflowPolicy",
    "PayloadError",
    "PendingRequest",
    "Publisher",
    "PublisherStats",
    "RequestError",
    "RpcHeader",
    "Sample",
    "SampleReleasedError",
    "Server",
    "ServiceOpenError",
    "ServiceSpec",
    "StructPayload",
    "Subscriber",
    "SubscriberStats",
    "TaktoraError",
    "TransportError",
    "TransportHeader",
]
