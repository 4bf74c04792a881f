"""EtherCAT's control requests and replies, served by the connector's ``handle_request`` through
the generic gateway (ReadSdo -> SdoValue, WriteSdo -> Ack, GetState -> BusState)."""

from __future__ import annotations

from typing import Any

import attrs
from taktora.actors.control.messages import Reply
from taktora.actors.errors import ControlError
from taktora.connectors.requests import ConnectorRequest
from taktora.transport.validators import Checks, to_bytes, to_tuple

_v = Checks(ControlError)
_nonempty_bytes = _v.predicate(lambda v: isinstance(v, bytes) and len(v) > 0, "at least one byte")
_int_tuple = _v.tuple_of(_v.non_negative_int(), "ints >= 0")


@attrs.frozen(kw_only=True)
class ReadSdo(ConnectorRequest):
    """Upload (read) object ``index:subindex`` of ``subdevice`` (0-based bus position) over CoE
    on a live EtherCAT bus; answered with :class:`SdoValue` (an abort: ErrorReply naming the
    ETG abort code)."""

    subdevice: int = attrs.field(validator=_v.integer(ge=0, le=0xFFFF))
    index: int = attrs.field(validator=_v.integer(ge=0, le=0xFFFF))
    subindex: int = attrs.field(default=0, validator=_v.integer(ge=0, le=0xFF))


@attrs.frozen(kw_only=True)
class WriteSdo(ConnectorRequest):
    """Download (write) ``data`` (little-endian object bytes) to ``index:subindex`` of
    ``subdevice``; answered with :class:`Ack` (an abort: ErrorReply naming the abort code)."""

    subdevice: int = attrs.field(validator=_v.integer(ge=0, le=0xFFFF))
    index: int = attrs.field(validator=_v.integer(ge=0, le=0xFFFF))
    subindex: int = attrs.field(default=0, validator=_v.integer(ge=0, le=0xFF))
    data: bytes = attrs.field(converter=to_bytes, validator=_nonempty_bytes)


@attrs.frozen(kw_only=True)
class GetState(ConnectorRequest):
    """Read the AL state of every SubDevice from the bus; answered with :class:`BusState`."""


@attrs.frozen(kw_only=True)
class SdoValue(Reply):
    """The value :class:`ReadSdo` read (raw little-endian object bytes)."""

    data: bytes = attrs.field(converter=to_bytes, validator=_v.instance(bytes))


@attrs.frozen(kw_only=True)
class BusState(Reply):
    """Answer to :class:`GetState`: per SubDevice (bus position order) its AL state as read
    from register 0x0130 (1 INIT, 2 PRE-OP, 3 BOOT, 4 SAFE-OP, 8 OP; bit 0x10 = error flag)
    and its AL status code (0 = no error; ETG.1000.6 codes otherwise)."""

    states: tuple[int, ...] = attrs.field(converter=to_tuple, validator=_int_tuple)
    al_status_codes: tuple[int, ...] = attrs.field(converter=to_tuple, validator=_int_tuple)

    @al_status_codes.validator
    def _same_length(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if len(value) != len(self.states):
            raise _v.fail(self, attribute.name, f"one code per SubDevice ({len(self.states)})", value)

    @property
    def all_op(self) -> bool:
        """True when there is at least one SubDevice and every one is in OP without error."""
        return bool(self.states) and all(s == 0x08 for s in self.states)
