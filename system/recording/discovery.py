"""Channel discovery from iceoryx2's own service listing (no registry of taktora's).

:func:`list_channels` asks iceoryx2 for every service under a prefix
(``iceoryx2.Service.list``), keeps the publish-subscribe ones, reads each one's static config
(payload type, size, limits) and counts its publishers and subscribers. The Python binding
exposes a service's type details only in its ``Debug`` text, so :func:`_static` reads them
from there (checked against iceoryx2 0.10; a binding that changes the text makes a service
show as ``?`` instead of failing). Counting ports opens the service read-only (no port, no
create): listing never changes the system.

:func:`tap_spec` turns a discovered channel into the :class:`ChannelSpec` a subscriber must
use to join it, for the taps of ``echo`` / ``hz`` / the recorder.

Threads: everything runs on the caller's thread and does not block on other processes.
"""

from __future__ import annotations

import ctypes
import fnmatch
import re
from typing import Any

import attrs
import iceoryx2 as iox
from taktora.system.recording.errors import ChannelNotFoundError, RecordingError
from taktora.transport.channel import BytesPayload, ChannelSpec, OverflowPolicy, StructPayload
from taktora.transport.isolation import leftover_files, validate_prefix
from taktora.transport.node import Node
from taktora.transport.pubsub import TransportHeader

_TYPE = r'{name}: TypeDetail \{{\s*variant: (\w+),\s*type_name: StaticString<\d+> \{{ len: \d+, ' \
        r'data: "((?:[^"\\]|\\.)*)" \}},\s*size: (\d+),\s*alignment: (\d+)'
_PAYLOAD = re.compile(_TYPE.format(name="payload"))
_USER_HEADER = re.compile(_TYPE.format(name="user_header"))
_FIELD = re.compile(r"\b(max_subscribers|max_publishers|history_size|subscriber_max_buffer_size|"
                    r"subscriber_max_borrowed_samples|enable_safe_overflow): (\d+|true|false),")

TAKTORA_HEADER = TransportHeader.type_name()


@attrs.frozen
class ChannelInfo:
    """One publish-subscribe service as iceoryx2 lists it.

    ``payload_type`` is iceoryx2's type name (``u8`` for taktora's byte channels, a struct's
    versioned ``type_name()`` otherwise), ``dynamic`` whether the payload is a slice,
    ``payload_size`` the element or struct size in bytes. ``envelope`` is True for taktora
    byte channels (each sample one envelope). ``publishers`` / ``subscribers`` are the ports
    open now (-1 when they could not be counted).
    """

    name: str
    payload_type: str
    dynamic: bool
    payload_size: int
    alignment: int
    user_header: str
    max_publishers: int
    max_subscribers: int
    history: int
    buffer_size: int
    max_borrowed: int
    safe_overflow: bool
    publishers: int = -1
    subscribers: int = -1

    @property
    def taktora(self) -> bool:
        """Carries taktora's transport header (a taktora port can join it)."""
        return self.user_header == TAKTORA_HEADER

    @property
    def envelope(self) -> bool:
        return self.taktora and self.dynamic and self.payload_type == "u8"


def _details_text(details: Any) -> str:
    return str(details)


def _static(name: str, text: str) -> ChannelInfo:
    payload = _PAYLOAD.search(text)
    header = _USER_HEADER.search(text)
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(text):  # the service's own config comes first, before
        fields.setdefault(key, value)          # the nodes' default configs

    if payload is None or header is None:
        return ChannelInfo(name, "?", False, 0, 1, "?", 0, 0, 0, 0, 0, False)

    def num(key: str) -> int:
        return int(fields.get(key, "0"))

    return ChannelInfo(
        name=name, payload_type=payload.group(2), dynamic=payload.group(1) == "Dynamic",
        payload_size=int(payload.group(3)), alignment=int(payload.group(4)),
        user_header=header.group(2), max_publishers=num("max_publishers"),
        max_subscribers=num("max_subscribers"), history=num("history_size"),
        buffer_size=num("subscriber_max_buffer_size"),
        max_borrowed=num("subscriber_max_borrowed_samples"),
        safe_overflow=fields.get("enable_safe_overflow") == "true")


