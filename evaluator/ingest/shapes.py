"""What looks like a structure, from its text or its JSON value alone (cheap: no parsing).

Used to find structures whatever their column, key or member name: a CSV column of CIF
text, a JSON record ``{"id": 7, "cif": "data_..."}``, an array under any key.
"""

from __future__ import annotations

import re

from evaluator.ingest.checks import shorten
from evaluator.ingest.detect import STRUCTURE_COLUMNS

_CIF_TEXT = re.compile(r"^[ \t]*data_|_cell_length_a|_atom_site_fract_", re.M)
_STRUCTURE_JSON = re.compile(r'"(lattice|sites)"\s*:')
STRUCTURE_KEYS = ("lattice", "sites")


def cif_like(text: str) -> bool:
    """Whether a string holds CIF text (a ``data_`` line or cell/atom-site tags)."""
    return _CIF_TEXT.search(text) is not None


def structure_text(text: str) -> bool:
    """Whether a string (a CSV cell, a JSON string) holds CIF text or Structure JSON."""
    stripped = text.lstrip()
    return cif_like(text) or (stripped.startswith("{") and _STRUCTURE_JSON.search(text) is not None)


def is_structure_dict(obj: object) -> bool:
    """A pymatgen Structure/Molecule dict (or a broken one: it has a lattice or sites)."""
    return isinstance(obj, dict) and (
        any(k in obj for k in STRUCTURE_KEYS) or str(obj.get("@class", "")).endswith(("Structure", "Molecule")))


def is_structure(obj: object) -> bool:
    """A Structure dict or a string of CIF text / Structure JSON."""
    return is_structure_dict(obj) or (isinstance(obj, str) and structure_text(obj))


_NAMED = {c.lower() for c in STRUCTURE_COLUMNS}


def record_structure(obj: dict[str, object]) -> tuple[str | None, str | None]:
    """(key, None) of the one structure a record dict holds, e.g. ``{"id": 7, "cif": "data_..."}``:
    a key of STRUCTURE_COLUMNS holding text or an object (a structure, or a broken one), else
    any key whose value looks like a structure; (None, why) when it holds several, (None,
    None) when none."""
    named = [k for k, v in obj.items() if k.lower() in _NAMED and isinstance(v, (str, dict))]
    keys = [k for k, v in obj.items() if is_structure(v)]
    if len(named) == 1 or (not named and len(keys) == 1):
        return (named or keys)[0], None
    if len(keys) > 1:
        shown = shorten(", ".join(keys), 120)
        return None, f"several structures in one record (keys {shown}); give one structure per entry"
    return None, None




def is_record(obj: object) -> bool:
    """A dict that is no structure itself but holds one (or several) under some key."""
    return isinstance(obj, dict) and not is_structure_dict(obj) and (
        record_structure(obj) != (None, None))
