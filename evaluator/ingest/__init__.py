"""Ingestion: uploaded files/folders -> one Item per submitted structure, in order.

``read_inputs`` raises IngestError when the upload as a whole is refused (format,
safety limit); every structure that cannot be read keeps its row as an Item
with an ``error``. Nothing is ever extracted to disk. Files are first cut into
Units (one per structure; archives, decompression and JSON depth bounded here),
then each Unit is parsed under a wall-clock limit in a child process (``units``).
Cutting is bounded too: files are cut one structure at a time, so ``max_structures``
and the check's deadline stop a file of millions of entries while it is cut.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from evaluator.config import IngestLimits
from evaluator.progress import Progress, no_progress
from evaluator.ingest.archive import Budget, decompress, iter_archive
from evaluator.ingest.detect import (ACCEPTED, ARCHIVE_KINDS, PICKLE_MESSAGE, basename, detect,
                                     is_ignored, strip_gz)
from evaluator.ingest.checks import shorten
from evaluator.ingest.fingerprint import upload_digest
from evaluator.ingest.formats import split_cif, split_poscar, split_xyz
from evaluator.ingest.tables import NotStructureData, split_csv, split_json, split_jsonl
from evaluator.ingest.types import IngestError, Item, Unit, too_many_structures
from evaluator.ingest.units import parse_units

__all__ = ["ACCEPTED", "IngestError", "Item", "UploadCheck", "inspect_upload", "read_inputs"]

SPLITTERS = {"cif": split_cif, "poscar": split_poscar, "xyz": split_xyz,
             "csv": split_csv, "json": split_json, "jsonl": split_jsonl}


@dataclass
class _File:
    path: Path
    source: str  # name shown in results: file name, or folder/relative/path
    explicit: bool  # named by the user (not found by walking a folder)


def _collect(inputs: Sequence[str | Path]) -> list[_File]:
    """Files to read: inputs in order, folder contents sorted, hidden/junk skipped."""
    files: list[_File] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file())
            for p in found:
                rel = p.relative_to(path).as_posix()
                if not is_ignored(rel):
                    files.append(_File(p, f"{path.resolve().name}/{rel}", False))
        elif path.is_file():
            files.append(_File(path, path.name, True))
        else:
            raise IngestError(f"{raw}: no such file or folder")
    return files


class _Items(list[Item | Unit]):
    """The Items (or Units still to parse) so far, added while files are cut; refuses more
    than ``max_structures``, and stops past ``deadline`` (``time.monotonic()``)."""

    def __init__(self, limits: IngestLimits, deadline: float | None = None,
                 too_slow: Callable[[], IngestError] | None = None) -> None:
        super().__init__()
        self.limit = limits.max_structures
        self.deadline, self.too_slow = deadline, too_slow

    def add(self, item: Item | Unit) -> None:
        if len(self) >= self.limit:
            raise too_many_structures(self.limit)
        self.append(item)
        if self.deadline is not None and len(self) % 64 == 0:
            self.check_time()

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise self.too_slow() if self.too_slow else IngestError("reading the upload took too long")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _read_blob(source: str, name: str, data: bytes, explicit: bool, nested: bool,
               out: _Items, budget: Budget) -> None:
    """Cut one file's bytes (``name`` decides the format) into Units and Items, into ``out``."""
    kind = detect(name, data[:8])
    if kind == "pickle":
        raise IngestError(f"{shorten(source, 160)}: {PICKLE_MESSAGE}")
    if kind in ARCHIVE_KINDS or kind == "gz":
        if nested:
            out.add(Item(source, error="nested archive: not supported; add its files to the outer archive"))
        elif kind == "gz":
            inner = decompress(data, "gz", source, budget)
            _read_blob(source, strip_gz(name), inner, explicit, True, out, budget)
        else:
            for member in iter_archive(kind, data, source, budget):
                src = f"{source}:{member.name}"
                if member.error or member.data is None:
                    out.add(Item(src, error=member.error or "unreadable archive member"))
                else:
                    _read_blob(src, member.name, member.data, False, True, out, budget)
        return
    if kind == "unknown":
        if explicit:
            raise IngestError(f"{shorten(source, 160)}: unsupported file format; accepted: {ACCEPTED}")
        suffix = shorten(Path(basename(name)).suffix or basename(name), 40)
        out.add(Item(source, error=f"unsupported format {suffix!r}: not a structure file"))
        return
    if not data or data.isspace():  # (no stripped copy of a big file)
        out.add(Item(source, error="empty file"))
        return
    entries = SPLITTERS[kind](_decode(data), source, budget.limits)
    try:
        for entry in entries:  # cut one structure at a time: the limits apply while cutting
            out.add(entry)
    except NotStructureData as exc:
        if explicit:
            raise IngestError(f"{shorten(source, 160)}: {exc}") from exc
        # a metadata table or file beside the structures, holding none: not part of the submission


