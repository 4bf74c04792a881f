"""ctypes layouts as JSON schema, so struct channels are recorded as standard MCAP ``json``.

A struct channel's sample is the raw memory of a ctypes Structure. iceoryx2 lists only its
type name, size and alignment; the recorder is given the class (``types=`` of the Recorder)
and records each sample as a JSON object of its fields, with a ``jsonschema`` schema that
Foxglove reads. The schema also carries the exact ctypes layout (``taktora_ctypes``: every
field's name, ctypes type, offset, array length; the struct's size, alignment, ``_pack_``),
so a replay rebuilds a class iceoryx2 accepts for the service (same type name, size and
alignment) without importing the application's module.

Supported fields: integer, float and bool scalars, nested Structures and (nested) arrays of
those. A class with anything else (pointers, chars, unions, bit fields) raises
:class:`RecordingError` from :func:`layout`; the recorder then stores the raw bytes.
Pure functions, any thread.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

from taktora.system.recording.errors import RecordingError

_INTEGER = set("bBhHiIlLqQ")
_NUMBER = set("fdg")
_BOOL = {"?"}
# by fixed-width name: c_uint64 *is* c_ulong on LP64, so __name__ would not do
_BY_NAME: dict[str, Any] = {
    "c_int8": ctypes.c_int8, "c_uint8": ctypes.c_uint8, "c_int16": ctypes.c_int16,
    "c_uint16": ctypes.c_uint16, "c_int32": ctypes.c_int32, "c_uint32": ctypes.c_uint32,
    "c_int64": ctypes.c_int64, "c_uint64": ctypes.c_uint64, "c_float": ctypes.c_float,
    "c_double": ctypes.c_double, "c_longdouble": ctypes.c_longdouble, "c_bool": ctypes.c_bool,
}


def type_name(cls: type[ctypes.Structure]) -> str:
    """The class's iceoryx2 type name (its ``type_name()``, else its class name)."""
    getter = getattr(cls, "type_name", None)
    return str(getter()) if callable(getter) else cls.__name__


def _scalar_name(t: Any) -> str:
    """The fixed-width ctypes name of a simple type (c_long is c_int64 on LP64)."""
    code = getattr(t, "_type_", None)
    if not isinstance(code, str) or code not in _INTEGER | _NUMBER | _BOOL:
        raise RecordingError(f"ctypes type {t.__name__} is not a number or bool: only those, "
                             "structs and arrays of them are recorded as JSON")
    if code in _BOOL:
        return "c_bool"
    if code in _NUMBER:
        return {"f": "c_float", "d": "c_double", "g": "c_longdouble"}[code]
    signed = code.islower()
    return f"c_{'' if signed else 'u'}int{ctypes.sizeof(t) * 8}"


def _type(t: Any) -> Any:
    """The layout of one field type: a scalar name, {"array": .., "length": n} or a struct."""
    if isinstance(t, type) and issubclass(t, ctypes.Array):
        return {"array": _type(t._type_), "length": t._length_}
    if isinstance(t, type) and issubclass(t, ctypes.Structure):
        return _struct(t)
    if isinstance(t, type) and issubclass(t, ctypes.Union):
        raise RecordingError(f"ctypes union {t.__name__}: unions are not recorded as JSON")
    return _scalar_name(t)


def _struct(cls: type[ctypes.Structure]) -> dict[str, Any]:
    fields = []
    for spec in cls._fields_:
        if len(spec) != 2:
            raise RecordingError(f"{cls.__name__}.{spec[0]}: bit fields are not recorded as JSON")
        name, t = spec
        fields.append({"name": name, "type": _type(t), "offset": getattr(cls, name).offset})
    return {"struct": cls.__name__, "size": ctypes.sizeof(cls),
            "alignment": ctypes.alignment(cls), "pack": int(getattr(cls, "_pack_", 0) or 0),
            "fields": fields}


