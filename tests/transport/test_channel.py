"""Channel descriptions validate at construction and name the bad field."""

from __future__ import annotations

import ctypes

import pytest
from taktora.transport import (
    BytesPayload,
    ChannelConfigError,
    ChannelSpec,
    EventSpec,
    OverflowPolicy,
    ServiceSpec,
    StructPayload,
    TaktoraError,
)


class Versioned(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double)]

    @staticmethod
    def type_name() -> str:
        return "tests::Versioned.v2"


class Unversioned(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double)]

    @staticmethod
    def type_name() -> str:
        return "tests::Unversioned"


class Nameless(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double)]


@pytest.mark.req("REQ_0102")
@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ChannelSpec("", BytesPayload(8)), "name"),
        (lambda: ChannelSpec("/leading", BytesPayload(8)), "name"),
        (lambda: ChannelSpec("a b", BytesPayload(8)), "name"),
        (lambda: ChannelSpec("ok", BytesPayload(0)), "max_size"),
        (lambda: ChannelSpec("ok", BytesPayload(-5)), "max_size"),
        (lambda: ChannelSpec("ok", BytesPayload(2**31)), "max_size"),
        (lambda: ChannelSpec("ok", b"bytes"), "payload"),  # type: ignore[arg-type]
        (lambda: ChannelSpec("ok", BytesPayload(8), buffer_size=0), "buffer_size"),
        (lambda: ChannelSpec("ok", BytesPayload(8), history=-1), "history"),
        (lambda: ChannelSpec("ok", BytesPayload(8), history=9, buffer_size=8), "history"),
        (lambda: ChannelSpec("ok", BytesPayload(8), max_publishers=0), "max_publishers"),
        (lambda: ChannelSpec("ok", BytesPayload(8), max_subscribers=True), "max_subscribers"),
        (lambda: ChannelSpec("ok", BytesPayload(8), overflow="drop"), "overflow"),  # type: ignore[arg-type]
        (lambda: StructPayload(Unversioned), "struct"),
        (lambda: StructPayload(Nameless), "struct"),
        (lambda: StructPayload(int), "struct"),  # type: ignore[arg-type]
        (lambda: EventSpec("e", max_event_id=0), "max_event_id"),
        (lambda: ServiceSpec("s", BytesPayload(8), BytesPayload(8), max_active_requests=0),
         "max_active_requests"),
    ],
)
def test_invalid_description_names_the_field(make: object, field: str) -> None:
    with pytest.raises(ChannelConfigError) as info:
        make()  # type: ignore[operator]
    assert f".{field}=" in str(info.value)
    assert isinstance(info.value, TaktoraError)


@pytest.mark.req("REQ_0102")
def test_valid_descriptions_are_frozen_values() -> None:
    spec = ChannelSpec("robot/pose", StructPayload(Versioned), history=1, buffer_size=4,
                       overflow=OverflowPolicy.BLOCK)
    assert spec == ChannelSpec("robot/pose", StructPayload(Versioned), history=1, buffer_size=4,
                               overflow=OverflowPolicy.BLOCK)
    assert spec.payload.type_name == "tests::Versioned.v2"
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
