"""A submission's per-structure table on its model page: which columns hold E_hull, the
SUN/MSUN flags and the structures, the valid rows, and the top SUN/MSUN candidates."""

from __future__ import annotations

import math

import pandas as pd

from evaluator.columns import PARSE_OK, STRUCTURE
from evaluator.families.stability import metrics as STABILITY
from evaluator.families.validity.metrics import SPACEGROUP_LOOSE, VALID
from leaderboard.table.formats import chem_formula
from leaderboard.ui.candidate import BEYOND_REFERENCE_COLUMN, SPARSE_CHEMSYS_COLUMN

N_CANDIDATES = 25

def first_column(df: pd.DataFrame, candidates: tuple[str, ...], contains: tuple[str, ...] = (),
                 exclude: tuple[str, ...] = ()) -> str | None:
    """The first of ``candidates`` in ``df``, else the first column containing all of ``contains``."""
    for c in candidates:
        if c in df.columns:
            return c
    if contains:
        for c in df.columns:
            if all(s in c for s in contains) and not any(s in c for s in exclude):
                return c
    return None


def ehull_column(df: pd.DataFrame) -> str | None:
    """Relaxed-geometry E_hull column (eV/atom) of the per-structure table."""
    return first_column(df, (STABILITY.E_ABOVE_HULL.name, "stability_e_above_hull_relaxed"),
                        ("e_above_hull",), ("unrelaxed", "status", "reason", "n_ref"))


def flag_column(df: pd.DataFrame, name: str) -> str | None:
    """Boolean per-structure flag of family ``sun`` (``sun`` or ``msun``)."""
    return first_column(df, (f"sun_{name}", f"sun_is_{name}", f"{name}"))


def structure_column(df: pd.DataFrame) -> str | None:
    """Relaxed structure (pymatgen JSON) if the table has one, else the submitted one."""
    return first_column(df, (STABILITY.RELAXED_STRUCTURE.name, "stability_structure_relaxed",
                             "relaxed_structure"), ("relaxed_structure",)) or \
        (STRUCTURE.name if STRUCTURE.name in df.columns else None)


def truthy(series: pd.Series) -> pd.Series:
    return series.map(lambda v: bool(v) if isinstance(v, (bool, int, float)) and not
                      (isinstance(v, float) and math.isnan(v)) else str(v).lower() == "true")


def spacegroup_header(tolerance: object, loose: bool = True) -> str:
    """"space group (spglib, symprec 0.1 Å, 5°)" from the validity family's provenance
    ``reported_spacegroup`` record. Older results hold only spglib's group at 0.01 Å
    (``loose`` False)."""
    if not loose:
        return "space group (spglib, symprec 0.01 Å, 5°)"
    if isinstance(tolerance, dict) and isinstance(tolerance.get("symprec_A"), (int, float)):
        angle = tolerance.get("angle_tolerance_deg")
        return (f"space group (spglib, symprec {tolerance['symprec_A']:g} Å"
                + (f", {angle:g}°)" if isinstance(angle, (int, float)) else ")"))
    return "space group (spglib, the protocol's reporting tolerance)"


def candidates(df: pd.DataFrame, n: int = N_CANDIDATES,
               tolerance: object = None) -> tuple[pd.DataFrame, str]:
    """Top SUN (then MSUN) structures by E_hull: (table, caption). The space group is the
    reported one (``validity_spacegroup_loose``, at a tolerance suited to relaxed structures,
    ``tolerance`` as the validity family's provenance records it) where the table has it."""
    eh = ehull_column(df)
    parts, kinds = [], []
    for name in ("sun", "msun"):
        col = flag_column(df, name)
        if col is None:
            continue
        sel = df[truthy(df[col])].copy()
        sel["kind"] = name.upper()
        parts.append(sel)
        kinds.append(name.upper())
    if not parts:
        return pd.DataFrame(), "No SUN/MSUN flags in this submission's results (family not run)."
    sel = pd.concat(parts)
    if sel.empty and eh is not None:  # nothing SUN/MSUN: show the closest to the hull instead
        sel = df[pd.to_numeric(df[eh], errors="coerce").notna()].copy()
        sel["kind"] = "lowest E_hull"
        sel = sel.sort_values(eh, kind="mergesort")
        cols = [c for c in ("index", "source", "kind", "formula", eh) if c in sel.columns]
        out = _clean_formulas(sel[cols].head(n).reset_index(drop=True))
        out[eh] = pd.to_numeric(out[eh], errors="coerce").round(3)
        out = out.rename(columns={eh: "E_hull [eV/atom]"})
        return out, (f"No SUN or MSUN structures in this submission; the {len(out)} structures with the "
                     "lowest E_hull are listed instead.")
    if eh:
        sel = sel.sort_values(["kind", eh], ascending=[False, True], kind="mergesort")
    cols = [c for c in ("index", "source", "kind", "formula", "reduced_formula", eh,
                        first_column(df, (SPACEGROUP_LOOSE.name,), ("spacegroup",))
                        or first_column(df, (), ("space_group",)))
            if c and c in sel.columns]
    out = _clean_formulas(sel[list(dict.fromkeys(cols))].head(n).reset_index(drop=True))

    for col, label in ((BEYOND_REFERENCE_COLUMN, "larger than any reference cell"),
                       (SPARSE_CHEMSYS_COLUMN, "sparse chemical system")):
        flags = sel[col].head(n).reset_index(drop=True) if col in sel.columns else None
        out[label] = ["—" if flags is None or pd.isna(v) else ("⚠ yes" if bool(v) else "no")
                      for v in (flags if flags is not None else [None] * len(out))]
    if eh:
        out[eh] = pd.to_numeric(out[eh], errors="coerce").round(3)
    out = out.rename(columns={eh: "E_hull [eV/atom]"} if eh else {})
    header = spacegroup_header(tolerance, SPACEGROUP_LOOSE.name in out.columns)
    out = out.rename(columns={c: header for c in out.columns if "spacegroup" in c or "space_group" in c})
    n_sun = sum(1 for k in sel["kind"] if k == "SUN")
    cap = (f"{n_sun} SUN and {len(sel) - n_sun} MSUN structures; showing the first {len(out)} "
           "(SUN first, lowest E_hull first).")
    return out, cap


def _clean_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Formula columns as chemists write them ("Al1I7" → "AlI7")."""
    for c in ("formula", "reduced_formula"):
        if c in df.columns:
            df[c] = df[c].map(chem_formula)
    return df


def valid_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Valid structures (parsed ones when validity did not run)."""
    if VALID.name in df:
        return df[truthy(df[VALID.name])]
    return df[truthy(df[PARSE_OK.name])] if PARSE_OK.name in df else df
