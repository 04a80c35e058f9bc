"""References with structures: build from CIFs, LeMat-Bulk loader (local schema-identical
parquet), matcher-confirmed novelty, CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from evaluator.config import EvalConfig
from evaluator.context import EvalContext
from evaluator.data import DataDir
from evaluator.build.reference_from_cifs import build_from_cifs, find_cifs, read_cif
from evaluator.identity.built_reference import open_built_reference
from evaluator.build.lemat_fingerprints import LEMAT_ROWS, load_lemat
from evaluator.identity.fingerprint_store import read_manifest
from evaluator.identity.structure_index import StructureIndex
from evaluator.ingest.types import Item
from evaluator.pipeline import build_table, run_families
from evaluator.reference.registry import load_reference

warnings.filterwarnings("ignore", message=".*fractional coordinates rounded.*")
N_REF = 100


@pytest.fixture(scope="module")
def alex_files():
    return find_cifs([DataDir().path("structures/alexandria_sample")])[:N_REF]


@pytest.fixture(scope="module")
def alex_structures(alex_files):
    return [(f.stem, read_cif(f)[0][1]) for f in alex_files]


@pytest.fixture(scope="module")
def alex_ref(tmp_path_factory, alex_files):
    out = tmp_path_factory.mktemp("refs") / "alex100"
    build_from_cifs(alex_files, out, ref_id="alex100", processes=2)
    return out


def _ctx(items, reference):
    table, structures = build_table(items)
    return EvalContext(table, structures, EvalConfig(reference=reference), DataDir())


def test_build_manifest_and_reference(alex_ref, alex_structures):
    m = read_manifest(alex_ref)
    assert m["complete"] and m["n_rows"] == N_REF and m["id"] == "alex100"
    assert sum(p["rows"] for p in m["parts"]) == N_REF
    ref = load_reference(str(alex_ref), DataDir())
    assert ref.id == "alex100" and len(ref.content_hash) == 64
    assert ref.content_hash == open_built_reference(alex_ref).content_hash
    with pytest.raises(ValueError, match="no energies"):
        ref.hull  # noqa: B018 - the property raises
    idx = ref.novelty
    assert isinstance(idx, StructureIndex) and len(idx) == N_REF
    assert idx.n_fingerprints == N_REF
    # stored structures round-trip
    sid, s = alex_structures[7]
    row = int(np.nonzero([idx.row_id(r) == sid for r in range(len(idx))])[0][0])
    back = idx.structure(row)
    assert np.allclose(back.lattice.matrix, s.lattice.matrix)
    assert [x.symbol for x in back.species] == [x.symbol for x in s.species]
    assert np.allclose(back.frac_coords, s.frac_coords)


def test_reference_members_are_not_novel(alex_ref, alex_structures):
    """Its own structures (and their supercells / shuffled copies) are 0 % novel."""
    from pymatgen.core import Lattice, Structure

    items = [Item(sid, s) for sid, s in alex_structures]
    sup = alex_structures[3][1].copy()
    sup.make_supercell([2, 1, 1])
    shuffled = alex_structures[5][1]
    shuffled = Structure.from_sites([shuffled[i] for i in np.random.default_rng(0).permutation(len(shuffled))])
    new = Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    items += [Item("sup", sup), Item("shuffled", shuffled), Item("new", new)]
    ctx = _ctx(items, str(alex_ref))
    out = run_families(ctx, ["novelty"])
    t = ctx.table
    assert not t["novelty_novel"].iloc[:N_REF].any()
    assert t["novelty_match_id"].iloc[:N_REF].tolist() == [sid for sid, _ in alex_structures]
    assert t.loc[N_REF, "novelty_match_id"] == alex_structures[3][0]  # supercell: matcher, no fp hit
    assert not t.loc[N_REF, "novelty_fingerprint_hit"]
    assert t.loc[N_REF + 1, "novelty_match_id"] == alex_structures[5][0]
    assert bool(t.loc[N_REF + 2, "novelty_novel"])
    m = out["metrics"]["novelty"]
    assert m["novel_count"] == 1 and m["novel_frac_valid"] == pytest.approx(1 / (N_REF + 3))
    prov = out["provenance"]["novelty"]
    assert prov["reference"]["id"] == "alex100" and "StructureMatcher" in prov["equivalence"]
    assert prov["matching"]["matched_without_fingerprint_hit"] >= 1
    assert m["novel_as_submitted_count"] >= 2  # the fingerprint alone misses the supercell


def _lemat_rows(structures, with_fp):
    """Rows with LeMat-Bulk's schema (cartesian positions, lattice rows, species per site)."""
    from evaluator.identity.fingerprint import bawl_fingerprint

    rows = []
    for k, (sid, s) in enumerate(structures):
        comp = s.composition
        rows.append({
            "elements": sorted({e.symbol for e in comp}), "nsites": len(s),
            "chemical_formula_anonymous": comp.anonymized_formula,
            "chemical_formula_reduced": comp.reduced_formula,
            "chemical_formula_descriptive": comp.formula, "nelements": len(comp),
            "dimension_types": [1, 1, 1], "nperiodic_dimensions": 3,
            "lattice_vectors": s.lattice.matrix.tolist(), "immutable_id": f"lemat-{k}-{sid}",
            "cartesian_site_positions": s.cart_coords.tolist(), "species": "[]",
            "species_at_sites": [x.specie.symbol for x in s], "last_modified": "2025-01-01",
            "elements_ratios": [], "stress_tensor": [[0.0] * 3] * 3, "energy": -1.0 * k,
            "magnetic_moments": [], "forces": [[0.0] * 3] * len(s), "total_magnetization": None,
            "dos_ef": None, "functional": "pbe", "cross_compatibility": True,
            "entalpic_fingerprint": bawl_fingerprint(s) if (with_fp and k % 3) else None,
        })
    return rows


