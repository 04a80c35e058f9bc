"""CSV / JSON / JSONL uploads: one structure per row, entry or line, cut into Units.

Files are cut as they are read (a structure at a time), so the caller's structure
limit stops a file of millions of entries early, and a JSON file is never held parsed
as a whole: each entry keeps its text (parsed again, bounded, in the reading process).

Where the structures are is found from the content, not from names: a CSV column is
taken by name (``STRUCTURE_COLUMNS``) or else because its cells hold CIF text or
Structure JSON; a JSON entry is a Structure dict, CIF text, or a record holding one
(under any key). A file that holds no structure raises NotStructureData: the caller
skips it inside folders and archives (e.g. ``metadata.csv``) and refuses it when it was
given explicitly.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator

from evaluator.config import IngestLimits
from evaluator.ingest.checks import shorten
from evaluator.ingest.detect import STRUCTURE_COLUMNS
from evaluator.ingest.shapes import STRUCTURE_KEYS, is_record, is_structure_dict, record_structure, structure_text
from evaluator.ingest.shapes import is_structure as _is_structure
from evaluator.ingest.jsonload import (LAZY, DuplicateKeys, Entry, JsonTooDeep, decode_at, duplicate_message,
                                       first_duplicate, iter_values, skip_ws)
from evaluator.ingest.types import IngestError, Item, Unit, too_many_structures


class NotStructureData(ValueError):
    """The file is valid CSV/JSON but holds no structures."""


def _kind(obj: object) -> str:
    """'structure', 'record' (a dict holding structures) or 'other'."""
    if _is_structure(obj):
        return "structure"
    if is_record(obj):
        return "record"
    return "other"


def _type_name(obj: object) -> str:
    return {dict: "object", DuplicateKeys: "object", list: "array", str: "string", int: "number",
            float: "number", bool: "boolean", type(None): "null"}.get(type(obj), type(obj).__name__)


def _unit(source: str, text: str, entry: Entry) -> Unit | Item:
    """The Unit of one JSON entry: its own text (Structure dict or CIF string), or the
    structure inside a record."""
    import json

    value = entry.value
    if entry.error:
        return Item(source, error=entry.error)
    if isinstance(value, str):
        return Unit(source, "text", value)
    if isinstance(value, dict) and not is_structure_dict(value):
        key, why = record_structure(value)
        if key is None:
            return Item(source, error=why or f"not a structure: a JSON {_type_name(value)} without lattice/sites")
        inner = value[key]
        repeated = first_duplicate(value)
        if repeated is not None:
            return Item(source, error=duplicate_message(repeated))
        return Unit(source, "text", inner if isinstance(inner, str) else json.dumps(inner))
    if isinstance(value, dict):
        return Unit(source, "text", text[entry.start:entry.end])
    return Item(source, error=f"not a structure: a JSON {_type_name(value)}")


class _Overflow(Exception):
    """More than the structure limit of entries held, none of them a structure."""


class _Pending:
    """Entries held until the file is known to hold structures (then they flow through, and
    the caller's structure limit applies), at most ``limit`` of them: past that with no
    structure seen, _Overflow (see ``_overflow``), so a file of millions of non-structure
    entries is never held or parsed whole."""

    def __init__(self, limit: int):
        self.limit, self.held, self.found = limit, list[Unit | Item](), False

    def add(self, entry: Unit | Item, is_structure: bool) -> Iterator[Unit | Item]:
        self.found = self.found or is_structure
        if self.found:
            yield from self.held
            self.held.clear()
            yield entry
        elif len(self.held) >= self.limit:
            raise _Overflow
        else:
            self.held.append(entry)


# Text that a structure anywhere after the first ``limit`` entries would have to contain
# (searched with str.find: a regex alternation costs ~10x more on a 200 MB text).
_MAYBE_STRUCTURE = ('"lattice"', '"sites"', "data_", "_cell_length_a", "_atom_site_fract_")


def _overflow(text: str, pos: int, source: str, limit: int) -> ValueError:
    """What to raise when the first ``limit`` entries of a file hold no structure: metadata
    (NotStructureData) when nothing after ``pos`` could be one either, else a refusal that
    says why (reading on would mean parsing the whole file to find them)."""
    if all(text.find(word, pos) < 0 for word in _MAYBE_STRUCTURE):
        return NotStructureData(f"no structures found in its first {limit:,} entries, nor after them")
    return IngestError(shorten(f"{source}: none of its first {limit:,} entries is a structure, but later ones "
                               "may be; put the structures first, or leave the other entries out of the upload",
                               300))


def split_csv(text: str, source: str, limits: IngestLimits) -> Iterator[Unit | Item]:
    """Rows numbered from 1 (the first record after the header). A malformed CSV (an
    unbalanced quote, a row whose field count differs from the header's) is refused as a
    whole: cutting it would invent or merge rows."""
    csv.field_size_limit(max(csv.field_size_limit(), limits.max_upload_bytes))
    if _BLANK_RUN.search(text):  # runs of blank lines, skipped in C (a row each would cost ~1 µs)
        text = _BLANK_RUN.sub("\n", text)
    # Lines cut in C, one at a time (io.StringIO would copy the text at 4 bytes a character).
    reader = csv.reader(map(re.Match.group, _ANY_LINE.finditer(text)), strict=True)
    rows = _checked_rows(reader, source)
    header = next(rows, (0, []))[1]
    lowered = [h.strip().lower() for h in header]
    col = next((lowered.index(c.lower()) for c in STRUCTURE_COLUMNS if c.lower() in lowered), None)
    if col is not None:
        for i, row in rows:
            yield _cell(source, i, row, col)
        return
    # No column by name: the column whose cells hold structures (rows held until it is known).
    held: list[tuple[int, list[str]]] = []
    cols: set[int] = set()
    for i, row in rows:
        cols |= {j for j, cell in enumerate(row) if structure_text(cell)}
        if len(held) < limits.max_structures:
            held.append((i, row))
        elif cols:
            raise too_many_structures(limits.max_structures)
        else:
            raise _overflow(text, 0, source, limits.max_structures)
    if not cols:
        raise NotStructureData(
            f"no structure column; expected one of {', '.join(STRUCTURE_COLUMNS)} or a column of CIF text or "
            f"Structure JSON (found: {shorten(', '.join(header), 120) or 'nothing'})")
    if len(cols) > 1:
        names = ", ".join(repr(header[j]) if j < len(header) else f"column {j + 1}" for j in sorted(cols))
        raise IngestError(shorten(f"{source}: several columns hold structures ({names}); name the one to "
                                  "evaluate 'structure' or submit one column", 300))
    (col,) = cols
    for i, row in held:
        yield _cell(source, i, row, col)


def _cell(source: str, i: int, row: list[str], col: int) -> Unit | Item:
    src = f"{source}:row {i}"
    return Unit(src, "text", row[col]) if col < len(row) else Item(src, error="missing cell")


def _checked_rows(reader: Iterable[list[str]], source: str) -> Iterator[tuple[int, list[str]]]:
    """(record number, row) for each non-blank record, blank ones not counted (the header is
    record 0); raises IngestError naming the line where the CSV stops making sense."""
    width: int | None = None
    it = iter(reader)
    i = -1
    while True:
        try:
            row = next(it)
        except StopIteration:
            return
        except csv.Error as exc:
            line = getattr(reader, "line_num", "?")
            raise IngestError(shorten(f"{source}: malformed CSV near line {line}: {exc} (an unbalanced "
                                      "double quote?); no row of this file was read", 300)) from exc
        if not any(cell.strip() for cell in row):
            continue  # a blank record (runs of blank lines were removed before)
        i += 1
        if width is None:
            width = len(row)
        elif len(row) != width:
            line = getattr(reader, "line_num", "?")
            raise IngestError(shorten(f"{source}: malformed CSV: record {i} (ending on line {line}) has "
                                      f"{len(row)} fields, the header has {width} (an unbalanced double quote "
                                      "or an unquoted comma?); no row of this file was read", 300))
        yield i, row


def _labelled(prefix: str, entry: Entry, index: int, seen: dict[str, int]) -> str:
    """``item N`` in arrays; the key in objects, ``key (repeat N)`` for a key seen before."""
    if entry.key is None:
        return f"{prefix}item {index}"
    n = seen[entry.key] = seen.get(entry.key, 0) + 1
    key = shorten(entry.key, 120)
    return f"{prefix}{key}" if n == 1 else f"{prefix}{key} (repeat {n})"


def _array(text: str, start: int, source: str, prefix: str, limits: IngestLimits,
           ends: list[int] | None = None) -> Iterator[Unit | Item]:
    """Each element of the array at ``start`` a row, if any element is a structure."""
    pending = _Pending(limits.max_structures)
    for i, entry in enumerate(iter_values(text, start, limits.max_json_depth, ends=ends), 1):
        kind = "other" if entry.error else _kind(entry.value)
        try:
            yield from pending.add(_unit(f"{source}:{prefix}item {i}", text, entry),
                                   kind != "other" or bool(entry.error))
        except _Overflow:
            raise _overflow(text, entry.end, source, limits.max_structures) from None
    if not pending.found:
        raise NotStructureData("no structures")


def split_json(text: str, source: str, limits: IngestLimits) -> Iterator[Unit | Item]:
    """A Structure dict, CIF text, an array of them (or of records holding one), or an
    object whose values are structures, records or arrays of them (``{"structures": [...]}``,
    ``{id: structure}``, ``{"model": "x", "crystals": [...]}``); other values of an object
    are metadata. A repeated key is a row of its own. A value nested deeper than
    ``max_json_depth`` is one failure row; broken syntax is a failure row where it starts."""
    no_structures = NotStructureData(
        "no structures found (expected pymatgen Structure dicts with 'lattice' and 'sites', CIF text, "
        "an array of them, or an object holding them)")
    try:
        pos = skip_ws(text, 0)
        opener = text[pos:pos + 1]
        ends: list[int] = []
        if opener == "[":
            try:
                yield from _array(text, pos, source, "", limits, ends)
            except NotStructureData:
                raise no_structures from None
        elif opener == "{":
            yield from _object(text, pos, source, limits, no_structures, ends)
        else:
            value, end = decode_at(text, pos, limits.max_json_depth)
            if not (isinstance(value, str) and structure_text(value)):
                raise no_structures
            yield Unit(source, "text", value)
            ends.append(end)
        if ends and skip_ws(text, ends[0]) < len(text):
            yield Item(source, error=f"invalid JSON: extra data after the value (character {ends[0]}); "
                                     "the rest of the file was not read")
    except JsonTooDeep as exc:
        yield Item(source, error=str(exc))
    except NotStructureData:
        raise
    except IngestError:
        raise
    except ValueError as exc:
        yield Item(source, error=shorten(f"invalid JSON: {exc}"))


def _object(text: str, pos: int, source: str, limits: IngestLimits,
            no_structures: NotStructureData, ends: list[int]) -> Iterator[Unit | Item]:
    """The rows of a top-level object: itself when it is a Structure dict, else its values."""
    held: list[Unit | Item] = []
    seen: dict[str, int] = {}

    def hold(rows: Iterable[Unit | Item]) -> None:
        for row in rows:
            held.append(row)
            if len(held) > limits.max_structures:
                raise too_many_structures(limits.max_structures)

    for entry in iter_values(text, pos, limits.max_json_depth, lazy_arrays=True, ends=ends):
        key = entry.key or ""
        if key in STRUCTURE_KEYS or (key == "@class" and str(entry.value).endswith(("Structure", "Molecule"))):
            yield Unit(source, "text", text[pos:])  # one structure: parsed, bounded, by the reader
            return
        label = f"{source}:{_labelled('', entry, 0, seen)}"
        value = entry.value
        if entry.error:
            hold([Item(label, error=entry.error)])
        elif value is LAZY:
            array_end: list[int] = []
            try:
                hold(_array(text, entry.start, source, "" if key == "structures" else f"{label[len(source) + 1:]} ",
                            limits, array_end))
            except NotStructureData:
                if not array_end:  # cut short: nothing after it can be a structure (``_overflow``)
                    break
                # else an array of metadata
            entry.end = array_end[0]
        elif isinstance(value, dict) and not is_structure_dict(value) and \
                sum(_is_structure(v) for v in value.values()) > 1:  # {id: structure} under a key
            sub_seen: dict[str, int] = {}
            hold(_unit(f"{label}:{_labelled('', sub, 0, sub_seen)}", text, sub)
                 for sub in iter_values(text, entry.start, limits.max_json_depth))
        elif _kind(value) != "other" or (key.lower() in _NAMED and isinstance(value, (str, dict))):
            hold([_unit(label, text, entry)])
    if not held:
        raise no_structures
    yield from held


_LINE = re.compile(r"[^\r\n]*\S[^\r\n]*")
_NAMED = {c.lower() for c in STRUCTURE_COLUMNS}
_ANY_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_BLANK_RUN = re.compile(r"\n[ \t\r\n]*\n")  # a non-blank line (blank runs are skipped in C)


def split_jsonl(text: str, source: str, limits: IngestLimits) -> Iterator[Unit | Item]:
    """One Structure dict (or record, or CIF string) per line; ``:line N`` counts every line
    from 1, blank ones included (runs of blank lines are skipped in C)."""
    pending = _Pending(limits.max_structures)
    line, last = 1, 0
    for m in _LINE.finditer(text):
        line += text.count("\n", last, m.start())
        last = m.start()
        row, counts = _jsonl_row(f"{source}:line {line}", m.group(), limits)
        try:
            yield from pending.add(row, counts)
        except _Overflow:
            raise _overflow(text, m.end(), source, limits.max_structures) from None
    if not pending.found:
        raise NotStructureData("no structures found (one pymatgen Structure dict per line expected)")


def _jsonl_row(src: str, line: str, limits: IngestLimits) -> tuple[Unit | Item, bool]:
    """(row, whether it makes the file one of structures) for one non-blank JSONL line."""
    try:
        value, end = decode_at(line, 0, limits.max_json_depth)
    except JsonTooDeep as exc:
        return Item(src, error=str(exc)), True
    except ValueError as exc:
        return Item(src, error=shorten(f"invalid JSON: {exc}")), False
    if skip_ws(line, end) != len(line):
        return Item(src, error=f"invalid JSON: extra data after the value at character {end}"), False
    return _unit(src, line, Entry(None, 0, len(line), value)), _kind(value) != "other"
