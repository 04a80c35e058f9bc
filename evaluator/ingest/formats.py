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
import itertools
import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evaluator.config import IngestLimits
from evaluator.ingest.atomguard import cif_atom_problem, count_problem
from evaluator.ingest.checks import (cell_volume_problem, count_mismatch, is_placeholder_symbol, missing_species,
                                     occupancy_problem, occupancy_sum_problem, reason, shorten, symbol_problem,
                                     unknown_element)
from evaluator.ingest.jsonload import JsonTooDeep, duplicate_message, first_duplicate, load_json
from evaluator.ingest.shapes import cif_like, is_structure_dict, record_structure
from evaluator.ingest.types import IngestError, Item, Parsed, StructureDict, Unit

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.io.cif import CifParser

# A block starts at a ``data_`` line outside a text field; a text field runs from a line
# starting with ``;`` to the next one (CIF 1.1 syntax). pymatgen's CifFile.from_str cuts at
# every ``data_`` line, text fields included, and drops blocks named ``*powder_pattern*``
# whatever they hold; here every block is kept and judged by its content.
_CIF_EVENT = re.compile(r"^(?:(;)|[ \t]*data_)", re.M)
_CIF_STRUCTURE_TAG = re.compile(r"^[ \t]*_(atom_site_|cell_length_|cell_angle_)", re.M)
_CIF_PREFIX = re.compile(r"^No structure parsed for section \d+ in CIF\.\s*")
_POSSIBLE_ISSUE = "Possible issue in CIF file at line: "
# Put before a ``data_`` line inside a text field so that pymatgen does not cut there: not
# whitespace for its split, and removed (non-ASCII) by its tokenizer, so the text is unchanged.
_TEXT_FIELD_MASK = "\u200b"


def cif_blocks(text: str) -> Iterator[str]:
    """The ``data_`` blocks of a CIF text, in order, one at a time; a ``data_`` line inside a
    text field (``;`` ... ``;``) stays in its block (masked for pymatgen)."""
    start: int | None = None
    masked: list[int] = []
    in_field = False
    for m in _CIF_EVENT.finditer(text):
        if m.group(1):
            in_field = not in_field
        elif in_field:
            masked.append(m.start())
        else:
            if start is not None:
                yield _masked(text, start, m.start(), masked)
            start, masked = m.start(), []
    if start is not None:
        yield _masked(text, start, len(text), masked)


def _masked(text: str, start: int, end: int, masked: list[int]) -> str:
    if not masked:
        return text[start:end]
    cuts = [start, *masked, end]
    return _TEXT_FIELD_MASK.join(text[a:b] for a, b in zip(cuts, cuts[1:]))


def is_structure_block(block: str) -> bool:
    """Whether a CIF block holds cell or atom-site data (else it is e.g. a publication or
    powder-pattern block, which describes no structure)."""
    return _CIF_STRUCTURE_TAG.search(block) is not None


def _cif_reason(exc: Exception, caught: list[warnings.WarningMessage]) -> str:
    if isinstance(exc, ZeroDivisionError) or str(exc).startswith("zip() argument"):
        return ("unreadable CIF: a loop_ lists column names but no values, or a number of values that "
                "does not fill its columns (an empty atom-site loop?)")
    msg = _CIF_PREFIX.sub("", str(exc)).strip()
    if msg == "Invalid CIF file with no structures!":
        msg = "no atoms could be read"
    m = re.fullmatch(r"'(_[\w.\-]+)'", msg)
    if m:
        msg = f"missing field {m.group(1)}"
    m = re.fullmatch(r"Occupancy ([\d.]+) exceeded tolerance\.", msg)
    if m:
        return occupancy_sum_problem(float(m.group(1)))
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

    text = _POWDER_NAME.sub(r"\1structure", text, count=1)  # pymatgen would drop the block by its name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser = CifParser.from_str(text)
            too_many = (cif_cell_problem(parser) or cif_symbol_problem(parser) or cif_occupancy_problem(parser)
                        or cif_atom_problem(parser, limits or IngestLimits()))
            if too_many:
                return None, too_many
            structures = parser.parse_structures(primitive=False, on_error="raise")
        except Exception as exc:  # noqa: BLE001 - any parse failure is this structure's reason
            return None, _cif_reason(exc, caught)
    if len(structures) != 1:
        return None, f"expected one structure, the CIF block gave {len(structures)}"
    return structures[0], None


_POWDER_NAME = re.compile(r"^([ \t]*data_)\S*powder_pattern\S*", re.M)


