"""Distance of the valid structures' distribution to LeMat-Bulk (METRICS.md section 6).

metrics.distribution:
- ``jsd``: mean of ``jsd_space_group`` (230 groups), ``jsd_crystal_system`` (7),
  ``jsd_element_presence`` (per structure a 0/1 vector of the elements present,
  summed and normalised; LeMat key "Composition") and ``jsd_element_counts`` (atoms of
  each element per cell, summed and normalised; LeMat key "CompositionCounts") against
  ``lemat/jsd_distributions.json``. Each is scipy's ``jensenshannon`` (natural log):
  the Jensen-Shannon *distance*, √JS-divergence, in [0, √ln2 = 0.833], exactly as
  LeMat-GenBench computes it.
- ``mmd``: LeMat-GenBench MMD, the mean over volume (Å³), density (g/cm³) and density
  (atoms/Å³) of the biased 1-D Gaussian-kernel MMD (σ = 1, raw units) against the
  15,000-structure sample ``lemat/mmd_reference_15k.parquet``; components
  ``mmd_volume``, ``mmd_density_gcm3``, ``mmd_density_atoms``. Known flaws: σ = 1 is
  meaningless across units (≈0 for atoms/Å³ whatever the sample) and the estimator is
  biased by ~1/n.
- ``mmd_corrected``: unbiased MMD² on the three features jointly, each standardised by
  the reference's mean/std, generated densities rounded to 0.01 like the reference,
  Gaussian bandwidth = median pairwise distance of the standardised reference (a
  constant of the reference, so values compare across submissions).
- ``frechet_<model>``: squared Fréchet distance of mean-pooled MLIP embeddings against
  statistics of the same model on ``structures/lemat_sample`` (see
  ``embedding_reference``); ``frechet_lemat_{mace,orb,uma}`` against LeMat-GenBench's
  own statistics ``lemat/<key>_{mu,sigma}.npy``, only with the exact model and features
  they used: ``--mlip mace --mlip-model medium-mpa-0`` (MACE-MPA-0 medium, descriptors
  with equivariant channels, 640 dims) gives ``frechet_lemat_mace``; ORB v3 and UMA have
  no backend here, so those are absent with the reason.

Options (``DistributionOptions``, ``EvalConfig.options["distribution"]``): ``fd``
(default True), ``fd_build_reference`` (default True: build missing reference
statistics on first use), ``fd_reference_sample`` (data-relative or absolute folder of
CIFs, default ``structures/lemat_sample``), ``fd_min_structures`` (default null =
embedding dim + 1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from evaluator.context import EvalContext
from evaluator.families.base import Family, FamilyResult, finite_or_none
from evaluator.families.distribution import embedding_reference as er
from evaluator.families.distribution import mmd as mmdlib
from evaluator.families.distribution.embedding_reference import DEFAULT_SAMPLE
from evaluator.families.distribution.metrics import METRICS
from evaluator.mlip import describe_mlip, load_mlip
from evaluator.structure_features import N_ELEMENTS, crystal_system, structure_features

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.core.structure import Structure

    from evaluator.config import EvalConfig
    from evaluator.data import DataDir
    from evaluator.mlip import MLIP

JSD_FILE = "lemat/jsd_distributions.json"
MMD_FILE = "lemat/mmd_reference_15k.parquet"
# our name -> LeMat-GenBench key, number of categories
JSD_PROPERTIES = {
    "space_group": ("SpaceGroup", 230),
    "crystal_system": ("CrystalSystem", 7),
    "element_presence": ("Composition", N_ELEMENTS),
    "element_counts": ("CompositionCounts", N_ELEMENTS),
}
# our name -> (reference column, our feature column)
MMD_FEATURES = {
    "volume": ("Volume", "volume"),
    "density_gcm3": ("Density(g/cm^3)", "density"),
    "density_atoms": ("Density(atoms/A^3)", "atom_density"),
}
MMD_SIGMA = 1.0
REFERENCE_ROUNDING = {"density": 2, "atom_density": 2}  # decimals of the reference columns
# LeMat-GenBench's FD statistics: what produced them, feature dimension, and the
# (backend, model_id) of ours that reproduces them (None: no such backend here).
LEMAT_FD = {
    "mace": ("MACE-MPA-0 medium, get_descriptors(invariants_only=False), mean-pooled", 640,
             ("mace", "medium-mpa-0")),
    "orb": ("ORB v3 conservative-inf-omat node features, mean-pooled", 256, None),
    "uma": ("UMA s-1 (omat task) node features, mean-pooled", 128, None),
}


@dataclass(frozen=True)
class DistributionOptions:
    """fd: compute the Fréchet distances; fd_build_reference: build missing reference
    statistics on first use; fd_reference_sample: folder of reference CIFs (relative to
    the data dir, or absolute); fd_min_structures: fewest embedded structures for an FD
    (None: the embedding dimension + 1)."""

    fd: bool = True
    fd_build_reference: bool = True
    fd_reference_sample: str = DEFAULT_SAMPLE
    fd_min_structures: int | None = None

    def __post_init__(self) -> None:
        if not self.fd_reference_sample:
            raise ValueError("distribution.fd_reference_sample must be a folder path, got ''")
        n = self.fd_min_structures
        if n is not None and n < 0:
            raise ValueError(f"distribution.fd_min_structures must be >= 0 (or null), got {n!r}")

    def min_structures(self, dim: int) -> int:
        """Fewest embedded structures for a ``dim``-dimensional FD (never under 2)."""
        return max(dim + 1 if self.fd_min_structures is None else self.fd_min_structures, 2)


def reference_distributions(data: DataDir) -> dict[str, np.ndarray]:
    """LeMat-Bulk probability vectors keyed by our property names."""
    raw = json.loads(data.path(JSD_FILE).read_text())
    out: dict[str, np.ndarray] = {}
    for name, (key, k) in JSD_PROPERTIES.items():
        vec = np.zeros(k)
        for label, p in raw[key].items():
            vec[int(label) - 1] = float(p)
        out[name] = vec
    return out


def generated_distributions(spacegroups: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Histograms (unnormalised) of the generated structures, LeMat-GenBench's way."""
    sg = np.asarray(spacegroups, dtype=int)
    cs = np.array([crystal_system(int(s)) for s in sg], dtype=int)
    return {
        "space_group": np.bincount(sg - 1, minlength=230).astype(float),
        "crystal_system": np.bincount(cs - 1, minlength=7).astype(float),
        "element_presence": (counts > 0).sum(axis=0).astype(float),
        "element_counts": counts.sum(axis=0),
    }


