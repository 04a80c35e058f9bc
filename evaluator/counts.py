"""Counted metrics (METRICS.md section 0): a count published with its two fractions.

A leaf module: the family contract (``families/base.py``) and the evaluation context
both use it.
"""

from __future__ import annotations

COUNT_KEYS = ("count", "frac_submitted", "frac_valid")  # the three keys of a counted metric


def counted(name: str, count: int, n_submitted: int, n_valid: int) -> dict[str, int | float | None]:
    """A count with its two fractions (METRICS.md section 0).

    ``counted("valid", 3, 10, 5)`` -> ``{"valid_count": 3,
    "valid_frac_submitted": 0.3, "valid_frac_valid": 0.6}``. A fraction whose
    denominator is zero is ``None``.
    """
    count = int(count)
    return {
        f"{name}_count": count,
        f"{name}_frac_submitted": count / n_submitted if n_submitted else None,
        f"{name}_frac_valid": count / n_valid if n_valid else None,
    }
