"""Channel descriptions: what a publish-subscribe, event or request/response service looks like.

These are frozen attrs values validated at construction: an invalid description raises
:class:`~taktora.transport.errors.ChannelConfigError` naming the field and the fix. They carry
no iceoryx2 objects, so they pickle, compare and travel in configs.
"""

from __future__ import annotations

import ctypes
import enum
import re
from typing import Any

import attrs
from taktora.transport.errors import ChannelConfigError

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./:-]{0,200}$")
_VERSIONED = re.compile(r"[./:@_-]v\d+$")

MAX_BYTES_PAYLOAD = 1 << 30  # 1 GiB: beyond this, shared memory is the wrong tool


class OverflowPolicy(enum.Enum):
    """What happens when a subscriber's buffer is full when a sample arrives.

    ``DROP_OLDEST``: the oldest unread sample is overwritten (iceoryx2 safe overflow). The
    publisher never blocks; the subscriber sees a sequence gap and counts the lost samples.

    ``DROP_NEWEST``: the new sample is not delivered to that subscriber; the publisher counts it
    (``PublisherStats.undelivered``) and the subscriber sees the gap.

    ``BLOCK``: the publisher retries until every subscriber has room (back-pressure). Nothing
    is lost; a slow subscriber slows the publisher down.
    """

    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    BLOCK = "block"


def _fail(cls: str, field: str, value: object, why: str) -> ChannelConfigError:
    return ChannelConfigError(f"{cls}.{field}={value!r}: {why}")


def _positive(max_value: int | None = None) -> Any:
    def check(inst: Any, attribute: attrs.Attribute[int], value: int) -> None:
        name = type(inst).__name__
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(name, attribute.name, value, "must be an integer")
        if value < 1:
            raise _fail(name, attribute.name, value, "must be at least 1")
        if max_value is not None and value > max_value:
            raise _fail(name, attribute.name, value, f"must be at most {max_value}")

    return check


def _non_negative(inst: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(type(inst).__name__, attribute.name, value, "must be an integer >= 0")


def _instance_of(kind: type | tuple[type, ...]) -> Any:
    def check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise _fail(type(inst).__name__, attribute.name, value, f"must be a {names}")

    return check


def _service_name(inst: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not _SERVICE_NAME.match(value):
        raise _fail(
            type(inst).__name__,
            attribute.name,
            value,
            "use 1-200 characters of [A-Za-z0-9_./:-], not starting with a separator",
        )


@attrs.frozen
class BytesPayload:
    """A payload of raw bytes, at most ``max_size`` long unless ``growable``.

    With ``growable=True`` a publisher loaning more than ``max_size`` gets a larger segment
    (power-of-two growth); without it, such a send raises PayloadError.
    """

    max_size: int = attrs.field(validator=_positive(MAX_BYTES_PAYLOAD))
    growable: bool = attrs.field(default=False, validator=_instance_of(bool))

    @property
    def type_name(self) -> str:
        return "u8"


def _struct_type(inst: Any, attribute: attrs.Attribute[type], value: type) -> None:
    if not (isinstance(value, type) and issubclass(value, ctypes.Structure)):
        raise _fail("StructPayload", attribute.name, value, "must be a ctypes.Structure subclass")
    getter = getattr(value, "type_name", None)
    if getter is None or not callable(getter):
        raise _fail(
            "StructPayload",
            attribute.name,
            value,
            "define a static type_name() returning a versioned name such as 'myapp::Pose.v1' "
            "(iceoryx2 compares name, size and alignment only, never the fields)",
        )
    name = getter()
    if not isinstance(name, str) or not _VERSIONED.search(name):
        raise _fail(
            "StructPayload",
            attribute.name,
            name,
            "type_name() must end in a version such as '.v1' so that layout changes are noticed",
        )


@attrs.frozen
class StructPayload:
    """A fixed-size payload: one instance of a ctypes Structure with a versioned type name."""

    struct: type[ctypes.Structure] = attrs.field(validator=_struct_type)

    @property
    def type_name(self) -> str:
        getter: Any = getattr(self.struct, "type_name")  # noqa: B009 - checked by the validator
        return str(getter())

    @property
    def size(self) -> int:
        return ctypes.sizeof(self.struct)


Payload = BytesPayload | StructPayload


def _payload(inst: Any, attribute: attrs.Attribute[Payload], value: Payload) -> None:
    if not isinstance(value, BytesPayload | StructPayload):
        raise _fail(type(inst).__name__, attribute.name, value, "must be BytesPayload or StructPayload")


@attrs.frozen
class ChannelSpec:
    """A publish-subscribe channel; every publisher and subscriber of it must agree on it.

    ``history`` samples are kept for late-joining subscribers; ``buffer_size`` is each
    subscriber's queue depth; ``overflow`` says what a full queue does (see OverflowPolicy).
    ``max_borrowed`` bounds how many received samples a subscriber may hold at once.
    """

    name: str = attrs.field(validator=_service_name)
    payload: Payload = attrs.field(validator=_payload)
    history: int = attrs.field(default=0, validator=_non_negative)
    buffer_size: int = attrs.field(default=8, validator=_positive(1 << 16))
    max_publishers: int = attrs.field(default=4, validator=_positive(1024))
    max_subscribers: int = attrs.field(default=8, validator=_positive(1024))
    max_borrowed: int = attrs.field(default=4, validator=_positive(1 << 16))
    overflow: OverflowPolicy = attrs.field(
        default=OverflowPolicy.DROP_OLDEST, validator=_instance_of(OverflowPolicy)
    )

    def __attrs_post_init__(self) -> None:
        if self.history > self.buffer_size:
            raise _fail(
                "ChannelSpec", "history", self.history, f"must not exceed buffer_size={self.buffer_size}"
            )

    @property
    def event_name(self) -> str:
        """Name of the event service paired with this channel (wakes waiting subscribers)."""
        return self.name


@attrs.frozen
class EventSpec:
    """An event service: notifiers wake listeners with an event id below ``max_event_id``."""

    name: str = attrs.field(validator=_service_name)
    max_notifiers: int = attrs.field(default=16, validator=_positive(1024))
    max_listeners: int = attrs.field(default=16, validator=_positive(1024))
    max_event_id: int = attrs.field(default=255, validator=_positive(1 << 16))


@attrs.frozen
class ServiceSpec:
    """A request/response service with byte payloads in both directions.

    ``max_active_requests`` bounds a client's requests in flight; ``response_buffer`` bounds
    the responses a pending request buffers (streaming responses beyond it wait or drop,
    following ``overflow``).
    """

    name: str = attrs.field(validator=_service_name)
    request: BytesPayload = attrs.field(validator=_instance_of(BytesPayload))
    response: BytesPayload = attrs.field(validator=_instance_of(BytesPayload))
    max_clients: int = attrs.field(default=8, validator=_positive(1024))
    max_servers: int = attrs.field(default=2, validator=_positive(1024))
    max_active_requests: int = attrs.field(default=8, validator=_positive(1 << 12))
    response_buffer: int = attrs.field(default=16, validator=_positive(1 << 16))
    overflow: OverflowPolicy = attrs.field(
        default=OverflowPolicy.BLOCK, validator=_instance_of(OverflowPolicy)
    )

    @property
    def request_event_name(self) -> str:
        return f"{self.name}/requests"

    @property
    def response_event_name(self) -> str:
        return f"{self.name}/responses"
