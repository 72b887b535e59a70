"""Avro Object Container Files, as most surveys send them (one file per Kafka message).

fastavro reads them; writer schemas that fastavro rejects only for invalid ``"default": null``
declarations (TURBO's) are repaired in the header, the data blocks kept byte for byte.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import fastavro
from fastavro.read import HEADER_SCHEMA

from kowalski.errors import AlertError

AVRO_MAGIC = b"Obj\x01"
_HEADER = fastavro.parse_schema(HEADER_SCHEMA)
_repaired: dict[bytes, bytes] = {}  # original schema JSON -> repaired schema JSON
_lock = threading.Lock()


def read_container(data: bytes) -> list[dict]:
    """All records of an Avro Object Container File (any codec fastavro knows)."""
    if data[:4] != AVRO_MAGIC:
        raise AlertError(f"not an Avro container file: starts with {data[:8]!r}, expected {AVRO_MAGIC!r}")
    try:
        reader = fastavro.reader(io.BytesIO(data))
    except fastavro.schema.SchemaParseException as exc:
        reader = _reader_with_repaired_schema(data, exc)
    except Exception as exc:
        raise AlertError(f"not an Avro container file: unreadable header ({type(exc).__name__}: {exc})") from None
    try:
        records = list(reader)
    except Exception as exc:
        raise AlertError(f"truncated or corrupt Avro container ({type(exc).__name__}: {exc})") from None
    if not records:
        raise AlertError("Avro container holds no records")
    return records


def _reader_with_repaired_schema(data: bytes, error: Exception):
    """Re-read a container whose writer schema fastavro rejects because of invalid defaults.

    Some producers (TURBO) write ``"default": null`` on non-nullable fields. Defaults only matter
    when a *reader* schema adds a field, never to decode data with its writer schema, so dropping
    the invalid ones changes nothing about the data. The header is rewritten with the repaired
    schema and the data blocks are kept byte for byte.
    """
    buf = io.BytesIO(data)
    try:
        header = fastavro.schemaless_reader(buf, _HEADER)
    except Exception as exc:
        raise AlertError(f"not an Avro container file: unreadable header ({type(exc).__name__}: {exc})") from None
    original = header["meta"].get("avro.schema", b"")
    fixed = _repaired.get(original)
    if fixed is None:
        try:
            schema = json.loads(original)
        except ValueError as exc:
            raise AlertError(f"invalid writer schema: not JSON ({exc})") from None
        if not _drop_invalid_defaults(schema):
            raise AlertError(f"invalid writer schema: {error}") from None
        fixed = json.dumps(schema).encode()
        with _lock:
            _repaired[original] = fixed
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _HEADER, {**header, "meta": {**header["meta"], "avro.schema": fixed}})
    out.write(data[buf.tell():])
    out.seek(0)
    try:
        return fastavro.reader(out)
    except Exception as exc:
        raise AlertError(f"invalid writer schema even after repairing defaults: {exc}") from None


def _allows_null_default(ftype: Any) -> bool:
    if ftype == "null":
        return True
    if isinstance(ftype, dict):
        return ftype.get("type") == "null"
    if isinstance(ftype, list) and ftype:  # a union's default must match its first branch
        return _allows_null_default(ftype[0])
    return False


def _drop_invalid_defaults(node: Any) -> int:
    """Remove ``"default": null`` where the field type does not admit null; returns how many."""
    fixed = 0
    if isinstance(node, list):
        for item in node:
            fixed += _drop_invalid_defaults(item)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind == "record" or kind == "error":
            for field in node.get("fields", []):
                if "default" in field and field["default"] is None and not _allows_null_default(field["type"]):
                    del field["default"]
                    fixed += 1
                fixed += _drop_invalid_defaults(field.get("type"))
        elif kind == "array":
            fixed += _drop_invalid_defaults(node.get("items"))
        elif kind == "map":
            fixed += _drop_invalid_defaults(node.get("values"))
        elif isinstance(kind, (dict, list)):
            fixed += _drop_invalid_defaults(kind)
    return fixed
