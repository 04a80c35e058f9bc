"""Generators of uploads that are cheap to write and costly to cut into structures, and a
measured upload check (for tests/evaluator/ingest/test_split_bounds.py and
bench/ingest_split_bounds.py). Each generator writes about ``size`` bytes into ``folder``.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path

CIF_BLOCK = ("data_x{i}\n_cell_length_a 5.64\n_cell_length_b 5.64\n_cell_length_c 5.64\n_cell_angle_alpha 90\n"
             "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n"
             "_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
             "_atom_site_fract_z\nNa1 Na 0 0 0\nCl1 Cl 0.5 0.5 0.5\n")


def measured_check(args: tuple) -> dict:
    """inspect_upload(paths, limits) in this (child) process: counts or the refusal, seconds,
    and how much the peak resident memory grew (MiB)."""
    paths, limits = args
    from evaluator.ingest import IngestError, inspect_upload

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    out: dict = {"refused": None, "n_items": None}
    try:
        check = inspect_upload(paths, limits)
        out["n_items"], out["n_failed"] = check.n_items, check.n_failed
    except IngestError as exc:
        out["refused"] = str(exc)
    out["seconds"] = time.perf_counter() - t0
    out["grew_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    return out


def _write(path: Path, unit: str, size: int) -> Path:
    with open(path, "w") as fh:
        block = unit * max(1, (1 << 20) // len(unit))
        for _ in range(max(1, size // len(block))):
            fh.write(block)
    return path


def blank_jsonl(folder: Path, size: int) -> Path:
    return _write(folder / "blank.jsonl", "\n", size)


def empty_objects_jsonl(folder: Path, size: int) -> Path:
    return _write(folder / "empty.jsonl", "{}\n", size)


def empty_xyz_frames(folder: Path, size: int) -> Path:
    return _write(folder / "empty.xyz", "0\n\n", size)


def blank_csv(folder: Path, size: int) -> Path:
    path = folder / "blank.csv"
    path.write_text("structure\n")
    with open(path, "a") as fh:
        fh.write("\n" * size)
    return path


def empty_cells_csv(folder: Path, size: int) -> Path:
    path = folder / "cells.csv"
    path.write_text("id,structure\n")
    with open(path, "a") as fh:
        fh.write("1,\n" * (size // 3))
    return path


def json_array_of_empty_objects(folder: Path, size: int) -> Path:
    path = folder / "objects.json"
    with open(path, "w") as fh:
        fh.write("[" + "{}," * (size // 3) + "{}]")
    return path


def json_array_of_empty_arrays(folder: Path, size: int) -> Path:
    path = folder / "arrays.json"
    with open(path, "w") as fh:
        fh.write('{"structures": [' + "[]," * (size // 3) + "[]]}")
    return path


def empty_cif_blocks(folder: Path, size: int) -> Path:
    return _write(folder / "blocks.cif", "data_\n", size)


def many_cif_structures(folder: Path, size: int) -> Path:
    path = folder / "many.cif"
    with open(path, "w") as fh:
        n = max(1, size // len(CIF_BLOCK.format(i=0)))
        for i in range(n):
            fh.write(CIF_BLOCK.format(i=i))
    return path


CASES: dict[str, Callable[[Path, int], Path]] = {
    "blank_jsonl": blank_jsonl, "empty_objects_jsonl": empty_objects_jsonl, "empty_xyz_frames": empty_xyz_frames,
    "blank_csv": blank_csv, "empty_cells_csv": empty_cells_csv,
    "json_array_of_empty_objects": json_array_of_empty_objects,
    "json_array_of_empty_arrays": json_array_of_empty_arrays, "empty_cif_blocks": empty_cif_blocks,
    "many_cif_structures": many_cif_structures,
}
