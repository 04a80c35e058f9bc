"""What ingestion hands to the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymatgen.core import Structure


class IngestError(ValueError):
    """The upload as a whole is unusable (refused format, safety limit...).

    The message is shown to the user as is: say what is wrong and what to do.
    """


@dataclass
class Item:
    """One structure of the upload, in upload order.

    ``source`` names where it came from: file, archive member, CSV row or block
    (e.g. ``"gen.zip:cifs/a.cif"``, ``"table.csv:row 17"``, ``"multi.cif:block 3"``).
    Exactly one of ``structure`` / ``error`` is set.
    """

    source: str
    structure: "Structure | None" = None
    error: str | None = None
