"""Structure identity: equivalence classes, BAWL fingerprints, uniqueness and novelty (mp20)."""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pandas as pd
import pytest

from evaluator.config import EvalConfig
from evaluator.context import EvalContext
from evaluator.data import DataDir
from evaluator.identity import matcher as M
from evaluator.identity.fingerprint import bawl_fingerprint, bawl_fingerprint_pair, cell_formula
from evaluator.identity.fingerprint_index import FingerprintIndex, load_fingerprint_file
from evaluator.ingest.types import Item
from evaluator.pipeline import build_table, run_families

warnings.filterwarnings("ignore", message=".*fractional coordinates rounded.*")


def _read(path):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_file(path)


@pytest.fixture(scope="module")
def data():
    return DataDir()


@pytest.fixture(scope="module")
def mp20_members(data):
    """(material_id, Structure) of the first MP-20 materials of structures/mp_sample."""
    meta = pd.read_csv(data.path("structures/mp_sample/metadata.csv"))
    ids = set(pd.read_parquet(data.path("reference/mp20/mp20_hull.parquet"), columns=["material_id"])
              .material_id)
    chosen = [m for m in meta.material_id if m in ids][:8]
    return [(m, _read(data.path(f"structures/mp_sample/mp_{m}.cif"))) for m in chosen]


@pytest.fixture(scope="module")
def base(data):
    """A few real, distinct structures (mp_sample), the first one with several sites."""
    meta = pd.read_csv(data.path("structures/mp_sample/metadata.csv"))
    picked = meta[(meta.nsites >= 4) & (meta.nsites <= 12)].drop_duplicates("formula").head(6)
    return [_read(data.path(f"structures/mp_sample/mp_{m}.cif")) for m in picked.material_id]


