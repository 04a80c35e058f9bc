"""How long an evaluation job will take: every figure here is an estimate.

Three sources, best first:

1. **The running stage's measured rate** (``progress.rate`` written by the worker, or
   done / seconds since ``progress.stage_started_at``): the rest of that stage.
2. **Past jobs on this deployment**: the median ``stage_rates`` (items/s per stage) of
   recently finished jobs. One item per submitted structure is assumed for every stage
   except those in ``NOT_PER_STRUCTURE``.
3. **A per-structure cost model** when no job has finished yet: the relaxation of each
   structure from its number of atoms, the MLIP and the device
   (``evaluator.mlip.cost``, fitted by ``bench/relax_cost.py``; the atom-step budget caps
   a large cell's steps), its single-worker seconds shared among the relaxation pool's
   workers (the CPU cores); every other stage together 0.1 s per structure
   (``OTHER_STAGES_S``: parse + validity 7 ms, ``bench/parse_validity_speed.py``; the
   CHGNet embedding 50 ms; diversity/distribution/HHI 4 ms, ``bench/families_speed.py``;
   identity < 1 ms, ``bench/identity_speed.py``; rounded up). Jobs carry their size (the
   upload check's ``n_structures`` and ``cell_atoms``); where the cells' sizes are not known
   (a job from before sizes were kept), structures of ``TYPICAL_ATOMS`` atoms are assumed,
   and the basis says so.

A running stage with no measured rate yet (just started, or one that counts no items) takes
past jobs' rate of that stage, else the cost model for the job's size: a job in its first
stage is estimated, not "unknown".

Every ``Estimate`` states its basis (one made without is refused), and ``Estimate.text`` is
how an estimate is shown to people: the duration and what it is based on.

The relaxation's own progress counts work inside the cells (atoms × FIRE steps, see
``evaluator.progress.StepProgress``): while it runs, its remaining time is the expected
work left at the measured work rate, so one large cell that takes minutes still gives an
honest estimate. A finished job keeps that rate (``progress.work_rates``), and later jobs
of known cell sizes use it (expected work of each cell / the measured rate).

A job waiting in the queue starts after the running jobs' remaining time plus the
estimated duration of every job ahead of it, divided among the workers seen running
(at least one).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from evaluator.catalogue import FAMILIES
from evaluator.config import build_config
from evaluator.mlip import resolve_device
from evaluator.mlip.cost import MLIP_FACTOR, RelaxCostModel, cost_model
from evaluator.mlip.relax import DEFAULT_BUDGET, RelaxBudget
from leaderboard.jobs.documents import Job, JobStatus, Progress
from leaderboard.jobs.progress import STORE_UNAVAILABLE_STAGE
from leaderboard.settings import STALL_TIMEOUT, STALL_WARN

HISTORY_JOBS = 20  # finished jobs whose stage rates are used
RELAX_STAGE = "stability: relax"
OTHER_STAGES = "other stages"
NOT_PER_STRUCTURE = ("ingest", "distribution: FD reference")  # items are files / reference entries

OTHER_STAGES_S = 0.1  # seconds per structure of every stage but the relaxation (module doc)
TYPICAL_ATOMS = 20  # cell size assumed where a job's sizes are not known
COST_MODEL_NOTES = {
    "cpu": "per-cell cost model fitted on a 2-core CPU (bench/relax_cost.py)",
    "cuda": "one GPU, structures relaxed one at a time (the batched GPU runner is not measured)",
}


@dataclass(frozen=True)
class Hardware:
    """What the deployment's worker evaluates with (from the worker's GENBENCH_* settings)."""

    device: str  # "cpu" or "cuda"
    mlip: str
    relax_steps: int | None = None
    budget_atom_steps: int | None = DEFAULT_BUDGET.atom_steps
    budget_min_steps: int = DEFAULT_BUDGET.min_steps
    workers: int = 0  # relaxation pool workers (0: this machine's CPU cores on CPU, 1 on a GPU)

    @property
    def budget(self) -> RelaxBudget:
        return RelaxBudget(steps=self.relax_steps or 300, atom_steps=self.budget_atom_steps,
                           min_steps=self.budget_min_steps)

    @property
    def relax_workers(self) -> int:
        if self.workers > 0:
            return self.workers
        return 1 if self.device == "cuda" else max(1, os.cpu_count() or 1)

    def cost_model(self) -> RelaxCostModel:
        return cost_model(self.mlip, self.device)

    def describe(self) -> str:
        steps = f", ≤ {self.relax_steps} relaxation steps" if self.relax_steps else ""
        return f"{self.device.upper()}, {self.mlip_label}{steps}"

    @property
    def mlip_label(self) -> str:
        return {"chgnet": "CHGNet", "mace": "MACE", "sevenn": "SevenNet"}.get(self.mlip, self.mlip)


_DEVICE_CACHE: dict[str, str] = {}


def deployment_hardware(env: Mapping[str, str] | None = None) -> Hardware:
    """The device and MLIP the worker of this deployment uses: its run configuration as the
    worker builds it from the environment (``evaluator.config.build_config``: GENBENCH_DEVICE,
    GENBENCH_MLIP, GENBENCH_PROTOCOL, GENBENCH_RELAX_STEPS and the relaxation budget and
    workers of GENBENCH_OPTIONS' ``stability`` options); ``auto`` asks torch once. Settings
    the worker would refuse give the defaults' estimate."""
    try:
        config = build_config(env=os.environ if env is None else env)
    except ValueError:  # the worker refuses such settings (and says why); estimate with the defaults
        config = build_config(env={})
    device = config.device.lower()
    if device == "auto":
        if "auto" not in _DEVICE_CACHE:
            try:
                _DEVICE_CACHE["auto"] = resolve_device("auto")
            except Exception:  # noqa: BLE001 - no torch: the worker would run on the CPU
                _DEVICE_CACHE["auto"] = "cpu"
        device = _DEVICE_CACHE["auto"]
    device = "cuda" if device.startswith("cuda") else "cpu"
    options = config.family_options("stability")
    atom_steps = options.get("relax_budget_atom_steps", DEFAULT_BUDGET.atom_steps)
    min_steps = options.get("relax_budget_min_steps", DEFAULT_BUDGET.min_steps)
    workers = options.get("relax_workers")
    return Hardware(device, config.mlip.lower(), config.relax_steps,
                    atom_steps if isinstance(atom_steps, int) or atom_steps is None else DEFAULT_BUDGET.atom_steps,
                    min_steps if isinstance(min_steps, int) else DEFAULT_BUDGET.min_steps,
                    workers if isinstance(workers, int) and workers > 0 else 0)


@dataclass(frozen=True)
class Estimate:
    """An estimated duration (None: cannot be estimated) and what it is based on (never
    empty: an estimate without a basis is refused when it is made, so none is shown).

    ``text`` is the one rendering of an estimate for people; ``short`` is its duration alone
    for table cells whose row links to the full text."""

    seconds: float | None
    basis: str

    def __post_init__(self) -> None:
        if not self.basis.strip():
            raise ValueError(f"an estimate ({self.seconds!r} s) without a stated basis")

    def __add__(self, other: Estimate) -> Estimate:
        if self.seconds is None or other.seconds is None:
            return Estimate(None, self.basis if self.seconds is None else other.basis)
        bases = list(dict.fromkeys((self.basis, other.basis)))
        return Estimate(self.seconds + other.seconds, "; ".join(bases))

    @staticmethod
    def total(parts: Iterable[Estimate], nothing: str) -> Estimate:
        """The sum of ``parts``; none: zero seconds, based on ``nothing`` (why nothing counts)."""
        out: Estimate | None = None
        for part in parts:
            out = part if out is None else out + part
        return out if out is not None else Estimate(0.0, nothing)

    def text(self) -> str:
        """'about 1 h 45 min (estimate: <basis>)' or 'unknown (<why>)'."""
        if self.seconds is None:
            return f"unknown ({self.basis})"
        return f"{fmt_estimate(self.seconds)} (estimate: {self.basis})"

    def short(self) -> str:
        """'about 1 h 45 min', or '' when not estimated."""
        return "" if self.seconds is None else fmt_estimate(self.seconds)


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
def to_epoch(value: str | float | dt.datetime | None) -> float | None:
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


def _num(value: object) -> float | None:
    """A finite number, or None."""
    if not isinstance(value, (int, float, str)) or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    return x if x == x and x not in (float("inf"), float("-inf")) else None


def measured_rate(progress: Progress, now: float | None = None) -> float | None:
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


def seconds_since_progress(job: Job, now: float) -> float | None:
    """Seconds since the job's last recorded progress (``progress.updated_at``), or None."""
    last = to_epoch(job.progress.get("updated_at"))
    return None if last is None else max(0.0, now - last)


def stall_timeout_s(env: Mapping[str, str] | None = None) -> float:
    """Seconds without progress after which the worker stops and retries a job (its watchdog,
    GENBENCH_STALL_TIMEOUT)."""
    return STALL_TIMEOUT.read_or_default(env)


def stall_warn_s(env: Mapping[str, str] | None = None) -> float:
    """Seconds without progress after which the status warns "stalled": GENBENCH_STALL_WARN_S,
    else half the worker's stall timeout (300 s by default), so the owner sees it coming."""
    warn = STALL_WARN.read_or_default(env)
    return warn if warn is not None else stall_timeout_s(env) / 2


def _finished_newest_first(jobs: Iterable[Job]) -> list[Job]:
    done = [j for j in jobs if j.status == JobStatus.FINISHED]
    done.sort(key=lambda j: to_epoch(j.finished_at) or 0.0, reverse=True)
    return done


def history_work_rate(jobs: Iterable[Job], limit: int = HISTORY_JOBS) -> float | None:
    """Median relaxation work rate (atoms × steps / s) over the ``limit`` most recently
    finished jobs that recorded one (``progress.work_rates``), or None."""
    rates = []
    for j in _finished_newest_first(jobs):
        r = _num(j.progress.get("work_rates", {}).get(RELAX_STAGE))
        if r is not None and r > 0:
            rates.append(r)
        if len(rates) >= limit:
            break
    return statistics.median(rates) if rates else None


def history_rates(jobs: Iterable[Job], limit: int = HISTORY_JOBS) -> tuple[dict[str, float], int]:
    """({stage: median items/s}, number of jobs used) over the ``limit`` most recently
    finished jobs that recorded ``stage_rates``."""
    used = [j for j in _finished_newest_first(jobs) if j.stage_rates][:limit]
    per_stage: dict[str, list[float]] = {}
    for j in used:
        for stage, rate in (j.stage_rates or {}).items():
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
    """Estimates on one deployment: its hardware and its past jobs' stage rates (and
    relaxation work rate)."""

    hardware: Hardware
    rates: dict[str, float]
    n_history: int = 0
    work_rate: float | None = None  # atoms × steps / s of past jobs' relaxations

    @classmethod
    def from_jobs(cls, jobs: Iterable[Job], hardware: Hardware | None = None) -> Estimator:
        jobs = list(jobs)
        rates, n = history_rates(jobs)
        return cls(hardware or deployment_hardware(), rates, n, history_work_rate(jobs))

    @property
    def uses_history(self) -> bool:
        return any(_per_structure(s) for s in self.rates)

    def basis(self) -> str:
        if self.uses_history:
            last = "the last finished job" if self.n_history == 1 else f"the last {self.n_history} finished jobs"
            return f"rates of {last} on this deployment ({self.hardware.describe()})"
        note = COST_MODEL_NOTES.get(self.hardware.device, COST_MODEL_NOTES["cpu"])
        unmeasured = ("" if self.hardware.mlip in MLIP_FACTOR else
                      f"; {self.hardware.mlip_label} not measured, CHGNet's cost assumed")
        return (f"cost model for {self.hardware.describe()} ({note}{unmeasured}; "
                "no job has finished on this deployment yet)")

    def relax_seconds(self, n_structures: int, atoms: Sequence[int] | None = None) -> float:
        """Seconds to relax ``n_structures`` cells of ``atoms`` atoms each (None: TYPICAL_ATOMS):
        the expected work at past jobs' work rate, else their structures/s (sizes unknown
        to them), else the cost model shared among the pool's workers."""
        model, budget = self.hardware.cost_model(), self.hardware.budget
        sizes = list(atoms) if atoms else [TYPICAL_ATOMS] * n_structures
        if self.work_rate:
            return sum(model.atom_steps(n, budget) for n in sizes) / self.work_rate
        rate = self.rates.get(RELAX_STAGE)
        if self.uses_history and rate:
            return n_structures / rate
        if self.uses_history:
            return 0.0  # past jobs did not relax (the deployment runs other families)
        return model.total_seconds(sizes, budget) / self.hardware.relax_workers

    def stage_costs(self) -> dict[str, float]:
        """Seconds per structure of every stage but the relaxation, from past jobs or else
        the cost model's ``OTHER_STAGES_S``."""
        if self.uses_history:
            return {s: 1.0 / r for s, r in self.rates.items() if _per_structure(s) and s != RELAX_STAGE}
        return {OTHER_STAGES: OTHER_STAGES_S}

    def seconds_per_structure(self, atoms: int | None = None) -> float:
        """Seconds per structure of ``atoms`` atoms (None: TYPICAL_ATOMS), all stages."""
        return self.relax_seconds(1, None if atoms is None else [atoms]) + sum(self.stage_costs().values())

    def _sizes_note(self, atoms: Sequence[int] | None) -> str:
        if not atoms:
            return f"; cells of {TYPICAL_ATOMS} atoms assumed (sizes not known)"
        if self.uses_history and not self.work_rate:
            return ""  # past jobs' structures/s: the cells' sizes are not used
        lo, hi = min(atoms), max(atoms)
        return f"; the cells' known sizes ({lo} atoms)" if lo == hi else f"; the cells' known sizes ({lo}–{hi} atoms)"

    def job(self, n_structures: int | None, atoms: Sequence[int] | None = None) -> Estimate:
        """Whole-job duration for ``n_structures`` structures of ``atoms`` atoms each."""
        if not n_structures:
            return Estimate(None, "number of structures not known")
        seconds = self.relax_seconds(n_structures, atoms) + n_structures * sum(self.stage_costs().values())
        return Estimate(seconds, self.basis() + self._sizes_note(atoms))

    def _unmeasured_stage(self, stage: str, left: float, total: float, n_structures: int | None,
                          atoms: Sequence[int] | None) -> Estimate:
        """The rest of a running stage whose rate is not measured yet (just started, or a
        stage that counts no items): past jobs' rate of that stage, else the cost model for
        the job's known size (its share of the modelled cost)."""
        why = f"no rate measured yet for {stage or 'the first stage'}"
        past = self.rates.get(stage)
        if past and left > 0:
            return Estimate(left / past, f"{why}: past jobs' rate of it ({self.basis()})")
        if stage == RELAX_STAGE:
            n = int(total) if total > 0 else n_structures
            if not n:
                return Estimate(None, f"{why}; number of structures not known")
            share = left / total if total > 0 else 1.0
            return Estimate(self.relax_seconds(n, atoms) * share,
                            f"{why}: the {self.basis()}{self._sizes_note(atoms)}")
        if stage_key(stage) is None:  # 'starting': every stage is still to come (counted as later stages)
            return Estimate(0.0, f"{stage or 'starting'}: every stage still to come")
        if self.uses_history:
            return Estimate(0.0, f"{why}; not timed by past jobs (counted as instant)")
        if is_later(OTHER_STAGES, stage):  # in the model's lumped light stages, counted as later
            return Estimate(0.0, f"{why}: a light stage, counted in the later stages' estimate")
        items = left if total > 0 and _per_structure(stage) else float(n_structures or 0)
        return Estimate(items * OTHER_STAGES_S, f"{why}: the {self.basis()} for light stages")

    def remaining(self, job: Job, now: float, n_structures: int | None = None,
                  atoms: Sequence[int] | None = None) -> Estimate:
        """Time left for a RUNNING job: the rest of its stage at the measured rate (the
        relaxation: its expected work left at the measured work rate; not measured yet: past
        jobs' or the cost model's rate, ``_unmeasured_stage``), plus the later stages at past
        (or modelled) costs. ``n_structures`` (and ``atoms``) are used when the running stage
        does not count structures. A stalled job (no progress for ``stall_warn_s``) has no
        estimate: its last rate no longer says anything."""
        p = job.progress
        stage = str(p.get("stage") or "")
        if stage == STORE_UNAVAILABLE_STAGE:  # done, but the store does not take the results yet
            return Estimate(None, stage)
        idle = seconds_since_progress(job, now)
        if idle is not None and idle >= stall_warn_s():
            return Estimate(None, f"no progress for {round(idle / 60)} min: stalled")
        done, total = _num(p.get("done")) or 0.0, _num(p.get("total")) or 0.0
        work_done, work_total = _num(p.get("work_done")) or 0.0, _num(p.get("work_total")) or 0.0
        work_rate = _num(p.get("work_rate"))
        rate = measured_rate(p, now)
        if total > 0 and done >= total:
            here = Estimate(0.0, f"measured progress: {stage or 'the stage'} complete ({done:.0f}/{total:.0f})")
        elif total > 0 and work_total > 0 and work_rate:
            here = Estimate(max(0.0, work_total - work_done) / work_rate,
                            f"measured speed of {stage} (atoms × steps per second), expected work left")
        elif total > 0 and rate:
            here = Estimate((total - done) / rate, f"measured rate of {stage}")
        else:
            here = self._unmeasured_stage(stage, max(0.0, total - done), total, n_structures, atoms)
        n = int(total) if total > 0 and _per_structure(stage) else n_structures
        if here.seconds is None:
            return here
        order = _family_order()
        later_costs = [c for s, c in self.stage_costs().items() if s != stage and is_later(s, stage, order)]
        relax_later = stage != RELAX_STAGE and is_later(RELAX_STAGE, stage, order)
        if not later_costs and not relax_later:
            if total > 0 and done >= total:  # the last stage is done: the results are being published
                return Estimate(0.0, f"measured progress: every stage done ({stage} {done:.0f}/{total:.0f}), "
                                     "the results are being published")
            return here
        if not n:
            return Estimate(None, "number of structures not known yet")
        later = n * sum(later_costs) + (self.relax_seconds(n, atoms) if relax_later else 0.0)
        return here + Estimate(later, f"later stages from the {self.basis()}{self._sizes_note(atoms)}")

    def wait(self, job: Job | None, jobs: list[Job], sizes: Mapping[str, int | None], now: float,
             atoms: Mapping[str, Sequence[int]] | None = None) -> tuple[Estimate, Estimate]:
        """(time until a PENDING ``job`` starts, time until it finishes): the running jobs'
        remaining time plus every pending job ahead of it, shared among the workers seen
        running (at least one). ``job`` None: a submission not queued yet (after every pending
        job). ``atoms``: {job id: atoms per structure} where known."""
        atoms = atoms or {}
        mine = job.id if job is not None else None
        running = [j for j in jobs if j.status == JobStatus.RUNNING]
        pending = sorted((j for j in jobs if j.status == JobStatus.PENDING), key=lambda j: j.order_key)
        ids = [j.id for j in pending]
        ahead = pending[:ids.index(mine)] if mine in ids else pending
        workers = max(1, len({j.lease_owner for j in running if j.lease_owner}))
        queue = Estimate.total([*(self.remaining(j, now, sizes.get(j.id), atoms.get(j.id)) for j in running),
                                *(self.job(sizes.get(j.id), atoms.get(j.id)) for j in ahead)],
                               "nothing ahead in the queue")
        if queue.seconds is not None and workers > 1:
            queue = Estimate(queue.seconds / workers, f"{queue.basis}; shared among {workers} workers")
        if mine is None:  # its own duration is not known here
            return queue, queue + self.job(None)
        return queue, queue + self.job(sizes.get(mine), atoms.get(mine))
