"""Parsers for structure text formats: CIF, POSCAR, extxyz, Structure dicts.

Each parser yields Items (one per block/frame/entry) and never raises for bad
content: failures become Items with a short ``error``.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator

from evaluator.config import IngestLimits
from evaluator.ingest.checks import finish, reason, shorten
from evaluator.ingest.types import Item

# Same block split as pymatgen's CifFile.from_str, but duplicate names stay separate.
_CIF_BLOCK = re.compile(r"^\s*data_", re.M)
_CIF_PREFIX = re.compile(r"^No structure parsed for section \d+ in CIF\.\s*")
_POSSIBLE_ISSUE = "Possible issue in CIF file at line: "


def cif_blocks(text: str) -> list[str]:
    """The ``data_`` blocks of a CIF text (powder-pattern blocks dropped, like pymatgen)."""
    starts = [m.start() for m in _CIF_BLOCK.finditer(text)]
    blocks = [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]
    return [b for b in blocks if "powder_pattern" not in b.lstrip().split("\n", 1)[0]]


def _cif_reason(exc: Exception, caught: list) -> str:
    msg = _CIF_PREFIX.sub("", str(exc)).strip()
    if msg == "Invalid CIF file with no structures!":
        msg = "no atoms could be read"
    m = re.fullmatch(r"'(_[\w.\-]+)'", msg)
    if m:
        msg = f"missing field {m.group(1)}"
    m = re.fullmatch(r"Occupancy ([\d.]+) exceeded tolerance\.", msg)
    if m:
        return f"invalid occupancy: occupancies on one site sum to {m.group(1)} > 1 (overlapping atoms?)"
    issues = [str(w.message)[len(_POSSIBLE_ISSUE):] for w in caught
              if str(w.message).startswith(_POSSIBLE_ISSUE)]
    if issues:
        msg += f" (unparsed text: {issues[0]!r})"
    return reason("unreadable CIF", ValueError(msg or type(exc).__name__))


def structure_from_cif(text: str):
    """(structure, None) or (None, reason) for one CIF block."""
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structures = CifParser.from_str(text).parse_structures(primitive=False, on_error="raise")
        except Exception as exc:
            return None, _cif_reason(exc, caught)
    if len(structures) != 1:
        return None, f"expected one structure, the CIF block gave {len(structures)}"
    return structures[0], None


def parse_cif(text: str, source: str, limits: IngestLimits) -> Iterator[Item]:
    """One Item per data block; source gets ``:block N`` when there are several."""
    blocks = cif_blocks(text)
    if not blocks:
        yield Item(source, error="not a CIF: no 'data_' block found")
        return
    for i, block in enumerate(blocks, 1):
        src = source if len(blocks) == 1 else f"{source}:block {i}"
        structure, why = structure_from_cif(block)
        yield finish(src, structure, limits) if structure is not None else Item(src, error=why)


def parse_poscar(text: str, source: str, limits: IngestLimits) -> Iterator[Item]:
    from pymatgen.io.vasp import Poscar

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            structure = Poscar.from_str(text, read_velocities=False).structure
        except Exception as exc:
            yield Item(source, error=reason("unreadable POSCAR", exc))
            return
    yield finish(source, structure, limits)


def structure_from_ase(atoms):
    """(structure, None) or (None, reason) for an ase Atoms."""
    from pymatgen.io.ase import AseAtomsAdaptor

    pbc = [bool(x) for x in atoms.pbc]
    if not any(pbc) or atoms.cell.rank < 3:
        return None, "no periodic cell: give a 3D Lattice= (extxyz) with pbc=\"T T T\""
    if not all(pbc):
        return None, f"no periodic cell in every direction (pbc={pbc}); bulk crystals need pbc=\"T T T\""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return AseAtomsAdaptor.get_structure(atoms), None
        except Exception as exc:
            return None, reason("unconvertible frame", exc)


def parse_xyz(text: str, source: str, limits: IngestLimits) -> Iterator[Item]:
    """extxyz/xyz via ase; one Item per frame (``:frame N`` when there are several)."""
    import ase.io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            frames = ase.io.read(io.StringIO(text), index=":", format="extxyz")
        except Exception as exc:
            yield Item(source, error=reason("unreadable extxyz", exc))
            return
    if not frames:
        yield Item(source, error="no frames in the xyz file")
    for i, atoms in enumerate(frames, 1):
        src = source if len(frames) == 1 else f"{source}:frame {i}"
        structure, why = structure_from_ase(atoms)
        yield finish(src, structure, limits) if structure is not None else Item(src, error=why)


def looks_like_structure_dict(obj) -> bool:
    return isinstance(obj, dict) and (
        "sites" in obj or "lattice" in obj or str(obj.get("@class", "")).endswith(("Structure", "Molecule"))
        or isinstance(obj.get("structure"), (dict, str))
    )


def structure_from_dict(obj):
    """(structure, None) or (None, reason) for a pymatgen Structure dict (or a dict holding one)."""
    from pymatgen.core import Structure

    if "sites" not in obj and isinstance(obj.get("structure"), (dict, str)):
        inner = obj["structure"]
        return structure_from_dict(inner) if isinstance(inner, dict) else structure_from_text(inner)
    if "Molecule" in str(obj.get("@class", "")) or "lattice" not in obj:
        return None, "no periodic cell: a Molecule or a dict without 'lattice', not a Structure"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return Structure.from_dict(obj), None
        except Exception as exc:
            return None, reason("invalid Structure dict", exc)


def structure_from_text(text: str):
    """(structure, None) or (None, reason) for a cell holding CIF text or Structure JSON."""
    import json

    text = (text or "").strip()
    if not text:
        return None, "empty cell"
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError as exc:
            return None, shorten(f"invalid JSON: {exc}")
        return structure_from_dict(obj) if isinstance(obj, dict) else (None, "JSON is not an object")
    if "data_" in text or "_cell_length_a" in text:
        blocks = cif_blocks(text)
        if len(blocks) > 1:
            return None, f"{len(blocks)} CIF blocks in one cell; give one structure per row"
        return structure_from_cif(text)
    return None, "neither CIF text nor pymatgen Structure JSON"
