"""CSV / JSON / JSONL uploads: one structure per row, entry or line, cut into Units.

A file that holds no structure column/entries raises NotStructureData: the caller
skips it inside folders and archives (e.g. ``metadata.csv``) and refuses it when
it was given explicitly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from evaluator.config import IngestLimits
from evaluator.ingest.checks import shorten
from evaluator.ingest.detect import STRUCTURE_COLUMNS
from evaluator.ingest.formats import looks_like_structure_dict
from evaluator.ingest.jsonload import JsonTooDeep, load_json
from evaluator.ingest.types import Item, Unit


class NotStructureData(ValueError):
    """The file is valid CSV/JSON but holds no structures."""


def _entry(source: str, obj: object) -> Unit | Item:
    if isinstance(obj, str):
        return Unit(source, "text", obj)
    if isinstance(obj, dict):
        return Unit(source, "dict", obj)
    return Item(source, error=f"not a structure: a JSON {type(obj).__name__}")


def _json(text: str, limits: IngestLimits) -> tuple[object, str | None]:
    """(object, None) or (None, reason) for a JSON text, bounded in depth."""
    try:
        return load_json(text, limits.max_json_depth), None
    except JsonTooDeep as exc:
        return None, str(exc)
    except ValueError as exc:
        return None, shorten(f"invalid JSON: {exc}")


def split_csv(text: str, source: str, limits: IngestLimits) -> Iterator[Unit | Item]:
    """Rows numbered from 1 (the first row after the header)."""
    csv.field_size_limit(max(csv.field_size_limit(), limits.max_upload_bytes))
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None) or []
    lowered = [h.strip().lower() for h in header]
    col = next((lowered.index(c.lower()) for c in STRUCTURE_COLUMNS if c.lower() in lowered), None)
    if col is None:
        raise NotStructureData(
            f"no structure column; expected one of {', '.join(STRUCTURE_COLUMNS)} "
            f"(found: {shorten(', '.join(header), 120) or 'nothing'})")
    try:
        for i, row in enumerate(reader, 1):
            if not any(cell.strip() for cell in row):
                continue  # blank line
            src = f"{source}:row {i}"
            yield Unit(src, "text", row[col]) if col < len(row) else Item(src, error="missing cell")
    except csv.Error as exc:
        yield Item(f"{source}:row {reader.line_num}", error=shorten(f"unreadable CSV: {exc}"))


def _structure_like(obj: object) -> bool:
    if isinstance(obj, str):
        return "data_" in obj or obj.lstrip().startswith("{")
    return looks_like_structure_dict(obj)


def _json_entries(obj: object) -> list[tuple[str, object]] | None:
    """(label, entry) pairs, or None when ``obj`` holds no structures."""
    if isinstance(obj, dict) and "structures" in obj:
        obj = obj["structures"]
    if isinstance(obj, list):
        if obj and not any(_structure_like(x) for x in obj):
            return None
        return [(f"item {i}", x) for i, x in enumerate(obj, 1)]
    if isinstance(obj, dict):
        if looks_like_structure_dict(obj):
            return [("", obj)]
        if obj and all(looks_like_structure_dict(v) for v in obj.values()):
            return [(str(k), v) for k, v in obj.items()]  # {id: structure}
    return None


def split_json(text: str, source: str, limits: IngestLimits) -> Iterator[Unit | Item]:
    """A Structure dict, a list of them, ``{"structures": [...]}`` or ``{id: structure}``.
    A file nested deeper than ``max_json_depth`` is one failure row."""
    obj, why = _json(text, limits)
    if why:
        yield Item(source, error=why)
        return
    entries = _json_entries(obj)
    if entries is None:
        raise NotStructureData("no pymatgen Structure dicts found (expected a dict with 'lattice' and "
                               "'sites', a list of them, or {\"structures\": [...]})")
    for label, entry in entries:
        yield _entry(f"{source}:{shorten(label, 120)}" if label else source, entry)


def split_jsonl(text: str, source: str, limits: IngestLimits) -> Iterator[Unit | Item]:
    """One Structure dict per line; ``:line N`` counts every line from 1."""
    rows: list[tuple[int, object, str | None]] = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            obj, why = _json(line, limits)
            rows.append((i, obj, why))
    deep = any(err and err.startswith("JSON nested too deeply") for _, _, err in rows)
    if not deep and not any(err is None and _structure_like(obj) for _, obj, err in rows):
        raise NotStructureData("no pymatgen Structure dicts found (one dict per line expected)")
    for i, obj, err in rows:
        yield Item(f"{source}:line {i}", error=err) if err else _entry(f"{source}:line {i}", obj)
