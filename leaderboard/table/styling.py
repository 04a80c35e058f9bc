"""How the leaderboard looks: family colours, cell tints (darker = better) and the legend.
Colours are the UI's; which family a measure belongs to comes from the catalogue."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from leaderboard.table.measures import Measure, families_present, family_label
from leaderboard.table.view import View

# Pipeline order; each has a colour (RGB) used to tint its cells and headers.
FAMILY_COLOURS: dict[str, tuple[int, int, int]] = {
    "validity": (46, 134, 193),
    "uniqueness": (142, 68, 173),
    "novelty": (211, 84, 0),
    "stability": (39, 174, 96),
    "sun": (192, 57, 43),
    "diversity": (22, 160, 133),
    "distribution": (127, 140, 141),
    "hhi": (183, 149, 11),
}
OTHER_COLOUR = (90, 90, 90)  # a family without a colour here


def family_colour(family: str) -> tuple[int, int, int]:
    return FAMILY_COLOURS.get(family, OTHER_COLOUR)


def _rgba(rgb: tuple[int, int, int], alpha: float) -> str:
    return f"background-color: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha:.2f})"


def cell_alpha(values: pd.Series, direction: int) -> pd.Series:
    """Tint strength per cell in [0.06, 0.55]: stronger = better (per direction).

    Columns without a direction or without spread get a flat light tint; NaN cells none.
    """
    v = pd.to_numeric(values, errors="coerce").astype(float)
    out = pd.Series(np.nan, index=v.index)
    finite = v[np.isfinite(v)]
    if finite.empty:
        return out
    lo, hi = finite.min(), finite.max()
    if direction == 0 or hi == lo:
        out[finite.index] = 0.15
        return out
    goodness = (finite - lo) / (hi - lo)
    if direction < 0:
        goodness = 1.0 - goodness
    out[finite.index] = 0.06 + 0.49 * goodness
    return out


def style(view: View, rows: slice | None = None) -> Styler:
    """A pandas Styler: family-tinted cells (darker = better), formatted numbers, '—' for missing.
    ``rows``: only these rows (a page of the table), tinted against the whole column."""
    frame = view.frame
    by_header = dict(zip(view.metric_headers, view.measures))

    def colour(col: pd.Series) -> list[str]:
        m = by_header.get(str(col.name))
        if m is None:
            return [""] * len(col)
        rgb = family_colour(m.base_family)
        alpha = cell_alpha(col, m.direction)
        return ["" if not np.isfinite(a) else _rgba(rgb, a) for a in alpha]

    def text(v: Any) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)

    css = pd.DataFrame({c: colour(frame[c]) for c in frame.columns}, index=frame.index, columns=frame.columns)
    if rows is not None:
        frame, css = frame.iloc[rows], css.iloc[rows]
    styler = frame.style
    if not frame.empty:
        styler = styler.apply(lambda part: css.loc[part.index, part.columns], axis=None)
    for h, spec in view.formats.items():
        styler = styler.format(spec, subset=[h], na_rep="—")
    styler = styler.format(text, subset=[c for c in frame.columns if c not in view.formats])
    return styler.hide(axis="index")


def legend_markdown(measures: list[Measure]) -> str:
    """A short legend: family colours, arrows and what the described metrics mean."""
    lines = ["**↑** higher is better · **↓** lower is better · cells are tinted by metric family, "
             "darker = better within the column · **—** = not computed (see the model page for why)."]
    for fam in families_present(measures):
        rgb = family_colour(fam)
        descs = [f"{m.label} {m.arrow}: {m.description}" for m in measures
                 if m.base_family == fam and m.description and m.family == fam]
        swatch = f"<span style='background: rgb{rgb}; padding: 0 0.6em; border-radius: 3px'>&nbsp;</span>"
        lines.append(f"- {swatch} **{family_label(fam)}**" + (": " + "; ".join(descs) if descs else ""))
    return "\n".join(lines)
