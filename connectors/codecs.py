"""Payload codecs: one small protocol, six implementations, a registry by name and by id.

A codec turns an application value into the bytes that follow the envelope header and back.
It is stateless and thread-safe; it runs on whatever thread calls the channel writer or reader.
Codecs run on the application side: gateways forward bytes and never re-encode (the one
exception: an MQTT channel with ``with_topic`` wraps each message and its topic in an
``MqttMessage`` with the channel's codec). ``cattrs-json:<module>.<Class>`` and
``cattrs-msgpack:...`` codecs of an importable attrs class are built on first use.

==================  ===================  =============================================
codec (name)        envelope codec id    values
==================  ===================  =============================================
``raw``             ``CodecId.RAW``      bytes-like; decode gives bytes (or a read-only view)
``json``            ``CodecId.JSON``     JSON-able Python values (UTF-8, compact)
``msgpack``         ``CodecId.MSGPACK``  msgpack-able Python values
``ctypes:<name>``   ``CodecId.CTYPES``   one ctypes Structure; written straight into the loan
``cattrs-json:<c>`` ``CATTRS_JSON``      instances of an attrs class, via a cattrs converter
``cattrs-msgpack:`` ``CATTRS_MSGPACK``   the same, msgpack flavour
==================  ===================  =============================================

Codec methods raise :class:`CodecError` naming the codec and what was wrong; the channel
writer and reader add the channel (:func:`encode_for` / :func:`decode_for` do the same for
direct users). Any other exception a codec library raises on bad input is converted, so a
caller only ever sees project errors.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import threading
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import attrs
import cattrs
import cattrs.preconf.json
import cattrs.preconf.msgpack
import msgpack
from taktora.connectors.errors import CodecError
from taktora.transport.envelope import CodecId

T = TypeVar("T")
S = TypeVar("S", bound=ctypes.Structure)

Buffer = bytes | bytearray | memoryview


@runtime_checkable
class Codec(Protocol[T]):
    """What a codec provides. ``encode_into`` writes into a caller's buffer (a loaned shared
    memory view) when :meth:`size_hint` knows the exact size up front; otherwise callers use
    :meth:`encode` and copy."""

    @property
    def name(self) -> str:
        """Unique name, ``family`` or ``family:parameter`` (e.g. ``ctypes:Pose.v1``)."""
        ...

    @property
    def codec_id(self) -> int:
        """The id written in the envelope (:class:`~taktora.transport.envelope.CodecId`)."""
        ...

    def encode(self, value: T) -> Buffer:
        """The encoded bytes of ``value``. Raises CodecError if it cannot be encoded."""
        ...

    def size_hint(self, value: T) -> int | None:
        """The exact encoded size of ``value`` if known without encoding, else None."""
        ...

    def encode_into(self, value: T, view: memoryview) -> int:
        """Write ``value`` into ``view`` (at least ``size_hint(value)`` bytes); return the size."""
        ...

    def decode(self, view: memoryview) -> T:
        """The value in ``view``. Raises CodecError on malformed input."""
        ...


class BaseCodec(Generic[T]):
    """Defaults for codec implementations: no size hint, ``encode_into`` via ``encode``."""

    name: str = ""
    codec_id: int = CodecId.USER

    def encode(self, value: T) -> Buffer:
        raise NotImplementedError

    def decode(self, view: memoryview) -> T:
        raise NotImplementedError

    def size_hint(self, value: T) -> int | None:
        return None

    def encode_into(self, value: T, view: memoryview) -> int:
        data = self.encode(value)
        size = len(data)
        if size > len(view):
            raise CodecError(f"codec {self.name!r} cannot encode: {size} B do not fit a "
                             f"{len(view)} B buffer")
        view[:size] = data
        return size

    def _error(self, action: str, exc: BaseException) -> CodecError:
        return CodecError(f"codec {self.name!r} cannot {action}: {_describe(exc)}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class RawCodec(BaseCodec[Any]):
    """Bytes in, bytes out. ``copy=False`` makes :meth:`decode` return the read-only view
    itself (zero-copy; valid as long as the caller holds it, see ``transport.sample``)."""

    name = "raw"
    codec_id = CodecId.RAW

    def __init__(self, copy: bool = True) -> None:
        self.copy = copy

    def encode(self, value: Any) -> Buffer:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise CodecError(f"codec 'raw' cannot encode: expected a bytes-like value, got "
                             f"{type(value).__name__}")
        return value

    def size_hint(self, value: Any) -> int | None:
        if isinstance(value, bytes | bytearray):
            return len(value)
        if isinstance(value, memoryview):
            return value.nbytes
        return None

    def encode_into(self, value: Any, view: memoryview) -> int:
        src = memoryview(self.encode(value)).cast("B")
        view[: src.nbytes] = src
        return src.nbytes

    def decode(self, view: memoryview) -> Any:
        return bytes(view) if self.copy else view


class JsonCodec(BaseCodec[Any]):
    """JSON (compact, UTF-8). Decoding rejects invalid UTF-8 and invalid JSON."""

    name = "json"
    codec_id = CodecId.JSON

    def encode(self, value: Any) -> Buffer:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise self._error("encode", exc) from None

    def decode(self, view: memoryview) -> Any:
        try:
            return json.loads(bytes(view).decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise self._error("decode", exc) from None


class MsgpackCodec(BaseCodec[Any]):
    """msgpack (str as UTF-8, bytes as bin). Extension types and trailing bytes are rejected."""

    name = "msgpack"
    codec_id = CodecId.MSGPACK

    def encode(self, value: Any) -> Buffer:
        try:
            data: bytes = msgpack.packb(value, use_bin_type=True)
            return data
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise self._error("encode", exc) from None
        except Exception as exc:  # msgpack's own PackException family
            raise self._error("encode", exc) from None

    def decode(self, view: memoryview) -> Any:
        try:
            return msgpack.unpackb(view, raw=False, strict_map_key=True)
        except Exception as exc:  # ExtraData, FormatError, StackError, ValueError, TypeError ...
            raise self._error("decode", exc) from None


class CtypesCodec(BaseCodec[S]):
    """One ctypes Structure, copied byte for byte (native layout, no conversion).

    :meth:`encode_into` moves the struct straight into the loaned shared memory (one memmove).
    :meth:`decode` checks the size and returns a private copy (``from_buffer_copy``); received
    shared memory is read-only, so a writable struct cannot alias it.
    """

    codec_id = CodecId.CTYPES

    def __init__(self, struct: type[S]) -> None:
        if not (isinstance(struct, type) and issubclass(struct, ctypes.Structure)):
            raise CodecError(f"CtypesCodec needs a ctypes.Structure subclass, got {struct!r}")
        self.struct = struct
        self.size = ctypes.sizeof(struct)
        getter = getattr(struct, "type_name", None)
        type_name = getter() if callable(getter) else struct.__name__
        self.name = f"ctypes:{type_name}"

    def _check(self, value: Any) -> S:
        if not isinstance(value, self.struct):
            raise CodecError(f"codec {self.name!r} cannot encode: expected a "
                             f"{self.struct.__name__}, got {type(value).__name__}")
        return value

    def encode(self, value: S) -> Buffer:
        return bytes(self._check(value))

    def size_hint(self, value: S) -> int | None:
        return self.size

    def encode_into(self, value: S, view: memoryview) -> int:
        obj = self._check(value)
        if len(view) < self.size:
            raise CodecError(f"codec {self.name!r} cannot encode: {self.size} B do not fit a "
                             f"{len(view)} B buffer")
        dst = (ctypes.c_uint8 * self.size).from_buffer(view)
        ctypes.memmove(dst, ctypes.addressof(obj), self.size)
        return self.size

    def decode(self, view: memoryview) -> S:
        if len(view) != self.size:
            raise CodecError(f"codec {self.name!r} cannot decode: expected {self.size} B "
                             f"({self.struct.__name__}), got {len(view)} B")
        return self.struct.from_buffer_copy(view)


class _AttrsCodec(BaseCodec[T]):
    family = ""
    codec_id = CodecId.USER

    def __init__(self, cls: type[T], converter: Any) -> None:
        if not hasattr(cls, "__attrs_attrs__"):
            raise CodecError(f"{type(self).__name__} needs an attrs class, got {cls!r}")
        self.cls = cls
        self.converter = converter
        self.name = f"{self.family}:{cls.__module__}.{cls.__qualname__}"

    def _check(self, value: Any) -> T:
        if not isinstance(value, self.cls):
            raise CodecError(f"codec {self.name!r} cannot encode: expected a "
                             f"{self.cls.__name__}, got {type(value).__name__}")
        return value

    def _structure_error(self, exc: Exception) -> CodecError:
        if isinstance(exc, cattrs.BaseValidationError):
            why = "; ".join(cattrs.transform_error(exc))
            return CodecError(f"codec {self.name!r} cannot decode: {why}")
        return self._error("decode", exc)

    def encode(self, value: T) -> Buffer:
        try:
            data: str | bytes = self.converter.dumps(self._check(value))
        except CodecError:
            raise
        except Exception as exc:
            raise self._error("encode", exc) from None
        return data.encode() if isinstance(data, str) else data  # JSON gives str, msgpack bytes

    def decode(self, view: memoryview) -> T:
        try:
            value: T = self.converter.loads(bytes(view), self.cls)
            return value
        except Exception as exc:
            raise self._structure_error(exc) from None


class AttrsJsonCodec(_AttrsCodec[T]):
    """Instances of one attrs class as JSON, through cattrs' JSON-preconfigured converter (or
    the ``converter`` given). Decoding validates the structure (attrs validators run)."""

    family = "cattrs-json"
    codec_id = CodecId.CATTRS_JSON

    def __init__(self, cls: type[T], converter: Any = None) -> None:
        super().__init__(cls, converter or cattrs.preconf.json.make_converter())


class AttrsMsgpackCodec(_AttrsCodec[T]):
    """Instances of one attrs class as msgpack, through cattrs' msgpack-preconfigured converter."""

    family = "cattrs-msgpack"
    codec_id = CodecId.CATTRS_MSGPACK

    def __init__(self, cls: type[T], converter: Any = None) -> None:
        super().__init__(cls, converter or cattrs.preconf.msgpack.make_converter())


