"""Diversity family: coverage, entropies and the Vendi score on constructed and real sets."""

import math

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from family_helpers import make_ctx, read_cifs
from evaluator.families.base import NoOptions
from evaluator.families.diversity import family as diversity
from evaluator.structure_features import compute_features


def elemental(el, kind, a):
    if kind == "bcc":
        return Structure(Lattice.cubic(a), [el, el], [[0, 0, 0], [0.5, 0.5, 0.5]])
    if kind == "fcc":
        return Structure(Lattice.cubic(a), [el] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    return Structure(Lattice.cubic(a), [el], [[0, 0, 0]])  # simple cubic


def test_one_element_set_has_element_coverage_one_over_118():
    structures = [elemental("Fe", "bcc", 2.87), elemental("Fe", "fcc", 3.6), elemental("Fe", "sc", 2.3),
                  elemental("Fe", "bcc", 2.95)]
    res = diversity.run(make_ctx(structures), NoOptions())
    m = res.metrics
    assert m["element_count"] == 1
    assert m["element_coverage"] == pytest.approx(1 / 118)
    assert m["vendi_element"] == pytest.approx(1.0)  # all composition vectors identical
    # bcc Im-3m (229), fcc Fm-3m (225), sc Pm-3m (221)
    assert m["space_group_count"] == 3
    assert m["space_group_coverage"] == pytest.approx(3 / 230)
    assert set(res.columns["diversity_spacegroup"]) == {229, 225, 221}
    # atoms per cell 2, 4, 1, 2: H = -(.5 ln .5 + 2 * .25 ln .25)
    h = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert m["site_number_diversity"] == pytest.approx(math.exp(h))
    assert (res.columns["diversity_status"] == "ok").all()


def test_vendi_equals_naive_kernel_eigendecomposition_on_real_compositions(mp_sample):
    structures = read_cifs(str(mp_sample), 150)
    x = compute_features(structures, list(range(len(structures)))).counts
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    lam = np.linalg.eigvalsh(xn @ xn.T / len(xn))
    lam = lam[lam > 1e-12]
    naive = math.exp(-(lam * np.log(lam)).sum())
    assert diversity.vendi_score_cosine(x) == pytest.approx(naive, rel=1e-9)
    assert 1 < naive < len(structures)


def test_vendi_counts_orthogonal_compositions_and_ignores_scale():
    eye = np.eye(118)[:5] * np.array([[1], [2], [3], [4], [5]])
    assert diversity.vendi_score_cosine(eye) == pytest.approx(5.0)
    same = np.tile(np.eye(118)[7] * 2 + np.eye(118)[25] * 3, (6, 1)) * np.arange(1, 7)[:, None]
    assert diversity.vendi_score_cosine(same) == pytest.approx(1.0)


def test_binned_normalised_entropy_bounds():
    # all in one bin -> 0; every value in its own bin with n <= K -> 1
    assert diversity.binned_normalised_entropy([5.01, 5.1, 5.2, 5.4], 0.5, 50) == pytest.approx(0.0)
    assert diversity.binned_normalised_entropy([1.1, 2.1, 3.1, 4.1], 0.5, 50) == pytest.approx(1.0)
    # n > K: all K bins used evenly -> 1 (normalised by ln K, not ln n)
    vals = np.repeat(np.arange(20) * 0.05 + 0.01, 3)
    assert diversity.binned_normalised_entropy(vals, 0.05, 20) == pytest.approx(1.0)
    # overflow goes to the end bin: 1.5 and 1.2 share the [0.95, inf) bin
    assert diversity.binned_normalised_entropy([1.5, 1.2], 0.05, 20) == pytest.approx(0.0)
    # two bins with counts 3, 1 over n = 4: H / ln 4
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert diversity.binned_normalised_entropy([1.0, 1.1, 1.2, 7.0], 0.5, 50) == pytest.approx(h / math.log(4))
    assert math.isnan(diversity.binned_normalised_entropy([3.0], 0.5, 50))


def test_small_and_empty_sets_report_absent_with_reasons():
    one = diversity.run(make_ctx([elemental("Cu", "fcc", 3.61)]), NoOptions())
    assert one.metrics["physical_size_diversity"] is None
    assert "at least 2" in one.missing["physical_size_diversity"]
    assert one.metrics["element_coverage"] == pytest.approx(1 / 118)
    ctx = make_ctx([elemental("Cu", "fcc", 3.61)])
    ctx.table["validity_valid"] = False
    empty = diversity.run(ctx, NoOptions())
    assert empty.metrics["element_coverage"] is None and empty.missing["element_coverage"] == "no valid structures"


def test_uses_validity_spacegroup_when_present():
    ctx = make_ctx([elemental("Fe", "bcc", 2.87), elemental("Cu", "fcc", 3.61)])
    ctx.table["validity_valid"] = True
    ctx.table["validity_spacegroup"] = [12, 12]  # deliberately not the true groups
    res = diversity.run(ctx, NoOptions())
    assert res.metrics["space_group_count"] == 1
    assert list(res.columns["diversity_spacegroup"]) == [12, 12]


def test_real_sample_values_in_range(mp_sample):
    res = diversity.run(make_ctx(list(read_cifs(str(mp_sample), 150))), NoOptions())
    m = res.metrics
    assert 0 < m["element_coverage"] <= 1 and 0 < m["space_group_coverage"] <= 1
    assert 0 < m["physical_size_diversity"] <= 1
    for f in diversity.PHYSICAL_BINS:
        assert 0 < m[f"physical_size_entropy_{f}"] <= 1
    assert 1 < m["site_number_diversity"] <= 150 and 1 < m["vendi_element"] <= 150
