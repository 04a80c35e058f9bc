"""The caveats the metric declarations carry (``evaluator.declarations.Caveat``), as text next
to the numbers they qualify: one line per caveat naming the metrics it qualifies, why, and
the README section that explains it. A caveat that names the novelty reference is filled
from the protocol's reference (``leaderboard.table.protocols.reference_of``)."""

from __future__ import annotations

from collections.abc import Iterable

from evaluator.declarations import Caveat
from leaderboard.table.measures import Measure


def readme_section(caveat: Caveat) -> str:
    """'README, section *Known limitations*' from the caveat's anchor ('' when none)."""
    if not caveat.readme:
        return ""
    title = caveat.readme.replace("-", " ")
    return f"README, section *{title[:1].upper() + title[1:]}* (`#{caveat.readme}`)"


def caveat_lines(measures: Iterable[Measure], reference: str | None = None) -> list[str]:
    """Markdown lines, one per distinct caveat of ``measures`` (in their order): the caveat in
    bold, the metrics it qualifies, one sentence why and where the README explains it."""
    groups: dict[Caveat, list[str]] = {}
    for m in measures:
        if m.caveat is None:
            continue
        names = groups.setdefault(m.caveat, [])
        label = m.label if m.group is None else f"{m.label} ({m.group.replace('_', ' ')})"
        if label not in names:
            names.append(label)
    lines = []
    for caveat, names in groups.items():
        short, why = caveat.text(reference)
        where = readme_section(caveat)
        lines.append(f"**{short[:1].upper() + short[1:]}** ({', '.join(names)}): {why}"
                     + (f" See the {where}." if where else ""))
    return lines


def caveat_markdown(measures: Iterable[Measure], reference: str | None = None) -> str:
    """``caveat_lines`` as one markdown block ('' when no measure has a caveat)."""
    return "\n\n".join(caveat_lines(measures, reference))
