"""``python -m evaluator`` (installed as ``genbench-evaluate``): every evaluator command.

- ``score``: evaluate a submission (:mod:`evaluator.cli.score`);
- ``reference build | lemat | info``: build and inspect structure references
  (:mod:`evaluator.cli.reference`);
- ``fd-reference``: the Fréchet-distance reference statistics
  (:mod:`evaluator.cli.fd_statistics`);
- ``lemat-hull``: a LeMat-Bulk convex hull as a compact hull file
  (:mod:`evaluator.cli.hull`);
- ``mlip-check``: the conformance check of an MLIP backend (:mod:`evaluator.cli.mlip_check`);
- ``columns``: the ``structures.parquet`` columns from their declarations, or
  ``--readme README.md`` to write them into the README (:mod:`evaluator.cli.columns`).

Each command module has ``register(subparsers)``, which adds its parser and sets
``func(args) -> exit status``. The builders' code lives in ``evaluator.build`` and
``evaluator.identity``; these modules only parse arguments and report.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from evaluator.cli import columns, fd_statistics, hull, mlip_check, reference, score

COMMANDS = (score, reference, fd_statistics, hull, mlip_check, columns)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluator",
                                     description="Score crystal-structure submissions and build their references.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)
