"""Novelty: skipping fingerprints whose verdict is known changes no verdict (MP-20
fingerprints and a built structure reference), and a fingerprint over the time bound
leaves its row undecided with the reason while the batch goes on."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from evaluator.config import EvalConfig
from evaluator.context import EvalContext
from evaluator.build.reference_from_cifs import build_from_cifs, find_cifs, read_cif
from evaluator.identity.fingerprint import TIMED_OUT
from evaluator.families.novelty.family import SKIPPED_BY_FORMULA, SKIPPED_BY_REDUCED_FORMULA
from evaluator.ingest.types import Item
from evaluator.pipeline import build_table, run_families

VERDICTS = ["novelty_novel", "novelty_match_id", "novelty_fingerprint_hit", "novelty_novel_as_submitted",
            "novelty_status"]


def _read(path):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_file(path)


def _verdict_metrics(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "n_without_fingerprint"}  # skipped rows have none


def _run(items, data, reference="mp20", **options):
    table, structures = build_table(items)
    ctx = EvalContext(table, structures, EvalConfig(reference=reference, options={"novelty": options}), data)
    out = run_families(ctx, ["novelty"])
    return ctx.table, out["provenance"]["novelty"], out["metrics"]["novelty"]


@pytest.fixture(scope="module")
def mp_items(data):
    """15 MP-20 members of mp_sample and 15 other mp_sample structures (<= 40 sites)."""
    meta = pd.read_csv(data.path("structures/mp_sample/metadata.csv"))
    ids = set(pd.read_parquet(data.path("reference/mp20/mp20_hull.parquet"), columns=["material_id"]).material_id)
    small = meta[meta.nsites <= 40]
    members = [m for m in small.material_id if m in ids][:15]
    others = [m for m in small.material_id if m not in ids][:15]
    return [Item(m, _read(data.path(f"structures/mp_sample/mp_{m}.cif"))) for m in members + others]


def test_cheap_first_keeps_mp20_verdicts(data, mp_items):
    full, prov_full, m_full = _run(mp_items, data, cheap_first=False)
    fast, prov_fast, m_fast = _run(mp_items, data)
    pd.testing.assert_frame_equal(full[VERDICTS], fast[VERDICTS])
    assert _verdict_metrics(m_full) == _verdict_metrics(m_fast)
    assert prov_full["fingerprints_not_needed"] == 0
    skipped = fast["novelty_reason"] == SKIPPED_BY_FORMULA
    assert 0 < skipped.sum() == prov_fast["fingerprints_not_needed"] < len(mp_items)
    assert fast.loc[skipped, "novelty_fingerprint"].isna().all()
    assert full.loc[skipped, "novelty_fingerprint"].notna().all()
    assert (~full["novelty_novel"]).sum() >= 10  # members are found, so the check has teeth


def test_cheap_first_keeps_structure_reference_verdicts(data, mp_items, tmp_path):
    files = find_cifs([data.path("structures/alexandria_sample")])[:40]
    build_from_cifs(files, tmp_path / "ref", ref_id="alex40", processes=1)
    members = [Item(f"alex{k}", read_cif(f)[0][1]) for k, f in enumerate(files[:12])]
    items = members + mp_items[:12]
    full, _, m_full = _run(items, data, reference=str(tmp_path / "ref"), cheap_first=False)
    fast, prov, m_fast = _run(items, data, reference=str(tmp_path / "ref"))
    pd.testing.assert_frame_equal(full[VERDICTS], fast[VERDICTS])
    assert _verdict_metrics(m_full) == _verdict_metrics(m_fast)
    assert not full["novelty_novel"].iloc[:12].any() and full["novelty_novel"].iloc[12:].all()
    assert 0 < (fast["novelty_reason"] == SKIPPED_BY_REDUCED_FORMULA).sum() == prov["fingerprints_not_needed"]


def test_fingerprint_over_the_bound_is_undecided(data, mp_items):
    """pymatgen's graph of a 6,642-site cell (3x3x3 supercell of a 246-site one) runs well
    past 30 s even on an idle machine: an 8 s bound marks it, the rest of the batch is decided."""
    big = _read(data.path("structures/mp_sample/mp_mp-2715111.cif"))
    big.make_supercell([3, 3, 3])
    items = [mp_items[0], Item("big", big), mp_items[1]]
    t, prov, m = _run(items, data, cheap_first=False, fingerprint_graph="pymatgen",
                      fingerprint_timeout_s=8)
    assert pd.isna(t.loc[1, "novelty_novel"]) and t.loc[1, "novelty_reason"] == TIMED_OUT
    assert t.loc[1, "novelty_status"] == "failed"
    assert t.loc[[0, 2], "novelty_status"].tolist() == ["ok", "ok"]
    assert t.loc[[0, 2], "novelty_novel"].notna().all()
    assert m["n_fingerprint_timed_out"] == 1
    assert prov["fingerprint_run"] == {"processes": 1, "timeout_s": 8.0, "graph": "pymatgen"}


def test_formula_index_decides_where_the_fingerprint_would_fail(data):
    """Isolated atoms (no neighbour within EconNN's 10 Å: its fingerprint raises) with a
    cell formula no MP-20 fingerprint has: the full path leaves the row undecided, cheap
    first decides it novel from the formula alone (no fingerprint needed)."""
    from pymatgen.core import Lattice, Structure

    lonely = Structure(Lattice.cubic(30.0), ["Kr", "Xe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    full, _, _ = _run([Item("lonely", lonely)], data, cheap_first=False)
    assert full.loc[0, "novelty_status"] == "failed" and pd.isna(full.loc[0, "novelty_novel"])
    assert full.loc[0, "novelty_reason"].startswith("fingerprint failed")
    fast, _, _ = _run([Item("lonely", lonely)], data)
    assert fast.loc[0, "novelty_status"] == "ok" and bool(fast.loc[0, "novelty_novel"])
    assert fast.loc[0, "novelty_reason"] == SKIPPED_BY_FORMULA
