"""How values read on screen: numbers with a fixed number of significant figures (trailing
zeros kept, one format per column), chemical formulas as chemists write them, yes/no."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from numbers import Real
from typing import Any

SIG_FIGURES = 3
MAX_DECIMALS = 8
_ONES = re.compile(r"([A-Z][a-z]?)1(?![0-9.])")


def decimals_for(magnitude: float, sig: int = SIG_FIGURES) -> int:
    """Decimals that give ``sig`` significant figures to a number of this magnitude (0 for
    numbers with that many integer digits or more; 0, NaN or inf: ``sig`` - 1)."""
    if not math.isfinite(magnitude) or magnitude == 0:
        return sig - 1
    return int(min(MAX_DECIMALS, max(0, sig - 1 - math.floor(math.log10(abs(magnitude))))))


def column_format(values: Iterable[Any], sig: int = SIG_FIGURES) -> str:
    """One fixed-point format for a column: ``sig`` significant figures of its largest
    magnitude, so every cell has the same decimals and keeps its trailing zeros
    ("12.0", "17.7", "7.67" → "12.0", "17.7", "7.7"; "0.480" beside "0.359")."""
    finite = [abs(float(v)) for v in values if isinstance(v, Real) and math.isfinite(float(v))]
    return "{:." + str(decimals_for(max(finite) if finite else 0.0, sig)) + "f}"


def sig_text(value: float, sig: int = SIG_FIGURES) -> str:
    """``value`` with ``sig`` significant figures, trailing zeros kept (0.48 → "0.480")."""
    return f"{value:.{decimals_for(value, sig)}f}"


def chem_formula(formula: Any) -> str:
    """A formula as chemists write it: no count of 1 ("Al1I7" → "AlI7", "Al1 I7" → "AlI7");
    other text is returned as is ("" for a missing value)."""
    if not isinstance(formula, str):
        return ""
    return _ONES.sub(r"\1", formula.replace(" ", ""))


def yes_no(value: Any) -> Any:
    """"yes"/"no" for a boolean; anything else unchanged."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value
