"""``python -m evaluator score FILES... --out DIR``: evaluate a submission.

The run's configuration comes from ``evaluator.config.build_config`` (the worker's
builder too): the flags, else ``GENBENCH_*`` variables, else the ``EvalConfig``
defaults; family options are ``--option FAMILY.NAME=VALUE`` (repeatable). The
configuration is checked (``evaluator.pipeline.check_config``: unknown families and
options are refused) and the output folder tested for writing before anything is
evaluated; a refusal prints ``error: ...`` and exits with status 2. When the machine
fails (worker processes that cannot start or keep dying: ``evaluator.procpool.PoolFailure``)
nothing is written and the exit status is 3.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

from evaluator.cli.common import INFRASTRUCTURE_ERROR, StageBars, fail
from evaluator.config import PRESETS, EvalConfig, build_config
from evaluator.data import DataDir, MissingDataError
from evaluator.execution import add_executor_arguments
from evaluator.ingest.types import IngestError
from evaluator.mlip import BACKENDS
from evaluator.procpool import PoolFailure
from evaluator.report import format_summary


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The EvalConfig of the parsed flags (raises ValueError on a malformed option)."""
    return build_config(families=args.families, reference=args.reference, mlip=args.mlip,
                        mlip_model=args.mlip_model, device=args.device, dtype=args.dtype,
                        relax_steps=args.relax_steps, options=args.option or (), protocol=args.protocol,
                        executor=args.executor, ray_address=args.ray_address, ray_actors=args.ray_actors)


def cmd_score(args: argparse.Namespace) -> int:
    from evaluator.outputs import write_evaluation
    from evaluator.pipeline import check_config, evaluate

    try:
        config = config_from_args(args)
        check_config(config)
    except ValueError as exc:
        return fail(exc)
    out = Path(args.out)
    try:  # before the (possibly hours-long) evaluation, not when its results are written
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        return fail(f"cannot write to the output folder {out}: {exc.strerror or exc}")
    # pymatgen warns once per noble gas that it has no Pauling electronegativity
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    progress = StageBars(min_total=20)
    try:
        evaluation = evaluate(args.inputs, config, DataDir(args.data_dir), work_dir=out, progress=progress)
    except (IngestError, MissingDataError, ValueError) as exc:
        return fail(exc)
    except PoolFailure as exc:  # the machine's failure: no scorecard from rows it would have spoiled
        return fail(f"infrastructure failure, no scorecard written: {exc}", INFRASTRUCTURE_ERROR)
    finally:
        progress.close()
    summary_path, table_path = write_evaluation(evaluation, out)
    print(format_summary(evaluation.summary))
    print(f"\nwrote {summary_path} and {table_path}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = EvalConfig  # the defaults, named in the help texts
    p = subparsers.add_parser("score", help="evaluate a submission (files, archives or folders)",
                              description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("inputs", nargs="+", help="CIF/POSCAR/extxyz/CSV/JSON files, archives or folders")
    p.add_argument("--out", required=True, help="output folder (summary.json, structures.parquet, checkpoints)")
    p.add_argument("--families", help="comma-separated subset, e.g. validity,uniqueness (dependencies added; "
                                      "default $GENBENCH_FAMILIES or all)")
    p.add_argument("--reference", help=f"reference id or path to a built reference (default $GENBENCH_REFERENCE "
                                       f"or {d.reference})")
    p.add_argument("--protocol", choices=sorted(PRESETS),
                   help="named protocol the MLIP comes from (default $GENBENCH_PROTOCOL or default: "
                        "SevenNet-l3i5 with MP2020 corrections on every device; chgnet: CHGNet 0.3.0)")
    p.add_argument("--mlip", choices=BACKENDS, help="MLIP backend (default $GENBENCH_MLIP, else the named "
                                                    "protocol's: sevenn)")
    p.add_argument("--mlip-model", help="checkpoint path or foundation-model name for the MLIP")
    p.add_argument("--device", help=f"auto, cpu or cuda (default $GENBENCH_DEVICE or {d.device})")
    p.add_argument("--dtype", choices=["float32", "float64"], help=f"default $GENBENCH_DTYPE or {d.dtype}")
    p.add_argument("--relax-steps", type=int, help=f"FIRE step cap (default $GENBENCH_RELAX_STEPS or "
                                                   f"{d.relax_steps})")
    p.add_argument("--option", action="append", metavar="FAMILY.NAME=VALUE",
                   help="family option, e.g. stability.relax_mode=serial (repeatable; JSON values such as "
                        "false or 2 are parsed; overrides $GENBENCH_OPTIONS, a JSON object "
                        "{family: {name: value}})")
    p.add_argument("--data-dir", help="data directory (default $GENBENCH_DATA_DIR or ../shared/data)")
    add_executor_arguments(p)
    p.set_defaults(func=cmd_score)

