"""``python -m evaluator``: score submissions and manage references.

Subcommands other than ``score`` are contributed by the packages listed in
SUBCOMMAND_MODULES, each exposing ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

SUBCOMMAND_MODULES = ["evaluator.cli.reference", "evaluator.cli.fd_statistics"]


class TqdmProgress:
    """One progress bar per stage, shown only for stages with many items."""

    def __init__(self, min_total: int = 20):
        self.min_total = min_total
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            if total >= self.min_total:
                self.bar = tqdm(total=total, desc=stage, unit="struct", file=sys.stderr, leave=False)
        if self.bar is not None:
            self.bar.n = done
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None


def _config_from_args(args):
    from evaluator.config import EvalConfig

    from evaluator.mlip import default_mlip

    cfg = EvalConfig(reference=args.reference, mlip=args.mlip or default_mlip(args.device),
                     mlip_model=args.mlip_model,
                     device=args.device, dtype=args.dtype, relax_steps=args.relax_steps)
    if args.families:
        cfg.families = [f.strip() for f in args.families.split(",") if f.strip()]
    return cfg


def cmd_score(args) -> int:
    from evaluator.data import DataDir, MissingDataError
    from evaluator.ingest.types import IngestError
    from evaluator.pipeline import evaluate
    from evaluator.report import format_summary
    from evaluator.outputs import write_evaluation

    import warnings

    # pymatgen warns once per noble gas that it has no Pauling electronegativity
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    out = Path(args.out)
    try:  # before the (possibly hours-long) evaluation, not when its results are written
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        print(f"error: cannot write to the output folder {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    progress = TqdmProgress()
    try:
        evaluation = evaluate(args.inputs, _config_from_args(args), DataDir(args.data_dir),
                              work_dir=out, progress=progress)
    except (IngestError, MissingDataError, ValueError) as exc:
        progress.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress.close()
    summary_path, table_path = write_evaluation(evaluation, args.out)
    print(format_summary(evaluation.summary))
    print(f"\nwrote {summary_path} and {table_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="evaluate a submission (files, archives or folders)")
    score.add_argument("inputs", nargs="+", help="CIF/POSCAR/extxyz/CSV/JSON files, archives or folders")
    score.add_argument("--out", required=True, help="output folder (summary.json, structures.parquet, checkpoints)")
    score.add_argument("--families", help="comma-separated subset, e.g. validity,uniqueness (dependencies added)")
    score.add_argument("--reference", default="mp20", help="reference id or path to a built reference (default mp20)")
    score.add_argument("--mlip", default=None, choices=["chgnet", "mace", "sevenn"],
                       help="MLIP backend (default: sevenn on a GPU, chgnet on CPU)")
    score.add_argument("--mlip-model", help="checkpoint path or foundation-model name for the MLIP")
    score.add_argument("--device", default="auto", help="auto, cpu or cuda")
    score.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    score.add_argument("--relax-steps", type=int, default=300, help="FIRE step cap")
    score.add_argument("--data-dir", help="data directory (default $GENBENCH_DATA_DIR or ../shared/data)")
    score.set_defaults(func=cmd_score)
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
