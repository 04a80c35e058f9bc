"""Generators of hostile uploads and a measured read, for tests/evaluator/ingest/test_hostile_uploads.py.

Everything is built at test time in a temporary folder: no large file is committed.
``measured_read`` runs in a child process (evaluator.procpool imports it by name) so
that its time and peak memory can be bounded and measured apart from pytest's.
"""

from __future__ import annotations

import io
import json
import resource
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np

CUBIC = "data_{name}\n_cell_length_a {a}\n_cell_length_b {a}\n_cell_length_c {a}\n" \
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
SITES = "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n" \
        "_atom_site_fract_z\n_atom_site_occupancy\n"


def measured_read(args: tuple) -> dict:
    """read_inputs(paths, limits) in this (child) process: rows or the refusal, seconds, and
    how much the peak resident memory grew (MiB)."""
    paths, limits = args
    from evaluator.ingest import IngestError, read_inputs

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    rows = refused = None
    try:
        rows = [(it.source, it.error) for it in read_inputs(paths, limits)]
    except IngestError as exc:
        refused = str(exc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rows": rows, "refused": refused, "seconds": time.perf_counter() - t0,
            "grew_mib": (peak - base) / 1024}


def sparse_tar(path: Path, member: str, expanded: int) -> Path:
    """A PAX (GNU sparse 0.1) tar whose one member expands to ``expanded`` bytes of which one
    is stored: ~10 KB on disk."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo(member)
        info.size = 1
        info.pax_headers = {"GNU.sparse.map": "0,1", "GNU.sparse.size": str(expanded)}
        tf.addfile(info, io.BytesIO(b"x"))
    return path


def plain_tar(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def fm3m_cif(rows: np.ndarray, extra_rows: tuple[str, ...] = (), a: float = 20.0, name: str = "bomb") -> str:
    """A carbon CIF in Fm-3m (192 operations listed) with ``rows`` general positions."""
    from pymatgen.symmetry.groups import SpaceGroup

    text = CUBIC.format(name=name, a=a) + "loop_\n_symmetry_equiv_pos_as_xyz\n"
    text += "".join(f"'{op.as_xyz_str()}'\n" for op in SpaceGroup("F m -3 m").symmetry_ops)
    text += SITES + "".join(f"C{i} C {x:.5f} {y:.5f} {z:.5f} 1\n" for i, (x, y, z) in enumerate(rows))
    return text + "".join(extra_rows)


def general_sites(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.02, 0.23, size=(n, 3))


def poscar(lattice, symbols: list[str], counts_line: str, coords: list[list[float]]) -> str:
    rows = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in lattice)
    body = "\n".join(" ".join(f"{v:.6f}" for v in c) for c in coords)
    return f"hostile\n1.0\n{rows}\n{' '.join(symbols)}\n{counts_line}\nDirect\n{body}\n"


def nacl_dict(element: str = "Na", matrix=None) -> dict:
    from pymatgen.core import Lattice, Structure

    lattice = Lattice(matrix) if matrix is not None else Lattice.cubic(5.64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = Structure(lattice, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).as_dict()
    d["sites"][0]["species"][0]["element"] = element
    d["sites"][0]["label"] = element
    return d


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_structure_json(depth: int) -> str:
    """A Structure dict whose ``properties`` hide a ``depth``-deep list."""
    d = nacl_dict()
    return json.dumps(d)[:-1] + ', "properties": {"x": ' + nested_json(depth) + "}}"
