"""DBC signal codecs: a CAN channel carries decoded signals instead of raw bytes (cantools).

A :class:`DbcCodec` is an ordinary taktora codec (``dbc:<MessageName>``) and runs on the
application side only, like every codec: a writer encodes a dict (or an attrs instance) of
physical signal values into the message's data bytes with cantools, the gateway sends those
bytes as the frame's data unchanged; the gateway publishes a received frame's data bytes and
a reader decodes them into a dict (or the attrs class given). The gateway never decodes, so the
codec must be registered (:func:`register_dbc`) in the registry the *dispatcher* gets too: it
stamps inbound envelopes with the codec's id.

From a system file a bus names its DBC (``CanBusConfig.dbc``): :func:`use_dbc` loads it once
per process and registers its codecs in ``default_registry``. The routings a DBC implies
(:func:`~taktora.connectors.can.config.dbc_routing`, ``dbc_descriptor``,
``check_dbc_channel``) live with the other routings in :mod:`taktora.connectors.can.config`,
which uses this module (so this one imports nothing of it).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cantools
import cattrs
from taktora.connectors.can.errors import CanConfigError
from taktora.connectors.codecs import BaseCodec, Buffer, CodecRegistry, default_registry
from taktora.connectors.errors import CodecError
from taktora.transport.envelope import CodecId

DBC_CODEC_ID = int(CodecId.USER) + 0xDB
"""Envelope codec id of every ``dbc:*`` codec (in the application range 0x8000..)."""

_converter = cattrs.Converter()


def load_dbc(path: str | Path) -> Any:
    """Load a DBC file (cantools ``Database``); CanConfigError naming the file on failure."""
    try:
        return cantools.database.load_file(str(path), database_format="dbc")
    except Exception as exc:
        raise CanConfigError(f"cannot load DBC {str(path)!r}: {type(exc).__name__}: {exc}") from exc


class DbcCodec(BaseCodec[Any]):
    """Signals of one DBC message <-> its data bytes.

    ``cls``: an attrs class to decode into (its fields named like the signals); None decodes
    to a dict. ``strict``: cantools range checks on encode (a value outside the signal's
    min/max raises CodecError). Choices are decoded as numbers (``decode_choices=False``), so
    a round trip gives back what was encoded. Stateless, any thread.
    """

    codec_id = DBC_CODEC_ID

    def __init__(self, db: Any, message: str, *, cls: type | None = None,
                 strict: bool = True) -> None:
        try:
            self.message = db.get_message_by_name(message)
        except KeyError:
            raise CodecError(f"codec 'dbc:{message}': the DBC has no message {message!r}") from None
        if cls is not None and not attrs.has(cls):
            raise CodecError(f"codec 'dbc:{message}': cls {cls!r} is not an attrs class")
        self.name = f"dbc:{message}"
        self.cls = cls
        self.strict = strict

    def encode(self, value: Any) -> Buffer:
        if attrs.has(type(value)):
            signals = attrs.asdict(value)
        elif isinstance(value, Mapping):
            signals = dict(value)
        else:
            raise CodecError(f"codec {self.name!r} cannot encode: expected a mapping or an attrs "
                             f"instance, got {type(value).__name__}")
        try:
            return bytes(self.message.encode(signals, strict=self.strict))
        except Exception as exc:
            raise self._error("encode", exc) from None

    def decode(self, view: memoryview) -> Any:
        try:
            signals = self.message.decode(bytes(view), decode_choices=False)
        except Exception as exc:
            raise self._error("decode", exc) from None
        if self.cls is None:
            return dict(signals)
        try:
            return _converter.structure(dict(signals), self.cls)
        except Exception as exc:
            raise self._error("decode", exc) from None


def register_dbc(registry: CodecRegistry, db: Any, *,
                 types: Mapping[str, type] | None = None) -> list[DbcCodec]:
    """Register a :class:`DbcCodec` for every message of ``db`` in ``registry`` (``types`` maps
    a message name to the attrs class to decode into); returns them."""
    codecs = [DbcCodec(db, m.name, cls=(types or {}).get(m.name)) for m in db.messages]
    for codec in codecs:
        registry.register(codec, replace=True)
    return codecs


@functools.lru_cache(maxsize=64)
def _load_once(path: str) -> Any:
    return load_dbc(path)


def use_dbc(path: str | Path, registry: CodecRegistry | None = None) -> Any:
    """The DBC at ``path`` (read once per process and absolute path: a later change of the file
    is not seen), its messages registered as ``dbc:<Message>`` codecs decoding to dicts in
    ``registry`` (None: ``default_registry``; a codec of the same name is replaced).
    CanConfigError naming the file if cantools cannot load it. Caller's thread."""
    db = _load_once(os.path.abspath(path))
    register_dbc(registry or default_registry, db)
    return db
