"""Reference coverage (provenance.reference.coverage) and the per-structure coverage flags."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from evaluator.config import EvalConfig
from evaluator.context import EvalContext
from evaluator.data import DataDir
from evaluator.identity import matcher as M
from evaluator.identity.fingerprint_store import ReferenceWriter, structure_row
from evaluator.ingest.types import Item
from evaluator.pipeline import build_table, run_families
from evaluator.reference.registry import load_reference
from evaluator.reference.coverage import beyond_reference_size, formula_sites, sparse_chemsys

warnings.filterwarnings("ignore", message=".*electronegativity.*")


def rocksalt(a="Na", b="Cl", lat=5.64) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(lat), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def doped(cells: int) -> Structure:
    """Conventional rocksalt NaCl repeated ``cells`` times along a, one Na -> K: no translation
    symmetry is left, so the primitive cell is the whole 8·cells-site cell."""
    s = rocksalt()
    s.make_supercell([cells, 1, 1])
    s.replace(0, "K")
    return s


@pytest.fixture(scope="module")
def small_ref(tmp_path_factory):
    """A built reference (store format) of rocksalt NaCl and a 16-site doped cell."""
    out = tmp_path_factory.mktemp("ref") / "tiny"
    w = ReferenceWriter(out, "tiny", "two structures", source={"kind": "cifs"}, settings={})
    for sid, s in (("nacl", rocksalt()), ("doped16", doped(2))):
        w.add(structure_row(s, sid, None, len(M.reduce_structure(s)), M.group_key(s)))
    w.finish({})
    return out


def test_formula_sites():
    assert formula_sites("Cr4Fe1Cu1Se8") == 14 and formula_sites("NaCl") == 2 and formula_sites("O2.5Fe") == 4


def test_mp20_coverage_is_described():
    cov = load_reference("mp20", DataDir()).describe()["coverage"]
    assert cov["max_sites"] == 20 and 40_000 < cov["n_structures"] < 46_000
    assert "MP-20" in cov["description"] and "at most 20 atoms" in cov["description"]
    assert "cannot be matched" in cov["description"]


def test_built_reference_coverage(small_ref):
    cov = load_reference(str(small_ref), DataDir()).describe()["coverage"]
    assert cov["n_structures"] == 2 and cov["max_sites"] == 16
    assert "built from CIF" in cov["description"] and "16 sites" in cov["description"]


def test_beyond_reference_size_flag_fires_only_for_a_larger_primitive_cell(small_ref):
    big_but_reducible = rocksalt()
    big_but_reducible.make_supercell([2, 2, 2])  # 64 sites, primitive cell of 2
    items = [Item("nacl", rocksalt(lat=5.7)), Item("supercell", big_but_reducible),
             Item("doped24", doped(3)), Item("doped16", doped(2)), Item("broken", error="empty file")]
    table, structures = build_table(items)
    ctx = EvalContext(table, structures, EvalConfig(reference=str(small_ref)), DataDir())
    run_families(ctx, ["novelty"])
    flag = ctx.table["novelty_beyond_reference_size"]
    assert flag.iloc[:4].tolist() == [False, False, True, False]
    assert pd.isna(flag.iloc[4])  # not evaluated (parse failed)
    assert ctx.table["novelty_novel"].iloc[:4].tolist() == [False, False, True, False]


def test_beyond_reference_size_unknown_without_coverage():
    class NoCoverage:
        coverage = None

    flags = beyond_reference_size([doped(3)], [0], NoCoverage())
    assert pd.isna(flags[0])


def test_sparse_chemsys_flag():
    hull = load_reference("mp20", DataDir()).hull.get("dft")
    ne_ar = Structure(Lattice.cubic(4.0), ["Ne", "Ar"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    flags = sparse_chemsys([rocksalt(), ne_ar, None], [0, 1, 2], hull)
    assert flags[0] == False and flags[1] == True and pd.isna(flags[2])  # noqa: E712