def cif_occupancy_problem(parser: CifParser) -> str | None:
    """``occupancy_problem`` for the first atom-site row whose occupancy is zero, negative or
    not finite (pymatgen would drop that row without a word)."""
    for data in parser.as_dict().values():
        occus = data.get("_atom_site_occupancy")
        if occus is None:
            continue
        occus = occus if isinstance(occus, list) else [occus]
        labels = data.get("_atom_site_label") or [str(i) for i in range(1, len(occus) + 1)]
        labels = labels if isinstance(labels, list) else [labels]
        for i, raw in enumerate(occus):
            value, _ = _cif_number({"x": raw}, "x")
            if value is not None:
                why = occupancy_problem(value, labels[i] if i < len(labels) else str(i + 1))
                if why:
                    return why
    return None


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


def _cif_number(data: dict[str, Any], key: str) -> tuple[float | None, str]:
    """(value, as written) of a CIF number field; None when absent or unreadable (pymatgen
    then reports it)."""
    from pymatgen.io.cif import str2float

    raw = data.get(key)
    try:
        return (str2float(raw) if isinstance(raw, str) else None), str(raw)
    except (ValueError, TypeError):
        return None, str(raw)


def cif_cell_problem(parser: CifParser) -> str | None:
    """Why a block's cell is unusable, in the CIF's own terms: a length <= 0 (pymatgen would
    build a left-handed cell from a negative length, with the supplements of two angles: a
    different crystal, so it is refused rather than normalised; other formats give the cell
    matrix itself, normalised in ``checks.right_handed``), an angle outside (0, 180)
    degrees, angles that close no cell, or a volume of (near) zero."""
    for data in parser.as_dict().values():
        lengths = [_cif_number(data, f"_cell_length_{axis}") for axis in "abc"]
        for axis, (value, raw) in zip("abc", lengths):
            if value is not None and value <= 0:
                return shorten(f"invalid cell: _cell_length_{axis} = {raw} (cell lengths must be positive)")
        angles = [_cif_number(data, f"_cell_angle_{name}") for name in ("alpha", "beta", "gamma")]
        for name, (value, raw) in zip(("alpha", "beta", "gamma"), angles):
            if value is not None and math.isfinite(value) and not 0 < value < 180:
                return shorten(f"degenerate cell: _cell_angle_{name} = {raw} degrees (angles must be strictly "
                               "between 0 and 180)")
        values = [v for v, _ in lengths + angles if v is not None and math.isfinite(v)]
        if len(values) < 6:
            continue  # missing or non-finite: reported by pymatgen or the NaN checks
        why = cell_volume_problem(*values)
        if why:
            return why
    return None


def split_cif(text: str, source: str, limits: IngestLimits) -> Iterator[Unit | Item]:
    """One Unit per data block holding a structure, whatever the block's name; source gets
    ``:block N`` (N counts every block) when the file has several. Blocks without cell or
    atom-site data describe no structure and give no row, unless no block has any; more than
    ``max_structures`` of them refuse the upload (each costs a cut; structures are counted
    by the caller)."""
    blocks = cif_blocks(text)
    first = next(blocks, None)
    if first is None:
        yield Item(source, error="not a CIF: no 'data_' block found")
        return
    second = next(blocks, None)
    if second is None:
        yield Unit(source, "cif", first)
        return
    n_structures = 0
    for i, block in enumerate(itertools.chain((first, second), blocks), 1):
        if is_structure_block(block):
            n_structures += 1
            yield Unit(f"{source}:block {i}", "cif", block)
        elif i - n_structures > limits.max_structures:
            raise IngestError(f"too many CIF data blocks without a structure in {shorten(source, 160)}: more "
                              f"than {limits.max_structures:,} (max_structures); leave them out of the upload")
    if not n_structures:
        yield Item(source, error=f"no structure in the CIF: none of its {i} data blocks has cell or atom-site data")


@dataclass(frozen=True)
class PoscarHeader:
    """A POSCAR header read the way pymatgen's ``Poscar.from_str`` reads it: the counts, the
    species symbols (None: VASP 4, no symbols line) and the index of the first line after
    the header (the coordinate-mode line)."""

    counts: list[int]
    symbols: list[str] | None
    mode_line: int

    @property
    def n_atoms(self) -> int:
        return sum(max(0, c) for c in self.counts)


def poscar_header(text: str) -> PoscarHeader | None:
    """The header of a POSCAR text (``#`` comments dropped, VASP 4 or 5, symbols over several
    lines), or None when it cannot be read; only the first lines are looked at."""
    from pymatgen.util.io_utils import clean_lines

    head = text.lstrip("\ufeff").split("\n", 40)[:40]  # the header only, not a huge body
    lines = list(clean_lines(head, remove_empty_lines=False))
    try:
        return PoscarHeader([int(i) for i in lines[5].split()], None, 6)  # VASP 4: counts, no symbols
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
        return None
    return PoscarHeader(counts, symbols, 5 + 2 * n_lines) if counts else None