# --- registry ----------------------------------------------------------------------------------
_FAMILY_IDS = {
    "raw": CodecId.RAW,
    "json": CodecId.JSON,
    "msgpack": CodecId.MSGPACK,
    "ctypes": CodecId.CTYPES,
    "cattrs-json": CodecId.CATTRS_JSON,
    "cattrs-msgpack": CodecId.CATTRS_MSGPACK,
}


def _attrs_codec(name: str) -> Codec[Any]:
    """The codec ``name`` = ``cattrs-json:<module>.<Class>`` (or ``cattrs-msgpack:``) names:
    the class imported and wrapped. CodecError naming what is missing."""
    family, _, path = name.partition(":")
    module, _, cls_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), cls_name) if module else None
    except (ImportError, AttributeError, ValueError) as exc:
        raise CodecError(f"codec {name!r}: cannot import {path!r}: {exc}") from None
    if cls is None or not attrs.has(cls):
        raise CodecError(f"codec {name!r}: {path!r} is not an attrs class")
    return _ATTRS_FAMILIES[family](cls)


class CodecRegistry:
    """Codecs by name and by envelope id. Thread-safe.

    Several parametrised codecs share one id (every ``ctypes:*`` codec is ``CTYPES``), so
    :meth:`by_id` answers only when exactly one registered codec has that id.
    """

    def __init__(self, codecs: tuple[Codec[Any], ...] = ()) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, Codec[Any]] = {}
        for codec in codecs:
            self.register(codec)

    def register(self, codec: Codec[Any], *, replace: bool = False) -> None:
        """Add ``codec``; a different codec under the same name raises CodecError unless
        ``replace``."""
        if not isinstance(codec, Codec):
            raise CodecError(f"{codec!r} does not implement the Codec protocol")
        with self._lock:
            old = self._by_name.get(codec.name)
            if old is not None and old is not codec and not replace:
                raise CodecError(f"codec name {codec.name!r} is already registered ({old!r}); "
                                 "pass replace=True to override it")
            self._by_name[codec.name] = codec

    def by_name(self, name: str) -> Codec[Any]:
        """The codec called ``name``; CodecError naming the known ones if there is none."""
        with self._lock:
            codec = self._by_name.get(name)
            known = sorted(self._by_name)
        if codec is None and name.partition(":")[0] in _ATTRS_FAMILIES:
            codec = _attrs_codec(name)  # "cattrs-json:pkg.module.Class": built on first use
            with self._lock:
                codec = self._by_name.setdefault(name, codec)
        if codec is None:
            raise CodecError(f"no codec named {name!r} is registered (known: {known}); "
                             "register it with CodecRegistry.register")
        return codec

    def by_id(self, codec_id: int) -> Codec[Any]:
        """The one codec registered with ``codec_id``; CodecError if none or several."""
        with self._lock:
            found = [c for c in self._by_name.values() if c.codec_id == codec_id]
        if len(found) != 1:
            names = sorted(c.name for c in found)
            why = "none is registered" if not found else f"several are registered: {names}"
            raise CodecError(f"codec id {codec_id}: {why}")
        return found[0]

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._by_name)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._by_name


