"""The connector model: routing, direction, QoS and channel descriptors.

Every value here is a frozen, slotted attrs class validated at construction: an invalid value
raises :class:`~taktora.connectors.errors.DescriptorError` naming the class, the field and the
fix. They hold no sockets, ports or threads, so they pickle, compare, hash and travel in
configs and control messages. :data:`converter` (cattrs) turns them to and from plain
dicts (TOML, JSON, msgpack); :func:`structure` reports a bad document with the key path.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

import attrs
import cattrs
from taktora.connectors.errors import DescriptorError
from taktora.transport.channel import MAX_BYTES_PAYLOAD, BytesPayload, ChannelSpec, OverflowPolicy
from taktora.transport.envelope import HEADER_SIZE
from taktora.transport.validators import AssignChecks

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

Scalar = str | int | float | bool

_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_CHANNEL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_/:-]{0,190}$")
_CODEC = re.compile(r"^[a-z][a-z0-9_-]*(:[A-Za-z0-9_.:<>-]+)?$")


class FrozenMap(Mapping[K, V], Generic[K, V]):
    """An immutable, hashable mapping (routing options, counter snapshots).

    Compares equal to any mapping with the same items; iteration order is sorted by key.
    """

    __slots__ = ("_items", "_map")

    def __init__(self, items: Mapping[K, V] | None = None) -> None:
        data = dict(items or {})
        self._map: dict[K, V] = {k: data[k] for k in sorted(data, key=repr)}
        self._items = tuple(self._map.items())

    @classmethod
    def of(cls, items: Mapping[K, V] | None = None) -> FrozenMap[K, V]:
        """``items`` as a FrozenMap (returned unchanged if it is one already)."""
        return items if isinstance(items, FrozenMap) else cls(items)

    def __getitem__(self, key: K) -> V:
        return self._map[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._map == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._map!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._map,))


_v = AssignChecks(DescriptorError)


def _to_options(value: Mapping[str, Scalar] | None) -> FrozenMap[str, Scalar]:
    if value is not None and not isinstance(value, Mapping):
        raise DescriptorError(f"Routing.options={value!r}: expected a mapping of str to scalar")
    return FrozenMap.of(value)


class Direction(enum.Enum):
    """Which way a channel's data flows.

    ``OUTBOUND``: application -> iceoryx2 ``{name}.out`` -> gateway -> protocol.
    ``INBOUND``: protocol -> gateway -> iceoryx2 ``{name}.in`` -> application.
    """

    OUTBOUND = "outbound"
    INBOUND = "inbound"


class Reliability(enum.Enum):
    """Whether the protocol should retransmit (``RELIABLE``) or may lose (``BEST_EFFORT``)."""

    RELIABLE = "reliable"
    BEST_EFFORT = "best_effort"


class Congestion(enum.Enum):
    """What the *protocol side* does when its link is congested: drop the message or block the
    gateway's sender (zenoh's congestion control). The iceoryx2 side is governed by
    :class:`~taktora.transport.channel.OverflowPolicy` instead."""

    DROP = "drop"
    BLOCK = "block"


@attrs.frozen
class Routing:
    """Where a channel lives on the protocol side.

    ``kind`` names the protocol family (``"udp"``, ``"zenoh"``, ``"can"``, ...; ``"local"`` for
    channels that never leave iceoryx2), ``address`` is the protocol's own address string (a
    ``host:port``, a key expression, a CAN id ...), and ``options`` holds protocol-specific
    scalars (a priority bit, a mask, a local port). A protocol interprets its own routings and
    rejects foreign kinds when it opens.
    """

    kind: str = attrs.field(
        default="local",
        validator=_v.matches(_KIND, "1-32 characters of [a-z0-9_-], starting with a letter"),
    )
    address: str = attrs.field(default="", validator=_v.string())
    options: FrozenMap[str, Scalar] = attrs.field(
        factory=FrozenMap, converter=_to_options,
        validator=_v.mapping_of(lambda v: isinstance(v, str | int | float | bool),
                                "a str, int, float or bool"),
    )

    def option(self, key: str, default: T) -> Scalar | T:
        """The option ``key``, or ``default`` when it is not set."""
        return self.options.get(key, default)


@attrs.frozen
class QoS:
    """Protocol-side quality of service, applied by connectors that support it.

    ``priority`` 1 (highest, real-time) .. 7 (lowest, background), zenoh's scale; ``express``
    asks the protocol not to batch the message.
    """

    reliability: Reliability = attrs.field(default=Reliability.RELIABLE,
                                           validator=_v.instance(Reliability))
    priority: int = attrs.field(default=5, validator=_v.int_range(1, 7))
    congestion: Congestion = attrs.field(default=Congestion.DROP, validator=_v.instance(Congestion))
    express: bool = attrs.field(default=False, validator=_v.instance(bool))


@attrs.frozen
class ChannelDescriptor:
    """One connector channel: its name, direction, payload bounds, codec, QoS and routing.

    The application side and the gateway side derive the same iceoryx2 channel from it
    (:meth:`channel_spec`): a bytes channel named :attr:`service_name` whose samples hold the
    48-byte envelope header followed by at most ``max_payload`` bytes of codec output (more if
    ``growable``). ``buffer_size`` and ``overflow`` set each subscriber's queue and what a full
    queue does (DROP_OLDEST: the oldest is overwritten and the reader counts the gap;
    DROP_NEWEST: the new sample is refused and counted; BLOCK: the writer waits). ``crc``
    makes writers put a CRC-32 of the payload in the envelope so that corruption on a protocol
    link is detected on the far side.
    """

    name: str = attrs.field(
        validator=_v.matches(_CHANNEL, "1-191 characters of [A-Za-z0-9_/:-], not starting "
                                       "with a separator (the '.out'/'.in' suffix is added)")
    )
    direction: Direction = attrs.field(validator=_v.instance(Direction))
    codec: str = attrs.field(
        default="raw",
        validator=_v.matches(_CODEC, "a codec name such as 'json', 'msgpack', 'raw', "
                                     "'ctypes:Pose.v1' or 'cattrs-json:mod.Class'"),
    )
    max_payload: int = attrs.field(default=1024, validator=_v.int_range(1, MAX_BYTES_PAYLOAD))
    growable: bool = attrs.field(default=False, validator=_v.instance(bool))
    qos: QoS = attrs.field(factory=QoS, validator=_v.instance(QoS))
    routing: Routing = attrs.field(factory=Routing, validator=_v.instance(Routing))
    buffer_size: int = attrs.field(default=16, validator=_v.int_range(1, 1 << 16))
    overflow: OverflowPolicy = attrs.field(
        default=OverflowPolicy.DROP_OLDEST, validator=_v.instance(OverflowPolicy)
    )
    crc: bool = attrs.field(default=True, validator=_v.instance(bool))

    @property
    def service_name(self) -> str:
        """The iceoryx2 service: ``{name}.out`` for outbound, ``{name}.in`` for inbound."""
        return f"{self.name}.out" if self.direction is Direction.OUTBOUND else f"{self.name}.in"

    @property
    def max_frame(self) -> int:
        """Largest envelope (header + payload) the channel carries without growing."""
        return HEADER_SIZE + self.max_payload

    def channel_spec(self) -> ChannelSpec:
        """The transport channel every writer, reader and dispatcher of this descriptor opens."""
        return ChannelSpec(
            self.service_name,
            BytesPayload(self.max_frame, growable=self.growable),
            buffer_size=self.buffer_size,
            max_borrowed=min(self.buffer_size, 4),
            overflow=self.overflow,
        )


# --- structured conversion (TOML / JSON / msgpack documents) -----------------------------------
converter = cattrs.Converter(forbid_extra_keys=True)
"""cattrs converter for the model: enums by value, :class:`FrozenMap` as a plain dict."""

converter.register_structure_hook(
    FrozenMap, lambda value, _type: FrozenMap.of(value) if isinstance(value, Mapping)
    else _to_options(value)
)
converter.register_unstructure_hook(FrozenMap, dict)


@attrs.frozen
class ChannelPair:
    """The two descriptors of one request/response endpoint (Zenoh query/reply, MQTT 5
    request/response): ``out`` (app -> gateway: queries or replies) and ``inbound`` (gateway
    -> app); ``side`` says which end of the exchange this is (the protocol's name for it)."""

    side: str
    out: ChannelDescriptor
    inbound: ChannelDescriptor

    @property
    def descriptors(self) -> tuple[ChannelDescriptor, ChannelDescriptor]:
        return (self.out, self.inbound)


def _describe(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, DescriptorError):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def structure(data: Any, cls: type[T]) -> T:
    """Build ``cls`` (e.g. :class:`ChannelDescriptor`) from a plain document.

    Raises :class:`DescriptorError` listing every problem with its key path
    (``$.routing.kind``) and the reason.
    """
    try:
        return converter.structure(data, cls)
    except DescriptorError:
        raise
    except Exception as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            problems = "; ".join(cattrs.transform_error(exc, format_exception=_describe))
        else:
            problems = f"{type(exc).__name__}: {exc}"
        raise DescriptorError(f"invalid {cls.__name__} document: {problems}") from exc


def unstructure(value: Any) -> Any:
    """A model value as plain dicts, lists and scalars (inverse of :func:`structure`)."""
    return converter.unstructure(value)
