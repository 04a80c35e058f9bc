"""How long an evaluation job will take: every figure here is an estimate.

Three sources, best first:

1. **The running stage's measured rate** (``progress.rate`` written by the worker, or
   done / seconds since ``progress.stage_started_at``): the rest of that stage.
2. **Past jobs on this deployment**: the median ``stage_rates`` (items/s per stage) of
   recently finished jobs. One item per submitted structure is assumed for every stage
   except those in ``NOT_PER_STRUCTURE``.
3. **A per-structure cost model** when no job has finished yet (``COST_MODEL``), from the
   figures measured for this project (README "Benchmarks", docs MLIP-NOTES.md):

   - CPU, CHGNet: relaxation + E_hull 2.4 s per structure (``bench/stability_speed.py``:
     0.42 structures/s on a 2-core CPU, pool of 2 workers, rattled cells of <= 12 atoms,
     FIRE to fmax 0.02, <= 300 steps); every other stage together 0.1 s per structure
     (parse + validity 7 ms, ``bench/parse_validity_speed.py``; the CHGNet embedding
     50 ms; diversity/distribution/HHI 4 ms, ``bench/families_speed.py``; identity < 1 ms,
     ``bench/identity_speed.py``; rounded up).
   - CUDA (H200), CHGNet: 12.5 s per structure, the one GPU figure measured (MLIP-NOTES:
     0.08 structures/s relaxing one structure at a time with plain ASE, rattled cells,
     fmax 0.02, <= 300 steps); the batched GPU runner has not been measured.
   - Other MLIPs scale CHGNet's relaxation cost (MLIP-NOTES): MACE-MP-0 medium by its
     single-point cost at 10 atoms (0.075 s vs CHGNet 0.068 s), SevenNet (default
     SevenNet-l3i5) by 3.5 (its measured cost per relaxation on CPU).

A job waiting in the queue starts after the running jobs' remaining time plus the
estimated duration of every job ahead of it, divided among the workers seen running
(at least one).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from evaluator.catalogue import FAMILIES
from evaluator.config import DEFAULT_PRESET, PRESETS
from evaluator.mlip import default_mlip, resolve_device

STALL_WARN_ENV = "GENBENCH_STALL_WARN_S"
STALL_TIMEOUT_ENV = "GENBENCH_STALL_TIMEOUT"  # the worker's watchdog (leaderboard.worker, default 600 s)
DEFAULT_STALL_TIMEOUT_S = 600.0
HISTORY_JOBS = 20  # finished jobs whose stage rates are used
RELAX_STAGE = "stability: relax"
OTHER_STAGES = "other stages"
NOT_PER_STRUCTURE = ("ingest", "distribution: FD reference")  # items are files / reference entries

# Seconds per submitted structure, by device, for CHGNet with the default settings (see the
# module docstring for where each figure was measured).
COST_MODEL: dict[str, dict[str, float]] = {
    "cpu": {RELAX_STAGE: 2.4, OTHER_STAGES: 0.1},
    "cuda": {RELAX_STAGE: 12.5, OTHER_STAGES: 0.1},
}
COST_MODEL_NOTES = {
    "cpu": "2-core CPU as measured for this project",
    "cuda": "one GPU, structures relaxed one at a time (the batched GPU runner is not measured)",
}
MLIP_RELAX_FACTOR = {"chgnet": 1.0, "mace": 0.075 / 0.068, "sevenn": 3.5}


@dataclass(frozen=True)
class Hardware:
    """What the deployment's worker evaluates with (from the worker's GENBENCH_* settings)."""

    device: str  # "cpu" or "cuda"
    mlip: str
    relax_steps: int | None = None

    def describe(self) -> str:
        steps = f", ≤ {self.relax_steps} relaxation steps" if self.relax_steps else ""
        return f"{self.device.upper()}, {self.mlip_label}{steps}"

    @property
    def mlip_label(self) -> str:
        return {"chgnet": "CHGNet", "mace": "MACE", "sevenn": "SevenNet"}.get(self.mlip, self.mlip)


_DEVICE_CACHE: dict[str, str] = {}


def deployment_hardware(env: Mapping[str, str] | None = None) -> Hardware:
    """The device and MLIP the worker of this deployment uses (GENBENCH_DEVICE, GENBENCH_MLIP,
    GENBENCH_RELAX_STEPS, as ``leaderboard.worker`` reads them); ``auto`` asks torch once."""
    env = os.environ if env is None else env
    device = (env.get("GENBENCH_DEVICE") or "auto").lower()
    if device == "auto":
        if "auto" not in _DEVICE_CACHE:
            try:
                _DEVICE_CACHE["auto"] = resolve_device("auto")
            except Exception:  # noqa: BLE001 - no torch: the worker would run on the CPU
                _DEVICE_CACHE["auto"] = "cpu"
        device = _DEVICE_CACHE["auto"]
    device = "cuda" if device.startswith("cuda") else "cpu"
    steps = env.get("GENBENCH_RELAX_STEPS")

    named = PRESETS.get(env.get("GENBENCH_PROTOCOL") or DEFAULT_PRESET, {}).get("mlip")  # the worker's default
    return Hardware(device, (env.get("GENBENCH_MLIP") or named or default_mlip(device)).lower(),
                    int(steps) if steps and steps.strip().isdigit() else 300)


@dataclass(frozen=True)
class Estimate:
    """An estimated duration (None: cannot be estimated) and what it is based on."""

    seconds: float | None
    basis: str

    def __add__(self, other: Estimate) -> Estimate:
        if self.seconds is None or other.seconds is None:
            return Estimate(None, self.basis if self.seconds is None else other.basis)
        bases = [b for b in dict.fromkeys((self.basis, other.basis)) if b]
        return Estimate(self.seconds + other.seconds, "; ".join(bases))

    def text(self) -> str:
        """'about 1 h 45 min (estimate: <basis>)' or 'unknown (<basis>)'."""
        if self.seconds is None:
            return f"unknown ({self.basis})"
        return f"{fmt_estimate(self.seconds)} (estimate: {self.basis})"


def fmt_estimate(seconds: float) -> str:
    """A duration rounded to what an estimate can mean: 'under a minute', 'about 12 min',
    'about 1 h 45 min' (to 5 min), 'about 26 h'."""
    s = max(0.0, float(seconds))
    if s < 60:
        return "under a minute"
    if s < 3600:
        return f"about {max(1, round(s / 60))} min"
    minutes = 5 * round(s / 300)
    h, m = divmod(minutes, 60)
    if h >= 24:
        return f"about {round(s / 3600)} h"
    return f"about {h} h" + (f" {m:02d} min" if m else "")


# ------------------------------------------------------------------ reading job documents
def _get(obj, name: str, default=None):
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def to_epoch(value) -> float | None:
    """Seconds since the epoch from an ISO-8601 string (naive = UTC), a datetime or a number."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, dt.datetime):
        try:
            value = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


