"""``python -m evaluator mlip-check --backend NAME [--model M]``: load an MLIP backend and run
the conformance check every backend passes (:mod:`evaluator.mlip.conformance`); prints one
line per check and exits 0 when it conforms, 1 when it does not. ``--module MOD`` imports
a module first, so a backend that registers itself there (``register_backend``) can
check itself before it joins ``evaluator.mlip``.
"""

from __future__ import annotations

import argparse
import importlib

from evaluator.cli.common import fail
from evaluator.data import DataDir, MissingDataError
from evaluator.mlip import BACKENDS
from evaluator.mlip.base import backend_class
from evaluator.mlip.conformance import check_backend, conformance_cells

NOT_CONFORMING = 1  # the exit status of a backend that fails a check


def cmd_mlip_check(args: argparse.Namespace) -> int:
    for module in args.module or ():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return fail(f"cannot import --module {module}: {exc}")
    try:
        backend_class(args.backend)  # an unknown name is refused before anything loads
        cells = conformance_cells(DataDir(args.data_dir))
        report = check_backend(args.backend, args.model, device=args.device, dtype=args.dtype,
                               energy_scale=args.energy_scale, cells=cells)
    except (ValueError, MissingDataError) as exc:
        return fail(exc)
    print(report.text())
    return 0 if report.passed else NOT_CONFORMING


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("mlip-check", help="check that an MLIP backend conforms to what the evaluator "
                                                 "relies on (forces = -dE/dx, stress, batches, provenance, ...)",
                              description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--backend", required=True, help=f"registered backend name ({', '.join(BACKENDS)}, or one "
                                                    "a --module registers)")
    p.add_argument("--model", help="checkpoint path or model name (default: the backend's default)")
    p.add_argument("--module", action="append", help="import this module first (it registers a backend); "
                                                     "repeatable")
    p.add_argument("--device", default="cpu", help="auto, cpu or cuda (default cpu)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="default float32")
    p.add_argument("--energy-scale", help="override the backend's energy scale (as the option "
                                          "stability.mlip_energy_scale)")
    p.add_argument("--data-dir", help="data directory holding the test cells (default $GENBENCH_DATA_DIR or "
                                      "../shared/data)")
    p.set_defaults(func=cmd_mlip_check)
