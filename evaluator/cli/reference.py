"""``python -m evaluator reference ...``: build and inspect references.

- ``reference build --cifs DIR... --out PATH``: a reference (structures + BAWL
  fingerprints) from CIF folders; score against it with ``score --reference PATH``.
- ``reference lemat --out PATH``: stream LeMat-Bulk (Hub, or ``--data-files`` local
  parquet with its schema) into the same format; resumable (rerun to continue).
- ``reference info REF``: id, content hash, size and source of a reference.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from evaluator.build.lemat_fingerprints import LEMAT_CONFIG, LEMAT_DATASET, load_lemat
from evaluator.build.reference_from_cifs import build_from_cifs
from evaluator.cli.common import StageBars, bar, fail
from evaluator.data import DataDir
from evaluator.reference.registry import load_reference


def cmd_build(args: argparse.Namespace) -> int:
    progress = StageBars()
    try:
        manifest = build_from_cifs(args.cifs, args.out, ref_id=args.id, processes=args.processes,
                                   limit=args.limit, progress=progress)
    except ValueError as exc:
        return fail(exc)
    finally:
        progress.close()
    print(f"wrote {args.out}: {manifest['n_rows']} structures "
          f"({len(manifest.get('skipped', []))} skipped or without fingerprint)")
    return 0


def cmd_lemat(args: argparse.Namespace) -> int:
    rows_bar: Any = None

    def progress(done: int, total: int | None) -> None:
        nonlocal rows_bar
        if rows_bar is None:
            rows_bar = bar("LeMat-Bulk rows", total, unit="row")
        rows_bar.update(done - rows_bar.n)

    try:
        manifest = load_lemat(args.out, dataset=args.dataset, config=args.config,
                              data_files=args.data_files, limit=args.limit, part_rows=args.part_rows,
                              compute_missing_fingerprints=args.compute_missing_fingerprints,
                              ref_id=args.id, progress=progress)
    except ValueError as exc:
        return fail(exc)
    finally:
        if rows_bar is not None:
            rows_bar.close()
    print(f"wrote {args.out}: {manifest['n_rows']} structures from {manifest['rows_read']} rows "
          f"({manifest.get('row_failures', 0)} unreadable)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    try:
        ref = load_reference(args.reference, DataDir(args.data_dir))
        info = ref.describe()
    except (ValueError, FileNotFoundError) as exc:
        return fail(exc)
    shown = {k: (str(v) if not isinstance(v, (dict, list, int, float, bool, type(None))) else v)
             for k, v in info.items()}
    print(json.dumps(shown, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ref = subparsers.add_parser("reference", help="build or inspect a reference set",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = ref.add_subparsers(dest="reference_command", required=True)

    b = sub.add_parser("build", help="build a reference from CIF folders")
    b.add_argument("--cifs", nargs="+", required=True, help="folders (searched recursively) or CIF files")
    b.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    b.add_argument("--id", help="reference id (default: the output folder's name)")
    b.add_argument("--processes", type=int, default=2, help="fingerprint worker processes")
    b.add_argument("--limit", type=int, help="keep only the first N structures")
    b.set_defaults(func=cmd_build)

    le = sub.add_parser("lemat", help="stream LeMat-Bulk into a reference folder (resumable)")
    le.add_argument("--out", required=True, help="output folder; rerun the same command to resume")
    le.add_argument("--dataset", default=LEMAT_DATASET, help=f"Hugging Face dataset id (default {LEMAT_DATASET})")
    le.add_argument("--config", default=LEMAT_CONFIG, help=f"dataset config (default {LEMAT_CONFIG})")
    le.add_argument("--data-files", nargs="+", help="local parquet files with the LeMat-Bulk schema "
                    "(instead of the Hub)")
    le.add_argument("--limit", type=int, help="stop after N rows")
    le.add_argument("--part-rows", type=int, default=50_000, help="rows per written part")
    le.add_argument("--compute-missing-fingerprints", action="store_true",
                    help="compute BAWL where the entalpic_fingerprint column is empty")
    le.add_argument("--id", help="reference id (default lemat-bulk)")
    le.set_defaults(func=cmd_lemat)

    i = sub.add_parser("info", help="describe a reference (id, content hash, size)")
    i.add_argument("reference", help="registered id (mp20) or built reference folder")
    i.add_argument("--data-dir", help="data directory")
    i.set_defaults(func=cmd_info)
