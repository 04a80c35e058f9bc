"""Agreement of our validity verdicts with LeMat-GenBench's on 2,000 LeMat-Bulk structures.

``structures/lemat_sample/seed_{42,123}/<category>/*.cif``: the category names
LeMat-GenBench's verdict vs SMACT's; LeMat-GenBench calls ``both_valid`` and
``ours_valid_smact_invalid`` valid. Prints exact agreement with LeMat-GenBench's
overall validity, the confusion by category, and which of our checks (and which
charge step) decided each disagreement.

    .venv/bin/python bench/validity_parity.py [--workers 2] [--limit N] [--show 20]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter
from pathlib import Path


CATEGORIES = {"both_valid": True, "ours_valid_smact_invalid": True,
              "smact_valid_ours_invalid": False, "both_invalid": False}


def sample_files(data, limit: int | None = None) -> list[tuple[Path, str]]:
    """(cif path, category) of the LeMat sample, sorted; ``limit`` takes an even spread."""
    root = data.path("structures/lemat_sample")
    files = sorted((p, p.parent.name) for p in root.glob("seed_*/*/*.cif") if p.parent.name in CATEGORIES)
    if limit and limit < len(files):
        step = len(files) / limit
        files = [files[int(k * step)] for k in range(limit)]
    return files


def evaluate(files, workers: int | None = None) -> list[dict]:
    """Our validity rows for the files (parse with pymatgen, then the validity checks)."""
    from pymatgen.core import Structure

    from evaluator.families.validity.family import validity_rows
    from evaluator.families.validity.charge import OxiPriors
    from evaluator.data import DataDir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structures = [Structure.from_file(p) for p, _ in files]
    return validity_rows(structures, OxiPriors.load(DataDir()), workers)


def failed_checks(row: dict) -> str:
    parts = [name for name in ("charge_neutral", "distance_valid", "plausible") if row[name] is False]
    if row["status"] == "failed":
        parts.append("error")
    return "+".join(parts) or "none"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="even subset of this many structures")
    ap.add_argument("--show", type=int, default=15, help="disagreements to list")
    args = ap.parse_args()

    from evaluator.data import DataDir

    files = sample_files(DataDir(), args.limit)
    t0 = time.perf_counter()
    rows = evaluate(files, args.workers)
    wall = time.perf_counter() - t0
    lemat = [CATEGORIES[cat] for _, cat in files]
    ours = [bool(r["valid"]) for r in rows]
    agree = sum(a == b for a, b in zip(lemat, ours))
    n = len(files)
    print(f"structures: {n}   wall (parse + validity): {wall:.1f} s")
    print(f"LeMat-GenBench valid: {sum(lemat)}/{n} = {sum(lemat) / n:.2%}   "
          f"ours valid: {sum(ours)}/{n} = {sum(ours) / n:.2%}")
    print(f"AGREEMENT with LeMat-GenBench overall validity: {agree}/{n} = {agree / n:.2%}")
    print(f"  LeMat valid, ours invalid: {sum(a and not b for a, b in zip(lemat, ours))}")
    print(f"  LeMat invalid, ours valid: {sum(b and not a for a, b in zip(lemat, ours))}")

    print("\nby category: n, ours valid, agreement")
    for cat in CATEGORIES:
        idx = [i for i, (_, c) in enumerate(files) if c == cat]
        if idx:
            ok = sum(ours[i] == lemat[i] for i in idx)
            print(f"  {cat:26s} {len(idx):5d} {sum(ours[i] for i in idx):5d}  {ok / len(idx):7.2%}")

    dis = [i for i in range(n) if ours[i] != lemat[i]]
    print("\ndisagreements by category and our failing check (charge step):")
    tally = Counter((files[i][1], failed_checks(rows[i]), rows[i]["charge_step"]) for i in dis)
    for (cat, checks, step), k in tally.most_common():
        print(f"  {k:4d}  {cat:26s} failed={checks:30s} charge_step={step}")
    print("\nour charge steps (all structures):", dict(Counter(r["charge_step"] for r in rows).most_common()))
    print("our failing checks (invalid structures):",
          dict(Counter(failed_checks(r) for r in rows if not r["valid"]).most_common()))
    for i in dis[: args.show]:
        r = rows[i]
        print(f"\n- {files[i][0].parent.parent.name}/{files[i][1]}/{files[i][0].name}  ours valid={r['valid']}")
        print(f"    reason: {r['reason']}\n    charge: {r['charge_step']}: {(r['charge_detail'] or '')[:300]}")


if __name__ == "__main__":
    main()