def js_distance(p: ArrayLike, q: ArrayLike) -> float:
    """Jensen-Shannon distance (natural log) of two histograms, as scipy computes it."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(np.asarray(p, float), np.asarray(q, float)))


def _jsd(result: FamilyResult, ctx: EvalContext, sg: np.ndarray, counts: np.ndarray) -> None:
    if len(sg) == 0:
        for name in ["jsd", *(f"jsd_{n}" for n in JSD_PROPERTIES)]:
            result.absent(name, "no valid structure with a space group")
        return
    ref = reference_distributions(ctx.data)
    gen = generated_distributions(sg, counts)
    values = {name: js_distance(gen[name], ref[name]) for name in JSD_PROPERTIES}
    result.metrics["jsd"] = finite_or_none(np.mean(list(values.values())))
    for name, v in values.items():
        result.metrics[f"jsd_{name}"] = finite_or_none(v)


def _mmd(result: FamilyResult, ctx: EvalContext, feats: pd.DataFrame) -> None:
    path = ctx.data.path(MMD_FILE)
    ref = pd.read_parquet(path)
    ref_key = (MMD_FILE, ctx.data.used.get(MMD_FILE) or "")
    names = ["mmd", *(f"mmd_{n}" for n in MMD_FEATURES)]
    if len(feats) == 0:
        for name in [*names, "mmd_corrected"]:
            result.absent(name, "no valid structures")
        return
    values: dict[str, float] = {}
    for name, (ref_col, col) in MMD_FEATURES.items():
        values[name] = mmdlib.mmd_biased_1d(feats[col].to_numpy(), ref[ref_col].to_numpy(),
                                            MMD_SIGMA, ref_key=(*ref_key, ref_col))
        result.metrics[f"mmd_{name}"] = finite_or_none(values[name])
    result.metrics["mmd"] = finite_or_none(np.mean(list(values.values())))

    y = ref[[c for c, _ in MMD_FEATURES.values()]].to_numpy(dtype=float)
    mean, std = y.mean(axis=0), y.std(axis=0)
    x = feats[[c for _, c in MMD_FEATURES.values()]].copy()
    for col, decimals in REFERENCE_ROUNDING.items():
        x[col] = x[col].round(decimals)
    zx, zy = (x.to_numpy(dtype=float) - mean) / std, (y - mean) / std
    bandwidth = mmdlib.median_heuristic(zy)
    if len(zx) < 2:
        result.absent("mmd_corrected", "unbiased MMD needs at least 2 structures")
    else:
        result.metrics["mmd_corrected"] = finite_or_none(
            mmdlib.mmd_unbiased(zx, zy, bandwidth, ref_key=(*ref_key, "standardised")))
    result.provenance["mmd"] = {
        "reference": MMD_FILE, "n_reference": len(ref), "sigma": MMD_SIGMA,
        "estimator": "biased V-statistic per feature, mean of three (LeMat-GenBench)",
    }
    result.provenance["mmd_corrected"] = {
        "features": list(MMD_FEATURES), "standardisation": "reference mean / std (ddof 0)",
        "reference_mean": mean.tolist(), "reference_std": std.tolist(),
        "bandwidth": bandwidth, "bandwidth_rule": "median pairwise distance, 2,000 reference rows (seed 0)",
        "estimator": "unbiased U-statistic MMD^2", "generated_rounding": REFERENCE_ROUNDING,
    }


def _sample_dir(ctx: EvalContext, options: DistributionOptions) -> tuple[Path, str]:
    rel = options.fd_reference_sample
    return ctx.data.path(rel), rel


_MLIPS: dict[tuple[str, str | None, str, str], MLIP] = {}


def _load_mlip(cfg: EvalConfig) -> MLIP:
    """The configured MLIP, loaded once per process."""
    key = (cfg.mlip, cfg.mlip_model, cfg.device, cfg.dtype)
    if key not in _MLIPS:
        _MLIPS[key] = load_mlip(cfg.mlip, model=cfg.mlip_model, device=cfg.device, dtype=cfg.dtype)
    return _MLIPS[key]


def _frechet(result: FamilyResult, ctx: EvalContext, options: DistributionOptions,
             structures: list[Structure], index: list[int]) -> pd.Series:
    """FD against our own reference statistics; returns per-row embedding errors."""
    errors = pd.Series([None] * len(index), index=index, dtype=object)
    name = f"frechet_{ctx.config.mlip}"
    if not options.fd:
        result.absent(name, "Fréchet distance disabled (option distribution.fd = false)")
        return errors
    if len(index) < 2:
        result.absent(name, "needs at least 2 valid structures for a covariance")
        return errors
    cfg = ctx.config
    try:
        spec = describe_mlip(cfg.mlip, cfg.mlip_model)  # identifies the model without loading it
        sample_dir, sample_label = _sample_dir(ctx, options)
        files = er.sample_files(sample_dir)
        sha = er.sample_hash(files, sample_dir)
        stats = er.load_stats(spec, sha)
    except Exception as exc:  # noqa: BLE001 - any failure here makes the FD absent, with the reason
        result.absent(name, f"MLIP '{cfg.mlip}' or reference sample unavailable: {type(exc).__name__}: {exc}"[:300])
        return errors

    def too_few(dim: int) -> str | None:
        required = options.min_structures(dim)
        if len(index) < required:
            return f"needs at least {required} structures for a {dim}-dim covariance, got {len(index)}"
        return None

    if stats is not None and (why := too_few(int(stats["mu"].shape[0]))):
        result.absent(name, why)  # decided before loading the model
        return errors
    if stats is None and not options.fd_build_reference:
        result.absent(name, f"no reference statistics for {spec.name} {spec.model_id} in {er.cache_dir()}; "
                            "build them with `python -m evaluator fd-reference`")
        return errors
    try:
        mlip = _load_mlip(cfg)
    except Exception as exc:  # noqa: BLE001 - an MLIP that cannot load makes the FD absent, with the reason
        result.absent(name, f"MLIP '{cfg.mlip}' unavailable: {type(exc).__name__}: {exc}"[:300])
        return errors
    name = f"frechet_{mlip.name}"
    if stats is None:
        probe, _ = er.embed_structures(mlip, structures[:1])  # learn the dimension first
        if probe.shape[1] and (why := too_few(probe.shape[1])):
            result.absent(name, why)  # no reference build for a submission too small to use it
            return errors
        try:
            stats = er.build_stats(mlip, sample_dir, sample_label=sample_label,
                                   progress=lambda d, t: ctx.progress("distribution: FD reference", d, t))
        except Exception as exc:  # noqa: BLE001 - a failed build makes the FD absent, with the reason
            result.absent(name, f"reference statistics failed: {type(exc).__name__}: {exc}"[:300])
            return errors

    emb, errs = er.embed_structures(mlip, structures, ctx.track)
    errors[:] = errs
    ok = np.array([e is None for e in errs])
    dim = int(stats["mu"].shape[0])
    min_n = options.min_structures(dim)
    result.metrics[f"{name}_n"] = int(ok.sum())
    if ok.sum() < min_n:
        result.absent(name, f"needs at least {min_n} embedded structures for a "
                            f"{dim}-dim covariance, got {int(ok.sum())}")
    elif emb.shape[1] != dim:
        result.absent(name, f"embedding size {emb.shape[1]} differs from the reference's {dim}")
    else:
        mu, sigma = er.embedding_stats(emb[ok])
        result.metrics[name] = finite_or_none(er.frechet_distance(stats["mu"], stats["sigma"], mu, sigma))
    result.provenance["frechet"] = {
        "model": mlip.name, "model_id": mlip.model_id,
        "checkpoint_sha256": getattr(mlip, "checkpoint_sha256", None),
        "reference_stats": stats["path"], "reference": {k: stats["meta"].get(k) for k in
                                                       ("sample", "sample_sha256", "n_used", "dim",
                                                        "created_at", "build_seconds")},
        "convention": "squared Fréchet distance (FID / LeMat-GenBench)",
    }
    _lemat_frechet(result, ctx, options, mlip, structures, ok)
    return errors


class _AllChannels:
    """MLIP wrapper whose embed keeps equivariant channels (LeMat-GenBench's MACE features)."""

    def __init__(self, mlip: MLIP) -> None:
        self.mlip = mlip

    def embed(self, atoms_list: Sequence[Atoms]) -> NDArray[np.float64]:
        return self.mlip.embed(atoms_list, invariants_only=False)


def _lemat_frechet(result: FamilyResult, ctx: EvalContext, options: DistributionOptions, mlip: MLIP,
                   structures: list[Structure], ok: np.ndarray) -> None:
    """``frechet_lemat_<key>``: FD against LeMat-GenBench's own statistics (same model only)."""
    for key, (desc, dim, ours) in LEMAT_FD.items():
        name = f"frechet_lemat_{key}"
        if ours is None or (mlip.name, mlip.model_id) != ours:
            why = "no backend for it here" if ours is None else f"run with --mlip {ours[0]} --mlip-model {ours[1]}"
            result.absent(name, f"needs the model behind lemat/{key}_mu.npy: {desc}, {dim} dims ({why})")
            continue
        try:
            lemat_emb, errs = er.embed_structures(_AllChannels(mlip), structures, ctx.track)
        except Exception as exc:  # noqa: BLE001 - a failed embedding makes this FD absent, with the reason
            result.absent(name, f"embedding failed: {type(exc).__name__}: {exc}"[:300])
            continue
        good = np.array([e is None for e in errs]) & ok
        min_n = options.min_structures(dim)
        if lemat_emb.shape[1] != dim:
            result.absent(name, f"embedding size {lemat_emb.shape[1]} is not LeMat-GenBench's {dim}")
        elif good.sum() < min_n:
            result.absent(name, f"needs at least {min_n} embedded structures for a {dim}-dim "
                                f"covariance, got {int(good.sum())}")
        else:
            mu_ref = np.load(ctx.data.path(f"lemat/{key}_mu.npy")).astype(np.float64)
            sig_ref = np.load(ctx.data.path(f"lemat/{key}_sigma.npy")).astype(np.float64)
            mu, sigma = er.embedding_stats(lemat_emb[good])
            result.metrics[name] = finite_or_none(er.frechet_distance(mu_ref, sig_ref, mu, sigma))
            result.metrics[f"{name}_n"] = int(good.sum())


def run(ctx: EvalContext, options: DistributionOptions) -> FamilyResult:
    """JSD, MMD and Fréchet distances of the valid structures, ``metrics.distribution.*``."""
    feats = structure_features(ctx)
    t = feats.table
    has_sg = t["spacegroup"].notna().to_numpy() & (feats.counts.sum(axis=1) > 0)
    cols = pd.DataFrame(index=t.index)
    cols["distribution_crystal_system"] = pd.Series(
        [crystal_system(int(s)) if pd.notna(s) else None for s in t["spacegroup"]], index=t.index, dtype="Int64")
    result = FamilyResult(cols)
    result.metrics["n_structures"] = int(has_sg.sum())
    _jsd(result, ctx, t.loc[has_sg, "spacegroup"].to_numpy(dtype=int), feats.counts[has_sg])
    # no space group needed
    ok_rows = np.isfinite(t[["volume", "density", "atom_density"]].to_numpy(dtype=float)).all(axis=1)
    _mmd(result, ctx, t.loc[ok_rows])
    good = t.index[ok_rows].tolist()
    emb_errors = _frechet(result, ctx, options, [ctx.structure(i) for i in good], good)
    fd_missing = next((why for k, why in result.missing.items() if k.startswith("frechet_")), "not computed")
    for key in LEMAT_FD:
        if f"frechet_lemat_{key}" not in result.metrics:
            result.absent(f"frechet_lemat_{key}", f"Fréchet distance not computed: {fd_missing}")

    reason = t["error"].copy()
    reason[emb_errors.index] = reason[emb_errors.index].where(reason[emb_errors.index].notna(), emb_errors)
    cols["distribution_status"] = np.where(reason.isna(), "ok", "failed")
    cols["distribution_reason"] = reason
    result.columns = cols
    result.provenance.update({"jsd_reference": JSD_FILE, "jsd": "scipy jensenshannon, natural log (distance)"})
    return result


FAMILY = Family(name="distribution", requires=("validity",), options=DistributionOptions, metrics=METRICS,
                run=run, description="JSD, MMD, FD to LeMat-Bulk")