def poscar_atom_count(text: str) -> int | None:
    """Atoms listed in a POSCAR header (the counts line), or None if it cannot be read."""
    header = poscar_header(text)
    return header.n_atoms if header else None


def _poscar_positions(text: str, header: PoscarHeader) -> int:
    """Coordinate lines after the header, counted the way pymatgen reads them (up to the first
    blank line)."""
    from pymatgen.util.io_utils import clean_lines

    chunk = re.split(r"\n\s*\n", text.lstrip("\ufeff").rstrip(), maxsplit=1)[0]
    lines = list(clean_lines(chunk.split("\n"), remove_empty_lines=False))
    first = header.mode_line + 1
    if len(lines) > header.mode_line and lines[header.mode_line].strip()[:1] in ("s", "S"):
        first += 1  # Selective dynamics
    return sum(1 for line in lines[first:] if line.strip())


def poscar_problem(header: PoscarHeader | None, limits: IngestLimits) -> str | None:
    """Why a POSCAR header cannot give a structure, before pymatgen reads it (None: fine or
    unreadable, then pymatgen says why)."""
    if header is None:
        return None
    negative = [c for c in header.counts if c < 0]
    if negative:
        return f"invalid atom count {negative[0]} in the POSCAR counts line (counts must be positive)"
    why = count_problem(header.n_atoms, limits)
    if why or header.symbols is None:
        return why
    bad = next(filter(None, map(symbol_problem, header.symbols)), None)
    if bad:
        return bad
    if len(header.symbols) != len(header.counts):
        return shorten(f"species/count mismatch: the POSCAR names {len(header.symbols)} species "
                       f"({' '.join(header.symbols)}) but gives {len(header.counts)} counts "
                       f"({' '.join(map(str, header.counts))})")
    return None


_NO_SPECIES = "Elements in POSCAR cannot be determined"


def structure_from_poscar(text: str, limits: IngestLimits) -> Parsed:
    """(structure, None) or (None, reason) for one POSCAR/CONTCAR text. Species are never
    made up: a VASP 4 POSCAR (no symbols line) is read only when its coordinate lines end
    with the symbols."""
    from pymatgen.io.vasp.inputs import Poscar

    header = poscar_header(text)
    why = poscar_problem(header, limits)
    if why:
        return None, why
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structure = Poscar.from_str(text, read_velocities=False).structure
        except IndexError as exc:
            if header is None:
                return None, ("unreadable POSCAR: the header ends before the counts line (7 lines: comment, "
                              "scale, 3 lattice vectors, symbols, counts; no blank line among them)")
            listed = _poscar_positions(text, header)
            if listed < header.n_atoms:
                return None, count_mismatch(header.n_atoms, listed, "the POSCAR counts line")
            return None, reason("unreadable POSCAR", exc)
        except Exception as exc:  # noqa: BLE001 - any parse failure is this structure's reason
            return None, reason("unreadable POSCAR", exc)
    if any(str(w.message).startswith(_NO_SPECIES) for w in caught):
        return None, missing_species("the POSCAR has no element symbols (VASP 4 format without a species line); "
                                     "add a line of symbols above the counts line")
    return structure, None


def split_poscar(text: str, source: str, limits: IngestLimits) -> Iterator[Unit | Item]:
    """A POSCAR holds one structure."""
    yield Unit(source, "poscar", text)


def structure_from_ase(atoms: Atoms, limits: IngestLimits | None = None) -> Parsed:
    """(structure, None) or (None, reason) for an ase Atoms."""
    from pymatgen.io.ase import AseAtomsAdaptor

    too_many = count_problem(len(atoms), limits or IngestLimits())
    if too_many:
        return None, too_many

    numbers = [int(z) for z in atoms.numbers]
    if 0 in numbers:
        return None, missing_species(f"atom {numbers.index(0) + 1} has no element (give a species column: "
                                     "Properties=species:S:1:pos:R:3)")
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


_XYZ_BLANK = re.compile(r"(?:[ \t]*\r?\n)*")


def xyz_frames(text: str, limit: int) -> tuple[list[tuple[int, int, int]], str | None]:
    """([(declared atoms, start, end) of each frame], why the rest could not be cut) for an
    (ext)xyz text cut at its atom-count lines, without holding any frame; blank lines between
    frames are skipped. Stops past ``limit`` frames (the caller's structure limit then
    refuses the upload), so millions of empty frames cost neither time nor memory. A last
    frame shorter than its count is cut as it is (ase then says so)."""
    spans: list[tuple[int, int, int]] = []
    pos, end = _XYZ_BLANK.match(text, 0).end(), len(text)  # type: ignore[union-attr]  # matches ""
    while pos < end and len(spans) <= limit:
        eol = text.find("\n", pos)
        eol = end if eol < 0 else eol
        fields = text[pos:eol].split()
        if len(fields) != 1 or not fields[0].isdigit():
            line = text.count("\n", 0, pos) + 1
            found = shorten(text[pos:min(eol, pos + 60)], 40)
            return spans, (f"unreadable extxyz: line {line} should hold the number of atoms of a frame, "
                           f"found {found!r}" + ("; the rest of the file was not read" if spans else ""))
        n = int(fields[0])
        stop = eol
        for _ in range(min(n, 10**7) + 1):  # the comment line and n atom lines
            if stop >= end:
                break
            nxt = text.find("\n", stop + 1)
            stop = end if nxt < 0 else nxt
        spans.append((n, pos, stop))
        pos = _XYZ_BLANK.match(text, min(stop + 1, end)).end()  # type: ignore[union-attr]
    return spans, None


