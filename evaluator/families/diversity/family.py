"""Diversity of the valid structures (METRICS.md section 5). All logs are natural.

metrics.diversity:
- ``element_coverage``: distinct elements / 118 (``element_count``: distinct elements).
- ``space_group_coverage``: distinct space groups / 230 (``space_group_count``).
- ``site_number_diversity``: exp(H) of the distribution of atoms per cell, H the
  Shannon entropy in nats: the effective number of distinct cell sizes (1 ... n).
- ``physical_size_diversity``: mean of five normalised entropies, of density binned
  at 0.5 g/cm³ on [0, 25) (50 bins), lattice lengths a, b, c at 0.5 Å on [0, 100)
  (200 bins each) and packing fraction at 0.05 on [0, 1) (20 bins); values past the
  range go to the end bins. Normalised entropy = H / ln(min(n, K)), K the number of
  bins: 0 when all structures share one bin, 1 when they are spread as evenly as n
  structures on K bins allow. Components: ``physical_size_entropy_<feature>``.
- ``vendi_element``: Vendi score (Friedman & Dieng 2023) of the element-fraction
  vectors with the cosine kernel: exp(-Σ λ ln λ) over the eigenvalues λ of K/n,
  obtained exactly from the 118×118 matrix XᵀX/n of L2-normalised rows. The effective
  number of distinct compositions (1 ... n).

Per structure: ``diversity_spacegroup``, ``diversity_packing_fraction``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from evaluator.context import EvalContext
from evaluator.families.base import Family, FamilyResult, NoOptions, finite_or_none
from evaluator.families.diversity.metrics import METRICS
from evaluator.structure_features import N_ELEMENTS, structure_features

# feature: (bin width, number of bins K); bins start at 0, overflow goes to bin K-1.
PHYSICAL_BINS = {
    "density": (0.5, 50),  # g/cm³, [0, 25)
    "a": (0.5, 200),  # Å, [0, 100)
    "b": (0.5, 200),
    "c": (0.5, 200),
    "packing_fraction": (0.05, 20),  # [0, 1)
}


def shannon_entropy(counts: ArrayLike) -> float:
    """Shannon entropy (nats) of a histogram of counts."""
    c = np.asarray(counts, dtype=float)
    c = c[c > 0]
    if c.size == 0:
        return float("nan")
    p = c / c.sum()
    return float(-(p * np.log(p)).sum())


def binned_normalised_entropy(values: ArrayLike, width: float, n_bins: int) -> float:
    """H / ln(min(n, K)) of ``values`` binned at ``width`` on [0, K·width) (NaN if n < 2)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    denominator = np.log(min(v.size, n_bins))
    if v.size < 2 or denominator <= 0:
        return float("nan")
    idx = np.clip(np.floor(v / width), 0, n_bins - 1).astype(int)
    return shannon_entropy(np.bincount(idx, minlength=n_bins)) / float(denominator)


def vendi_score_cosine(x: np.ndarray) -> float:
    """Vendi score of the rows of ``x`` (n, d) under the cosine kernel.

    Eigenvalues of K/n (K = X̂X̂ᵀ, rows L2-normalised) equal the nonzero eigenvalues
    of X̂ᵀX̂/n (d×d), so the cost is O(n·d² + d³) instead of O(n³).
    """
    x = np.asarray(x, dtype=float)
    norms = np.linalg.norm(x, axis=1)
    x = x[norms > 0] / norms[norms > 0, None]
    n = x.shape[0]
    if n == 0:
        return float("nan")
    lam = np.linalg.eigvalsh(x.T @ x / n)
    lam = lam[lam > 1e-12]
    lam = lam / lam.sum()  # trace(K/n) = 1 up to rounding
    return float(np.exp(-(lam * np.log(lam)).sum()))


def run(ctx: EvalContext, options: NoOptions) -> FamilyResult:
    feats = structure_features(ctx)
    t, counts = feats.table, feats.counts
    cols = pd.DataFrame(index=t.index)
    cols["diversity_spacegroup"] = t["spacegroup"].astype("Int64")
    cols["diversity_packing_fraction"] = t["packing_fraction"]
    cols["diversity_status"] = np.where(t["error"].isna(), "ok", "failed")
    cols["diversity_reason"] = t["error"]
    result = FamilyResult(cols)
    m = result.metrics

    has_atoms = counts.sum(axis=1) > 0
    n = int(has_atoms.sum())
    m["n_structures"] = n
    names = ["element_coverage", "element_count", "space_group_coverage", "space_group_count",
             "site_number_diversity", "physical_size_diversity", "vendi_element"]
    names += [f"physical_size_entropy_{f}" for f in PHYSICAL_BINS]
    if n == 0:
        for name in names:
            result.absent(name, "no valid structures")
        return result

    present = (counts[has_atoms] > 0).any(axis=0)
    m["element_count"] = int(present.sum())
    m["element_coverage"] = present.sum() / N_ELEMENTS
    sg = t["spacegroup"].dropna().astype(int)
    if len(sg):
        m["space_group_count"] = int(sg.nunique())
        m["space_group_coverage"] = sg.nunique() / 230
    else:
        for name in ("space_group_count", "space_group_coverage"):
            result.absent(name, "no structure has a space group")
    nsites = t["nsites"].dropna().astype(int)
    m["site_number_diversity"] = finite_or_none(np.exp(shannon_entropy(nsites.value_counts().to_numpy())))

    entropies = {}
    for feature, (width, k) in PHYSICAL_BINS.items():
        entropies[feature] = binned_normalised_entropy(t[feature].to_numpy(), width, k)
    if n < 2:
        for feature in PHYSICAL_BINS:
            result.absent(f"physical_size_entropy_{feature}", "needs at least 2 structures")
        result.absent("physical_size_diversity", "needs at least 2 structures")
    else:
        for feature, h in entropies.items():
            m[f"physical_size_entropy_{feature}"] = finite_or_none(h)
        m["physical_size_diversity"] = finite_or_none(np.mean(list(entropies.values())))
    m["vendi_element"] = finite_or_none(vendi_score_cosine(counts[has_atoms]))

    result.provenance = {
        "log_base": "e",
        "physical_bins": {f: {"width": w, "n_bins": k} for f, (w, k) in PHYSICAL_BINS.items()},
        "normalised_entropy": "H / ln(min(n, n_bins))",
        "packing_fraction_radii": "pymatgen CovalentRadius (Cordero 2008)",
        "vendi_kernel": "cosine on element-fraction vectors",
        "spacegroup": "validity_spacegroup if present, else spglib symprec 0.01, angle_tolerance 5",
    }
    return result


FAMILY = Family(name="diversity", requires=("validity",), options=NoOptions, metrics=METRICS, run=run,
                description="coverage, entropies, Vendi")
