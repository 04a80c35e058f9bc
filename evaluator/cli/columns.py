"""``python -m evaluator columns``: the ``structures.parquet`` columns, from their declarations.

Prints the column table (markdown); ``--readme README.md`` writes it into the README's
generated section instead (``evaluator.columns_doc``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluator.cli.common import fail


def cmd_columns(args: argparse.Namespace) -> int:
    from evaluator.columns_doc import markdown, update_readme  # deferred: keeps pandas out of the CLI's start

    if args.readme is None:
        print(markdown(), end="")
        return 0
    try:
        changed = update_readme(Path(args.readme))
    except (OSError, ValueError) as exc:
        return fail(exc)
    print(f"{args.readme}: {'updated' if changed else 'already up to date'}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("columns", help="the structures.parquet columns, from their declarations",
                              description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--readme", default=None, help="write the table into this README's generated section")
    p.set_defaults(func=cmd_columns)
