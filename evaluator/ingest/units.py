"""Parse Units into Items, each under a wall-clock limit, in child processes.

The guards (atom counts, symmetry bounds, JSON depth, archive budgets) stop the
known blow-ups before pymatgen or ase build anything; this is the backstop for
whatever they miss. A Python thread cannot be stopped and the app's upload check
runs in a Gradio worker thread (no SIGALRM there), so each Unit is parsed in a
child process (``evaluator.procpool``) that is killed past
``IngestLimits.max_read_seconds``; the structure then becomes a row "took longer
than N s to read". Each child's address space is capped too
(``max_read_memory_bytes``).

Units go to the children in batches (a process round trip per structure costs more
than parsing a small CIF on a loaded machine). A batch gets the same limit as one
structure; a batch that runs past it, or whose process dies, is read again one
structure per task, so only the structure at fault becomes a failure row.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable

from evaluator.config import IngestLimits
from evaluator.ingest.checks import finish, shorten
from evaluator.ingest.fingerprint import structure_digest
from evaluator.ingest.formats import (structure_from_cif, structure_from_dict, structure_from_poscar,
                                      structure_from_text, structures_from_xyz)
from evaluator.ingest.types import IngestError, Item, Parsed, Unit
from evaluator.procpool import run_bounded

# Imported once in the fork server, so a replaced (killed) reader starts fast. Not this
# module: each reader imports the evaluator package after the fork, when it unpickles
# ``parse_batch`` (the package is light; a fork server must not import anything that
# starts threads, e.g. pandas: see evaluator.procpool).
PRELOAD = ("pymatgen.core", "pymatgen.io.cif", "pymatgen.io.vasp", "pymatgen.io.ase", "ase.io")
BATCH_UNITS = 32  # structures per task
BATCH_CHARS = 1 << 20  # text per task (a big structure goes alone)


def parse_unit(task: tuple[Unit, IngestLimits]) -> list[Item]:
    """The Items of one Unit: one, or one per frame of a whole xyz file. Never raises for
    bad content (module-level: it runs in the reading processes)."""
    unit, limits = task
    payload = unit.payload
    pairs: list[Parsed]
    if unit.kind == "dict" and isinstance(payload, dict):
        pairs = [structure_from_dict(payload, limits)]
    elif unit.kind == "dict" or isinstance(payload, dict):
        raise ValueError(f"unit {unit.source!r}: kind {unit.kind!r} with a {type(payload).__name__} payload")
    elif unit.kind == "cif":
        pairs = [structure_from_cif(payload, limits)]
    elif unit.kind == "poscar":
        pairs = [structure_from_poscar(payload, limits)]
    elif unit.kind == "xyz":
        pairs = structures_from_xyz(payload, limits)
    elif unit.kind == "text":
        pairs = [structure_from_text(payload, limits)]
    else:
        raise ValueError(f"unknown unit kind {unit.kind!r}")
    items: list[Item] = []
    for i, (structure, why) in enumerate(pairs, 1):
        src = unit.source if len(pairs) == 1 else f"{unit.source}:frame {i}"
        items.append(finish(src, structure, limits) if structure is not None else Item(src, error=why))
    return items


def parse_batch(task: tuple[list[Unit], IngestLimits, bool]) -> list[list[Item]]:
    """``parse_unit`` for each Unit of a batch (module-level: runs in the reading processes).
    Unless ``keep`` (the third element), structures are dropped once read (``drop_structures``)."""
    units, limits, keep = task
    out = [parse_unit((unit, limits)) for unit in units]
    return out if keep else [drop_structures(items) for items in out]


def drop_structures(items: list[Item]) -> list[Item]:
    """The Items without their structures (a read structure keeps ``error`` None, its number
    of atoms and its content digest): what the upload check needs, at a fraction of the
    memory (10,000 structures of 500 atoms are GBs)."""
    return [Item(it.source, error=it.error, n_atoms=len(it.structure) if it.structure is not None else None,
                 digest=structure_digest(it.structure) if it.structure is not None else None)
            for it in items]


def _size(unit: Unit) -> int:
    return len(unit.payload) if isinstance(unit.payload, str) else BATCH_CHARS // BATCH_UNITS


def batches(units: list[Unit]) -> list[list[int]]:
    """Indices of ``units`` in consecutive batches of at most BATCH_UNITS / BATCH_CHARS."""
    out: list[list[int]] = []
    chars = 0
    for i, unit in enumerate(units):
        size = _size(unit)
        if not out or len(out[-1]) >= BATCH_UNITS or chars + size > BATCH_CHARS:
            out.append([])
            chars = 0
        out[-1].append(i)
        chars += size
    return out


def failure_reason(error: str | None, timed_out: bool, limits: IngestLimits) -> str:
    """The row reason for a Unit whose reading process gave no Items."""
    if timed_out:
        return f"took longer than {limits.max_read_seconds:g} s to read (max_read_seconds)"
    error = error or "unknown error"
    if error.startswith("MemoryError"):
        cap = limits.max_read_memory_bytes
        return ("ran out of memory while reading"
                + (f" (more than {cap / 2**30:g} GiB, max_read_memory_bytes)" if cap else ""))
    if error.startswith("worker process died"):
        return shorten(f"reading crashed: {error}")
    return shorten(f"unreadable: {error}")


def _bounded(limits: IngestLimits) -> bool:
    """Whether Units can run in child processes here (a daemonic process cannot start any)."""
    return limits.max_read_seconds is not None and not mp.current_process().daemon


def parse_units(units: list[Unit], limits: IngestLimits, on_done: Callable[[int], None] = lambda n: None,
                deadline: float | None = None, on_late: Callable[[], IngestError] | None = None,
                keep: bool = True) -> list[list[Item]]:
    """Items of each Unit, in order. ``on_done(n)`` after each of the n Units read so far;
    past ``deadline`` (``time.monotonic()``) the IngestError from ``on_late`` is raised and
    every reading process is killed. Unless ``keep``, structures are dropped once read (the
    Items of a read structure have neither structure nor error). When the reading processes
    cannot start or keep dying whatever they read, ``evaluator.procpool.PoolFailure`` propagates
    (a failure of the machine, never of a structure)."""
    results: list[list[Item] | None] = [None] * len(units)
    done = 0

    def late() -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise on_late() if on_late else IngestError("reading the upload took too long")

    groups = batches(units) if _bounded(limits) else []
    while groups:
        again: list[list[int]] = []  # failed batches, one structure per task
        tasks = [([units[i] for i in group], limits, keep) for group in groups]
        with run_bounded(parse_batch, tasks, workers=max(1, min(limits.read_workers, len(tasks))),
                         timeout_s=limits.max_read_seconds, preload=PRELOAD,
                         max_memory_bytes=limits.max_read_memory_bytes) as outcomes:
            for out in outcomes:
                group = groups[out.index]
                if out.ok:
                    for i, items in zip(group, out.value):
                        results[i] = items
                elif len(group) > 1:
                    again += [[i] for i in group]
                    late()
                    continue
                else:
                    why = failure_reason(out.error, out.timed_out, limits)
                    results[group[0]] = [Item(units[group[0]].source, error=why)]
                done += len(group)
                on_done(done)
                late()
        groups = again
    parsed: list[list[Item]] = []
    for unit, items in zip(units, results):  # unbounded: by choice, in a daemonic process, or no child started
        if items is None:
            items = parse_unit((unit, limits)) if keep else drop_structures(parse_unit((unit, limits)))
            done += 1
            on_done(done)
            late()
        parsed.append(items)
    return parsed