@pytest.fixture(scope="module")
def lemat_parquet(tmp_path_factory, alex_structures):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path_factory.mktemp("lemat") / "train-00000.parquet"
    pq.write_table(pa.Table.from_pylist(_lemat_rows(alex_structures[:20], with_fp=True)), path,
                   row_group_size=6)
    return path


def test_lemat_loader_resumes(tmp_path, lemat_parquet, alex_structures):
    out = tmp_path / "lemat"

    class Stop(Exception):
        pass

    def interrupt(done, total):
        assert total is None  # local files: no known total
        if done >= 13:
            raise Stop

    with pytest.raises(Stop):  # a crash after 13 rows: parts of 4 rows hold 12
        load_lemat(out, data_files=[lemat_parquet], part_rows=4, progress=interrupt, progress_every=1)
    m = read_manifest(out)
    assert not m["complete"] and m["n_rows"] == 12 and m["progress"]["rows"] == 12
    with pytest.raises(ValueError, match="incomplete"):
        StructureIndex(out)
    final = load_lemat(out, data_files=[lemat_parquet], part_rows=4)
    assert final["complete"] and final["n_rows"] == 20 and final["rows_read"] == 20
    idx = StructureIndex(out)
    ids = [idx.row_id(r) for r in range(len(idx))]
    assert ids == [f"lemat-{k}-{sid}" for k, (sid, _) in enumerate(alex_structures[:20])]
    assert idx.n_fingerprints == sum(1 for k in range(20) if k % 3)
    s = alex_structures[4][1]
    assert np.allclose(idx.structure(4).frac_coords % 1.0, s.frac_coords % 1.0, atol=1e-8)
    assert LEMAT_ROWS == 5_335_299
    # a source change is refused
    with pytest.raises(ValueError):
        load_lemat(out, data_files=[lemat_parquet], limit=3)


def test_lemat_reference_novelty(tmp_path, lemat_parquet, alex_structures):
    out = tmp_path / "lemat_ref"
    load_lemat(out, data_files=[lemat_parquet], limit=15)
    assert read_manifest(out)["n_rows"] == 15
    items = [Item(sid, s) for sid, s in alex_structures[:20]]
    ctx = _ctx(items, str(out))
    run_families(ctx, ["novelty"])
    novel = ctx.table["novelty_novel"].tolist()
    assert novel[:15] == [False] * 15 and novel[15:] == [True] * 5
    # rows without a stored fingerprint (k % 3 == 0) are still found by the matcher
    assert ctx.table.loc[0, "novelty_match_id"] == f"lemat-0-{alex_structures[0][0]}"


def test_cli_build_and_info(tmp_path, alex_files, capsys):
    from evaluator.cli import main

    out = tmp_path / "cli_ref"
    assert main(["reference", "build", "--cifs", *map(str, alex_files[:5]), "--out", str(out),
                 "--processes", "1"]) == 0
    assert read_manifest(out)["n_rows"] == 5
    assert main(["reference", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["id"] == "cli_ref" and info["n_structures"] == 5
    assert main(["reference", "build", "--cifs", str(alex_files[0]), "--out", str(out)]) == 2