def _too_slow(max_seconds: float) -> IngestError:
    return IngestError(f"reading the upload took longer than {max_seconds:g} s (max_check_seconds); "
                       "submit fewer or smaller structures")


def read_inputs(inputs: str | Path | Sequence[str | Path], limits: IngestLimits | None = None,
                progress: Progress = no_progress, max_seconds: float | None = None) -> list[Item]:
    """Read files/folders into Items in a deterministic order. Raises IngestError.

    Progress counts structures read ("ingest", done, total). ``max_seconds`` bounds the
    whole read (the app's upload check); each structure is bounded by
    ``limits.max_read_seconds`` anyway.
    """
    return _read(inputs, limits or IngestLimits(), progress, max_seconds, keep=True)


def _read(inputs: str | Path | Sequence[str | Path], limits: IngestLimits, progress: Progress,
          max_seconds: float | None, keep: bool) -> list[Item]:
    """``read_inputs``; unless ``keep``, structures are dropped as soon as they are read
    (a read structure is then an Item with neither structure nor error)."""
    deadline = None if max_seconds is None else time.monotonic() + max_seconds

    def too_slow() -> IngestError:  # only called past the deadline, so max_seconds is set
        return _too_slow(max_seconds if max_seconds is not None else 0.0)

    files = _collect([inputs] if isinstance(inputs, (str, Path)) else list(inputs))
    size = sum(f.path.stat().st_size for f in files)
    if size > limits.max_upload_bytes:
        raise IngestError(f"upload too large: {size:,} bytes > {limits.max_upload_bytes:,} "
                          "(max_upload_bytes)")
    entries, budget = _Items(limits, deadline, too_slow), Budget(limits)
    for f in files:
        _read_blob(f.source, f.source, f.path.read_bytes(), f.explicit, False, entries, budget)
        entries.check_time()
    units = [e for e in entries if isinstance(e, Unit)]
    progress("ingest", 0, len(units))
    parsed = iter(parse_units(units, limits, lambda n: progress("ingest", n, len(units)), deadline, too_slow,
                              keep=keep))
    out: list[Item] = []
    for entry in entries:
        for item in next(parsed) if isinstance(entry, Unit) else [entry]:
            if len(out) >= limits.max_structures:
                raise too_many_structures(limits.max_structures)
            out.append(item)
    if not out:
        raise IngestError(f"no structures found in the upload; accepted: {ACCEPTED}")
    return out


class UploadCheckDict(TypedDict):
    """``UploadCheck.as_dict()``: the JSON the app's upload check returns."""

    n_items: int
    n_parsed: int
    n_failed: int
    failures: list[list[str]]


@dataclass
class UploadCheck:
    """A quick summary of an upload for pre-checks before queueing."""

    n_items: int
    n_parsed: int
    n_failed: int
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, reason), first few
    atoms: list[int] = field(default_factory=list)  # atoms per parsed structure (time estimates)
    # fingerprint.upload_digest of the parsed structures: the same structures in any archive
    structures_sha256: str = ""

    def as_dict(self) -> UploadCheckDict:
        return {"n_items": self.n_items, "n_parsed": self.n_parsed, "n_failed": self.n_failed,
                "failures": [list(f) for f in self.failures]}

    def text(self) -> str:
        lines = [f"{self.n_items} structures read: {self.n_parsed} parsed, {self.n_failed} failed."]
        lines += [f"- {src}: {why}" for src, why in self.failures]
        if self.n_failed > len(self.failures):
            lines.append(f"- ... and {self.n_failed - len(self.failures)} more")
        return "\n".join(lines)


def inspect_upload(inputs: str | Path | Sequence[str | Path], limits: IngestLimits | None = None,
                   max_errors: int = 5) -> UploadCheck:
    """Counts and the first ``max_errors`` failures. Raises IngestError like read_inputs, also
    when the whole check takes longer than ``limits.max_check_seconds``."""
    limits = limits or IngestLimits()
    items = _read(inputs, limits, no_progress, limits.max_check_seconds, keep=False)
    failed = [(shorten(it.source, 160), it.error) for it in items if it.error]
    atoms = [it.n_atoms for it in items if it.n_atoms is not None]
    digest = upload_digest([it.digest for it in items if it.digest is not None], len(failed))
    return UploadCheck(len(items), len(items) - len(failed), len(failed), failed[:max_errors], atoms, digest)
