"""Finished submissions written straight into a store, in the layout the evaluator
publishes (summary.json + structures.parquet), for the leaderboard UI tests.

The summaries carry what the evaluator stores for the science on screen: the top-level
``uncertainty`` block ({family: {metric_key: {"lo", "hi"}}}), ``provenance.uncertainty``,
``provenance.reference.coverage`` and, per SUN/MSUN candidate, a ``sun_candidate`` JSON
record (structure with bonds, phase diagram as plotly JSON, energies, RMSD, nearest
reference), plus the flags ``novelty_beyond_reference_size`` and
``stability_sparse_chemsys``. ``old_style=True`` leaves all of that out (results evaluated
before those existed). Each summary carries a ``protocol`` block: by default the protocol
this process's settings pin (``service_protocol``, what the app under test pins), so the
rows are ranked together; ``protocol=None`` leaves it out ("protocol unknown"). The numbers
are test inputs chosen by hand, not anyone's scores.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

COVERAGE = {"description": "MP-20 holds only cells of ≤ 20 atoms; a structure larger than any reference "
                           "cell cannot be matched", "n_structures": 45229, "max_sites": 20}
EVALUATOR_VERSION = "9.9.9-test"
PINNED = "pinned"  # publish_fixture(protocol=PINNED): the protocol the app under test pins


def service_protocol():
    """The protocol an app started in this process pins (``AppContext.protocol``)."""
    from evaluator.config import build_config
    from evaluator.protocol import protocol_of

    return protocol_of(build_config())


def protocol_block(name: str | None = None, relax_steps: int | None = None) -> dict:
    """The protocol block of the named protocol (default: the service's), optionally with another step cap."""
    from evaluator.config import build_config
    from evaluator.protocol import protocol_of

    if name is None and relax_steps is None:
        return dict(service_protocol().block())
    return dict(protocol_of(build_config(env={}, protocol=name, relax_steps=relax_steps)).block())


def rock_salt(a: float, species=("Na", "Cl")):
    return _rock_salt(float(a), tuple(species)).copy()


@lru_cache(maxsize=64)
def _rock_salt(a: float, species: tuple[str, ...]):
    # from_spacegroup builds the space group's operations each time (seconds on a loaded machine)
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), list(species), [[0, 0, 0], [0.5, 0.5, 0.5]])


def structure_record(s) -> dict:
    """The evaluator's ``structure`` record: species, Cartesian coordinates, lattice and bonds."""
    bonds = []
    for i, nbrs in enumerate(s.get_all_neighbors(3.2)):
        for n in nbrs:
            if n.index > i:
                bonds.append([i, int(n.index), [float(v) for v in s[i].coords], [float(v) for v in n.coords]])
    return {"species": [sp.symbol for sp in s.species], "cart_coords": s.cart_coords.tolist(),
            "lattice": s.lattice.matrix.tolist(), "bonds": bonds}


def phase_diagram_json(formula: str) -> str:
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[0, 0.5, 1], y=[0, -0.9, 0], mode="lines+markers", name="hull"))
    fig.add_trace(go.Scatter(x=[0.5], y=[-0.85], mode="markers", name=formula))
    fig.update_layout(title=f"Phase diagram of {formula}", xaxis_title="x", yaxis_title="E_form [eV/atom]")
    return fig.to_json()


def structures_table(n: int, n_sun: int, n_msun: int, *, old_style: bool = False) -> pd.DataFrame:
    """``n`` rows; the first ``n_sun`` SUN, the next ``n_msun`` MSUN."""
    rows = []
    for i in range(n):
        s = rock_salt(5.4 + 0.05 * i, ("Na", "Cl") if i % 2 == 0 else ("K", "Br"))
        e_relaxed = -0.012 + 0.0137 * i + 1e-15 * i  # long float tails on purpose (rounding on screen)
        sun, msun = i < n_sun, n_sun <= i < n_sun + n_msun
        row = {"index": i, "source": f"gen.cif#{i}", "parse_ok": True,
               "formula": s.composition.formula.replace(" ", ""),
               "reduced_formula": s.composition.reduced_formula, "nsites": len(s), "validity_valid": True,
               "stability_e_above_hull": e_relaxed, "stability_unrelaxed_e_above_hull": e_relaxed + 0.2,
               "stability_rmsd": 0.11, "stability_relaxed_structure": json.dumps(s.as_dict()),
               "sun_sun": sun, "sun_msun": msun}
        if not old_style:
            row["novelty_beyond_reference_size"] = i == 0
            row["stability_sparse_chemsys"] = i == 1
            row["sun_candidate"] = json.dumps({
                "structure": structure_record(s), "phase_diagram": phase_diagram_json(row["reduced_formula"]),
                "e_hull_unrelaxed": e_relaxed + 0.2, "e_hull_relaxed": e_relaxed, "rmsd": 0.1234,
                "nearest_reference": {"id": "mp-22862", "formula": "NaCl", "e_above_hull": 0.0},
            }) if (sun or msun) else None
        rows.append(row)
    return pd.DataFrame(rows)


