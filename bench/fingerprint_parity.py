"""Are the vectorised BAWL fingerprints identical to pymatgen's on every shipped structure?

    .venv/bin/python bench/fingerprint_parity.py [--sets mp_sample alexandria_sample lemat_sample mattergen]
        [--processes 2] [--timeout 1200] [--limit N] [--out parity.csv]

Reads every CIF of ``structures/mp_sample``, ``structures/alexandria_sample``,
``structures/lemat_sample`` (both seeds, all sub-folders) and the MatterGen set
(``structures/mattergen_paper/cifs.zip``) with pymatgen's CifParser, and computes for
each structure the (as-given, species-sorted) fingerprint pair twice in the same child
process: with the vectorised graph and with pymatgen's StructureGraph + EconNN (the
reference). Prints, per set and in total: identical pairs, structures where both paths
fail (same outcome), mismatches (listed by name), the vectorised graph's fall-backs to
pymatgen (numerically ambiguous centres re-solved by ``EconNN.get_nn_info``; whole
structures with coincident atoms), and both paths' seconds. ``--out`` writes one row per
structure.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
import warnings
import zipfile
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from evaluator.data import DataDir
from evaluator.identity.bonding_graph import econ_bond_graph
from evaluator.identity.fingerprint import safe_fingerprint_pair

warnings.filterwarnings("ignore")  # pymatgen and spglib chatter on odd structures

SETS = ("mp_sample", "alexandria_sample", "lemat_sample", "mattergen")


def cif_texts(data: DataDir, name: str) -> list[tuple[str, str]]:
    """(name, CIF text) of one set, in a fixed order."""
    if name == "mattergen":
        with zipfile.ZipFile(data.path("structures/mattergen_paper/cifs.zip")) as z:
            return [(f"mattergen/{n}", z.read(n).decode("utf-8", "replace"))
                    for n in sorted(z.namelist()) if n.lower().endswith(".cif")]
    root = data.path(f"structures/{name}")
    return [(f"{name}/{p.relative_to(root)}", p.read_text(errors="replace"))
            for p in sorted(root.rglob("*.cif"))]


def read_set(data: DataDir, name: str) -> tuple[list[tuple[str, object]], list[tuple[str, str]]]:
    """([(name, Structure)], [(name, why unreadable)]): pymatgen's CifParser as the evaluator
    calls it (conventional cell as written, no primitive reduction)."""
    from pymatgen.io.cif import CifParser

    ok, bad = [], []
    for fname, text in cif_texts(data, name):
        try:
            structures = CifParser.from_str(text).parse_structures(primitive=False, on_error="raise")
        except Exception as exc:  # noqa: BLE001 - reported, not compared
            bad.append((fname, f"{type(exc).__name__}: {exc}"[:200]))
            continue
        ok += [(fname if k == 0 else f"{fname}#{k}", s) for k, s in enumerate(structures)]
    return ok, bad


def compare(item: tuple[str, object]) -> dict:
    """Both fingerprint pairs of one structure, timed (runs in a child process)."""
    name, s = item
    t0 = time.perf_counter()
    vec = safe_fingerprint_pair((s, "vectorised"))
    t1 = time.perf_counter()
    pmg = safe_fingerprint_pair((s, "pymatgen"))
    t2 = time.perf_counter()
    try:
        bg = econ_bond_graph(s)
        redo, whole = bg.n_pymatgen_centres, bg.whole_structure_pymatgen
    except Exception as exc:  # noqa: BLE001 - the pair above already carries the error
        redo, whole = 0, f"failed: {type(exc).__name__}"
    return {"name": name, "nsites": len(s), "vec_given": vec[0], "vec_sorted": vec[1], "vec_error": vec[2],
            "pmg_given": pmg[0], "pmg_sorted": pmg[1], "pmg_error": pmg[2],
            "vec_s": t1 - t0, "pmg_s": t2 - t1, "pymatgen_centres": redo, "whole_structure_pymatgen": whole}


def verdict(r: dict) -> str:
    if r["vec_error"] is None and r["pmg_error"] is None:
        same = (r["vec_given"], r["vec_sorted"]) == (r["pmg_given"], r["pmg_sorted"])
        return "identical" if same else "MISMATCH"
    if r["vec_error"] is not None and r["pmg_error"] is not None:
        return "both failed"
    return "MISMATCH (one path failed)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1200.0,
                    help="seconds per structure (both paths together) before it is reported as timed out")
    ap.add_argument("--limit", type=int, default=None, help="first N structures of each set")
    ap.add_argument("--out", type=Path, default=None, help="CSV, one row per structure")
    args = ap.parse_args()

    from evaluator.identity.fingerprint import PRELOAD
    from evaluator.procpool import run_bounded

    data = DataDir()
    work, unreadable = [], []
    for name in args.sets:
        ok, bad = read_set(data, name)
        work += ok[: args.limit] if args.limit else ok
        unreadable += bad
    print(f"{len(work)} structures from {', '.join(args.sets)} ({len(unreadable)} CIF blocks unreadable, "
          f"not compared); {args.processes} processes, {args.timeout:g} s bound per structure", flush=True)
    rows: list[dict] = []
    t0 = time.perf_counter()
    with run_bounded(compare, work, workers=args.processes, timeout_s=args.timeout,
                     preload=PRELOAD) as outcomes:
        for k, o in enumerate(outcomes, 1):
            if o.ok:
                rows.append(o.value)
            else:
                name, s = work[o.index]
                rows.append({"name": name, "nsites": len(s), "timeout_or_death": o.error})
            if k % 500 == 0:
                print(f"  {k}/{len(work)} in {time.perf_counter() - t0:.0f} s", flush=True)
    wall = time.perf_counter() - t0

    for r in rows:
        r["verdict"] = verdict(r) if "timeout_or_death" not in r else "not compared (" + r["timeout_or_death"] + ")"
    by_set: dict[str, list[dict]] = {}
    for r in rows:
        by_set.setdefault(r["name"].split("/")[0], []).append(r)
    print(f"\nwall {wall:.0f} s")
    for name, rs in list(by_set.items()) + [("TOTAL", rows)]:
        counts: dict[str, int] = {}
        for r in rs:
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
        done = [r for r in rs if "vec_s" in r]
        vec_s = sum(r["vec_s"] for r in done)
        pmg_s = sum(r["pmg_s"] for r in done)
        redo = sum(r.get("pymatgen_centres", 0) for r in done)
        whole = sum(bool(r.get("whole_structure_pymatgen")) for r in done)
        print(f"{name}: {len(rs)} structures: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
              + f"; vectorised {vec_s:.1f} s (max {max((r['vec_s'] for r in done), default=0):.2f} s), "
              f"pymatgen {pmg_s:.1f} s (max {max((r['pmg_s'] for r in done), default=0):.1f} s), "
              f"ratio {pmg_s / max(vec_s, 1e-9):.0f}x; centres re-solved by pymatgen: {redo}; "
              f"whole structures via pymatgen: {whole}")
    for r in rows:
        if r["verdict"] not in ("identical", "both failed"):
            print("  ", r["name"], r["nsites"], r["verdict"], {k: r.get(k) for k in
                  ("vec_given", "pmg_given", "vec_sorted", "pmg_sorted", "vec_error", "pmg_error")})
    if args.out:
        keys = sorted({k for r in rows for k in r})
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
