"""Open a built reference folder (``evaluator.identity.fingerprint_store`` format) as a ``Reference``.

Building one from CIF files is an offline job: ``evaluator.build.reference_from_cifs``.
"""

from __future__ import annotations

from pathlib import Path

from evaluator.data import DataDir
from evaluator.identity.fingerprint_store import read_manifest
from evaluator.identity.structure_index import StructureIndex
from evaluator.reference import Reference


def open_built_reference(path: str | Path, data: DataDir | None = None) -> Reference:
    """A reference folder made by ``python -m evaluator reference build`` (or ``lemat``).

    Novelty: matcher-confirmed against its structures. It carries no energies, so it
    cannot score stability (``reference.hull`` raises). ``data`` is not used (a built
    reference lives outside the data directory); it keeps the loaders' signature.
    """
    path = Path(path).resolve()
    manifest = read_manifest(path)
    files = {"manifest": path / "manifest.json"}
    files.update({p["file"]: path / p["file"] for p in manifest["parts"]})
    return Reference(
        id=manifest["id"],
        description=manifest.get("description", ""),
        files=files,
        novelty_loader=lambda: StructureIndex(path),
        hull_loader=None,
        info={"path": str(path), "n_structures": manifest["n_rows"],
              "complete": bool(manifest.get("complete")), "source": manifest.get("source"),
              "novelty_equivalence": StructureIndex.equivalence},
    )
