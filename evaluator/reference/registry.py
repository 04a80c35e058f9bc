"""Registered references (each entry builds a Reference from the data directory) and
``load_reference``, which opens a registered id or a built reference folder."""

from __future__ import annotations

from pathlib import Path

from evaluator.data import DataDir
from evaluator.identity.fingerprint_index import load_fingerprint_file
from evaluator.identity.fingerprint_store import read_manifest
from evaluator.reference import Reference
from evaluator.reference.coverage import built_coverage, mp20_coverage

MP20_DIR = "reference/mp20"


def mp20(data: DataDir) -> Reference:
    """Embedded default: MP-20 BAWL fingerprints (novelty) + MP-20 DFT hull (stability)."""
    from evaluator.reference.hull import load_mp20_hull

    fp = data.path(f"{MP20_DIR}/mp20_bawl_fingerprints.txt.gz")
    hull = data.path(f"{MP20_DIR}/mp20_hull.parquet")
    elements = data.path(f"{MP20_DIR}/mp_elemental_reference_entries.json.gz")
    return Reference(
        id="mp20",
        description="MP-20 (45,229 Materials Project structures): BAWL fingerprints, MP2020 DFT hull",
        files={"fingerprints": fp, "hull": hull, "elemental_references": elements},
        novelty_loader=lambda: load_fingerprint_file(fp),
        hull_loader=lambda: load_mp20_hull(data),
        info={"novelty_equivalence": "BAWL fingerprint equality (sites as submitted or species-sorted)",
              "hull_energy_scale": "dft-mp2020"},
        coverage_loader=lambda: mp20_coverage(fp, hull),
    )


REFERENCES = {"mp20": mp20}


def load_built_reference(path: Path, data: DataDir) -> Reference:
    """A reference made by ``python -m evaluator reference build``."""
    from evaluator.identity.built_reference import open_built_reference

    ref = open_built_reference(path, data)
    ref.coverage_loader = lambda: built_coverage(path, read_manifest(path))
    return ref


def load_reference(name: str, data: DataDir) -> Reference:
    """A registered reference id (e.g. ``mp20``) or a path to a built reference."""
    if name in REFERENCES:
        return REFERENCES[name](data)
    if Path(name).exists():
        return load_built_reference(Path(name), data)
    raise ValueError(f"unknown reference '{name}': use one of {sorted(REFERENCES)} or a path "
                     "made by 'python -m evaluator reference build'")
