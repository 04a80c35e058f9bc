"""Reading and writing an evaluation's files: summary.json + structures.parquet."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from evaluator.pipeline import Evaluation

SUMMARY_FILE = "summary.json"
TABLE_FILE = "structures.parquet"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, obj) -> None:
    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False, default=str)

    _atomic_write(Path(path), write)


def write_evaluation(evaluation: Evaluation, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    table_path, summary_path = out / TABLE_FILE, out / SUMMARY_FILE
    _atomic_write(table_path, lambda tmp: evaluation.table.to_parquet(tmp, index=False))
    write_json(summary_path, evaluation.summary)
    return summary_path, table_path


def read_summary(out_dir: str | Path) -> dict:
    return json.loads((Path(out_dir) / SUMMARY_FILE).read_text())


def read_table(out_dir: str | Path) -> pd.DataFrame:
    return pd.read_parquet(Path(out_dir) / TABLE_FILE)
