"""One protocol at a time: the evaluation protocols of a results table's rows, the
choices of the protocol selector, and the rows of one protocol.

A row's protocol is its ``protocol_id`` column (from the summary's ``protocol`` block, or
derived from an older summary's provenance); rows whose protocol is not known share the
key ``UNKNOWN`` and are never ranked together with a known protocol.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from evaluator.protocol import reference_label

UNKNOWN = "unknown"
UNKNOWN_LABEL = "protocol unknown"
ID_COLUMN, LABEL_COLUMN, SOURCE_COLUMN = "protocol_id", "protocol_label", "protocol_source"
RECORD_COLUMN = "protocol_record"


def _text(v: Any) -> str:
    return v if isinstance(v, str) and v else ""


def protocol_keys(df: pd.DataFrame) -> pd.Series:
    """The protocol id of every row (``UNKNOWN`` where none)."""
    if ID_COLUMN not in df.columns:
        return pd.Series(UNKNOWN, index=df.index, dtype=object)
    return pd.Series([_text(v) or UNKNOWN for v in df[ID_COLUMN]], index=df.index, dtype=object)


def protocol_labels(df: pd.DataFrame) -> dict[str, str]:
    """{protocol id: label} of the rows of ``df`` (``UNKNOWN``: "protocol unknown")."""
    keys = protocol_keys(df)
    labels = df[LABEL_COLUMN] if LABEL_COLUMN in df.columns else pd.Series("", index=df.index)
    out: dict[str, str] = {}
    for k, lab in zip(keys, labels):
        out.setdefault(k, UNKNOWN_LABEL if k == UNKNOWN else (_text(lab) or k))
    return out


def default_protocol(df: pd.DataFrame, pinned: str | None) -> str:
    """The protocol shown first: the service's pinned one, else the one with most rows."""
    if pinned:
        return pinned
    counts = protocol_keys(df).value_counts()
    known = counts.drop(UNKNOWN, errors="ignore")
    if len(known):
        return str(known.index[0])
    return UNKNOWN if len(counts) else ""


def protocol_choices(df: pd.DataFrame, pinned: str | None, pinned_label: str | None = None) -> list[tuple[str, str]]:
    """(display text, id) for the selector: the pinned protocol first (even with no rows),
    then the others by number of rows, "protocol unknown" last; each with its row count."""
    counts = protocol_keys(df).value_counts()
    labels = protocol_labels(df)
    if pinned:
        labels.setdefault(pinned, pinned_label or pinned)
    order = sorted(labels, key=lambda k: (k != pinned, k == UNKNOWN, -int(counts.get(k, 0)), labels[k]))
    out = []
    for k in order:
        n = int(counts.get(k, 0))
        tag = " · this service's protocol" if k == pinned else ""
        ident = "" if k == UNKNOWN else f" ({k})"
        out.append((f"{labels[k]}{ident} · {n} row{'s' if n != 1 else ''}{tag}", k))
    return out


def rows_of(df: pd.DataFrame, protocol: str | None) -> pd.DataFrame:
    """The rows of ``protocol`` (all rows when ``protocol`` is None or empty)."""
    if not protocol:
        return df
    out = df[protocol_keys(df) == protocol]
    out.attrs.update(df.attrs)
    return out


def mixed(df: pd.DataFrame) -> dict[str, str]:
    """{protocol id: label} when the rows of ``df`` come from more than one protocol, else {}."""
    labels = protocol_labels(df)
    return labels if len(labels) > 1 else {}


def reference_of(df: pd.DataFrame) -> str | None:
    """The novelty reference the rows of ``df`` were scored against, as a reader needs it
    ("MP-20 (≤ 20 atoms)", "LeMat-Bulk"; ``evaluator.protocol.reference_label`` of their
    protocol records); None when no row records one or the rows name different ones."""
    if RECORD_COLUMN not in df.columns:
        return None
    found: set[str] = set()
    for text in df[RECORD_COLUMN].dropna().unique():
        try:
            record = json.loads(str(text))
        except ValueError:
            continue
        label = reference_label(record) if isinstance(record, dict) else None
        if label:
            found.add(label)
    return found.pop() if len(found) == 1 else None
