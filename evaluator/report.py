"""Plain-text rendering of a summary for the terminal."""

from __future__ import annotations


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_summary(summary: dict) -> str:
    lines = [
        f"submitted {summary['n_submitted']}  parsed {summary['n_parsed']}  "
        f"valid {_fmt(summary['n_valid'])}  evaluated {_fmt(summary['n_evaluated'])}",
    ]
    missing = summary.get("missing", {})
    width = max((len(k) for m in summary["metrics"].values() for k in m), default=10)
    for family, metrics in summary["metrics"].items():
        lines.append(f"\n[{family}]  ({summary['timings_s'].get(family, 0):.1f} s)")
        for name, value in metrics.items():
            if isinstance(value, (dict, list)):
                continue
            why = missing.get(family, {}).get(name)
            lines.append(f"  {name:<{width}}  {_fmt(value)}" + (f"   ({why})" if why else ""))
    failures = {k: v for k, v in summary.get("failures", {}).items() if v}
    for stage, reasons in failures.items():
        lines.append(f"\n{stage} failures:")
        lines.extend(f"  {n:>6}  {reason}" for reason, n in list(reasons.items())[:10])
    return "\n".join(lines)
