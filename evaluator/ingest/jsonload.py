"""JSON parsing bounded in nesting depth.

``json.loads`` recurses once per level and raises RecursionError on a deep enough
document (``[[[[...]]]]``); everything that later walks the object (pickling,
pymatgen's ``from_dict``, schema validation) recurses too. Structure JSON is a few
levels deep, so anything deeper than ``max_depth`` is refused with a clear reason.
"""

from __future__ import annotations

import json
from typing import Any


class JsonTooDeep(ValueError):
    """The JSON document nests deeper than allowed."""


def too_deep_message(max_depth: int) -> str:
    return f"JSON nested too deeply: more than {max_depth} levels (max_json_depth)"


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


def load_json(text: str, max_depth: int) -> object:
    """``json.loads`` that raises JsonTooDeep (a ValueError) past ``max_depth`` levels."""
    try:
        obj: object = json.loads(text)
    except RecursionError as exc:
        raise JsonTooDeep(too_deep_message(max_depth)) from exc
    if nesting_depth(obj, max_depth) > max_depth:
        raise JsonTooDeep(too_deep_message(max_depth))
    return obj
