"""JSON parsing bounded in nesting depth, that keeps repeated keys, and cut entry by entry.

``json.loads`` recurses once per level and raises RecursionError on a deep enough
document (``[[[[...]]]]``); everything that later walks the object (pickling,
pymatgen's ``from_dict``, schema validation) recurses too. Structure JSON is a few
levels deep, so anything deeper than ``max_depth`` is refused with a clear reason.

A key repeated in one object (``{"a": s1, "a": s2}``) is not silently collapsed to its
last value: the object is a :class:`DuplicateKeys` that keeps every pair (json's
``object_pairs_hook``); callers turn each pair into a row, or refuse the object naming
the key (``first_duplicate``).

``iter_values`` cuts a top-level array or object into its values one at a time
(``json.JSONDecoder.raw_decode``), so a file of many entries is never held parsed as a
whole: only the entry being looked at is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any


class JsonTooDeep(ValueError):
    """The JSON document nests deeper than allowed."""


class DuplicateKeys(dict[str, Any]):
    """A JSON object in which a key appears more than once: the dict holds the last value
    of each key (what ``json`` would give), ``pairs`` every (key, value) in order."""

    def __init__(self, pairs: list[tuple[str, Any]]):
        super().__init__(pairs)
        self.pairs = pairs

    def repeated(self) -> list[str]:
        seen: set[str] = set()
        out: list[str] = []
        for key, _ in self.pairs:
            if key in seen and key not in out:
                out.append(key)
            seen.add(key)
        return out


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    return d if len(d) == len(pairs) else DuplicateKeys(pairs)


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs_hook)
_WS = re.compile(r"[ \t\n\r]*")


def too_deep_message(max_depth: int) -> str:
    return f"JSON nested too deeply: more than {max_depth} levels (max_json_depth)"


def duplicate_message(key: str) -> str:
    shown = key if len(key) <= 60 else key[:59] + "…"
    return f"duplicate key {shown!r} in one JSON object: each key may appear only once"


def nesting_depth(obj: object, stop_above: int) -> int:
    """Depth of nested lists/dicts in ``obj`` (a scalar is 0), without recursion; stops
    counting once it passes ``stop_above``."""
    deepest = 0
    stack: list[tuple[list[Any] | dict[Any, Any], int]] = [(obj, 1)] if isinstance(obj, (list, dict)) else []
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > stop_above:
            break
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (list, dict)))
    return deepest


def first_duplicate(obj: object) -> str | None:
    """The first key repeated within one object anywhere in ``obj``, or None (no recursion)."""
    stack: list[object] = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, DuplicateKeys):
            return node.repeated()[0]
        if isinstance(node, dict):
            stack.extend(v for v in node.values() if isinstance(v, (list, dict)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (list, dict)))
    return None


def _checked(obj: object, max_depth: int) -> object:
    if nesting_depth(obj, max_depth) > max_depth:
        raise JsonTooDeep(too_deep_message(max_depth))
    return obj


def load_json(text: str, max_depth: int) -> object:
    """``json.loads`` that raises JsonTooDeep (a ValueError) past ``max_depth`` levels;
    objects with a repeated key are DuplicateKeys."""
    try:
        obj: object = _DECODER.decode(text)
    except RecursionError as exc:
        raise JsonTooDeep(too_deep_message(max_depth)) from exc
    return _checked(obj, max_depth)


def decode_at(text: str, pos: int, max_depth: int) -> tuple[object, int]:
    """(value, end) of the JSON value starting at ``pos`` (whitespace skipped). Raises
    JsonTooDeep or ValueError (json.JSONDecodeError)."""
    pos = _WS.match(text, pos).end()  # type: ignore[union-attr]  # the pattern matches the empty string
    try:
        obj, end = _DECODER.raw_decode(text, pos)
    except RecursionError as exc:
        raise JsonTooDeep(too_deep_message(max_depth)) from exc
    return _checked(obj, max_depth), end


def skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]  # the pattern matches the empty string


class Entry:
    """One value of a container cut by ``iter_values``: its key (objects) or None, where it
    starts/ends in the text, and the value parsed (``None`` with ``error`` if it is not JSON)."""

    __slots__ = ("key", "start", "end", "value", "error")

    def __init__(self, key: str | None, start: int, end: int, value: object, error: str | None = None):
        self.key, self.start, self.end, self.value, self.error = key, start, end, value, error


LAZY = object()  # Entry.value of an array not parsed yet (``iter_values(..., lazy_arrays=True)``)


def iter_values(text: str, pos: int, max_depth: int, lazy_arrays: bool = False,
                ends: list[int] | None = None) -> Iterator[Entry]:
    """The values of the array or object starting at ``pos`` (``text[pos]`` is ``[`` or
    ``{``), one at a time, keys repeated or not. A value nested too deeply is an Entry with
    that error (and the walk goes on); broken syntax raises ValueError with the position.

    ``lazy_arrays``: an array value is not parsed; its Entry has ``value`` LAZY, and the
    consumer walks it (``iter_values(text, entry.start, ..., ends=[])``) and sets
    ``entry.end`` to where it ended before asking for the next value (if it does not, the
    array is parsed to find its end). ``ends`` gets the position after the closing bracket.
    """
    pos = skip_ws(text, pos)
    opener = text[pos]
    closer = "]" if opener == "[" else "}"
    pos = skip_ws(text, pos + 1)
    if text.startswith(closer, pos):
        if ends is not None:
            ends.append(pos + 1)
        return
    while True:
        key: str | None = None
        if opener == "{":
            if not text.startswith('"', pos):
                raise ValueError(f"expected a key (a quoted name) at character {pos}")
            key_obj, pos = _DECODER.raw_decode(text, pos)
            key = str(key_obj)
            pos = skip_ws(text, pos)
            if not text.startswith(":", pos):
                raise ValueError(f"expected ':' after key {key[:60]!r} at character {pos}")
            pos = skip_ws(text, pos + 1)
        start = pos
        if lazy_arrays and text.startswith("[", pos):
            entry = Entry(key, start, -1, LAZY)
            yield entry
            pos = entry.end if entry.end >= 0 else decode_at(text, start, max_depth)[1]
        else:
            try:
                value, pos = decode_at(text, pos, max_depth)
                yield Entry(key, start, pos, value)
            except JsonTooDeep as exc:
                end = _skip_value(text, start)
                yield Entry(key, start, end, None, str(exc))
                pos = end
        pos = skip_ws(text, pos)
        if text.startswith(",", pos):
            pos = skip_ws(text, pos + 1)
            continue
        if text.startswith(closer, pos):
            if ends is not None:
                ends.append(pos + 1)
            return
        raise ValueError(f"expected ',' or '{closer}' at character {pos}")


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def _skip_value(text: str, start: int) -> int:
    """End of the (deep) array/object starting at ``start``, by matching brackets (strings
    skipped): used only after a value was found too deep to parse."""
    depth = 0
    for m in _TOKEN.finditer(text, start):
        tok = m.group()
        if tok in "[{":
            depth += 1
        elif tok in "]}":
            depth -= 1
            if depth == 0:
                return m.end()
    raise ValueError("unterminated JSON array or object")