def counted(name: str, count: int, n_sub: int, n_valid: int) -> dict:
    return {f"{name}_count": count, f"{name}_frac_submitted": count / n_sub, f"{name}_frac_valid": count / n_valid}


def summary(table: pd.DataFrame, ci_halfwidth: float, *, old_style: bool = False,
            protocol: dict | str | None = PINNED) -> dict:
    n = len(table)
    n_sun, n_msun = int(table["sun_sun"].sum()), int(table["sun_msun"].sum())
    n_stable = int((table["stability_e_above_hull"] <= 0).sum())
    n_meta = int((table["stability_e_above_hull"] <= 0.1).sum())
    metrics = {
        "validity": {**counted("valid", n, n, n), "valid_frac_parsed": 1.0},
        "uniqueness": counted("unique", n, n, n),
        "novelty": counted("novel", n - 1, n, n),
        "stability": {**counted("stable", n_stable, n, n), **counted("metastable", n_meta, n, n),
                      "mean_e_above_hull": float(table["stability_e_above_hull"].mean())},
        "sun": {**counted("sun", n_sun, n, n), **counted("msun", n_msun, n, n),
                **counted("sun_plus_msun", n_sun + n_msun, n, n)},
    }
    prov = {"evaluator_version": EVALUATOR_VERSION, "families": list(metrics),
            "reference": {"id": "mp20"}, "config": {"mlip": "chgnet"}}
    out = {"n_submitted": n, "n_parsed": n, "n_valid": n, "n_evaluated": n, "metrics": metrics,
           "provenance": prov}
    if protocol is not None:
        out["protocol"] = protocol_block() if protocol == PINNED else protocol
    if not old_style:
        prov["reference"]["coverage"] = COVERAGE
        prov["uncertainty"] = {"method": "percentile bootstrap over structures", "n_resamples": 1000, "seed": 0,
                               "level": 0.95}
        unc: dict = {}
        for fam, block in metrics.items():
            for key, v in block.items():
                if key.endswith(("_frac_submitted", "_frac_valid")):
                    unc.setdefault(fam, {})[key] = {"lo": max(0.0, v - ci_halfwidth), "hi": min(1.0, v + ci_halfwidth)}
        out["uncertainty"] = unc
    return out


def publish_fixture(store, tmp: Path, model: str, n: int, n_sun: int, n_msun: int, ci_halfwidth: float = 0.1,
                    old_style: bool = False, protocol: dict | str | None = PINNED) -> str:
    """Submit, claim and publish one finished submission; returns its id."""
    from store_helpers import write_unique_files

    from leaderboard.jobs.queue import claim
    from leaderboard.publishing.results import publish
    from leaderboard.intake.submissions import SubmissionPolicy, submit

    meta = {"model_name": model, "model_version": "1", "training_set": "MP-20", "task": "unconditional",
            "relaxed_before_submission": False}
    files = write_unique_files(tmp / model, 1)
    job = submit(store, meta, files, f"user-{model}", SubmissionPolicy(max_per_window=0))
    claimed = claim(store, "fixture-worker", 600)
    assert claimed is not None and claimed.id == job.id
    table = structures_table(n, n_sun, n_msun, old_style=old_style)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    publish(store, claimed, summary(table, ci_halfwidth, old_style=old_style, protocol=protocol), buf.getvalue(),
            "fixture-worker")
    return job.id


def ranks_consistent(ranks: list, values: list[float], higher_better: bool = True) -> bool:
    """True when ``ranks`` are 1..n competition ranks of ``values`` in display order."""
    v = np.asarray(values, float) * (1 if higher_better else -1)
    expected = [1 + int((v > x).sum()) for x in v]
    return [int(r) for r in ranks] == expected and list(v) == sorted(v, reverse=True)
