"""Build a reference folder (``evaluator.identity.fingerprint_store`` format) from CIF files.

An offline builder (``python -m evaluator reference build --cifs DIR... --out PATH``):
each structure gets its BAWL fingerprint and matcher-reduced primitive size. Scoring
opens the result with ``evaluator.identity.built_reference.open_built_reference``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evaluator.identity import fingerprint as F
from evaluator.identity import matcher as M
from evaluator.identity.fingerprint_cache import cached_fingerprints
from evaluator.identity.fingerprint_store import Manifest, ReferenceWriter, structure_row
from evaluator.progress import Progress

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure


def find_cifs(dirs: Sequence[str | Path]) -> list[Path]:
    """All ``*.cif`` files under the given folders (or files), sorted per folder."""
    out: list[Path] = []
    for d in map(Path, dirs):
        if d.is_file():
            out.append(d)
        elif d.is_dir():
            out.extend(sorted(p for p in d.rglob("*") if p.suffix.lower() == ".cif"))
        else:
            raise ValueError(f"{d} is neither a file nor a folder")
    return out


def read_cif(path: Path) -> list[tuple[str, Structure]]:
    """[(id, Structure)] of one CIF file: id = file stem (``stem#k`` for block k > 0)."""
    from pymatgen.io.cif import CifParser  # seconds to import: only when CIFs are read

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structures = CifParser(path).parse_structures(primitive=False)
    return [(path.stem if k == 0 else f"{path.stem}#{k}", s) for k, s in enumerate(structures)]


def build_from_cifs(dirs: Sequence[str | Path], out: str | Path, ref_id: str | None = None,
                    description: str | None = None, processes: int = 2, limit: int | None = None,
                    progress: Progress | None = None) -> Manifest:
    """Write a reference folder from CIF files; returns its manifest.

    Each structure gets its BAWL fingerprint and matcher-reduced primitive size. Files
    that fail to parse, disordered structures (the matcher needs ordered sites) and
    structures whose fingerprint fails are recorded in ``manifest["skipped"]``
    (fingerprint failures are kept, without a fingerprint).
    """
    files = find_cifs(dirs)
    structures: list[Structure] = []
    ids: list[str] = []
    skipped: list[dict[str, str]] = []
    for i, f in enumerate(files, 1):
        try:
            for sid, s in read_cif(f):
                if not s.is_ordered:
                    skipped.append({"id": sid, "reason": "disordered structure"})
                    continue
                ids.append(sid)
                structures.append(s)
        except Exception as exc:  # noqa: BLE001 - a bad file is reported, not fatal
            skipped.append({"id": str(f), "reason": f"parse failed: {exc}"[:200]})
        if progress:
            progress("read CIFs", i, len(files))
        if limit and len(structures) >= limit:
            structures, ids = structures[:limit], ids[:limit]
            break

    def fingerprint_progress(done: int, total: int) -> None:
        if progress:
            progress("fingerprints", done, total)

    fps, _ = cached_fingerprints(structures, processes=processes,
                                 progress=fingerprint_progress if progress else None)
    matcher = M.make_matcher()
    out = Path(out)
    writer = ReferenceWriter(
        out, ref_id or out.name, description or f"built from CIFs in {', '.join(map(str, dirs))}",
        source={"kind": "cifs", "dirs": [str(d) for d in dirs], "n_files": len(files)},
        settings={"fingerprint": F.BAWL_SETTINGS, "matcher": M.describe()})
    for i, (sid, s, (fp, _, err)) in enumerate(zip(ids, structures, fps), 1):
        if err:
            skipped.append({"id": sid, "reason": f"kept without fingerprint: {err}"})
        prim: int | None
        try:
            prim = len(M.reduce_structure(s, matcher))
        except Exception:  # noqa: BLE001 - the size stays unknown; matching tries the row anyway
            prim = None
        writer.add(structure_row(s, sid, fp, prim, M.group_key(s)))
        if progress:
            progress("write", i, len(ids))
    return writer.finish({"skipped": skipped})
