"""Validity family (METRICS.md section 1): charge neutrality, minimum distances,
physical plausibility. Valid = all three. Runs first; later families use valid rows.

Columns (rows that parsed): ``validity_valid``, ``validity_charge_neutral``,
``validity_charge_step`` (which cascade step decided, see ``charge``),
``validity_charge_detail``, ``validity_distance_valid``,
``validity_min_distance_ratio`` (worst pair distance / threshold; < 1 is too close),
``validity_plausible``, ``validity_spacegroup`` (spglib number at symprec 0.01,
angle tolerance 5°, the plausibility check's; None where spglib failed),
``validity_spacegroup_loose`` (the reported space group: spglib number at the
``spacegroup_symprec`` / ``spacegroup_angle_tolerance`` options, default 0.1 Å and 5°,
suited to relaxed structures; None where spglib failed), ``validity_status``,
``validity_reason`` (readable list of the failed checks).

Options (``ValidityOptions``, ``EvalConfig.options["validity"]``): ``workers``
(processes; default None = ``core.default_workers()``, 1 = in process),
``start_method`` ("forkserver" default, or "spawn"; never "fork", which can deadlock in
threaded callers); ``spacegroup_symprec`` (Å) and ``spacegroup_angle_tolerance`` (°) of the
reported space group (part of the protocol: they change a published column).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from evaluator.context import EvalContext
from evaluator.families.base import Family, FamilyResult, counted
from evaluator.families.validity import charge, distance, plausibility
from evaluator.families.validity.charge import OxiPriors
from evaluator.families.validity.core import MIN_PARALLEL, check_many, default_workers
from evaluator.families.validity.metrics import METRICS
from evaluator.families.validity.plausibility import REPORT_ANGLE_TOLERANCE, REPORT_SYMPREC

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

Track = Callable[[Iterable[dict[str, Any]], str, int], Iterator[dict[str, Any]]]


@dataclass(frozen=True)
class ValidityOptions:
    """workers: processes for the checks (None: ``core.default_workers()``);
    start_method: how they start ("forkserver" or "spawn");
    spacegroup_symprec, spacegroup_angle_tolerance: spglib tolerances (Å, degrees) of the
    reported space group ``validity_spacegroup_loose``; 0.1 Å and 5° by default, as the
    Materials Project and MatterGen's evaluation use for relaxed structures (the
    plausibility check keeps LeMat-GenBench's 0.01 Å)."""

    workers: int | None = None
    start_method: Literal["forkserver", "spawn"] = "forkserver"
    spacegroup_symprec: float = REPORT_SYMPREC
    spacegroup_angle_tolerance: float = REPORT_ANGLE_TOLERANCE

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"validity.workers must be >= 1 (or null), got {self.workers!r}")
        if not 0 < self.spacegroup_symprec <= 1:
            raise ValueError(f"validity.spacegroup_symprec must be in (0, 1] Å, got {self.spacegroup_symprec!r}")
        if not 0 < self.spacegroup_angle_tolerance <= 20:
            raise ValueError("validity.spacegroup_angle_tolerance must be in (0, 20] degrees, "
                             f"got {self.spacegroup_angle_tolerance!r}")

COLUMNS = ("valid", "charge_neutral", "charge_step", "charge_detail", "distance_valid",
           "min_distance_ratio", "plausible", "spacegroup", "spacegroup_loose", "status", "reason")


def thresholds() -> dict[str, dict[str, Any]]:
    """Every threshold the verdicts depend on (recorded in provenance)."""
    return {
        "charge": {"metallic_threshold": charge.METALLIC_THRESHOLD, "bv_zero_tol": charge.BV_ZERO_TOL,
                   "bv_nn": f"MinimumDistanceNN(tol={charge.BV_NN_TOL}, cutoff={charge.BV_NN_CUTOFF})",
                   "bvanalyzer_tolerance": charge.CHARGE_TOLERANCE, "step_order": list(charge.STEP_ORDER),
                   "max_dp_work": charge.MAX_DP_WORK, "prior_files": list(charge.PRIOR_FILES)},
        "distance": {"rule": "d_ij >= 0.5 * (0.7 + r_i + r_j), r = pymatgen atomic_radius, "
                             "periodic images included", "scale": distance.SCALE,
                     "offset_A": distance.OFFSET, "default_radius_A": distance.DEFAULT_RADIUS},
        "plausibility": {"mass_density_g_cm3": list(plausibility.MASS_DENSITY_RANGE),
                         "number_density_per_A3": list(plausibility.NUMBER_DENSITY_RANGE),
                         "min_volume_A3": plausibility.MIN_VOLUME,
                         "lattice_length_A": list(plausibility.LATTICE_LENGTH_RANGE),
                         "angles_deg": "(0, 180)", "symprec": plausibility.SYMPREC,
                         "angle_tolerance_deg": plausibility.ANGLE_TOLERANCE},
    }