def split_xyz(text: str, source: str, limits: IngestLimits) -> Iterator[Unit | Item]:
    """One Unit per frame (``:frame N`` when there are several); a frame whose count line is
    over the atom limit is refused before ase reads it; a line that should be a count and
    is not ends the file with a row saying where."""
    spans, problem = xyz_frames(text, limits.max_structures)
    single = len(spans) + (problem is not None) == 1
    for i, (n, a, b) in enumerate(spans, 1):
        src = source if single else f"{source}:frame {i}"
        too_many = count_problem(n, limits)
        yield Item(src, error=too_many) if too_many else Unit(src, "xyz", text[a:b].rstrip("\r\n") + "\n")
    if problem:
        yield Item(source if single else f"{source}:frame {len(spans) + 1}", error=shorten(problem))


_ASE_COUNT = re.compile(r"Frame has (\d+) atoms, expected (\d+)")


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
            m = _ASE_COUNT.search(str(exc))
            if m:
                return [(None, count_mismatch(int(m.group(2)), int(m.group(1)), "the frame's count line"))]
            return [(None, reason("unreadable extxyz", exc))]
    if not frames:
        return [(None, "no frames in the xyz file")]
    return [structure_from_ase(atoms, limits) for atoms in frames]


def structure_from_dict(obj: StructureDict, limits: IngestLimits | None = None) -> Parsed:
    """(structure, None) or (None, reason) for a pymatgen Structure dict (or a record holding one)."""
    from pymatgen.core.structure import Structure

    limits = limits or IngestLimits()
    repeated = first_duplicate(obj)
    if repeated is not None:
        return None, duplicate_message(repeated)
    if not is_structure_dict(obj):
        key, why = record_structure(obj)
        if key is None:
            return None, why or "not a structure: a JSON object without 'lattice' and 'sites'"
        inner = obj[key]
        if isinstance(inner, dict):
            return structure_from_dict(inner, limits)
        return structure_from_text(str(inner), limits)
    if "Molecule" in str(obj.get("@class", "")) or "lattice" not in obj:
        return None, "no periodic cell: a Molecule or a dict without 'lattice', not a Structure"
    if isinstance(obj.get("sites"), list):
        too_many = (count_problem(len(obj["sites"]), limits) or _dict_symbol_problem(obj["sites"])
                    or _dict_site_problem(obj["sites"]))
        if too_many:
            return None, too_many
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return Structure.from_dict(obj), None
        except Exception as exc:  # noqa: BLE001 - any build failure is this structure's reason
            if "occupancies sum to more than 1" in str(exc):
                return None, occupancy_sum_problem(_largest_site_sum(obj["sites"]))
            return None, reason("invalid Structure dict", exc)


def _largest_site_sum(sites: list[Any]) -> float:
    sums = [sum(float(sp.get("occu", 1)) for sp in site["species"] if isinstance(sp, dict))
            for site in sites if isinstance(site, dict) and isinstance(site.get("species"), list)]
    return max(sums, default=float("nan"))


def _dict_site_problem(sites: list[Any]) -> str | None:
    """Missing species or an occupancy that is zero, negative or not finite, on the first
    site of a Structure dict that has one (same reasons as CIF)."""
    for i, site in enumerate(sites, 1):
        if not isinstance(site, dict):
            continue
        label = str(site.get("label") or i)
        species = site.get("species")
        if isinstance(species, list) and not species:
            return missing_species(f"site {label} has no species")
        for sp in species if isinstance(species, list) else []:
            occu = sp.get("occu", 1) if isinstance(sp, dict) else 1
            if isinstance(occu, (int, float)) and not isinstance(occu, bool):
                why = occupancy_problem(float(occu), label)
                if why:
                    return why
    return None


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
    if cif_like(text):
        blocks = [b for b in cif_blocks(text) if is_structure_block(b)]
        if len(blocks) > 1:
            return None, f"{len(blocks)} CIF blocks in one cell; give one structure per row"
        return structure_from_cif(blocks[0] if blocks else text, limits)
    return None, "neither CIF text nor pymatgen Structure JSON"
