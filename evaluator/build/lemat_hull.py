"""LeMat-Bulk hulls (online) -> the compact hull format of ``hull.py``.

Sources on the Hugging Face Hub:
- ``LeMaterial/LeMat-Bulk-MLIP-Hull``: one split per MLIP (``mace_mp``,
  ``mace_omat``, ``orb_conserv_inf``, ``orb_direct_20``, ``uma``) and ``dft``;
  rows carry ``species_at_sites`` and the total ``energy`` (eV) of near-hull
  LeMat-Bulk structures, files ``threshold_0_001/<split>_above_hull_dataset.parquet``.
- ``LeMaterial/LeMat-Bulk-DFT-Hull-All``: the PBE DFT hull of all of LeMat-Bulk.

Each becomes a HullReference whose elemental references ``mu`` are the lowest
energy per atom among the unary rows (LeMat-GenBench's convention), so the
hull's zero and a candidate's formation energy share one scale. Energy scales:
MLIP splits are ``mlip:<split>`` and accept only the model declared for them
(``LEMAT_MLIP_MODELS``); DFT is ``dft-pbe-raw`` (uncorrected PBE/PBE+U as in
LeMat-Bulk ``compatible_pbe``), which accepts raw-PBE MLIPs (MACE-MP) directly
and refuses MP2020-corrected ones (CHGNet).

``python -m evaluator lemat-hull --split mace_mp --out hull.parquet`` downloads
(cached by huggingface_hub) and writes the compact file (``write_hull_file``); score
with ``--option stability.hull_file=hull.parquet``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd

from evaluator.reference.hull import HullReference

MLIP_HULL_REPO = "LeMaterial/LeMat-Bulk-MLIP-Hull"
DFT_HULL_REPO = "LeMaterial/LeMat-Bulk-DFT-Hull-All"
# split -> {backend: [model ids]} declared to have produced that split's energies
LEMAT_MLIP_MODELS = {
    "mace_mp": {"mace": ["medium-0b3"]},
    "mace_omat": {"mace": ["medium-omat-0"]},
    "orb_conserv_inf": {},
    "orb_direct_20": {},
    "uma": {},
}
SPLITS = ("dft", "dft-all", *LEMAT_MLIP_MODELS)
DEFAULT_SPLIT = "mace_mp"
DEFAULT_THRESHOLD = 0.001  # eV/atom above the hull: the rows kept in the Hub files
ENERGY_COLUMNS = ("energy", "total_energy", "energy_total", "dft_energy", "corrected_total_energy")


def _formula(row: Mapping[Any, Any], columns: Collection[str]) -> str | None:
    if "species_at_sites" in columns and row["species_at_sites"] is not None:
        counts = Counter(str(s) for s in list(row["species_at_sites"]))
        return " ".join(f"{el}{n}" for el, n in sorted(counts.items()))
    for c in ("chemical_formula_descriptive", "formula", "chemical_formula_reduced"):
        value = row[c] if c in columns else None
        if isinstance(value, str):
            return value
    return None


def frame_to_hull(df: pd.DataFrame, name: str, energy_scale: str,
                  compatible: dict[str, list[str]] | None = None,
                  energy_column: str | None = None, source: str = "") -> HullReference:
    """A HullReference from LeMat rows (composition + total energy per cell, eV)."""
    from pymatgen.core.composition import Composition

    columns = {str(c) for c in df.columns}
    energy_column = energy_column or next((c for c in ENERGY_COLUMNS if c in columns), None)
    if energy_column is None or not ({"species_at_sites", "chemical_formula_descriptive", "formula",
                                      "chemical_formula_reduced"} & columns):
        raise ValueError(f"{name}: expected a composition column (species_at_sites or a formula) and an energy "
                         f"column ({', '.join(ENERGY_COLUMNS)}); found {sorted(columns)}")
    ids = df["immutable_id"] if "immutable_id" in columns else pd.Series(range(len(df))).astype(str)
    formulas: list[str | None] = []
    energies: list[float] = []
    for row in df.to_dict("records"):
        formulas.append(_formula(row, columns))
        energies.append(float(row[energy_column]) if row[energy_column] is not None else math.nan)
    comps = [Composition(f) if f else None for f in formulas]
    mu: dict[str, float] = {}
    for c, e in zip(comps, energies, strict=True):
        if c is not None and len(c.elements) == 1 and math.isfinite(e):
            el = c.elements[0].symbol
            mu[el] = min(mu.get(el, math.inf), e / c.num_atoms)
    e_form: list[float] = []
    for c, e in zip(comps, energies, strict=True):
        if c is None or not math.isfinite(e) or any(el.symbol not in mu for el in c.elements):
            e_form.append(math.nan)  # no unary reference in the data for one of its elements
        else:
            e_form.append((e - sum(mu[el.symbol] * n for el, n in c.items())) / c.num_atoms)
    entries = pd.DataFrame({"entry_id": ids.astype(str).to_numpy(),
                            "formula": [c.formula.replace(" ", "") if c else None for c in comps],
                            "e_form_per_atom": e_form})
    entries = entries[np.isfinite(entries["e_form_per_atom"].to_numpy(float))].reset_index(drop=True)
    return HullReference(name, energy_scale, entries, mu, compatible or {}, source)


def download_split(repo: str, split: str, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Rows of one LeMat hull split (huggingface_hub file first, then ``datasets``)."""
    t = f"{threshold:.3f}".replace(".", "_")
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(repo_id=repo, repo_type="dataset",
                               filename=f"threshold_{t}/{split}_above_hull_dataset.parquet")
        frame: pd.DataFrame = pd.read_parquet(path)
        return frame
    except Exception as first:  # noqa: BLE001 - any failure of the file route falls back to datasets
        try:
            from datasets import load_dataset

            ds = load_dataset(repo)
            name = split if split in ds else next(iter(ds))
            rows: pd.DataFrame = ds[name].to_pandas()
            return rows
        except Exception as exc:
            raise ValueError(f"could not download {repo} split '{split}' ({first}; {exc}); "
                             "LeMat hulls need internet access once (then the Hub cache)") from exc


def load_lemat_hull(split: str = DEFAULT_SPLIT, threshold: float = DEFAULT_THRESHOLD,
                    frame: pd.DataFrame | None = None) -> HullReference:
    """The LeMat hull for ``split`` (an MLIP split, ``dft`` of the MLIP-Hull repo, or ``dft-all``).

    ``frame`` supplies the rows instead of downloading (tests, offline copies).
    """
    if split == "dft-all":
        df = frame if frame is not None else download_split(DFT_HULL_REPO, "train", threshold)
        return frame_to_hull(df, "lemat/dft-all", "dft-pbe-raw", source=f"{DFT_HULL_REPO}")
    if split == "dft":
        df = frame if frame is not None else download_split(MLIP_HULL_REPO, "dft", threshold)
        return frame_to_hull(df, "lemat/dft", "dft-pbe-raw", source=f"{MLIP_HULL_REPO}:dft")
    if split not in LEMAT_MLIP_MODELS:
        raise ValueError(f"unknown LeMat hull split '{split}': use dft, dft-all or {', '.join(LEMAT_MLIP_MODELS)}")
    df = frame if frame is not None else download_split(MLIP_HULL_REPO, split, threshold)
    return frame_to_hull(df, f"lemat/{split}", f"mlip:{split}", LEMAT_MLIP_MODELS[split],
                         source=f"{MLIP_HULL_REPO}:{split} (threshold {threshold})")
