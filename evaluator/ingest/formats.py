"""Parsers for structure text formats: CIF, POSCAR, extxyz, Structure dicts.

``split_*`` cut a file into Units (one per block/frame; cheap text work, done by the
caller); ``structure_from_*`` build one structure from a Unit's text or dict (run under
a time limit, see ``units``). Neither raises for bad content: failures become Items
or reasons with a short ``error``.

pymatgen and ase are imported inside the ``structure_from_*`` functions: those run in
the reading child processes, so the process that only cuts files into Units (the app's
upload check) never loads them.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeGuard

from evaluator.config import IngestLimits
from evaluator.ingest.atomguard import cif_atom_problem, count_problem
from evaluator.ingest.checks import is_placeholder_symbol, reason, shorten, symbol_problem, unknown_element
from evaluator.ingest.jsonload import JsonTooDeep, load_json
from evaluator.ingest.types import Item, Parsed, StructureDict, Unit

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.io.cif import CifParser

# Same block split as pymatgen's CifFile.from_str, but duplicate names stay separate.
_CIF_BLOCK = re.compile(r"^\s*data_", re.M)
_CIF_PREFIX = re.compile(r"^No structure parsed for section \d+ in CIF\.\s*")
_POSSIBLE_ISSUE = "Possible issue in CIF file at line: "


def cif_blocks(text: str) -> list[str]:
    """The ``data_`` blocks of a CIF text (powder-pattern blocks dropped, like pymatgen)."""
    starts = [m.start() for m in _CIF_BLOCK.finditer(text)]
    blocks = [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]
    return [b for b in blocks if "powder_pattern" not in b.lstrip().split("\n", 1)[0]]


def _cif_reason(exc: Exception, caught: list[warnings.WarningMessage]) -> str:
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


def structure_from_cif(text: str, limits: IngestLimits | None = None) -> Parsed:
    """(structure, None) or (None, reason) for one CIF block.

    Blocks whose symmetry expansion exceeds ``limits.max_atoms_per_structure`` are
    refused before pymatgen expands them (see ``atomguard``).
    """
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser = CifParser.from_str(text)
            too_many = (cif_cell_problem(parser) or cif_symbol_problem(parser)
                        or cif_atom_problem(parser, limits or IngestLimits()))
            if too_many:
                return None, too_many
            structures = parser.parse_structures(primitive=False, on_error="raise")
        except Exception as exc:  # noqa: BLE001 - any parse failure is this structure's reason
            return None, _cif_reason(exc, caught)
    if len(structures) != 1:
        return None, f"expected one structure, the CIF block gave {len(structures)}"
    return structures[0], None


_CIF_SPECIAL_SYMBOLS = re.compile(r"Hw|Ow|Wat|wat|OH|NO3")  # pymatgen's CifParser reads these itself


def cif_symbol_problem(parser: CifParser) -> str | None:
    """``unknown_element`` for the first atom-site row whose element is not a chemical element.

    ``_atom_site_type_symbol`` must name an element (``Fe``, ``Fe3+``); pymatgen would read
    ``Uue`` as U from its first letter. Labels (used when there is no type symbol) are free
    text (``Oa1`` is an oxygen site), so only IUPAC placeholders (``Uue1``) are refused there.
    """
    for data in parser.as_dict().values():
        types = data.get("_atom_site_type_symbol")
        labels = data.get("_atom_site_label")
        if types is not None:
            for sym in types if isinstance(types, list) else [types]:
                if not _CIF_SPECIAL_SYMBOLS.match(str(sym)):
                    why = symbol_problem(str(sym))
                    if why:
                        return why
        elif labels is not None:
            for label in labels if isinstance(labels, list) else [labels]:
                if is_placeholder_symbol(str(label)):
                    return symbol_problem(str(label))
    return None


def cif_cell_problem(parser: CifParser) -> str | None:
    """Why a block's cell lengths are unusable: a length <= 0. pymatgen would build a
    left-handed cell from a negative length, with the supplements of two angles: a
    different crystal, so it is refused rather than normalised (other formats give the
    cell matrix itself; a left-handed matrix is normalised in ``checks.right_handed``)."""
    from pymatgen.io.cif import str2float

    for data in parser.as_dict().values():
        for axis in "abc":
            raw = data.get(f"_cell_length_{axis}")
            try:
                value = str2float(raw) if isinstance(raw, str) else None
            except (ValueError, TypeError):
                continue  # pymatgen reports it
            if value is not None and value <= 0:
                return shorten(f"invalid cell: _cell_length_{axis} = {raw} (cell lengths must be positive)")
    return None


def split_cif(text: str, source: str, limits: IngestLimits) -> Iterator[Unit | Item]:
    """One Unit per data block; source gets ``:block N`` when there are several."""
    blocks = cif_blocks(text)
    if not blocks:
        yield Item(source, error="not a CIF: no 'data_' block found")
        return
    for i, block in enumerate(blocks, 1):
        yield Unit(source if len(blocks) == 1 else f"{source}:block {i}", "cif", block)


def poscar_header(text: str) -> tuple[int | None, list[str]]:
    """(atoms listed in the counts line(s), species symbols) of a POSCAR header, read the way
    pymatgen's ``Poscar.from_str`` reads them (``#`` comments dropped, VASP 4 or 5, symbols
    over several lines); the count is None when the header cannot be read."""
    from pymatgen.util.io_utils import clean_lines

    head = text.lstrip("\ufeff").split("\n", 40)[:40]  # the header only, not a huge body
    lines = list(clean_lines(head, remove_empty_lines=False))
    try:
        return _positive_sum(int(i) for i in lines[5].split()), []  # VASP 4: counts, no symbols
    except (ValueError, IndexError):
        pass
    try:
        n_lines = 1
        for n_lines in range(1, 11):
            try:
                int(lines[5 + n_lines].split()[0])
                break
            except (ValueError, IndexError):
                pass
        symbols = [sym.split("/")[0].split("_")[0] for line in lines[5:5 + n_lines] for sym in line.split()]
        counts = [int(i) for line in lines[5 + n_lines:5 + 2 * n_lines] for i in line.split()]
    except (ValueError, IndexError):
        return None, []
    return (_positive_sum(counts), symbols) if counts else (None, [])


def _positive_sum(counts: Iterable[int]) -> int:
    return sum(max(0, c) for c in counts)


def poscar_atom_count(text: str) -> int | None:
    """Atoms listed in a POSCAR header (the counts line), or None if it cannot be read."""
    return poscar_header(text)[0]


def structure_from_poscar(text: str, limits: IngestLimits) -> Parsed:
    """(structure, None) or (None, reason) for one POSCAR/CONTCAR text."""
    from pymatgen.io.vasp.inputs import Poscar

    count, symbols = poscar_header(text)
    why = count_problem(count or 0, limits) or next(filter(None, map(symbol_problem, symbols)), None)
    if why:
        return None, why
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return Poscar.from_str(text, read_velocities=False).structure, None
        except Exception as exc:  # noqa: BLE001 - any parse failure is this structure's reason
            return None, reason("unreadable POSCAR", exc)


def split_poscar(text: str, source: str, limits: IngestLimits) -> Iterator[Unit | Item]:
    """A POSCAR holds one structure."""
    yield Unit(source, "poscar", text)


def structure_from_ase(atoms: Atoms, limits: IngestLimits | None = None) -> Parsed:
    """(structure, None) or (None, reason) for an ase Atoms."""
    from pymatgen.io.ase import AseAtomsAdaptor

    too_many = count_problem(len(atoms), limits or IngestLimits())
    if too_many:
        return None, too_many

    symbols: list[str] = sorted(set(atoms.get_chemical_symbols()))  # type: ignore[no-untyped-call]  # ase: untyped
    bad = next(filter(None, map(symbol_problem, symbols)), None)
    if bad:
        return None, bad
    pbc = [bool(x) for x in atoms.pbc]
    if not any(pbc) or atoms.cell.rank < 3:
        return None, "no periodic cell: give a 3D Lattice= (extxyz) with pbc=\"T T T\""
    if not all(pbc):
        return None, f"no periodic cell in every direction (pbc={pbc}); bulk crystals need pbc=\"T T T\""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return AseAtomsAdaptor.get_structure(atoms), None
        except Exception as exc:  # noqa: BLE001 - any conversion failure is this frame's reason
            return None, reason("unconvertible frame", exc)


def xyz_frames(text: str) -> list[str] | None:
    """The frames of an (ext)xyz text, cut at their atom-count lines; None when a count line
    cannot be read or blank lines sit between frames (the whole text then goes to ase)."""
    lines = text.rstrip().split("\n")
    frames: list[str] = []
    i = 0
    while i < len(lines):
        fields = lines[i].split()
        if len(fields) != 1 or not fields[0].isdigit():
            return None
        n = int(fields[0])
        frames.append("\n".join(lines[i:i + n + 2]) + "\n")
        i += n + 2
    return frames or None


def split_xyz(text: str, source: str, limits: IngestLimits) -> Iterator[Unit | Item]:
    """One Unit per frame (``:frame N`` when there are several); a frame whose count line is
    over the atom limit is refused before ase reads it."""
    frames = xyz_frames(text)
    if frames is None:
        yield Unit(source, "xyz", text)
        return
    for i, frame in enumerate(frames, 1):
        src = source if len(frames) == 1 else f"{source}:frame {i}"
        too_many = count_problem(int(frame.split(None, 1)[0]), limits)
        yield Item(src, error=too_many) if too_many else Unit(src, "xyz", frame)


def structures_from_xyz(text: str, limits: IngestLimits) -> list[Parsed]:
    """[(structure or None, reason or None)] for each frame of an extxyz/xyz text (via ase)."""
    import ase.io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            frames = ase.io.read(io.StringIO(text), index=":", format="extxyz")
        except KeyError as exc:  # ase: a species symbol it does not know
            sym = exc.args[0] if exc.args else ""
            if isinstance(sym, str) and re.fullmatch(r"[A-Za-z]{1,3}", sym):
                return [(None, unknown_element(sym))]
            return [(None, reason("unreadable extxyz", exc))]
        except Exception as exc:  # noqa: BLE001 - any read failure is the file's reason
            return [(None, reason("unreadable extxyz", exc))]
    if not frames:
        return [(None, "no frames in the xyz file")]
    return [structure_from_ase(atoms, limits) for atoms in frames]


def looks_like_structure_dict(obj: object) -> TypeGuard[StructureDict]:
    return isinstance(obj, dict) and (
        "sites" in obj or "lattice" in obj or str(obj.get("@class", "")).endswith(("Structure", "Molecule"))
        or isinstance(obj.get("structure"), (dict, str))
    )


def structure_from_dict(obj: StructureDict, limits: IngestLimits | None = None) -> Parsed:
    """(structure, None) or (None, reason) for a pymatgen Structure dict (or a dict holding one)."""
    from pymatgen.core.structure import Structure

    limits = limits or IngestLimits()
    if "sites" not in obj and isinstance(obj.get("structure"), (dict, str)):
        inner = obj["structure"]
        return structure_from_dict(inner, limits) if isinstance(inner, dict) else structure_from_text(inner, limits)
    if "Molecule" in str(obj.get("@class", "")) or "lattice" not in obj:
        return None, "no periodic cell: a Molecule or a dict without 'lattice', not a Structure"
    if isinstance(obj.get("sites"), list):
        too_many = count_problem(len(obj["sites"]), limits) or _dict_symbol_problem(obj["sites"])
        if too_many:
            return None, too_many
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return Structure.from_dict(obj), None
        except Exception as exc:  # noqa: BLE001 - any build failure is this structure's reason
            return None, reason("invalid Structure dict", exc)


def _dict_symbol_problem(sites: list[Any]) -> str | None:
    """``unknown_element`` for the first species of a Structure dict that names no element."""
    for site in sites:
        species = site.get("species") if isinstance(site, dict) else None
        for sp in species if isinstance(species, list) else []:
            element = sp.get("element") if isinstance(sp, dict) else None
            if isinstance(element, str):
                why = symbol_problem(element)
                if why:
                    return why
    return None


def structure_from_text(text: str, limits: IngestLimits | None = None) -> Parsed:
    """(structure, None) or (None, reason) for a cell holding CIF text or Structure JSON."""
    limits = limits or IngestLimits()
    text = (text or "").strip()
    if not text:
        return None, "empty cell"
    if text.startswith("{"):
        try:
            obj = load_json(text, limits.max_json_depth)
        except JsonTooDeep as exc:
            return None, str(exc)
        except ValueError as exc:
            return None, shorten(f"invalid JSON: {exc}")
        return structure_from_dict(obj, limits) if isinstance(obj, dict) else (None, "JSON is not an object")
    if "data_" in text or "_cell_length_a" in text:
        blocks = cif_blocks(text)
        if len(blocks) > 1:
            return None, f"{len(blocks)} CIF blocks in one cell; give one structure per row"
        return structure_from_cif(text, limits)
    return None, "neither CIF text nor pymatgen Structure JSON"
