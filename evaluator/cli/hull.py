"""``python -m evaluator lemat-hull --split mace_mp --out hull.parquet``: write a
LeMat-Bulk convex hull (downloaded once from the Hugging Face Hub, then cached) as a
compact hull file; score against it with ``--option stability.hull_file=hull.parquet``.
The building code is :mod:`evaluator.build.lemat_hull`.
"""

from __future__ import annotations

import argparse

from evaluator.cli.common import fail


def cmd_lemat_hull(args: argparse.Namespace) -> int:
    from evaluator.build.lemat_hull import load_lemat_hull
    from evaluator.reference.hull import write_hull_file

    try:
        hull = load_lemat_hull(args.split, args.threshold)
    except ValueError as exc:
        return fail(exc)
    path = write_hull_file(hull, args.out)
    print(f"wrote {path}: {hull.describe()}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from evaluator.build.lemat_hull import DEFAULT_SPLIT, DEFAULT_THRESHOLD, SPLITS

    p = subparsers.add_parser("lemat-hull", help="write a LeMat-Bulk convex hull as a compact hull file "
                                                 "(online once, then the Hub cache)",
                              description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--split", default=DEFAULT_SPLIT, choices=SPLITS,
                   help=f"MLIP split or DFT hull (default {DEFAULT_SPLIT})")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"energy above hull (eV/atom) of the rows kept in the Hub files (default {DEFAULT_THRESHOLD})")
    p.add_argument("--out", required=True, help="hull parquet to write")
    p.set_defaults(func=cmd_lemat_hull)
