"""Files the app offers for download, written into one folder (a long-running app does not
fill the disk): the whole leaderboard as CSV and parquet, a submission's results."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from leaderboard.table.csv_safe import write_csv
from leaderboard.table.download import ranked_table
from leaderboard.ui.shared_state import AppContext

DOWNLOAD_DIR = Path(tempfile.gettempdir()) / "genbench-downloads"


def write_download(name: str, write: Callable[[Path], object], reuse: bool = False, folder: Path | None = None,
                   keep: int | None = None) -> str:
    """Write a download into one folder (not a new temp folder per click, which would
    fill the disk of a long-running app). ``reuse``: the file is immutable (results of
    a finished submission), write it once. ``keep``: the folder keeps at most this many
    files, the oldest go (for files named by what they hold, which are many)."""
    folder = folder or DOWNLOAD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    if reuse and p.exists():
        return str(p)
    tmp = Path(tempfile.mkstemp(dir=folder, prefix=f".{name}.")[1])
    try:
        write(tmp)
        os.replace(tmp, p)  # atomic: concurrent clicks never serve a half-written file
    finally:
        tmp.unlink(missing_ok=True)
    if keep is not None:
        _prune(folder, keep, p)
    return str(p)


def _prune(folder: Path, keep: int, new: Path) -> None:
    """Remove all but the newest ``keep`` files of ``folder`` (never ``new``)."""
    files = []
    for f in folder.iterdir():
        try:
            if f.is_file() and not f.name.startswith(".") and f != new:
                files.append((f.stat().st_mtime, f))
        except FileNotFoundError:  # removed by a concurrent prune
            continue
    for _, f in sorted(files)[: max(0, len(files) - (keep - 1))]:
        f.unlink(missing_ok=True)


def store_folder(ctx: AppContext) -> Path:
    """The download folder of one store's submissions: files written once per submission
    are never served from another store whose submission has the same id (two apps, or a
    test store and a real one, on one machine)."""
    return DOWNLOAD_DIR / f"store-{hashlib.sha256(ctx.store.uri.encode()).hexdigest()[:16]}"


_LB_FILES: dict[int, tuple[int, tuple[str, str]]] = {}  # id(ctx) -> (results loads written, paths)


def leaderboard_files(ctx: AppContext) -> tuple[str, str]:
    """The whole leaderboard as CSV and parquet files, rewritten when the results were reloaded:
    every row, with the on-screen rank (``rank``, default ranking, per protocol) and order."""
    res = ctx.results.get()
    loads, paths = _LB_FILES.get(id(ctx), (None, ()))
    if loads != ctx.results.loads or len(paths) != 2 or not all(Path(p).exists() for p in paths):
        folder = DOWNLOAD_DIR / f"app-{os.getpid()}-{id(ctx):x}"  # one app's table, never another's
        table = ranked_table(res, ctx.protocol.id if ctx.protocol else None)
        paths = (whole_table(table, "csv", folder), whole_table(table, "parquet", folder))
        _LB_FILES[id(ctx)] = (ctx.results.loads, paths)
    return paths[0], paths[1]


def whole_table(res: pd.DataFrame, kind: str, folder: Path | None = None) -> str:
    if kind == "csv":
        return write_download("leaderboard.csv", lambda p: write_csv(res, p), folder=folder)
    return write_download("leaderboard.parquet", lambda p: res.to_parquet(p, index=False), folder=folder)
