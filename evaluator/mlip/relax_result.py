"""The result of one structure's relaxation, as a typed record.

Produced by every relaxation driver (``evaluator.mlip.relax``, ``evaluator.mlip.engine``),
checkpointed by ``evaluator.families.stability.checkpoint`` and read by the stability
family. A failure is a record too: ``status == "failed"`` with a ``reason``.

``to_dict``/``from_dict`` are the checkpoint format (one JSON object per structure); its
keys are those of the plain dicts older runs wrote, so their checkpoints still load.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

Status = Literal["ok", "failed"]
# Why a relaxation ended: converged (max force < fmax), step_cap (the FIRE step cap,
# --relax-steps), budget (the cell's atom-step budget, below the step cap), wall_time
# (the per-structure wall-clock safety net; machine dependent).
StopReason = Literal["converged", "step_cap", "budget", "wall_time"]
STOP_REASONS: tuple[str, ...] = ("converged", "step_cap", "budget", "wall_time")
FLAGGED_STOPS = ("budget", "wall_time")  # stopped before convergence by a budget: flagged rows
# fields an "ok" result always carries (a failed one may carry any of them, or none)
_REQUIRED_WHEN_OK = ("energy_unrelaxed", "energy", "steps", "converged", "fmax_final", "rmsd",
                     "volume_ratio", "structure_relaxed")


@dataclass(frozen=True)
class RelaxResult:
    """One relaxation (FIRE on a Frechet cell filter, see ``evaluator.mlip.relax``).

    status: "ok" or "failed"; reason: why it failed (None when ok).
    energy_unrelaxed: total energy (eV) at the submitted geometry; a failed relaxation
        keeps it when the model gave it (the submitted geometry is still scored).
    energy: total energy (eV) at the final geometry.
    steps: FIRE steps taken; converged: max filter force < fmax.
    fmax_final: max force (eV/Å) incl. the cell's virial term, as the filter sees it.
    rmsd: displacement RMSD (Å), cells aligned, mean translation removed.
    volume_ratio: final / submitted cell volume.
    structure_relaxed: the relaxed structure as pymatgen JSON.
    wall_s: wall-clock seconds this structure took (None where nothing was timed).
    stopped_by: why it ended (``StopReason``; None in results written before it existed).
    step_limit: the most steps this cell was allowed (step cap or its atom-step budget).
    """

    status: Status
    reason: str | None = None
    energy_unrelaxed: float | None = None
    energy: float | None = None
    steps: int | None = None
    converged: bool | None = None
    fmax_final: float | None = None
    rmsd: float | None = None
    volume_ratio: float | None = None
    structure_relaxed: str | None = None
    wall_s: float | None = None
    stopped_by: StopReason | None = None
    step_limit: int | None = None

    def __post_init__(self) -> None:
        if self.status not in ("ok", "failed"):
            raise ValueError(f"relaxation status must be 'ok' or 'failed', not {self.status!r}")
        if self.stopped_by is not None and self.stopped_by not in STOP_REASONS:
            raise ValueError(f"stopped_by must be one of {STOP_REASONS}, not {self.stopped_by!r}")
        if self.status == "failed" and not self.reason:
            raise ValueError("a failed relaxation needs a reason")
        if self.status == "ok":
            absent = [k for k in _REQUIRED_WHEN_OK if getattr(self, k) is None]
            if absent:
                raise ValueError(f"an ok relaxation result lacks {absent}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def flagged(self) -> bool:
        """Stopped by the atom-step budget or the wall-time safety net, not converged."""
        return self.stopped_by in FLAGGED_STOPS

    def stop_note(self) -> str | None:
        """Why a flagged relaxation stopped, in words (None unless flagged)."""
        if not self.flagged:
            return None
        fmax = "unknown" if self.fmax_final is None else f"{self.fmax_final:.3g} eV/Å"
        what = ("the atom-step budget" if self.stopped_by == "budget"
                else "the wall-time limit (machine dependent)")
        limit = f" of {self.step_limit}" if self.stopped_by == "budget" and self.step_limit is not None else ""
        return f"relaxation stopped at {what} after {self.steps}{limit} steps, max force {fmax}"

    @classmethod
    def failed(cls, reason: str, energy_unrelaxed: float | None = None,
               wall_s: float | None = None) -> RelaxResult:
        """A failed relaxation; keeps the submitted-geometry energy (eV) when it was computed."""
        return cls("failed", reason,
                   energy_unrelaxed=None if energy_unrelaxed is None else float(energy_unrelaxed),
                   wall_s=wall_s)

    def timed(self, wall_s: float) -> RelaxResult:
        """This result with its wall-clock time (s, rounded to 0.1 ms)."""
        return dataclasses.replace(self, wall_s=round(wall_s, 4))

    def relaxed_structure(self) -> Structure:
        """The relaxed structure (pymatgen); only an ok result has one."""
        from pymatgen.core.structure import Structure

        if self.structure_relaxed is None:
            raise ValueError(f"a {self.status} relaxation has no relaxed structure ({self.reason})")
        return Structure.from_str(self.structure_relaxed, fmt="json")

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint record: ``status`` and ``reason`` always, other fields when set."""
        out: dict[str, Any] = {"status": self.status, "reason": self.reason}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name not in out and value is not None:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RelaxResult:
        """A record written by ``to_dict`` or by older runs (plain dicts with the same keys).

        Raises ValueError for a record that is not a relaxation result (unknown keys, wrong
        types, an ok result without its values).
        """
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown relaxation result field(s) {sorted(unknown)}")
        status = d.get("status")
        if status not in ("ok", "failed"):
            raise ValueError(f"relaxation status must be 'ok' or 'failed', not {status!r}")
        reason = d.get("reason")
        structure = d.get("structure_relaxed")
        if reason is not None and not isinstance(reason, str):
            raise ValueError(f"reason must be text, not {type(reason).__name__}")
        if structure is not None and not isinstance(structure, str):
            raise ValueError(f"structure_relaxed must be pymatgen JSON text, not {type(structure).__name__}")
        return cls(
            status=status, reason=reason,
            energy_unrelaxed=_float(d, "energy_unrelaxed"), energy=_float(d, "energy"),
            steps=_int(d, "steps"), converged=_bool(d, "converged"), fmax_final=_float(d, "fmax_final"),
            rmsd=_float(d, "rmsd"), volume_ratio=_float(d, "volume_ratio"),
            structure_relaxed=structure, wall_s=_float(d, "wall_s"),
            stopped_by=_stop(d), step_limit=_int(d, "step_limit"),
        )


def _stop(d: Mapping[str, Any]) -> StopReason | None:
    x = d.get("stopped_by")
    if x is None:
        return None
    if x not in STOP_REASONS:
        raise ValueError(f"stopped_by must be one of {STOP_REASONS}, not {x!r}")
    return x  # type: ignore[no-any-return]


def _float(d: Mapping[str, Any], key: str) -> float | None:
    x = d.get(key)
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ValueError(f"{key} must be a number, not {type(x).__name__}")
    return float(x)


def _int(d: Mapping[str, Any], key: str) -> int | None:
    x = d.get(key)
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x != int(x):
        raise ValueError(f"{key} must be a whole number, not {x!r}")
    return int(x)


def _bool(d: Mapping[str, Any], key: str) -> bool | None:
    x = d.get(key)
    if x is None or isinstance(x, bool):
        return x
    raise ValueError(f"{key} must be true or false, not {x!r}")
