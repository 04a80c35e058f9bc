"""Built references: make one from CIF folders, and open one as a ``Reference``."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from evaluator.data import DataDir
from evaluator.identity import fingerprint as F
from evaluator.identity import matcher as M
from evaluator.identity.fingerprint_store import ReferenceWriter, read_manifest, structure_row
from evaluator.reference import Reference


def open_built_reference(path: str | Path, data: DataDir | None = None) -> Reference:
    """A reference folder made by ``python -m evaluator reference build`` (or ``lemat``).

    Novelty: matcher-confirmed against its structures. It carries no energies, so it
    cannot score stability (``reference.hull`` raises).
    """
    from evaluator.identity.structure_index import StructureIndex

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


def find_cifs(dirs: Sequence[str | Path]) -> list[Path]:
    """All ``*.cif`` files under the given folders (or files), sorted per folder."""
    out: list[Path] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            out.append(d)
        elif d.is_dir():
            out.extend(sorted(p for p in d.rglob("*") if p.suffix.lower() == ".cif"))
        else:
            raise ValueError(f"{d} is neither a file nor a folder")
    return out


def read_cif(path: Path) -> list[tuple[str, object]]:
    """[(id, Structure)] of one CIF file: id = file stem (``stem#k`` for block k > 0)."""
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structures = CifParser(path).parse_structures(primitive=False)
    return [(path.stem if k == 0 else f"{path.stem}#{k}", s) for k, s in enumerate(structures)]


def build_from_cifs(dirs: Sequence[str | Path], out: str | Path, ref_id: str | None = None,
                    description: str | None = None, processes: int = 2, limit: int | None = None,
                    progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Write a reference folder from CIF files; returns its manifest.

    Each structure gets its BAWL fingerprint and matcher-reduced primitive size. Files
    that fail to parse, disordered structures (the matcher needs ordered sites) and
    structures whose fingerprint fails are recorded in ``manifest["skipped"]``
    (fingerprint failures are kept, without a fingerprint).
    """
    files = find_cifs(dirs)
    structures, ids, skipped = [], [], []
    for i, f in enumerate(files, 1):
        try:
            for sid, s in read_cif(f):
                if not s.is_ordered:
                    skipped.append({"id": sid, "reason": "disordered structure"})
                    continue
                ids.append(sid)
                structures.append(s)
        except Exception as exc:  # a bad file is reported, not fatal
            skipped.append({"id": str(f), "reason": f"parse failed: {exc}"[:200]})
        if progress:
            progress("read CIFs", i, len(files))
        if limit and len(structures) >= limit:
            structures, ids = structures[:limit], ids[:limit]
            break
    from evaluator.identity.cache import cached_fingerprints

    fps, _ = cached_fingerprints(structures, processes=processes,
                                 progress=(lambda i, n: progress("fingerprints", i, n)) if progress else None)
    matcher = M.make_matcher()
    out = Path(out)
    writer = ReferenceWriter(
        out, ref_id or out.name, description or f"built from CIFs in {', '.join(map(str, dirs))}",
        source={"kind": "cifs", "dirs": [str(d) for d in dirs], "n_files": len(files)},
        settings={"fingerprint": F.BAWL_SETTINGS, "matcher": M.describe()})
    for i, (sid, s, (fp, _, err)) in enumerate(zip(ids, structures, fps), 1):
        if err:
            skipped.append({"id": sid, "reason": f"kept without fingerprint: {err}"})
        try:
            prim = len(M.reduce_structure(s, matcher))
        except Exception:
            prim = None
        writer.add(structure_row(s, sid, fp, prim, M.group_key(s)))
        if progress:
            progress("write", i, len(ids))
    return writer.finish({"skipped": skipped})
