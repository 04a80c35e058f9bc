"""One schema for every per-structure table of the results dataset.

``datasets.load_dataset(..., "structures")`` reads all published
``structures.parquet`` files as one table, so they must share one arrow schema:
the same columns, in the same order, with the same types. Submissions differ
(families run or not, a column all null in one and numeric in another), so the
published schema is the *union* of the tables' schemas, widened where they
disagree, and each published table is conformed to it (a column it lacks is
null). When a new table widens the union, the tables published before are
rewritten to it in the same commit.

Widening: equal types stay; null takes the other type; integers and floats
become float64 (integers of different widths int64); anything else that
disagrees (text vs number, lists, structs) becomes text, lists and structs as
JSON. Dictionary (categorical) columns are read as their values.
"""

from __future__ import annotations

import base64
import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SUBMISSION_COLUMN = "submission_id"
PROTOCOL_COLUMN = "protocol_id"  # the leaderboard config's name for it
KEY_COLUMNS = (SUBMISSION_COLUMN, PROTOCOL_COLUMN)


def _plain(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def widen(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The type both ``a`` and ``b`` values fit (see module docstring)."""
    a, b = _plain(a), _plain(b)
    if a.equals(b):
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b):
        return a
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return pa.int64()
    numeric = (pa.types.is_integer, pa.types.is_floating)
    if any(f(a) for f in numeric) and any(f(b) for f in numeric):
        return pa.float64()
    if _is_text(a) and _is_text(b):
        return pa.large_string()
    return pa.string()


def union(schemas: list[pa.Schema]) -> pa.Schema:
    """The union of ``schemas``: columns in first-seen order (submission id and protocol
    first), each with the widened type of all its occurrences."""
    types: dict[str, pa.DataType] = {}
    for schema in schemas:
        for f in schema:
            types[f.name] = widen(types[f.name], f.type) if f.name in types else _plain(f.type)
    names = [n for n in KEY_COLUMNS if n in types] + [n for n in types if n not in KEY_COLUMNS]
    return pa.schema([pa.field(n, types[n]) for n in names])


def _as_text(col: pa.ChunkedArray) -> pa.Array:
    out = []
    for v in col.to_pylist():
        out.append(None if v is None else v if isinstance(v, str) else json.dumps(v, default=str))
    return pa.array(out, type=pa.string())


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns and types (missing ones null); the
    table's own metadata (pandas dtypes, e.g. nullable integers) is kept."""
    cols = []
    changed: set[str] = set()
    for f in schema:
        if f.name in table.column_names and not table.schema.field(f.name).type.equals(f.type):
            changed.add(f.name)
        if f.name not in table.column_names:
            cols.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        if col.type.equals(f.type):
            cols.append(col)
        elif _is_text(f.type) and not _is_text(col.type):
            cols.append(pc.cast(_as_text(col), f.type))
        else:
            cols.append(pc.cast(col, f.type))
    return pa.Table.from_arrays(cols, schema=schema).replace_schema_metadata(_metadata(table, changed))


def _metadata(table: pa.Table, changed: set[str]) -> dict[bytes, bytes] | None:
    """The table's metadata without the pandas dtypes of ``changed`` columns (their arrow type
    was widened, so the recorded pandas dtype no longer fits)."""
    meta = dict(table.schema.metadata or {})
    if b"pandas" in meta and changed:
        doc = json.loads(meta[b"pandas"])
        doc["columns"] = [c for c in doc.get("columns", []) if c.get("name") not in changed]
        meta[b"pandas"] = json.dumps(doc).encode()
    return meta or None


def public_table(table_bytes: bytes, submission_id: str, protocol: str | None) -> pa.Table | None:
    """The per-structure table as published: its columns after a ``submission_id`` and a
    ``protocol_id`` column; None when ``table_bytes`` is not a parquet table."""
    try:
        table = pq.read_table(io.BytesIO(table_bytes))
    except (pa.ArrowInvalid, OSError):
        return None
    for name in KEY_COLUMNS:
        if name in table.column_names:
            table = table.drop_columns([name])
    n = table.num_rows
    key = pa.table({SUBMISSION_COLUMN: pa.array([submission_id] * n, pa.string()),
                    PROTOCOL_COLUMN: pa.array([protocol] * n, pa.string())})
    for i, name in enumerate(table.column_names):
        key = key.append_column(name, table.column(i))
    return key.replace_schema_metadata(table.schema.metadata)


def to_parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def read_parquet(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def encode_schema(schema: pa.Schema) -> str:
    """``schema`` as text for a JSON document (base64 of its arrow IPC form)."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def decode_schema(text: str | None) -> pa.Schema | None:
    if not text:
        return None
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


__all__ = ["KEY_COLUMNS", "PROTOCOL_COLUMN", "SUBMISSION_COLUMN", "conform", "decode_schema",
           "encode_schema", "public_table", "read_parquet", "to_parquet", "union", "widen"]
