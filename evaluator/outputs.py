"""An evaluation's two outputs, ``summary.json`` and ``structures.parquet``, in memory
or as files.

``serialize`` is the one place an :class:`~evaluator.pipeline.Evaluation` becomes
bytes: the summary as indented JSON, the per-structure table as parquet. The CLI
writes those bytes to a folder (``write_evaluation``); the leaderboard worker's
evaluation process sends them to the worker, which publishes them without a file in
between. Reading back gives the summary as plain JSON data (what a reader of the
file sees) and the table as a DataFrame.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evaluator.pipeline import Evaluation

SUMMARY_FILE = "summary.json"
TABLE_FILE = "structures.parquet"


@dataclass(frozen=True)
class SerializedEvaluation:
    """An evaluation as the bytes of its two files."""

    summary_json: bytes  # UTF-8 JSON, the content of summary.json
    table_parquet: bytes  # the content of structures.parquet

    def summary(self) -> dict[str, Any]:
        """The summary as JSON data (what ``read_summary`` returns for the written file)."""
        out: dict[str, Any] = json.loads(self.summary_json)
        return out

    def table(self) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.table_parquet))


def json_bytes(obj: object) -> bytes:
    """``obj`` as indented JSON; values JSON does not know (numpy integers, paths,
    timestamps) are written as their text."""
    return json.dumps(obj, indent=2, sort_keys=False, default=str).encode()


def table_bytes(table: pd.DataFrame) -> bytes:
    """The per-structure table as parquet (no index column: ``index`` is a column)."""
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def serialize(evaluation: Evaluation) -> SerializedEvaluation:
    """The evaluation's summary and table as the bytes of their files."""
    return SerializedEvaluation(json_bytes(evaluation.summary), table_bytes(evaluation.table))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, so a
    reader never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | Path, obj: object) -> None:
    write_bytes_atomic(Path(path), json_bytes(obj))


def write_serialized(serialized: SerializedEvaluation, out_dir: str | Path) -> tuple[Path, Path]:
    """Write the two files into ``out_dir``; returns (summary path, table path)."""
    out = Path(out_dir)
    summary_path, table_path = out / SUMMARY_FILE, out / TABLE_FILE
    write_bytes_atomic(table_path, serialized.table_parquet)
    write_bytes_atomic(summary_path, serialized.summary_json)
    return summary_path, table_path


def write_evaluation(evaluation: Evaluation, out_dir: str | Path) -> tuple[Path, Path]:
    """``summary.json`` and ``structures.parquet`` of ``evaluation`` in ``out_dir``."""
    return write_serialized(serialize(evaluation), out_dir)


def read_summary(out_dir: str | Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((Path(out_dir) / SUMMARY_FILE).read_text())
    return out


def read_table(out_dir: str | Path) -> pd.DataFrame:
    return pd.read_parquet(Path(out_dir) / TABLE_FILE)
