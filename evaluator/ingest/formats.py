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
from evaluator.ingest.atomguard import cif_atom_problem, count_problem
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


def structure_from_cif(text: str, limits: IngestLimits | None = None):
    """(structure, None) or (None, reason) for one CIF block.

    Blocks whose symmetry expansion exceeds ``limits.max_atoms_per_structure`` are
    refused before pymatgen expands them (see ``atomguard``).
    """
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser = CifParser.from_str(text)
            too_many = cif_atom_problem(parser, limits or IngestLimits())
            if too_many:
                return None, too_many
            structures = parser.parse_structures(primitive=False, on_error="raise")
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
        structure, why = structure_from_cif(block, limits)
        yield finish(src, structure, limits) if structure is not None else Item(src, error=why)


def poscar_atom_count(text: str) -> int | None:
    """Atoms listed in a POSCAR header (the counts line), or None if it cannot be read."""
    lines = text.lstrip("\ufeff").split("\n", 8)  # the header only, not a huge body
    for line in lines[5:7]:  # VASP 5 has a species line before the counts
        fields = line.split()
        if fields and all(f.isdigit() for f in fields):
            return sum(int(f) for f in fields)
    return None


def parse_poscar(text: str, source: str, limits: IngestLimits) -> Iterator[Item]:
    from pymatgen.io.vasp import Poscar

    too_many = count_problem(poscar_atom_count(text) or 0, limits)
    if too_many:
        yield Item(source, error=too_many)
        return

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            structure = Poscar.from_str(text, read_velocities=False).structure
        except Exception as exc:
            yield Item(source, error=reason("unreadable POSCAR", exc))
            return
    yield finish(source, structure, limits)


def structure_from_ase(atoms, limits: IngestLimits | None = None):
    """(structure, None) or (None, reason) for an ase Atoms."""
    from pymatgen.io.ase import AseAtomsAdaptor

    too_many = count_problem(len(atoms), limits or IngestLimits())
    if too_many:
        return None, too_many

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
        structure, why = structure_from_ase(atoms, limits)
        yield finish(src, structure, limits) if structure is not None else Item(src, error=why)


def looks_like_structure_dict(obj) -> bool:
    return isinstance(obj, dict) and (
        "sites" in obj or "lattice" in obj or str(obj.get("@class", "")).endswith(("Structure", "Molecule"))
        or isinstance(obj.get("structure"), (dict, str))
    )


def structure_from_dict(obj, limits: IngestLimits | None = None):
    """(structure, None) or (None, reason) for a pymatgen Structure dict (or a dict holding one)."""
    from pymatgen.core import Structure

    limits = limits or IngestLimits()
    if "sites" not in obj and isinstance(obj.get("structure"), (dict, str)):
        inner = obj["structure"]
        return structure_from_dict(inner, limits) if isinstance(inner, dict) else structure_from_text(inner, limits)
    if "Molecule" in str(obj.get("@class", "")) or "lattice" not in obj:
        return None, "no periodic cell: a Molecule or a dict without 'lattice', not a Structure"
    if isinstance(obj.get("sites"), list):
        too_many = count_problem(len(obj["sites"]), limits)
        if too_many:
            return None, too_many
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return Structure.from_dict(obj), None
        except Exception as exc:
            return None, reason("invalid Structure dict", exc)


def structure_from_text(text: str, limits: IngestLimits | None = None):
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
        return structure_from_dict(obj, limits) if isinstance(obj, dict) else (None, "JSON is not an object")
    if "data_" in text or "_cell_length_a" in text:
        blocks = cif_blocks(text)
        if len(blocks) > 1:
            return None, f"{len(blocks)} CIF blocks in one cell; give one structure per row"
        return structure_from_cif(text, limits)
    return None, "neither CIF text nor pymatgen Structure JSON"