def validity_rows(structures: Sequence[Structure], priors: OxiPriors, workers: int | None = None,
                  start_method: str = "forkserver", track: Track | None = None,
                  report_tolerance: tuple[float, float] = (REPORT_SYMPREC, REPORT_ANGLE_TOLERANCE)
                  ) -> list[dict[str, Any]]:
    """Validity rows (see ``core.check_structure``) for ``structures``, in order.

    track: optional ``ctx.track``-like wrapper ``track(iterable, stage, total)``.
    """
    it = check_many(structures, priors, workers, start_method, report_tolerance)
    if track is not None:
        it = track(it, "validity", len(structures))
    return list(it)


def run(ctx: EvalContext, options: ValidityOptions) -> FamilyResult:
    """Validity columns for every parsed row and ``metrics.validity.*``."""
    from importlib.metadata import version

    result = FamilyResult()
    index: list[int] = ctx.table.index[ctx.table["parse_ok"].fillna(False).astype(bool)].tolist()
    priors = OxiPriors.load(ctx.data)
    workers = options.workers or default_workers()
    start_method = options.start_method
    tolerance = (options.spacegroup_symprec, options.spacegroup_angle_tolerance)
    rows = validity_rows([ctx.structure(i) for i in index], priors, workers, start_method, ctx.track, tolerance)

    frame = pd.DataFrame(rows, index=index, columns=list(COLUMNS))
    cols = pd.DataFrame(index=index)
    for name in COLUMNS:
        cols[f"validity_{name}"] = frame[name]
    for name in ("valid", "charge_neutral", "distance_valid", "plausible"):
        cols[f"validity_{name}"] = cols[f"validity_{name}"].astype("boolean")
    cols["validity_min_distance_ratio"] = cols["validity_min_distance_ratio"].astype(float)
    cols["validity_spacegroup"] = cols["validity_spacegroup"].astype("Int64")
    cols["validity_spacegroup_loose"] = cols["validity_spacegroup_loose"].astype("Int64")
    result.columns = cols

    n_valid = int(cols["validity_valid"].fillna(False).sum())
    n_sub = ctx.n_submitted
    m = result.metrics
    n_parsed = len(index)
    for name in ("valid", "charge_neutral", "distance_valid", "plausible"):
        count = int(cols[f"validity_{name}"].fillna(False).sum())
        m.update(counted(name, count, n_sub, n_valid))
        m[f"{name}_frac_parsed"] = count / n_parsed if n_parsed else None
        if name != "valid":
            # Every valid structure passes each check: count / n_valid is no fraction.
            result.absent(f"{name}_frac_valid", "a check's pass count over valid structures "
                          "is not a fraction (valid structures pass every check); see _frac_parsed")
    m["evaluated_count"] = len(index)
    m["failed_count"] = int((cols["validity_status"] == "failed").sum())
    m["charge_step_counts"] = dict(Counter(cols["validity_charge_step"].dropna()).most_common())
    ratios = cols["validity_min_distance_ratio"].to_numpy(dtype=float)
    if np.isfinite(ratios).any():
        m["min_distance_ratio_median"] = float(np.nanmedian(ratios))
    else:
        result.absent("min_distance_ratio_median", "no structure was parsed" if not index
                      else "distance check failed on every structure")
    if not index:
        result.missing["valid_frac_valid"] = "no structure was parsed"

    result.provenance = {
        "thresholds": thresholds(),
        "reported_spacegroup": {"column": "validity_spacegroup_loose", "symprec_A": options.spacegroup_symprec,
                                "angle_tolerance_deg": options.spacegroup_angle_tolerance},
        "workers": int(workers) if len(index) >= MIN_PARALLEL else 1,
        "start_method": start_method,
        "versions": {p: version(p) for p in ("pymatgen", "spglib", "smact")},
    }
    return result


FAMILY = Family(name="validity", requires=(), options=ValidityOptions, metrics=METRICS, run=run,
                description="charge neutrality, distances, plausibility")