def shadow_struct(type_name: str, size: int, alignment: int) -> type[ctypes.Structure]:
    """A ctypes Structure iceoryx2 takes for the type ``type_name`` of that size and alignment
    (iceoryx2 compares exactly these three; the fields are opaque words of the alignment)."""
    word = {1: ctypes.c_uint8, 2: ctypes.c_uint16, 4: ctypes.c_uint32}.get(alignment, ctypes.c_uint64)
    count = max(1, size // ctypes.sizeof(word))

    def _type_name() -> str:
        return type_name

    return type("Shadow", (ctypes.Structure,), {
        "_fields_": [("data", word * count)], "type_name": staticmethod(_type_name)})


def _payload_type(info: ChannelInfo) -> Any:
    if info.dynamic:
        return iox.Slice[ctypes.c_uint8]
    return shadow_struct(info.payload_type, info.payload_size, info.alignment)


def _count_ports(node: Node, info: ChannelInfo) -> ChannelInfo:
    if not info.taktora or (info.dynamic and info.payload_type != "u8"):
        return info
    try:
        service = (node.service_builder(info.name).publish_subscribe(_payload_type(info))
                   .user_header(TransportHeader).open())
        dyn = service.dynamic_config
        return attrs.evolve(info, publishers=int(dyn.number_of_publishers),
                            subscribers=int(dyn.number_of_subscribers))
    except Exception:  # the service went away between listing and opening: leave it at -1
        return info


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is valid and something ever ran under it, else RecordingError."""
    try:
        validate_prefix(prefix)
    except ValueError as exc:
        raise RecordingError(str(exc)) from None
    if not leftover_files(prefix):
        raise RecordingError(f"no iceoryx2 system runs under prefix {prefix!r} (no files of it "
                             f"in /dev/shm or /tmp/iceoryx2): check --prefix / TAKTORA_IOX_PREFIX")
    return prefix


def list_channels(node: Node) -> list[ChannelInfo]:
    """Every publish-subscribe service under ``node``'s prefix, sorted by name."""
    try:
        services = iox.Service.list(node._config, iox.ServiceType.Ipc)
    except Exception as exc:
        raise RecordingError(f"iceoryx2 could not list the services of prefix "
                             f"{node.prefix!r}: {exc}") from exc
    found: dict[str, ChannelInfo] = {}
    for details in services:
        if details.messaging_pattern() != iox.MessagingPattern.PublishSubscribe:
            continue
        name = details.name().to_string()
        found[name] = _count_ports(node, _static(name, _details_text(details)))
    return [found[n] for n in sorted(found)]


def select(channels: list[ChannelInfo], patterns: tuple[str, ...] | list[str]) -> list[ChannelInfo]:
    """The channels matching any of ``patterns`` (exact names or ``fnmatch`` globs).

    An exact name (no ``*?[``) that matches nothing raises ChannelNotFoundError naming the
    channels there are; a glob matching nothing is not an error (its channels may come later).
    """
    chosen: dict[str, ChannelInfo] = {}
    for pattern in patterns:
        hits = [c for c in channels if fnmatch.fnmatchcase(c.name, pattern)]
        if not hits and not any(ch in pattern for ch in "*?["):
            known = ", ".join(c.name for c in channels) or "none"
            raise ChannelNotFoundError(f"no channel {pattern!r}; channels there: "
                                       f"{known}")
        chosen.update((c.name, c) for c in hits)
    return [chosen[n] for n in sorted(chosen)]


def find(node: Node, name: str) -> ChannelInfo:
    """The one channel called (or matching) ``name``; ChannelNotFoundError naming the prefix
    and the channels there are otherwise."""
    channels = list_channels(node)
    try:
        hits = select(channels, [name])
    except ChannelNotFoundError as exc:
        raise ChannelNotFoundError(f"prefix {node.prefix!r}: {exc}") from None
    if len(hits) != 1:
        raise ChannelNotFoundError(f"prefix {node.prefix!r}: {name!r} matches {len(hits)} "
                                   f"channels ({', '.join(c.name for c in hits) or 'none'}); "
                                   "name exactly one")
    return hits[0]


def tap_spec(info: ChannelInfo) -> ChannelSpec:
    """The ChannelSpec a subscriber uses to join ``info`` (same limits, same payload type).

    Raises RecordingError for channels a taktora port cannot join (no taktora header)."""
    if not info.taktora:
        raise RecordingError(f"channel {info.name!r} carries user header {info.user_header!r}, "
                             f"not taktora's {TAKTORA_HEADER!r}: it is not a taktora channel")
    payload: BytesPayload | StructPayload
    if info.dynamic:
        if info.payload_type != "u8":
            raise RecordingError(f"channel {info.name!r} carries slices of "
                                 f"{info.payload_type!r}; only byte channels can be tapped")
        payload = BytesPayload(max_size=1 << 16, growable=True)
    else:
        try:
            payload = StructPayload(shadow_struct(info.payload_type, info.payload_size,
                                                  info.alignment))
        except ValueError as exc:
            raise RecordingError(f"channel {info.name!r}: {exc}") from None
    return ChannelSpec(
        name=info.name, payload=payload, history=info.history,
        buffer_size=max(1, info.buffer_size), max_publishers=max(1, info.max_publishers),
        max_subscribers=max(1, info.max_subscribers), max_borrowed=max(1, info.max_borrowed),
        overflow=OverflowPolicy.DROP_OLDEST if info.safe_overflow else OverflowPolicy.DROP_NEWEST)