def variants(s):
    """Copies the matcher must join with ``s``: rotated, translated, permuted, supercell, strained."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.core.operations import SymmOp

    rot = s.copy()
    rot.apply_operation(SymmOp.from_axis_angle_and_translation([1, 1, 0], 37.0))
    moved = s.copy()
    moved.translate_sites(list(range(len(moved))), [0.31, 0.17, 0.59])
    perm = Structure.from_sites([s[i] for i in np.random.default_rng(0).permutation(len(s))])
    sup = s.copy()
    sup.make_supercell([[1, 1, 0], [0, 1, 0], [0, 0, 2]])
    strained = s.copy()
    strained.apply_strain([0.008, -0.005, 0.006])
    # a differently chosen (but equivalent) cell: a -> a + b
    m = s.lattice.matrix
    recell = Structure(Lattice([m[0] + m[1], m[1], m[2]]), s.species, s.cart_coords,
                       coords_are_cartesian=True, to_unit_cell=True)
    return {"rotated": rot, "translated": moved, "permuted": perm, "supercell": sup,
            "strained": strained, "recell": recell}


def test_copies_form_one_class(base):
    s = base[0]
    vs = variants(s)
    labels = M.equivalence_classes([s, *vs.values()])
    assert labels == [0] * (1 + len(vs)), dict(zip(["orig", *vs], labels))


def test_distinct_structures_stay_apart_and_labels_are_first_occurrences(base):
    a, b = base[0], base[1]
    a2 = variants(a)["translated"]
    b2 = variants(b)["supercell"]
    labels = M.equivalence_classes([a, b, a2, None, b2])
    assert labels == [0, 1, 0, 3, 1]


def test_large_strain_and_other_polymorph_are_different(base):
    s = base[0]
    far = s.copy()
    far.apply_strain([0.25, 0.0, 0.0])  # beyond ltol = 0.1
    assert M.equivalence_classes([s, far]) == [0, 1]


def test_primitive_size_prescreen_is_exact(base):
    """Groups split by primitive size never hold a pair the matcher would join."""
    m = M.make_matcher()
    structures = base + [v for s in base[:2] for v in variants(s).values()]
    for i, a in enumerate(structures):
        for b in structures[i + 1:]:
            ra, rb = M.reduce_structure(a, m), M.reduce_structure(b, m)
            if len(ra) != len(rb) or a.composition.reduced_formula != b.composition.reduced_formula:
                assert not m.fit(a, b)


def test_union_find_closes_non_transitive_chains(monkeypatch):
    """a~b and b~c but not a~c: one class (connected component), labelled by a."""
    from pymatgen.core import Lattice, Structure

    s = [Structure(Lattice.cubic(3 + 0.01 * k), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
         for k in range(4)]
    pairs = {(0, 1), (1, 2)}
    ident = {id(x): k for k, x in enumerate(s)}

    def fake_fit(a, b, matcher=None):
        return (ident[id(a)], ident[id(b)]) in pairs or (ident[id(b)], ident[id(a)]) in pairs

    monkeypatch.setattr(M, "fit_reduced", fake_fit)
    reduced = {k: x for k, x in enumerate(s)}
    assert M.equivalence_classes(s, reduced=reduced) == [0, 0, 0, 3]
    # the order of arrival does not matter: c then a then b
    order = [2, 0, 1, 3]
    reduced = {k: s[j] for k, j in enumerate(order)}
    assert M.equivalence_classes([s[j] for j in order], reduced=reduced) == [0, 0, 0, 3]


def test_duplicate_groups_helper():
    assert M.duplicate_groups([0, 1, 0, 3, 1], index=[10, 11, 12, 13, 14]) == [[10, 12], [11, 14]]


# ---- BAWL fingerprints --------------------------------------------------------------


def test_fingerprint_format_and_invariance(base):
    s = base[0]
    fp = bawl_fingerprint(s)
    h, sg, formula = fp.split("_")
    assert len(h) == 32 and int(h, 16) >= 0
    assert 1 <= int(sg) <= 230
    assert formula == cell_formula(s) and " " not in formula
    vs = variants(s)
    assert bawl_fingerprint(vs["translated"]) == fp
    assert bawl_fingerprint(vs["rotated"]) == fp
    # unreduced formula: a supercell has another fingerprint (the matcher joins them)
    assert bawl_fingerprint(vs["supercell"]) != fp


def test_fingerprint_depends_on_site_order_and_sorted_variant_is_exact(base):
    """The WL hash runs on a graph directed by site index: order matters. The species-sorted
    fingerprint computed by re-orienting the bonds equals hashing the sorted structure."""
    from pymatgen.core import Structure

    rng = np.random.default_rng(3)
    changed = 0
    for s in base:
        p = Structure.from_sites([s[i] for i in rng.permutation(len(s))])
        given, sorted_ = bawl_fingerprint_pair(p)
        assert given == bawl_fingerprint(p)
        assert sorted_ == bawl_fingerprint(p.get_sorted_structure())
        changed += given != bawl_fingerprint(s)
    assert changed >= 1


def test_mp20_members_find_their_fingerprint(data, mp20_members):
    """LeMat-GenBench's fingerprint recipe reproduces the shipped MP-20 fingerprints."""
    lines = {line.strip() for line in gzip.open(data.path("reference/mp20/mp20_bawl_fingerprints.txt.gz"), "rt")}
    hits = [bawl_fingerprint(s) in lines for _, s in mp20_members]
    assert sum(hits) >= len(hits) - 1, hits  # ~95 % hit rate over all 611 (see bench / README)


def test_fingerprint_index_lookup():
    fps = ["aa_1_Na1Cl1", "bb_225_Na4Cl4", "cc_2_O2"]
    idx = FingerprintIndex(fps, ids=["x", "y", "z"])
    assert idx.lookup(["bb_225_Na4Cl4", "zz_1_H1", None, "cc_2_O2"]) == ["y", None, None, "z"]
    assert "aa_1_Na1Cl1" in idx and "aa_1_Na1Cl2" not in idx
    no_ids = FingerprintIndex(fps)
    assert no_ids.lookup(["aa_1_Na1Cl1"]) == ["aa_1_Na1Cl1"]
    assert idx.nbytes() > 3 * 8
    # cell formulas present (cheap-first novelty): the fingerprint's last field
    assert idx.has_cell_formula(["Na4Cl4", "Na1Cl1", "Na2Cl2", "O2"]).tolist() == [True, True, False, True]
    assert FingerprintIndex([]).has_cell_formula(["O2"]).tolist() == [False]


def test_mp20_fingerprint_file_loads(data):
    idx = load_fingerprint_file(data.path("reference/mp20/mp20_bawl_fingerprints.txt.gz"))
    assert len(idx) == 44_654 and idx.n_unique == 44_654
    assert "0009632c49b8cd70df49e5003d2105f9_225_Ti1H1" in idx


# ---- families -----------------------------------------------------------------------