def layout(cls: type[ctypes.Structure]) -> dict[str, Any]:
    """The exact layout of ``cls`` (see the module docstring); RecordingError if a field is
    of a type JSON cannot carry exactly."""
    return {"type_name": type_name(cls), **_struct(cls)}


def _json_type(t: Any) -> dict[str, Any]:
    if isinstance(t, str):
        return {"type": "boolean"} if t == "c_bool" else \
            {"type": "number" if t in ("c_float", "c_double", "c_longdouble") else "integer"}
    if "array" in t:
        return {"type": "array", "items": _json_type(t["array"]), "minItems": t["length"],
                "maxItems": t["length"]}
    return {"type": "object", "title": t["struct"],
            "properties": {f["name"]: _json_type(f["type"]) for f in t["fields"]}}


def json_schema(cls: type[ctypes.Structure]) -> bytes:
    """A JSON schema of ``cls``'s fields (Foxglove's ``jsonschema`` encoding) that also holds
    its ctypes layout under ``taktora_ctypes``."""
    lay = layout(cls)
    schema = {"title": lay["type_name"], **_json_type(lay), "taktora_ctypes": lay}
    schema["title"] = lay["type_name"]
    return json.dumps(schema).encode()


def _value(obj: Any) -> Any:
    if isinstance(obj, ctypes.Array):
        return [_value(x) for x in obj]
    if isinstance(obj, ctypes.Structure):
        return {name: _value(getattr(obj, name)) for name, *_ in obj._fields_}
    return obj


def to_json(obj: ctypes.Structure) -> bytes:
    """The fields of ``obj`` as a compact JSON object."""
    return json.dumps(_value(obj), separators=(",", ":")).encode()


def _fill(target: Any, value: Any) -> None:
    if isinstance(target, ctypes.Array):
        for i, v in enumerate(value):
            if isinstance(target[i], ctypes.Array | ctypes.Structure):
                _fill(target[i], v)
            else:
                target[i] = v
        return
    for name, *_ in target._fields_:
        current = getattr(target, name)
        if isinstance(current, ctypes.Array | ctypes.Structure):
            _fill(current, value[name])
        else:
            setattr(target, name, value[name])


def from_json(cls: type[ctypes.Structure], data: bytes | memoryview) -> ctypes.Structure:
    """An instance of ``cls`` holding the JSON object ``data`` (as :func:`to_json` wrote)."""
    obj = cls()
    try:
        _fill(obj, json.loads(bytes(data)))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise RecordingError(f"JSON of {type_name(cls)!r} does not match its layout: "
                             f"{exc!r}") from None
    return obj


def _build(t: Any) -> Any:
    if isinstance(t, str):
        return _BY_NAME[t]
    if "array" in t:
        return _build(t["array"]) * int(t["length"])
    attrs_: dict[str, Any] = {"_fields_": [(f["name"], _build(f["type"])) for f in t["fields"]]}
    if t.get("pack"):
        attrs_ = {"_pack_": int(t["pack"]), **attrs_}
    cls = type(str(t["struct"]), (ctypes.Structure,), attrs_)
    if ctypes.sizeof(cls) != t["size"] or ctypes.alignment(cls) != t["alignment"]:
        raise RecordingError(f"rebuilt struct {t['struct']} has size {ctypes.sizeof(cls)} / "
                             f"alignment {ctypes.alignment(cls)}, recorded {t['size']} / "
                             f"{t['alignment']}: this platform lays it out differently")
    return cls


def struct_from_schema(schema: bytes) -> type[ctypes.Structure]:
    """A ctypes class with the recorded layout and type name (from :func:`json_schema`)."""
    try:
        lay = json.loads(schema)["taktora_ctypes"]
        cls: type[ctypes.Structure] = _build(lay)
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordingError(f"the schema holds no usable ctypes layout: {exc!r}") from None
    name = str(lay["type_name"])
    cls.type_name = staticmethod(lambda: name)  # type: ignore[attr-defined]
    return cls