def _num(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if x == x and x not in (float("inf"), float("-inf")) else None


def progress_of(job) -> dict:
    p = _get(job, "progress") or {}
    return p if isinstance(p, Mapping) else {}


def measured_rate(progress: Mapping, now: float | None = None) -> float | None:
    """Items/s of the running stage: the worker's ``rate``, else done / seconds between
    ``stage_started_at`` and ``updated_at`` (the last progress). None if not measurable."""
    rate = _num(progress.get("rate"))
    if rate is not None and rate > 0:
        return rate
    done = _num(progress.get("done")) or 0.0
    start, last = to_epoch(progress.get("stage_started_at")), to_epoch(progress.get("updated_at"))
    if done > 0 and start is not None and last is not None and last > start:
        return done / (last - start)
    return None


def seconds_since_progress(job, now: float) -> float | None:
    """Seconds since the job's last recorded progress (``progress.updated_at``), or None."""
    last = to_epoch(progress_of(job).get("updated_at"))
    return None if last is None else max(0.0, now - last)


def stall_timeout_s(env: Mapping[str, str] | None = None) -> float:
    """Seconds without progress after which the worker stops and retries a job (its watchdog)."""
    value = _num((os.environ if env is None else env).get(STALL_TIMEOUT_ENV))
    return value if value is not None and value > 0 else DEFAULT_STALL_TIMEOUT_S


def stall_warn_s(env: Mapping[str, str] | None = None) -> float:
    """Seconds without progress after which the status warns "stalled": GENBENCH_STALL_WARN_S,
    else half the worker's stall timeout (300 s by default), so the owner sees it coming."""
    value = _num((os.environ if env is None else env).get(STALL_WARN_ENV))
    return value if value is not None and value > 0 else stall_timeout_s(env) / 2


def history_rates(jobs: Iterable, limit: int = HISTORY_JOBS) -> tuple[dict[str, float], int]:
    """({stage: median items/s}, number of jobs used) over the ``limit`` most recently
    finished jobs that recorded ``stage_rates``."""
    done = [j for j in jobs if str(_get(j, "status", "")).upper() == "FINISHED"
            and isinstance(_get(j, "stage_rates"), Mapping) and _get(j, "stage_rates")]
    done.sort(key=lambda j: to_epoch(_get(j, "finished_at")) or 0.0, reverse=True)
    used = done[:limit]
    per_stage: dict[str, list[float]] = {}
    for j in used:
        for stage, rate in _get(j, "stage_rates").items():
            r = _num(rate)
            if r is not None and r > 0:
                per_stage.setdefault(str(stage), []).append(r)
    return {s: statistics.median(v) for s, v in per_stage.items()}, len(used)


# ------------------------------------------------------------------ stage order
def _family_order() -> list[str]:
    """Stage names in the order a job runs them: ingest, then the families in pipeline order."""
    return ["ingest", *FAMILIES]


def stage_key(stage: str, order: list[str] | None = None) -> tuple[int, int] | None:
    """(family position in pipeline order, 0 for the bare family name / 1 for 'family: step'),
    or None for a stage outside the pipeline ('starting', unknown names)."""
    order = order or _family_order()
    fam = str(stage).split(":")[0].strip()
    return (order.index(fam), int(":" in str(stage))) if fam in order else None


def is_later(stage: str, current: str, order: list[str] | None = None) -> bool:
    """Whether ``stage`` still has to run while ``current`` runs. Steps of the current
    family other than the current one count as done (their order is not known); the
    cost model's lumped light stages count with the relaxation."""
    order = order or _family_order()
    ks = stage_key(RELAX_STAGE if stage == OTHER_STAGES else stage, order)
    kc = stage_key(current, order)
    if kc is None or ks is None:
        return True
    return ks[0] > kc[0] or (ks[0] == kc[0] and kc[1] == 0 and ks[1] == 1)


def _per_structure(stage: str) -> bool:
    return stage not in NOT_PER_STRUCTURE and stage not in ("starting", "finished", "")


# ------------------------------------------------------------------ estimates
@dataclass(frozen=True)
class Estimator:
    """Estimates on one deployment: its hardware and its past jobs' stage rates."""

    hardware: Hardware
    rates: dict[str, float]
    n_history: int = 0

    @classmethod
    def from_jobs(cls, jobs: Iterable, hardware: Hardware | None = None) -> Estimator:
        rates, n = history_rates(jobs)
        return cls(hardware or deployment_hardware(), rates, n)

    @property
    def uses_history(self) -> bool:
        return any(_per_structure(s) for s in self.rates)

    def basis(self) -> str:
        if self.uses_history:
            last = "the last finished job" if self.n_history == 1 else f"the last {self.n_history} finished jobs"
            return f"rates of {last} on this deployment ({self.hardware.describe()})"
        note = COST_MODEL_NOTES.get(self.hardware.device, COST_MODEL_NOTES["cpu"])
        unmeasured = ("" if self.hardware.mlip in MLIP_RELAX_FACTOR else
                      f"; {self.hardware.mlip_label} not measured, CHGNet's cost assumed")
        return (f"cost model for {self.hardware.describe()} ({note}{unmeasured}; "
                "no job has finished on this deployment yet)")

    def stage_costs(self) -> dict[str, float]:
        """Seconds per structure per stage, from past jobs or else the cost model."""
        if self.uses_history:
            return {s: 1.0 / r for s, r in self.rates.items() if _per_structure(s)}
        model = COST_MODEL.get(self.hardware.device, COST_MODEL["cpu"])
        factor = MLIP_RELAX_FACTOR.get(self.hardware.mlip, 1.0)
        # the measured figures used the default cap of 300 steps; a lower cap can only shorten
        cap = min(1.0, (self.hardware.relax_steps or 300) / 300)
        return {RELAX_STAGE: model[RELAX_STAGE] * factor * cap, OTHER_STAGES: model[OTHER_STAGES]}

    def seconds_per_structure(self) -> float:
        return sum(self.stage_costs().values())

    def job(self, n_structures: int | None) -> Estimate:
        """Whole-job duration for ``n_structures`` structures."""
        if not n_structures:
            return Estimate(None, "number of structures not known")
        return Estimate(n_structures * self.seconds_per_structure(), self.basis())

    def remaining(self, job, now: float, n_structures: int | None = None) -> Estimate:
        """Time left for a RUNNING job: the rest of its stage at the measured rate, plus the
        later stages at past (or modelled) per-structure costs. ``n_structures`` is used
        when the running stage does not count structures. A stalled job (no progress for
        ``stall_warn_s``) has no estimate: its last rate no longer says anything."""
        p = progress_of(job)
        stage = str(p.get("stage") or "")
        idle = seconds_since_progress(job, now)
        if idle is not None and idle >= stall_warn_s():
            return Estimate(None, f"no progress for {round(idle / 60)} min: stalled")
        done, total = _num(p.get("done")) or 0.0, _num(p.get("total")) or 0.0
        rate = measured_rate(p, now)
        if total <= 0 or done >= total:
            here = Estimate(0.0, "")  # a stage marker without items, or a stage just completed
        elif rate:
            here = Estimate((total - done) / rate, f"measured rate of {stage}")
        else:
            here = Estimate(None, f"no rate measured yet for {stage or 'the first stage'}")
        n = int(total) if total > 0 and _per_structure(stage) else n_structures
        if here.seconds is None:
            return here
        order = _family_order()
        later_costs = [c for s, c in self.stage_costs().items() if s != stage and is_later(s, stage, order)]
        if not later_costs:
            return here
        if not n:
            return Estimate(None, "number of structures not known yet")
        return here + Estimate(n * sum(later_costs), f"later stages from the {self.basis()}")

    def wait(self, job, jobs: list, sizes: Mapping[str, int | None], now: float) -> tuple[Estimate, Estimate]:
        """(time until a PENDING ``job`` starts, time until it finishes): the running jobs'
        remaining time plus every pending job ahead of it, shared among the workers seen
        running (at least one)."""
        mine = str(_get(job, "id"))
        running = [j for j in jobs if str(_get(j, "status", "")).upper() == "RUNNING"]
        pending = sorted((j for j in jobs if str(_get(j, "status", "")).upper() == "PENDING"),
                         key=lambda j: (_get(j, "seq", 0) or 0, _get(j, "created_at", "") or "",
                                        str(_get(j, "id"))))
        ids = [str(_get(j, "id")) for j in pending]
        ahead = pending[:ids.index(mine)] if mine in ids else pending
        workers = max(1, len({_get(j, "lease_owner") for j in running if _get(j, "lease_owner")}))
        queue = Estimate(0.0, "")
        for j in running:
            queue = queue + self.remaining(j, now, sizes.get(str(_get(j, "id"))))
        for j in ahead:
            queue = queue + self.job(sizes.get(str(_get(j, "id"))))
        if queue.seconds is not None:
            note = f"; shared among {workers} workers" if workers > 1 else ""
            queue = Estimate(queue.seconds / workers,
                             (queue.basis + note).lstrip("; ") or "nothing ahead in the queue")
        return queue, queue + self.job(sizes.get(mine))
