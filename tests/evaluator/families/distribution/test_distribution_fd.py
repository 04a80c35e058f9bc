"""Fréchet distance: the formula, and the end-to-end path with CHGNet on tiny samples."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from scipy import linalg

from family_helpers import make_ctx
from evaluator.families.distribution import family as distribution
from evaluator.families.distribution.family import DistributionOptions
from evaluator.families.distribution import embedding_reference as er


def scipy_fd(mu1, s1, mu2, s2):
    covmean = linalg.sqrtm(s1 @ s2).real
    d = mu1 - mu2
    return d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def test_frechet_distance_matches_sqrtm_formula_and_vanishes_for_equal_gaussians():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(50, 6)) * 1.5 + 0.3
    (m1, s1), (m2, s2) = er.embedding_stats(a), er.embedding_stats(b)
    assert er.frechet_distance(m1, s1, m2, s2) == pytest.approx(scipy_fd(m1, s1, m2, s2), rel=1e-8)
    assert er.frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-9)
    # singular covariance (fewer samples than dimensions) stays finite and real
    (m3, s3) = er.embedding_stats(a[:3])
    assert np.isfinite(er.frechet_distance(m1, s1, m3, s3))
    # 1-D: FD = (μ1-μ2)² + (σ1-σ2)²
    assert er.frechet_distance([1.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(4 + 1)


def fcc_primitive(species, a):
    """fcc primitive cell (one site per species list entry at the given fractional coords)."""
    lat = Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]])
    coords = [[0, 0, 0], [0.5, 0.5, 0.5]][:len(species)]
    return Structure(lat, species, coords)


def tiny_structures():
    out = [fcc_primitive([el], a) for el, a in (("Cu", 3.61), ("Al", 4.05), ("Ni", 3.52), ("Ag", 4.09))]
    out.append(fcc_primitive(["Na", "Cl"], 5.64))  # rocksalt primitive cell
    return out


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory, data):
    """Six small LeMat-Bulk CIFs as the reference sample."""
    src = sorted(data.path("structures/lemat_sample/seed_42/both_valid").glob("*.cif"))
    picked = []
    for p in src:
        if len(picked) == 6:
            break
        if p.stat().st_size < 1400:  # few atoms: fast on CPU
            picked.append(p)
    d = tmp_path_factory.mktemp("tiny_ref")
    for p in picked:
        shutil.copy(p, d / p.name)
    return d


def test_fd_end_to_end_with_chgnet_builds_caches_and_reuses_statistics(tiny_reference, isolated_cache,
                                                                       monkeypatch):
    opts = DistributionOptions(fd_reference_sample=str(tiny_reference), fd_min_structures=3)
    res = distribution.run(make_ctx(tiny_structures(), device="cpu"), opts)
    fd = res.metrics["frechet_chgnet"]
    assert fd is not None and fd > 0
    assert res.metrics["frechet_chgnet_n"] == 5
    prov = res.provenance["frechet"]
    assert prov["model"] == "chgnet" and prov["model_id"] == "0.3.0" and len(prov["checkpoint_sha256"]) == 64
    meta_files = list((isolated_cache / "fd_reference").glob("chgnet-*.json"))
    assert len(meta_files) == 1
    meta = json.loads(meta_files[0].read_text())
    assert meta["n_used"] == 6 and meta["dim"] == 64 and meta["checkpoint_sha256"] == prov["checkpoint_sha256"]
    # LeMat-GenBench statistics need other models: absent with a reason, never a number
    for key in ("mace", "orb", "uma"):
        assert res.metrics[f"frechet_lemat_{key}"] is None and key in res.missing[f"frechet_lemat_{key}"]

    # second run: statistics come from the cache (a rebuild would fail here), same value
    def no_build(*a, **k):
        raise AssertionError("rebuilt cached statistics")

    monkeypatch.setattr(er, "build_stats", no_build)
    again = distribution.run(make_ctx(tiny_structures(), device="cpu"), opts)
    assert again.metrics["frechet_chgnet"] == pytest.approx(fd, rel=1e-6)

    # too few structures for the covariance: absent with the reason
    few = distribution.run(make_ctx(tiny_structures()[:3], device="cpu"), replace(opts, fd_min_structures=65))
    assert few.metrics["frechet_chgnet"] is None
    assert "at least 65" in few.missing["frechet_chgnet"]


def test_fd_absent_when_reference_missing_and_building_disabled(tiny_reference, tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE_DIR", str(tmp_path))
    opts = DistributionOptions(fd_reference_sample=str(tiny_reference), fd_build_reference=False)
    res = distribution.run(make_ctx(tiny_structures(), device="cpu"), opts)
    assert res.metrics["frechet_chgnet"] is None
    assert "fd-reference" in res.missing["frechet_chgnet"]
    assert res.metrics["jsd"] is not None  # the rest of the family is unaffected


class FakeMACE:
    """Stands in for MACE-MPA-0 (weights are not available offline) to test the plumbing
    of the LeMat-compatible FD: deterministic composition/volume-derived features."""

    name, model_id, checkpoint_sha256 = "mace", "medium-mpa-0", "f" * 64

    def embed(self, atoms_list, invariants_only=True):
        dim = 16 if invariants_only else 640
        rows = []
        for a in atoms_list:
            rng = np.random.default_rng(int(a.get_atomic_numbers().sum()) * 1000 + len(a))
            base = np.concatenate([[a.get_volume() / len(a) / 20],
                                   np.bincount(a.get_atomic_numbers(), minlength=8)[:8] / len(a)])
            rows.append(np.resize(base, dim) * 0.1 + rng.normal(0, 0.05, dim))
        return np.array(rows)


def test_lemat_compatible_fd_uses_their_statistics_with_all_channel_features(tiny_reference, monkeypatch, data):
    from evaluator.mlip import MLIPSpec

    fake = FakeMACE()
    monkeypatch.setattr(distribution, "_load_mlip", lambda cfg: fake)
    monkeypatch.setattr(distribution, "describe_mlip",
                        lambda name, model=None: MLIPSpec("mace", "medium-mpa-0", None, "raw-pbe"))
    monkeypatch.setattr(MLIPSpec, "checkpoint_sha256", property(lambda self: "f" * 64))
    opts = DistributionOptions(fd_reference_sample=str(tiny_reference), fd_min_structures=3)
    structures = tiny_structures()
    res = distribution.run(make_ctx(structures, mlip="mace", mlip_model="medium-mpa-0"), opts)
    from pymatgen.io.ase import AseAtomsAdaptor

    emb = fake.embed([AseAtomsAdaptor.get_atoms(s) for s in structures], invariants_only=False)
    mu, sigma = er.embedding_stats(emb)
    expected = er.frechet_distance(np.load(data.path("lemat/mace_mu.npy")), np.load(data.path("lemat/mace_sigma.npy")),
                                   mu, sigma)
    assert res.metrics["frechet_lemat_mace"] == pytest.approx(expected, rel=1e-9)
    assert res.metrics["frechet_mace"] is not None  # our own statistics, 16-dim invariant features
    for key in ("orb", "uma"):
        assert res.metrics[f"frechet_lemat_{key}"] is None and "no backend" in res.missing[f"frechet_lemat_{key}"]
    # by default a covariance needs dim + 1 structures: 17 for ours (decided before
    # embedding anything), 641 for LeMat-GenBench's MACE features
    few = distribution.run(make_ctx(structures, mlip="mace", mlip_model="medium-mpa-0"),
                           DistributionOptions(fd_reference_sample=str(tiny_reference)))
    assert few.metrics["frechet_mace"] is None and "at least 17" in few.missing["frechet_mace"]
    assert few.metrics["frechet_lemat_mace"] is None and "not computed" in few.missing["frechet_lemat_mace"]
    from evaluator.families.base import FamilyResult

    part = FamilyResult()
    ctx = make_ctx(structures, mlip="mace", mlip_model="medium-mpa-0")
    distribution._lemat_frechet(part, ctx, DistributionOptions(), fake, structures, np.ones(len(structures), bool))
    assert part.metrics["frechet_lemat_mace"] is None and "at least 641" in part.missing["frechet_lemat_mace"]


def test_fd_reference_command_reports_cache_and_rebuilds(tiny_reference, tmp_path, monkeypatch, capsys):
    from evaluator.cli import main

    monkeypatch.setenv("GENBENCH_CACHE_DIR", str(tmp_path))
    # the default protocol's SevenNet-l3i5 has no embeddings: refused with the way out
    assert main(["fd-reference", "--sample", str(tiny_reference), "--device", "cpu"]) == 2
    assert "--protocol chgnet" in capsys.readouterr().err
    args = ["fd-reference", "--sample", str(tiny_reference), "--device", "cpu", "--protocol", "chgnet"]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out
    (meta,) = (tmp_path / "fd_reference").glob("chgnet-*.json")
    assert json.loads(meta.read_text())["n_used"] == 6


def test_small_submission_does_not_build_reference_statistics(tiny_reference, tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE_DIR", str(tmp_path))
    res = distribution.run(make_ctx(tiny_structures()[:3], device="cpu"),
                           DistributionOptions(fd_reference_sample=str(tiny_reference)))
    assert "at least 65" in res.missing["frechet_chgnet"]  # CHGNet: 64-dim embedding
    assert not (tmp_path / "fd_reference").exists()
