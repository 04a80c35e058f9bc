"""CSV downloads that a spreadsheet opens as data, never as formulas (OWASP CSV injection).

A text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is run as
a formula by Excel/LibreOffice/Sheets (``=cmd|' /C calc'!A0`` in a model name).
Following the OWASP guidance, such a cell gets a leading single quote, which makes the
spreadsheet show it as text. Only strings are touched: numbers (negative ones
included) stay numbers, and a string that is just a number (``-0.5``) is left alone.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralise(value: object) -> object:
    """``value`` with a leading ``'`` when it is a string a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells and column names are neutralised (numbers untouched)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(neutralise)
    out.columns = [neutralise(str(c)) if isinstance(c, str) else c for c in out.columns]
    return out


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """``df.to_csv(path, index=False)`` with formula cells neutralised. Rows end in CRLF
    (RFC 4180), which also makes the writer quote a cell holding a bare CR, so such a
    cell cannot start a row of its own."""
    safe_frame(df).to_csv(path, index=False, lineterminator="\r\n")