def _ctx(items, reference="mp20", data=None, work_dir=None):
    table, structures = build_table(items)
    return EvalContext(table, structures, EvalConfig(reference=reference), data or DataDir(),
                       work_dir=work_dir)


def test_uniqueness_family(base):
    s = base[0]
    vs = variants(s)
    items = [Item("a", s), Item("b", base[1]), Item("bad.cif", error="parse failed"),
             Item("a-rot", vs["rotated"]), Item("c", base[2]), Item("a-sup", vs["supercell"]),
             Item("b-strain", variants(base[1])["strained"])]
    ctx = _ctx(items)
    out = run_families(ctx, ["uniqueness"])
    t = ctx.table
    m = out["metrics"]["uniqueness"]
    assert m["unique_count"] == 3 and m["unique_frac_submitted"] == pytest.approx(3 / 7)
    assert m["unique_frac_valid"] == pytest.approx(3 / 6)
    assert m["duplicate_groups"] == [[0, 3, 5], [1, 6]]
    assert t["uniqueness_class"].tolist()[:2] == [0, 1] and pd.isna(t.loc[2, "uniqueness_class"])
    assert t.loc[[3, 5], "uniqueness_class"].tolist() == [0, 0]
    assert t["uniqueness_is_first"].tolist() == [True, True, pd.NA, False, True, False, False]
    assert t.loc[2, "uniqueness_status"] == "skipped" and t.loc[0, "uniqueness_status"] == "ok"
    assert t.loc[0, "uniqueness_class_size"] == 3
    assert "ltol" in out["provenance"]["uniqueness"]


def _species_reversed(s):
    """Same crystal, species blocks listed in reverse order (within-species order kept)."""
    from pymatgen.core import Structure

    order = sorted(range(len(s)), key=lambda i: s[i])[::-1]
    blocks: dict = {}
    for i in order:
        blocks.setdefault(s[i].species_string, []).append(i)
    return Structure.from_sites([s[i] for b in blocks.values() for i in sorted(b)])


def test_novelty_mp20(data, mp20_members, base, tmp_path):
    """MP-20 members are not novel (fingerprint equality); a distorted structure is; a member
    listed in another species order is known (sorted fingerprint) though LeMat-GenBench's
    as-submitted fingerprint calls it novel."""
    from pymatgen.core import Structure

    known = [s for _, s in mp20_members[:4]]
    fake = Structure(known[0].lattice, known[0].species,
                     np.random.default_rng(1).random((len(known[0]), 3)))
    lines = {line.strip() for line in gzip.open(data.path("reference/mp20/mp20_bawl_fingerprints.txt.gz"), "rt")}
    member = next(s for s in known if bawl_fingerprint(s) in lines and len(s.composition) > 1
                  and bawl_fingerprint(_species_reversed(s)) not in lines)
    items = [Item(f"m{k}", s) for k, s in enumerate(known)] + [
        Item("fake", fake), Item("bad", error="x"), Item("reordered", _species_reversed(member))]
    ctx = _ctx(items, work_dir=tmp_path)
    out = run_families(ctx, ["novelty"])
    t = ctx.table
    expect = [bawl_fingerprint(s) not in lines for s in known]
    assert t["novelty_novel"].tolist()[:4] == expect and expect.count(False) >= 3
    for k in range(4):
        if not expect[k]:
            assert t.loc[k, "novelty_match_id"] == t.loc[k, "novelty_fingerprint"]
    assert bool(t.loc[4, "novelty_novel"]) is True and pd.isna(t.loc[4, "novelty_match_id"])
    assert t.loc[5, "novelty_status"] == "skipped"
    assert bool(t.loc[6, "novelty_novel"]) is False and bool(t.loc[6, "novelty_novel_as_submitted"]) is True
    m = out["metrics"]["novelty"]
    assert m["novel_count"] == sum(expect) + 1
    assert m["novel_as_submitted_count"] == sum(expect) + 2
    prov = out["provenance"]["novelty"]
    assert prov["reference"]["id"] == "mp20" and len(prov["reference"]["content_hash"]) == 64
    assert prov["equivalence"].startswith("BAWL fingerprint equality")
    # fingerprints were cached in the work folder: a second run computes none
    ctx2 = _ctx(items, work_dir=tmp_path)
    assert run_families(ctx2, ["novelty"])["provenance"]["novelty"]["fingerprints_computed"] == 0
