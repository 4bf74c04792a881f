"""CAN configuration: the buses a connector opens and the routing of its channels.

:class:`CanBusConfig` describes one interface (a python-can ``Bus``); a connector opens
several. :class:`CanRouting` is the CAN view of a channel's :class:`Routing`
(``Routing(kind="can", address=<interface name>, options={...})``), parsed and validated once
when the connector opens; :func:`can_routing` builds one, :func:`dbc_routing` and
:func:`dbc_descriptor` derive one from a DBC message (frame id, extended, FD as the DBC says -
cantools marks a frame FD only when the DBC's ``VFrameFormat`` says so), and
:func:`check_dbc_channel` checks a hand-written ``dbc:<Message>`` channel against the DBC.

Everything here is a frozen attrs value with the shared validators of
:mod:`taktora.transport.validators` (:class:`AssignChecks`): a bad value raises
:class:`~taktora.connectors.can.errors.CanConfigError` (a ``ConnectorError``) starting with
``<Class>.<field>=<value>`` (REQ_0701).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from taktora.actors.models.backoff import Backoff
from taktora.connectors.can.dbc import use_dbc
from taktora.connectors.can.errors import CanConfigError
from taktora.connectors.model import ChannelDescriptor, Direction, FrozenMap, Routing, Scalar
from taktora.transport.validators import AssignChecks, to_tuple

CAN_SFF_MASK = 0x7FF
"""Valid bits of an 11-bit (standard) identifier."""
CAN_EFF_MASK = 0x1FFFFFFF
"""Valid bits of a 29-bit (extended) identifier."""
CLASSIC_MAX_DATA = 8
FD_MAX_DATA = 64
FD_LENGTHS = frozenset((*range(9), 12, 16, 20, 24, 32, 48, 64))
"""Data lengths a CAN FD frame can carry (DLC 0..15)."""

FILTER_MODES = ("auto", "bus", "connector")

_v = AssignChecks(CanConfigError)
_bool = _v.instance(bool)
_positive = _v.positive()
_can_id = _v.int_range(0, CAN_EFF_MASK)
_bitrate = _v.int_range(1_000, 20_000_000)


def _to_map(value: Mapping[str, Scalar] | None) -> FrozenMap[str, Scalar]:
    if value is not None and not isinstance(value, Mapping):
        raise CanConfigError(f"CanBusConfig.options={value!r}: expected a mapping of str to scalar")
    return FrozenMap.of(value)


@attrs.frozen(kw_only=True)
class CanBusConfig:
    """One CAN interface of a connector.

    ``name``: the interface's name inside taktora (routings name it; health events and stats
    carry it), e.g. ``"can0"`` or ``"chassis"``. ``interface`` / ``channel``: python-can's
    interface type and channel (``"socketcan"``/``"can0"`` in production; ``"virtual"`` and
    ``"udp_multicast"`` for tests on machines without SocketCAN). ``bitrate`` /
    ``data_bitrate``: nominal and FD data-phase bit rates (None: leave the interface as
    configured, as SocketCAN does - rates are set with ``ip link``). ``fd``: open the bus for
    CAN FD frames. ``receive_own_messages``: also receive what this bus sends (for logging
    buses; off for gateways). ``options``: further keyword arguments for ``can.Bus``.

    ``filter_mode``: where the compiled reader filter is applied. ``bus`` hands it to
    ``bus.set_filters`` (SocketCAN: kernel ``CAN_RAW_FILTER``; error frames still arrive through
    ``CAN_RAW_ERR_FILTER``). ``connector`` filters in the connector's receive thread, counting
    each rejected frame and letting error frames through (python-can's software fallback would
    silently discard error frames that do not match a data filter). ``auto`` (default) picks
    ``bus`` when the interface filters in the kernel or hardware (its class implements
    python-can's ``_apply_filters``) and ``connector`` otherwise.

    ``recovery_window_s``: a Degraded interface is Up again after this long without error
    frames. ``quiet_up_s``: an interface in Connecting goes Up after this long without error
    frames even when no frame was read or sent (None: only traffic brings it Up).
    ``send_timeout_s``: how long a send may block on a full transmit queue.

    ``dbc``: a DBC file describing the frames on this bus (a relative path is taken from the
    working directory). It is read when the config is built, once per process and path (a file
    cantools cannot load raises CanConfigError naming this field), and each of its messages is
    registered as codec ``dbc:<Message>`` in the process-wide ``default_registry``
    (:func:`~taktora.connectors.can.dbc.use_dbc`): that is how a system file's ``codec =
    "dbc:<Message>"`` channels are known to the gateway, which only stamps their codec id.
    The connector then checks each such channel on this interface against the DBC at load
    (message, identifier, frame format, payload bound). None: no DBC; ``dbc:*`` channels on
    this interface need their codecs registered in code (:func:`register_dbc`).
    """

    name: str = attrs.field(validator=_v.identifier())
    interface: str = attrs.field(validator=_v.string(nonempty=True))
    channel: str = attrs.field(validator=_v.string(nonempty=True))
    bitrate: int | None = attrs.field(default=None, validator=_v.optional(_bitrate))
    data_bitrate: int | None = attrs.field(default=None, validator=_v.optional(_bitrate))
    fd: bool = attrs.field(default=False, validator=_bool)
    receive_own_messages: bool = attrs.field(default=False, validator=_bool)
    filter_mode: str = attrs.field(default="auto", validator=_v.one_of(FILTER_MODES))
    recovery_window_s: float = attrs.field(default=1.0, validator=_positive)
    quiet_up_s: float | None = attrs.field(default=None, validator=_v.optional(_positive))
    send_timeout_s: float = attrs.field(default=0.1, validator=_positive)
    options: FrozenMap[str, Scalar] = attrs.field(factory=FrozenMap, converter=_to_map)
    dbc: str | None = attrs.field(default=None, validator=_v.optional(_v.string(nonempty=True)))

    def __attrs_post_init__(self) -> None:
        if self.data_bitrate is not None and not self.fd:
            raise _v.fail(self, "data_bitrate", "None (data_bitrate needs fd=True)", self.data_bitrate)
        if self.dbc is not None:
            try:
                use_dbc(self.dbc)
            except CanConfigError as exc:
                where = "" if os.path.isabs(self.dbc) else f" (from {os.getcwd()})"
                raise CanConfigError(f"CanBusConfig.dbc={self.dbc!r}{where}: {exc}") from None

    def bus_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``can.Bus`` (only what is set)."""
        kwargs: dict[str, Any] = {"interface": self.interface, "channel": self.channel,
                                  "fd": self.fd}
        if self.bitrate is not None:
            kwargs["bitrate"] = self.bitrate
        if self.data_bitrate is not None:
            kwargs["data_bitrate"] = self.data_bitrate
        if self.receive_own_messages:
            kwargs["receive_own_messages"] = True
        kwargs.update(self.options)
        return kwargs


@attrs.frozen(kw_only=True)
class CanRouting:
    """Where a CAN channel lives: interface, identifier, mask and frame format.

    ``can_id`` / ``extended``: the identifier an OUTBOUND channel sends with (11 or 29 bit).
    ``mask``: for an INBOUND channel, the bits of ``can_id`` a received identifier must match
    (python-can / SocketCAN rule ``rx_id & mask == can_id & mask``; default all id bits:
    exactly one identifier). ``fd``: send CAN FD frames (up to 64 bytes), ``brs``: switch to the
    data bit rate, ``esi``: set the error state indicator (FD only).
    """

    interface: str = attrs.field(validator=_v.identifier())
    can_id: int = attrs.field(validator=_can_id)
    mask: int = attrs.field(validator=_can_id)
    extended: bool = attrs.field(default=False, validator=_bool)
    fd: bool = attrs.field(default=False, validator=_bool)
    brs: bool = attrs.field(default=False, validator=_bool)
    esi: bool = attrs.field(default=False, validator=_bool)

    def __attrs_post_init__(self) -> None:
        limit = CAN_EFF_MASK if self.extended else CAN_SFF_MASK
        if self.can_id > limit:
            raise _v.fail(self, "can_id", f"at most {'29' if self.extended else '11'} bits "
                                          f"(extended={self.extended})", hex(self.can_id))
        if (self.brs or self.esi) and not self.fd:
            field = "brs" if self.brs else "esi"
            raise _v.fail(self, field, f"False ({field} needs fd=True)", True)

    @property
    def max_data(self) -> int:
        """Largest data field this routing sends (8 classic, 64 FD)."""
        return FD_MAX_DATA if self.fd else CLASSIC_MAX_DATA

    def matches(self, can_id: int, extended: bool) -> bool:
        """Whether a received identifier passes this routing's (can_id, mask, extended)."""
        return extended == self.extended and (can_id ^ self.can_id) & self.mask == 0

    def to_routing(self) -> Routing:
        """The generic :class:`Routing` for a channel descriptor."""
        options: dict[str, Scalar] = {"can_id": self.can_id, "extended": self.extended}
        if self.mask != (CAN_EFF_MASK if self.extended else CAN_SFF_MASK):
            options["mask"] = self.mask
        for key in ("fd", "brs", "esi"):
            if getattr(self, key):
                options[key] = True
        return Routing("can", self.interface, options)

    @classmethod
    def from_routing(cls, routing: Routing, channel: str = "?") -> CanRouting:
        """Parse ``routing``; CanConfigError naming ``channel`` if it is not a valid CAN one."""
        if routing.kind != "can":
            raise CanConfigError(f"channel {channel!r}: routing kind {routing.kind!r} is not 'can'")
        opts = dict(routing.options)
        unknown = sorted(set(opts) - {"can_id", "mask", "extended", "fd", "brs", "esi"})
        if unknown:
            raise CanConfigError(f"channel {channel!r}: unknown CAN routing options {unknown}")
        if "can_id" not in opts:
            raise CanConfigError(f"channel {channel!r}: CAN routing needs options['can_id']")
        extended = opts.get("extended", False)
        default_mask = CAN_EFF_MASK if extended is True else CAN_SFF_MASK
        try:
            return cls(interface=routing.address, can_id=opts["can_id"],  # type: ignore[arg-type]
                       mask=opts.get("mask", default_mask),  # type: ignore[arg-type]
                       extended=extended, fd=opts.get("fd", False),  # type: ignore[arg-type]
                       brs=opts.get("brs", False), esi=opts.get("esi", False))  # type: ignore[arg-type]
        except CanConfigError as exc:
            raise CanConfigError(f"channel {channel!r}: {exc}") from None


def can_routing(interface: str, can_id: int, *, mask: int | None = None, extended: bool = False,
                fd: bool = False, brs: bool = False, esi: bool = False) -> Routing:
    """A ``Routing(kind="can")`` for a channel (validated through :class:`CanRouting`)."""
    full = CAN_EFF_MASK if extended else CAN_SFF_MASK
    return CanRouting(interface=interface, can_id=can_id, mask=full if mask is None else mask,
                      extended=extended, fd=fd, brs=brs, esi=esi).to_routing()


def check_dbc_channel(db: Any, descriptor: ChannelDescriptor, routing: CanRouting) -> None:
    """A ``dbc:<Message>`` channel fits ``db``: the message exists, the routing's identifier,
    ``extended`` and ``fd`` are the DBC's and ``max_payload`` holds the message. CanConfigError
    naming the channel otherwise; channels of other codecs pass."""
    if not descriptor.codec.startswith("dbc:"):
        return
    name = descriptor.codec[4:]
    where = f"channel {descriptor.name!r} (codec {descriptor.codec!r})"
    try:
        msg = db.get_message_by_name(name)
    except KeyError:
        known = sorted(m.name for m in db.messages)
        raise CanConfigError(f"{where}: the interface's DBC has no message {name!r} (it has "
                             f"{known})") from None
    want = (msg.frame_id, bool(msg.is_extended_frame), bool(msg.is_fd))
    got = (routing.can_id, routing.extended, routing.fd)
    if got != want:
        raise CanConfigError(f"{where}: routing can_id={got[0]:#x}, extended={got[1]}, "
                             f"fd={got[2]}, the DBC says can_id={want[0]:#x}, "
                             f"extended={want[1]}, fd={want[2]}")
    if descriptor.max_payload < msg.length:
        raise CanConfigError(f"{where}: max_payload {descriptor.max_payload} is below the "
                             f"message's {msg.length} bytes")


def dbc_routing(db: Any, message: str, interface: str, *, brs: bool = False) -> Routing:
    """The CAN routing of a DBC message on ``interface`` (id, extended and FD from the DBC)."""
    msg = db.get_message_by_name(message)
    fd = bool(msg.is_fd)
    return can_routing(interface, msg.frame_id, extended=bool(msg.is_extended_frame), fd=fd,
                       brs=brs and fd)


def dbc_descriptor(db: Any, message: str, direction: Direction, interface: str, *,
                   name: str | None = None, brs: bool = False, **kwargs: Any) -> ChannelDescriptor:
    """A channel descriptor for a DBC message: codec ``dbc:<message>``, payload bound = the
    message length, routing from the DBC. ``kwargs`` go to :class:`ChannelDescriptor`."""
    msg = db.get_message_by_name(message)
    return ChannelDescriptor(name or f"can/{interface}/{message}", direction,
                             codec=f"dbc:{message}", max_payload=max(1, int(msg.length)),
                             routing=dbc_routing(db, message, interface, brs=brs), **kwargs)


def routing_of(descriptor: ChannelDescriptor) -> CanRouting:
    """The parsed CAN routing of ``descriptor`` (CanConfigError naming it if invalid)."""
    return CanRouting.from_routing(descriptor.routing, descriptor.name)


def check_route(buses: Sequence[CanBusConfig], descriptor: ChannelDescriptor) -> CanRouting:
    """The parsed routing of ``descriptor``, checked against the connector's ``buses``: the
    interface it names exists and is opened for FD when the routing is FD. CanConfigError
    naming the channel otherwise."""
    routing = routing_of(descriptor)
    by_name = {b.name: b for b in buses}
    bus = by_name.get(routing.interface)
    if bus is None:
        raise CanConfigError(f"channel {descriptor.name!r}: routing names interface "
                             f"{routing.interface!r}, the connector has {list(by_name)}")
    if routing.fd and not bus.fd:
        raise CanConfigError(f"channel {descriptor.name!r}: FD routing on interface "
                             f"{bus.name!r}, which is not opened with fd=True")
    return routing


def _unique_names(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    names = [b.name for b in value]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if not value or dupes:
        raise _v.fail(inst, attribute.name, "at least one CanBusConfig, names unique", names)


@attrs.frozen(kw_only=True)
class CanSettings:
    """A CAN gateway's settings table: its ``buses`` (``[[gateways.settings.buses]]``, one
    :class:`CanBusConfig` each), the ``reconnect`` backoff of a bus after bus-off or a lost
    interface (None: the defaults), the receive poll of interfaces whose bus cannot wake a
    WaitSet (``poll_s``, 0.001 .. 1 s) and the backoff jitter ``seed`` (None: random)."""

    buses: tuple[CanBusConfig, ...] = attrs.field(converter=to_tuple, validator=attrs.validators.and_(
        _v.tuple_of(_v.instance(CanBusConfig), "CanBusConfig"), _unique_names))
    reconnect: Backoff | None = attrs.field(default=None, validator=_v.optional(_v.instance(Backoff)))
    poll_s: float = attrs.field(default=0.05, validator=_v.number(ge=0.001, le=1.0))
    seed: int | None = attrs.field(default=None, validator=_v.optional(_v.integer()))

