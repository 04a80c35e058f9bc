"""The ``structures.parquet`` schema in words, generated from the column declarations.

``markdown()`` is the table README.md shows between ``BEGIN`` and ``END``;
``python -m evaluator columns --readme README.md`` writes it there
(``update_readme``), and a test fails when the README and the declarations differ.
"""

from __future__ import annotations

from pathlib import Path

from evaluator.catalogue import CATALOGUE
from evaluator.columns import BASE_COLUMNS, Column
from evaluator.declarations import MetricSet

BEGIN = ("<!-- BEGIN structures.parquet columns: generated from the declarations by "
         "`python -m evaluator columns --readme README.md`; do not edit by hand -->")
END = "<!-- END structures.parquet columns -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _counted_by(s: MetricSet, column: Column) -> list[str]:
    """The counted metrics of ``s`` whose flag reads ``column``, as ``block.metric`` (with the test)."""
    out = []
    for block in s.blocks():
        for m in s.block_metrics(block):
            if m.flag is None or column.name not in m.flag.names(block):
                continue
            test = {"true": "", "finite": " (finite)", "equals": f" (= {m.flag.value})",
                    "nonempty": " (non-empty)"}[m.flag.test]
            out.append(f"`{block}.{m.name}`{test}")
    return out


def markdown() -> str:
    """The column table: the pipeline's columns, then each family's in pipeline order."""
    lines = ["| column | written by | type | meaning | counted as |", "|---|---|---|---|---|"]
    for c in BASE_COLUMNS:
        lines.append(f"| `{c.name}` | pipeline | {c.dtype} | {_cell(c.description)} | |")
    for s in CATALOGUE:
        for c in s.declared_columns():
            counted = ", ".join(_counted_by(s, c))
            lines.append(f"| `{c.name}` | {s.family} | {c.dtype} | {_cell(c.description)} | {counted} |")
    return "\n".join(lines) + "\n"


def with_section(text: str) -> str:
    """``text`` (a README) with the generated table between its ``BEGIN`` and ``END`` lines.
    ValueError when the markers are missing."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no generated-columns section (lines {BEGIN!r} ... {END!r})")
    return text[: start + len(BEGIN)] + "\n" + markdown() + text[end:]


def update_readme(path: Path) -> bool:
    """Write the generated table into the README at ``path``; True when it changed."""
    old = path.read_text(encoding="utf-8")
    new = with_section(old)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old
