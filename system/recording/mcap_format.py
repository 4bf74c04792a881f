"""How taktora lays out a recording in MCAP (spec/recording.rst, ARCH_1001).

- One MCAP channel per (iceoryx2 service, envelope codec id); its topic is the service name,
  its metadata holds the service's static config (so a replay can re-create it exactly) and
  the codec. A service whose writers change codec gets a second channel with the same topic.
- Message data is the envelope *payload* (the 48-byte header is not stored): JSON payloads
  are standard MCAP ``json`` messages with a ``jsonschema`` schema, so Foxglove decodes them.
  That holds for plain data frames (kind DATA, correlation id 0). The header flags are a
  property of the MCAP channel (:data:`K_FLAGS`; a channel per flags value). Any other frame
  (a Zenoh query or reply, a correlated request) goes to a *framed* channel of the same topic
  (:data:`K_FRAMING` ``frame``, encoding ``taktora.frame``) whose message data starts with
  the :data:`FRAME` header (kind, flags, codec id, CRC-32, correlation id) before the payload.
- Struct channels (a ctypes Structure per sample, no envelope): given the class, each sample
  is a ``json`` message of its fields with a ``jsonschema`` schema holding the ctypes layout
  (:mod:`.ctypes_schema`); without it, the raw bytes (``taktora.struct``). The channel's
  :data:`K_PAYLOAD` names the type, size and alignment.
  ``log_time`` and ``publish_time`` are the envelope's timestamp (CLOCK_REALTIME at encode),
  ``sequence`` its sequence number (modulo 2**32, MCAP's field is 32 bits).
- Gaps go to the topic :data:`GAP_TOPIC` (JSON: channel, cause, after_sequence, missing):
  cause ``overflow`` is the recorder's own queue overflowing, ``source`` a gap the writer's
  envelope sequence already had (lost upstream of iceoryx2).
- Metadata records: :data:`META_RECORDING` (host, versions, prefix, patterns) and, when
  known, :data:`META_SYSTEM` (the system file) at the start, :data:`META_STATS` (per-channel
  counters) at the end (:mod:`.metadata`).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import attrs
from taktora.transport.envelope import CodecId

PROFILE = "taktora"
LIBRARY = "taktora-recorder"
GAP_TOPIC = "/taktora/gaps"
META_RECORDING = "taktora.recording"
META_STATS = "taktora.recording.stats"
META_SYSTEM = "taktora.system_config"

#: channel metadata keys
K_SERVICE = "taktora.service"
K_CODEC_ID = "taktora.codec_id"
K_CODEC = "taktora.codec"
K_SPEC = "taktora.channel_spec"
K_FLAGS = "taktora.flags"
K_FRAMING = "taktora.framing"
K_PAYLOAD = "taktora.payload"

#: :data:`K_FRAMING` values: message data is the payload, or a :data:`FRAME` header + payload
PLAIN = "payload"
FRAMED = "frame"
FRAMED_ENCODING = "taktora.frame"
STRUCT_ENCODING = "taktora.struct"
#: the per-message header of a framed channel: kind u8, flags u8, codec id u16, crc32 u32,
#: correlation id u64 (little-endian, 16 bytes)
FRAME = struct.Struct("<BBHIQ")

_CODEC_NAMES = {
    CodecId.RAW: "raw",
    CodecId.JSON: "json",
    CodecId.MSGPACK: "msgpack",
    CodecId.CTYPES: "ctypes",
    CodecId.CATTRS_JSON: "cattrs-json",
    CodecId.CATTRS_MSGPACK: "cattrs-msgpack",
}


def codec_name(codec_id: int) -> str:
    """The codec family for an envelope codec id (``user-0x8001`` for application ids)."""
    try:
        return _CODEC_NAMES[CodecId(codec_id)]
    except (ValueError, KeyError):
        return f"user-{codec_id:#06x}"


def message_encoding(codec_id: int) -> str:
    """The MCAP message encoding: ``json`` / ``msgpack`` where the payload is that, else
    ``taktora.<codec>`` (bytes only taktora knows how to read)."""
    if codec_id in (CodecId.JSON, CodecId.CATTRS_JSON):
        return "json"
    if codec_id in (CodecId.MSGPACK, CodecId.CATTRS_MSGPACK):
        return "msgpack"
    return f"taktora.{codec_name(codec_id)}"


@attrs.frozen
class SchemaDef:
    """An MCAP schema: name, encoding and data."""

    name: str
    encoding: str
    data: bytes


def schema_for(codec_id: int, declared: str = "") -> SchemaDef:
    """The schema describing payloads of ``codec_id``: a permissive JSON schema for JSON
    payloads (any JSON value), else a ``taktora.codec`` description (id and name). With the
    codec a system file declares for the channel (``cattrs-json:app.Pose``), the schema is
    named after it and says its class (``taktora_class``)."""
    name = codec_name(codec_id)
    description: dict[str, Any] = {"title": f"taktora codec {name}",
                                   "taktora_codec_id": codec_id, "taktora_codec": name}
    family, _, cls = declared.partition(":")
    if family == name and cls:
        name = declared
        description.update(title=cls, taktora_codec=declared, taktora_class=cls)
    if message_encoding(codec_id) == "json":
        return SchemaDef(f"taktora.codec.{name}", "jsonschema",
                         json.dumps(description).encode())
    return SchemaDef(f"taktora.codec.{name}", "taktora.codec", json.dumps(description).encode())


FRAME_SCHEMA = SchemaDef("taktora.Frame", "taktora.frame", json.dumps({
    "title": "taktora.Frame", "header": "<BBHIQ little-endian, 16 B, then the payload",
    "fields": ["kind", "flags", "codec_id", "crc32", "correlation_id"],
    "kinds": {"0": "data", "1": "reply_data", "2": "reply_end", "3": "reply_timeout",
              "4": "query"},
}).encode())


def struct_schema(type_name: str, size: int, alignment: int) -> SchemaDef:
    """The schema of a struct channel recorded as raw bytes (its class was not given)."""
    return SchemaDef(type_name, "taktora.struct", json.dumps({
        "title": type_name, "size": size, "alignment": alignment}).encode())


GAP_SCHEMA = SchemaDef("taktora.Gap", "jsonschema", json.dumps({
    "title": "taktora.Gap", "type": "object",
    "properties": {"channel": {"type": "string"}, "cause": {"enum": ["overflow", "source"]},
                   "after_sequence": {"type": "integer"}, "missing": {"type": "integer"}},
}).encode())


def gap_record(channel: str, cause: str, after_sequence: int, missing: int) -> bytes:
    """The JSON body of one gap message."""
    return json.dumps({"channel": channel, "cause": cause, "after_sequence": after_sequence,
                       "missing": missing}, separators=(",", ":")).encode()


def parse_gap(data: bytes) -> dict[str, Any]:
    """A gap message's body as a dict (see :func:`gap_record`)."""
    value: dict[str, Any] = json.loads(data)
    return value
