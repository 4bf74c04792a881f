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
from taktora.transport.validators import AssignChecks

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


_v = AssignChecks(ChannelConfigError)

_service_name = _v.matches(
    _SERVICE_NAME, "1-200 characters of [A-Za-z0-9_./:-], not starting with a separator")


@attrs.frozen
class BytesPayload:
    """A payload of raw bytes, at most ``max_size`` long unless ``growable``.

    With ``growable=True`` a publisher loaning more than ``max_size`` gets a larger segment
    (power-of-two growth); without it, such a send raises PayloadError.
    """

    max_size: int = attrs.field(validator=_v.int_range(1, MAX_BYTES_PAYLOAD))
    growable: bool = attrs.field(default=False, validator=_v.instance(bool))

    @property
    def type_name(self) -> str:
        return "u8"


def _has_versioned_name(struct: type) -> bool:
    name = struct.type_name()  # type: ignore[attr-defined]  # checked before this runs
    return isinstance(name, str) and bool(_VERSIONED.search(name))


@attrs.frozen
class StructPayload:
    """A fixed-size payload: one instance of a ctypes Structure with a versioned type name."""

    struct: type[ctypes.Structure] = attrs.field(validator=attrs.validators.and_(
        _v.predicate(lambda v: isinstance(v, type) and issubclass(v, ctypes.Structure),
                     "a ctypes.Structure subclass"),
        _v.predicate(lambda v: callable(getattr(v, "type_name", None)),
                     "a static type_name() returning a versioned name such as 'myapp::Pose.v1' "
                     "(iceoryx2 compares name, size and alignment only, never the fields)"),
        _v.predicate(_has_versioned_name, "a type_name() that ends in a version such as '.v1' "
                                          "so that layout changes are noticed"),
    ))

    @property
    def type_name(self) -> str:
        getter: Any = getattr(self.struct, "type_name")  # noqa: B009 - checked by the validator
        return str(getter())

    @property
    def size(self) -> int:
        return ctypes.sizeof(self.struct)


Payload = BytesPayload | StructPayload


@attrs.frozen
class ChannelSpec:
    """A publish-subscribe channel; every publisher and subscriber of it must agree on it.

    ``history`` samples are kept for late-joining subscribers; ``buffer_size`` is each
    subscriber's queue depth; ``overflow`` says what a full queue does (see OverflowPolicy).
    ``max_borrowed`` bounds how many received samples a subscriber may hold at once.
    """

    name: str = attrs.field(validator=_service_name)
    payload: Payload = attrs.field(validator=_v.instance((BytesPayload, StructPayload)))
    history: int = attrs.field(default=0, validator=_v.non_negative_int())
    buffer_size: int = attrs.field(default=8, validator=_v.int_range(1, 1 << 16))
    max_publishers: int = attrs.field(default=4, validator=_v.int_range(1, 1024))
    max_subscribers: int = attrs.field(default=8, validator=_v.int_range(1, 1024))
    max_borrowed: int = attrs.field(default=4, validator=_v.int_range(1, 1 << 16))
    overflow: OverflowPolicy = attrs.field(
        default=OverflowPolicy.DROP_OLDEST, validator=_v.instance(OverflowPolicy)
    )

    def __attrs_post_init__(self) -> None:
        if self.history > self.buffer_size:
            raise _v.fail(self, "history", f"at most buffer_size={self.buffer_size}", self.history)

    @property
    def event_name(self) -> str:
        """Name of the event service paired with this channel (wakes waiting subscribers)."""
        return self.name


@attrs.frozen
class EventSpec:
    """An event service: notifiers wake listeners with an event id below ``max_event_id``."""

    name: str = attrs.field(validator=_service_name)
    max_notifiers: int = attrs.field(default=16, validator=_v.int_range(1, 1024))
    max_listeners: int = attrs.field(default=16, validator=_v.int_range(1, 1024))
    max_event_id: int = attrs.field(default=255, validator=_v.int_range(1, 1 << 16))


@attrs.frozen
class ServiceSpec:
    """A request/response service with byte payloads in both directions.

    ``max_active_requests`` bounds a client's requests in flight; ``response_buffer`` bounds
    the responses a pending request buffers (streaming responses beyond it wait or drop,
    following ``overflow``).
    """

    name: str = attrs.field(validator=_service_name)
    request: BytesPayload = attrs.field(validator=_v.instance(BytesPayload))
    response: BytesPayload = attrs.field(validator=_v.instance(BytesPayload))
    max_clients: int = attrs.field(default=8, validator=_v.int_range(1, 1024))
    max_servers: int = attrs.field(default=2, validator=_v.int_range(1, 1024))
    max_active_requests: int = attrs.field(default=8, validator=_v.int_range(1, 1 << 12))
    response_buffer: int = attrs.field(default=16, validator=_v.int_range(1, 1 << 16))
    overflow: OverflowPolicy = attrs.field(
        default=OverflowPolicy.BLOCK, validator=_v.instance(OverflowPolicy)
    )

    @property
    def request_event_name(self) -> str:
        return f"{self.name}/requests"

    @property
    def response_event_name(self) -> str:
        return f"{self.name}/responses"
