"""Leaderboard rows: one finished submission's summary as a flat row (frames of rows:
``leaderboard.publishing.frames``).

Pure functions of their inputs (the store is not touched), shared by the reading side
(``leaderboard.publishing.results``) and the publishing side (``leaderboard.publishing.dataset``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import pandas as pd

from evaluator.catalogue import INTERVAL_PREFIX, SummaryColumn, summary_column
from evaluator.protocol import summary_protocol
from evaluator.summary import UnsupportedSchema, check_schema
from leaderboard.jobs.queue import Job
from leaderboard.publishing.frames import is_null

# Metadata copied from meta.json into each leaderboard row, in this order.
META_FIELDS = ("model_name", "model_version", "organisation", "submitter", "training_set",
               "training_set_other", "task", "condition", "relaxed_before_submission",
               "relaxation_method", "paper_url", "code_url", "checkpoint_url", "license",
               "file_sha256", "notes")
COUNT_FIELDS = ("n_submitted", "n_parsed", "n_valid", "n_evaluated")
__all__ = ["COUNT_FIELDS", "META_FIELDS", "Cell", "FixedColumns", "LeaderboardRow", "UnsupportedSchema",
           "flatten_metrics", "kept_as_stored", "protocol_of", "refusal", "summary_row"]

Cell = str | int | float | bool | None
"""A value of a leaderboard column (a list in a summary becomes JSON text)."""


class FixedColumns(TypedDict):
    """The columns every leaderboard row has, in this order (metadata from meta.json, the
    job, the summary's counts, its provenance and protocol); see the dataset card for each."""

    submission_id: str
    model_name: Cell
    model_version: Cell
    organisation: Cell
    submitter: Cell
    training_set: Cell
    training_set_other: Cell
    task: Cell
    condition: Cell
    relaxed_before_submission: Cell
    relaxation_method: Cell
    paper_url: Cell
    code_url: Cell
    checkpoint_url: Cell
    license: Cell
    file_sha256: Cell
    notes: Cell
    n_structures_declared: Cell
    submitted_at: str | None
    finished_at: str | None
    attempts: int
    n_submitted: int | None
    n_parsed: int | None
    n_valid: int | None
    n_evaluated: int | None
    schema_version: int
    provenance: str
    evaluator_version: str | None
    families: str
    reference: str | None
    mlip: str | None
    mlip_model: str | None
    rescore_of: str | None
    protocol_id: str | None
    protocol_label: str
    protocol_source: str
    protocol_record: str | None
    device: str | None
    engine: str | None
    relax_mode: str | None
    reference_coverage: str | None
    reference_n_structures: int | None
    reference_max_sites: int | None
    uncertainty_method: str | None
    uncertainty_n_resamples: int | None
    uncertainty_seed: int | None
    uncertainty_level: float | None


@dataclass(frozen=True)
class LeaderboardRow(Mapping[str, object]):
    """One published leaderboard row: the fixed columns, then one column per metric of the
    summary (``<block>.<key>``; ``record`` gives the catalogue's record of a declared one),
    then the bounds of the rates' confidence intervals (``uncertainty.<block>.<key>.lo``/``.hi``).
    Read as a mapping {column: value}, in that order."""

    fixed: FixedColumns
    metrics: dict[str, Cell] = field(default_factory=dict)
    intervals: dict[str, Cell] = field(default_factory=dict)

    def _cells(self) -> dict[str, object]:
        return {**self.fixed, **self.metrics, **self.intervals}

    def __getitem__(self, column: str) -> object:
        return self._cells()[column]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cells())

    def __len__(self) -> int:
        return len(self.fixed) + len(self.metrics) + len(self.intervals)

    @staticmethod
    def record(column: str) -> SummaryColumn | None:
        """The catalogue's record of a metric column (None for a fixed or undeclared one)."""
        return summary_column(column)


