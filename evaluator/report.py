"""Plain-text rendering of a summary for the terminal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_summary(summary: Mapping[str, Any]) -> str:
    """Counts, then one block per metric family (scalar metrics, with why a metric is
    missing), then the ten most common failure reasons of each stage."""
    lines = []
    protocol = summary.get("protocol")
    if isinstance(protocol, Mapping):
        execution = summary.get("execution") or {}
        lines.append(f"protocol {protocol.get('id')}: {protocol.get('label')}"
                     f"   (device {execution.get('device') or '?'}, relax mode {execution.get('relax_mode') or '?'})")
    lines += [
        f"submitted {summary['n_submitted']}  parsed {summary['n_parsed']}  "
        f"valid {_fmt(summary['n_valid'])}  evaluated {_fmt(summary['n_evaluated'])}",
    ]
    metrics: Mapping[str, Mapping[str, Any]] = summary["metrics"]
    missing: Mapping[str, Mapping[str, str]] = summary.get("missing", {})
    timings: Mapping[str, float] = summary["timings_s"]
    width = max((len(k) for m in metrics.values() for k in m), default=10)
    for family, values in metrics.items():
        lines.append(f"\n[{family}]  ({timings.get(family, 0):.1f} s)")
        for name, value in values.items():
            if isinstance(value, (dict, list)):
                continue
            why = missing.get(family, {}).get(name)
            lines.append(f"  {name:<{width}}  {_fmt(value)}" + (f"   ({why})" if why else ""))
    failures: Mapping[str, Mapping[str, int]] = summary.get("failures", {})
    for stage, reasons in failures.items():
        if not reasons:
            continue
        lines.append(f"\n{stage} failures:")
        lines.extend(f"  {n:>6}  {reason}" for reason, n in list(reasons.items())[:10])
    return "\n".join(lines)
