"""What ingestion hands to the pipeline, and the records passed between its stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure


class IngestError(ValueError):
    """The upload as a whole is unusable (refused format, safety limit...).

    The message is shown to the user as is: say what is wrong and what to do.
    """


@dataclass
class Item:
    """One structure of the upload, in upload order.

    ``source`` names where it came from: file, archive member, CSV row or block
    (e.g. ``"gen.zip:cifs/a.cif"``, ``"table.csv:row 17"``, ``"multi.cif:block 3"``).
    Exactly one of ``structure`` / ``error`` is set (the upload check alone drops read
    structures: ``inspect_upload`` counts an Item without error as read, and keeps only its
    number of atoms, ``n_atoms``, for the time estimate, and its content digest, ``digest``
    (``evaluator.ingest.fingerprint``), to recognise the same structures uploaded again).
    """

    source: str
    structure: Structure | None = None
    error: str | None = None
    n_atoms: int | None = None  # set where the structure was dropped after reading
    digest: str | None = None  # likewise: fingerprint.structure_digest of the dropped structure


UnitKind = Literal["cif", "poscar", "xyz", "text", "dict"]
# A Structure dict (or a dict holding one) as JSON decodes it.
StructureDict: TypeAlias = "dict[str, Any]"
# What a parser gives for one structure: (structure, None) or (None, why it failed).
Parsed: TypeAlias = "tuple[Structure | None, str | None]"


@dataclass(frozen=True)
class Unit:
    """One structure's raw text or dict, cut out of an uploaded file, not parsed yet.

    ``kind`` says how to parse ``payload``: "cif" (one data block), "poscar", "xyz"
    (one frame, or a whole file ase must cut itself), "text" (CIF text or Structure
    JSON, e.g. a CSV cell) — all ``str`` — or "dict" (a Structure dict from JSON).
    Parsing happens under a time limit (``evaluator.ingest.units``); the result is one
    Item, or one per frame for a whole xyz file.
    """

    source: str
    kind: UnitKind
    payload: str | StructureDict


def too_many_structures(limit: int) -> IngestError:
    """The refusal for an upload holding more than ``limit`` structures (raised while files
    are cut, as soon as the count passes the limit)."""
    return IngestError(f"too many structures: more than {limit:,} (max_structures); submit fewer structures")