_ATTRS_FAMILIES: dict[str, type[AttrsJsonCodec[Any]] | type[AttrsMsgpackCodec[Any]]] = {
    "cattrs-json": AttrsJsonCodec, "cattrs-msgpack": AttrsMsgpackCodec}

default_registry = CodecRegistry((RawCodec(), JsonCodec(), MsgpackCodec()))
"""The process-wide registry: ``raw``, ``json`` and ``msgpack`` built in; add your own."""


def codec_id_for(name: str, registry: CodecRegistry | None = None) -> int:
    """The envelope id of the codec called ``name``: the registered codec's id, else the id of
    its family (the part before ``:``). Gateways use this to stamp envelopes for codecs they
    do not have (they never decode). Raises CodecError for an unknown family."""
    reg = registry or default_registry
    if name in reg:
        return reg.by_name(name).codec_id
    family = name.split(":", 1)[0]
    if family not in _FAMILY_IDS:
        raise CodecError(f"codec {name!r}: unknown family {family!r} "
                         f"(known: {sorted(_FAMILY_IDS)}); register the codec")
    return int(_FAMILY_IDS[family])


def encode_for(codec: Codec[T], value: T, channel: str) -> Buffer:
    """``codec.encode(value)``; any failure raises CodecError naming ``channel`` and the codec."""
    try:
        return codec.encode(value)
    except Exception as exc:
        raise channel_error(codec, channel, "encode", exc) from None


def decode_for(codec: Codec[T], view: memoryview, channel: str) -> T:
    """``codec.decode(view)``; any failure raises CodecError naming ``channel`` and the codec."""
    try:
        return codec.decode(view)
    except Exception as exc:
        raise channel_error(codec, channel, "decode", exc) from None


def channel_error(codec: Codec[Any], channel: str, action: str, exc: BaseException) -> CodecError:
    """A CodecError for ``exc`` that names the channel, the codec and what was wrong:
    ``channel 'c', codec 'json' cannot decode: JSONDecodeError: ...``."""
    text = str(exc)
    if isinstance(exc, CodecError) and text.startswith(f"codec {codec.name!r}"):
        return CodecError(f"channel {channel!r}, {text}")
    what = text if isinstance(exc, CodecError) else _describe(exc)
    return CodecError(f"channel {channel!r}, codec {codec.name!r} cannot {action}: {what}")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc) or 'malformed input'}"
