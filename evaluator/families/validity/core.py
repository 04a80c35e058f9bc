"""Validity of one structure, and of many in worker processes.

``check_structure`` runs plausibility (which also yields the spglib symmetry the
charge cascade reuses), minimum distances and charge neutrality; an exception in
one check marks the structure invalid with status "failed" and a reason, and the
other checks still run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from evaluator.families.validity.charge import ChargeCascade, OxiPriors, _pymatgen_icsd_occurrence
from evaluator.families.validity.distance import DENSE_LIMIT, check_distances
from evaluator.families.validity.plausibility import (
    ANGLE_TOLERANCE,
    REPORT_ANGLE_TOLERANCE,
    REPORT_SYMPREC,
    SYMPREC,
    check_plausibility,
    reported_spacegroup,
)
from evaluator.procpool import run_bounded

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

MIN_PARALLEL = 48  # fewer structures than this: stay in process (pool start-up ~1-3 s)


def _error(check: str, exc: Exception) -> str:
    return f"error in {check} check: {type(exc).__name__}: {exc}"[:300]


Tolerance = tuple[float, float]
"""(symprec Å, angle tolerance °) of the reported space group."""
REPORT_TOLERANCE: Tolerance = (REPORT_SYMPREC, REPORT_ANGLE_TOLERANCE)


def check_structure(structure: Structure, cascade: ChargeCascade,
                    report_tolerance: Tolerance = REPORT_TOLERANCE) -> dict[str, Any]:
    """All validity checks of one pymatgen Structure -> a row of validity columns:
    valid, charge_neutral, charge_step, charge_detail, distance_valid,
    min_distance_ratio, plausible, spacegroup (at the check's symprec 0.01),
    spacegroup_loose (at ``report_tolerance``), status ("ok"/"failed"), reason."""
    row: dict[str, Any] = {"valid": False, "charge_neutral": None, "charge_step": None, "charge_detail": None,
           "distance_valid": None, "min_distance_ratio": float("nan"), "plausible": None,
           "spacegroup": None, "spacegroup_loose": None, "status": "ok", "reason": None}
    reasons: list[str] = []
    errors: list[str] = []
    if any(type(sp).__name__ != "Element" for sp in structure.composition):
        structure = structure.copy()
        structure.remove_oxidation_states()  # checks use elements; radii are per element

    equivalent: npt.NDArray[np.integer[Any]] | None = None
    try:
        p = check_plausibility(structure)
        row.update(plausible=p.plausible, spacegroup=p.spacegroup)
        equivalent = p.equivalent_atoms
        if not p.plausible:
            reasons.append("implausible: " + "; ".join(p.failures))
    except Exception as exc:  # noqa: BLE001 - a failed check marks this structure, the others still run
        errors.append(_error("plausibility", exc))
    if report_tolerance == (SYMPREC, ANGLE_TOLERANCE):
        row["spacegroup_loose"] = row["spacegroup"]
    else:
        row["spacegroup_loose"] = reported_spacegroup(structure, *report_tolerance)
    try:
        d = check_distances(structure)
        row.update(distance_valid=d.valid, min_distance_ratio=d.ratio)
        if not d.valid:
            reasons.append(f"atoms too close: {d.worst} (ratio {d.ratio:.2f})")
    except Exception as exc:  # noqa: BLE001 - a failed check marks this structure, the others still run
        errors.append(_error("distance", exc))
    try:
        volume = structure.volume
        degenerate = not (volume > 0 and len(structure) / volume <= DENSE_LIMIT)
        c = cascade.run(structure, equivalent, structure_steps=not degenerate)
        row.update(charge_neutral=c.neutral, charge_step=c.step, charge_detail=c.detail[:500])
        if not c.neutral:
            reasons.append(f"not charge neutral ({c.step})")
    except Exception as exc:  # noqa: BLE001 - a failed check marks this structure, the others still run
        errors.append(_error("charge", exc))

    if errors:
        row["status"] = "failed"
        reasons = errors + reasons
    row["valid"] = not errors and bool(row["plausible"] and row["distance_valid"] and row["charge_neutral"])
    row["reason"] = "; ".join(reasons) if reasons else None
    return row


def _failed_row(reason: str) -> dict[str, Any]:
    """The row of a structure whose checks could not run at all."""
    return {"valid": False, "charge_neutral": None, "charge_step": None, "charge_detail": None,
            "distance_valid": None, "min_distance_ratio": float("nan"), "plausible": None,
            "spacegroup": None, "spacegroup_loose": None, "status": "failed", "reason": reason[:300]}


# -- worker processes -------------------------------------------------------------------
_CASCADE: ChargeCascade | None = None
_REPORT_TOLERANCE: Tolerance = REPORT_TOLERANCE
# Imported once in the fork server. Not SMACT: it imports pandas, whose threads a fork
# server must not have (see evaluator.procpool); each worker warms up after the fork.
PRELOAD = ("pymatgen.core.bond_valence", "pymatgen.symmetry.analyzer")


def warm() -> None:
    """Do the one-off imports and table loads (~2-3 s) before checking structures."""
    import pymatgen.core.bond_valence  # noqa: F401  (loads BV parameters and ICSD tables)
    import smact.metallicity  # noqa: F401
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer  # noqa: F401

    _pymatgen_icsd_occurrence()


def _init_worker(priors: OxiPriors, report_tolerance: Tolerance = REPORT_TOLERANCE) -> None:
    global _CASCADE, _REPORT_TOLERANCE
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    warm()
    _CASCADE = ChargeCascade(priors)
    _REPORT_TOLERANCE = report_tolerance


def _check_in_worker(structure: Structure) -> dict[str, Any]:
    if _CASCADE is None:  # _init_worker runs before any item
        raise RuntimeError("validity worker used before _init_worker")
    return check_structure(structure, _CASCADE, _REPORT_TOLERANCE)


def default_workers() -> int:
    """Worker processes by default: 1 (in process).

    The checks cost ~5 ms of CPU per structure (parse + validity of 2,473 MP CIFs
    stays well under a minute in one process), while a process pool costs 1-4 s to
    start and, with forkserver/spawn, re-imports the caller's ``__main__`` script
    (unsafe for unguarded scripts such as some app.py files). Set the
    ``validity.workers`` option for large uploads on idle multi-core machines.
    """
    return 1


def check_many(structures: Sequence[Structure], priors: OxiPriors, workers: int | None = None,
               start_method: str = "forkserver",
               report_tolerance: Tolerance = REPORT_TOLERANCE) -> Iterator[dict[str, Any]]:
    """Yield ``check_structure`` rows in input order, using ``workers`` processes.

    The pool is ``evaluator.procpool`` (children die with this process; an exception
    in the consumer kills them at once). start_method: "forkserver" (default) or
    "spawn"; "fork" is refused (it can deadlock in threaded callers such as the worker
    and the app).
    """
    workers = default_workers() if workers is None else max(1, int(workers))
    try:
        workers = min(workers, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        workers = min(workers, os.cpu_count() or 1)
    if workers == 1 or len(structures) < MIN_PARALLEL:
        cascade = ChargeCascade(priors)
        for s in structures:
            yield check_structure(s, cascade, report_tolerance)
        return

    done: dict[int, dict[str, Any]] = {}
    following = 0
    with run_bounded(_check_in_worker, structures, workers=workers, start_method=start_method,
                     preload=PRELOAD, initializer=_init_worker,
                     initargs=(priors, report_tolerance)) as outcomes:
        for out in outcomes:
            if out.ok:
                done[out.index] = out.value
            else:  # this structure alone, reproducibly, killed its worker (a pool that
                # cannot start or keeps losing workers raises PoolFailure instead)
                done[out.index] = _failed_row(f"validity worker: {out.error}")
            while following in done:
                yield done.pop(following)
                following += 1