# ------------------------------------------------------------------ rows
def flatten_metrics(metrics: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Cell]:
    """{"validity": {"valid_frac": 0.9}} -> {"validity.valid_frac": 0.9}; nested dicts
    are joined with dots, lists become JSON strings."""
    out: dict[str, Cell] = {}
    for key, value in (metrics or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_metrics(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value, default=str)
        else:
            out[name] = value
    return out


def protocol_of(summary: Mapping[str, Any]) -> str | None:
    """The id of the evaluation protocol a summary was produced under (its ``protocol``
    block, or derived from its provenance: ``evaluator.protocol.summary_protocol``), or
    None when it cannot be told."""
    protocol, _ = summary_protocol(dict(summary))
    return protocol.id if protocol else None


def _block(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def summary_row(job: Job, meta: Mapping[str, Any] | None, summary: Mapping[str, Any]) -> LeaderboardRow:
    """The leaderboard row of one finished submission; raises ``UnsupportedSchema`` for a
    summary whose ``schema_version`` this code does not know. It names the protocol
    (``protocol_id``, ``protocol_label``, ``protocol_source``: summary, derived or unknown;
    ``protocol_record`` as JSON) and, beside it, the device and engine."""
    version = check_schema(summary)
    meta = meta or {}
    prov = _block(summary.get("provenance"))
    config = _block(prov.get("config"))
    reference = prov.get("reference")
    # The protocol (evaluator.protocol): the ranking never mixes two; "unknown" is never ranked
    # with a known one. Device, engine and batch size are recorded beside it.
    protocol, source = summary_protocol(dict(summary))
    execution = _block(summary.get("execution"))
    relax = _block(_block(_block(prov.get("family")).get("stability")).get("relaxation"))
    coverage = _block(reference.get("coverage")) if isinstance(reference, dict) else {}
    unc = _block(prov.get("uncertainty"))
    fixed: FixedColumns = {
        "submission_id": job.id,
        "model_name": meta.get("model_name"), "model_version": meta.get("model_version"),
        "organisation": meta.get("organisation"), "submitter": meta.get("submitter"),
        "training_set": meta.get("training_set"), "training_set_other": meta.get("training_set_other"),
        "task": meta.get("task"), "condition": meta.get("condition"),
        "relaxed_before_submission": meta.get("relaxed_before_submission"),
        "relaxation_method": meta.get("relaxation_method"), "paper_url": meta.get("paper_url"),
        "code_url": meta.get("code_url"), "checkpoint_url": meta.get("checkpoint_url"),
        "license": meta.get("license"), "file_sha256": meta.get("file_sha256"), "notes": meta.get("notes"),
        "n_structures_declared": meta.get("n_structures"),
        "submitted_at": job.created_at, "finished_at": job.finished_at, "attempts": job.attempts,
        "n_submitted": summary.get("n_submitted"), "n_parsed": summary.get("n_parsed"),
        "n_valid": summary.get("n_valid"), "n_evaluated": summary.get("n_evaluated"),
        "schema_version": version,
        "provenance": "leaderboard worker",
        "evaluator_version": prov.get("evaluator_version"),
        "families": ",".join(prov.get("families") or []),
        "reference": reference.get("id") if isinstance(reference, dict) else reference,
        "mlip": config.get("mlip"),
        "mlip_model": config.get("mlip_model"),
        "rescore_of": job.source or None,
        "protocol_id": protocol.id if protocol else None,
        "protocol_label": protocol.label if protocol else "protocol unknown",
        "protocol_source": source,
        "protocol_record": json.dumps(protocol.record, sort_keys=True) if protocol else None,
        "device": execution.get("device") or relax.get("device"),
        "engine": execution.get("engine") or relax.get("engine"),
        "relax_mode": execution.get("relax_mode") or relax.get("mode"),
        # what the reference covers (novelty, SUN/MSUN are relative to it)
        "reference_coverage": coverage.get("description"),
        "reference_n_structures": coverage.get("n_structures"),
        "reference_max_sites": coverage.get("max_sites"),
        "uncertainty_method": unc.get("method"), "uncertainty_n_resamples": unc.get("n_resamples"),
        "uncertainty_seed": unc.get("seed"), "uncertainty_level": unc.get("level"),
    }
    # Confidence intervals of the rates: "uncertainty.<block>.<key>.lo"/".hi".
    return LeaderboardRow(fixed, flatten_metrics(_block(summary.get("metrics"))),
                          flatten_metrics(_block(summary.get("uncertainty")), INTERVAL_PREFIX))


def kept_as_stored(table: pd.DataFrame | None) -> set[str]:
    """Ids of the stored rows of a leaderboard table that are kept as they are (a newer schema
    version's included); a row written before protocols existed (no ``protocol_source``) is
    rebuilt from its summary instead."""
    if table is None or "submission_id" not in table or "protocol_source" not in table:
        return set()
    return {str(i) for i in table.loc[table["protocol_source"].notna(), "submission_id"]}


def refusal(row: Mapping[str, Any]) -> str | None:
    """Why a stored leaderboard row cannot be read by this code (its summary's schema
    version is unknown), or None. Rows without ``schema_version`` are version 1."""
    v = row.get("schema_version")
    if is_null(v):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    try:
        check_schema({"schema_version": v})
    except UnsupportedSchema as exc:
        return str(exc)
    return None


