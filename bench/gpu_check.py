"""One part of the GPU stability check (driven by bench/gpu_check.sh; also runs on CPU).

Parts (issue 16):
  a  the one-at-a-time ASE path (relax_serial) with SevenNet-l3i5 on 20 mp_sample cells, capped 60 s
  b  the batched engine with SevenNet-l3i5 on all mp_sample cells, capped 200 s, then E_hull scoring
  c  today's lock-step batched CHGNet path (relax_batched) on the same cells, capped 100 s
  d  the Ray executor (``--executor ray``) on a local Ray cluster with one actor per visible GPU,
     SevenNet-l3i5 engine in each actor, on the same cells, capped 120 s (cluster start-up and
     actor model loads are inside the cap: this is what a job sees)

All cells are rattled 0.05 Å (seeded); FIRE + Frechet cell filter, fmax 0.02, <= 300 steps.
A cap raises :class:`CapReached` (a BaseException, so no per-structure ``except
Exception`` swallows it) from a SIGALRM handler. A progress line is printed every
``--every`` seconds and ``OUT/<part>.json`` is rewritten at each one, so a capped or
killed run still reports its throughput.

    python bench/gpu_check.py --part b --out /tmp/gpu --device cpu --n 8 --cap 20
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evaluator.mlip.relax_result import RelaxResult

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

PARTS = {  # part: (mlip, driver, default n, default cap s)
    "a": ("sevenn", "serial", 20, 60.0),
    "b": ("sevenn", "engine", 100_000, 200.0),
    "c": ("chgnet", "batched", 100_000, 100.0),
    "d": ("sevenn", "ray", 100_000, 120.0),
}


class CapReached(BaseException):
    """The part's time cap was reached (BaseException: per-structure handlers must not catch it)."""


class Progress:
    """Counts finished structures; prints and saves a line every ``every`` seconds."""

    def __init__(self, part: str, total: int, out: Path, every: float, info: dict):
        self.part, self.total, self.out, self.every, self.info = part, total, out, every, info
        self.done = self.ok = self.converged = self.steps = 0
        self.t0 = time.perf_counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def add(self, key, result: RelaxResult) -> None:
        with self.lock:
            self.done += 1
            if result.ok:
                self.ok += 1
                self.converged += bool(result.converged)
                self.steps += int(result.steps or 0)

    def snapshot(self, **extra) -> dict:
        import torch

        with self.lock:
            t = time.perf_counter() - self.t0
            snap = {"part": self.part, **self.info, "elapsed_s": round(t, 1), "done": self.done,
                    "total": self.total, "ok": self.ok, "converged": self.converged,
                    "mean_steps_ok": round(self.steps / self.ok, 1) if self.ok else None,
                    "structures_per_s": round(self.done / t, 4) if t > 0 else None}
        if torch.cuda.is_available():
            snap["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        snap.update(extra)
        return snap

    def emit(self, **extra) -> dict:
        snap = self.snapshot(**extra)
        print(f"[{self.part}] {snap['elapsed_s']:7.1f} s  {snap['done']}/{snap['total']} done  "
              f"{snap['structures_per_s']} structures/s  ok {snap['ok']}  converged {snap['converged']}"
              + (f"  gpu {snap['peak_gpu_mb']} MB" if "peak_gpu_mb" in snap else "")
              + (f"  {extra}" if extra else ""), flush=True)
        (self.out / f"{self.part}.json").write_text(json.dumps(snap, indent=1))
        return snap

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            self.emit()


def _alarm(signum, frame):
    raise CapReached


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", required=True, choices=sorted(PARTS))
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--n", type=int, default=None, help="structures (default: 20 for a, all for b and c)")
    p.add_argument("--cap", type=float, default=None, help="time cap in s (default 60 / 200 / 100)")
    p.add_argument("--every", type=float, default=15.0, help="seconds between progress lines")
    p.add_argument("--rattle", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-atoms", type=int, default=None, help="atoms per batch (default: 4096 CPU, 200000 CUDA)")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    mlip_name, driver, n_default, cap_default = PARTS[args.part]
    n, cap = args.n or n_default, args.cap or cap_default
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.part == "d":
        _part_ray(args, n, cap, out)
        return
    t_start = time.perf_counter()
    import torch

    from stability_speed import sample  # bench/ is on sys.path when this runs as a script
    from evaluator.data import DataDir
    from evaluator.mlip import load_mlip
    from evaluator.families.stability.runner import _to_atoms

    data = DataDir(args.data_dir)
    structures = sample(data, n, args.seed, None, args.rattle)
    items = [(k, _to_atoms(s)) for k, s in structures.items()]
    mlip = load_mlip(mlip_name, None, args.device, "float32")
    device = mlip.device
    max_atoms = args.max_atoms or (200_000 if device.startswith("cuda") else 4096)
    info = {"mlip": mlip_name, "model_id": mlip.model_id, "driver": driver, "device": device,
            "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
            "n_atoms_total": int(sum(len(a) for _, a in items)), "cap_s": cap, "fmax": 0.02, "steps": 300,
            "rattle_A": args.rattle, "setup_s": round(time.perf_counter() - t_start, 1),
            "torch": torch.__version__}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    prog = Progress(args.part, len(items), out, args.every, info)
    results: dict[int, RelaxResult] = {}

    def on_result(key, res):
        results[key] = res
        prog.add(key, res)

    signal.signal(signal.SIGALRM, _alarm)
    prog.thread.start()
    capped = False
    stats: dict = {}
    signal.setitimer(signal.ITIMER_REAL, cap)
    try:
        if driver == "serial":
            from evaluator.mlip.relax import relax_serial

            relax_serial(mlip, items, 0.02, 300, on_result=on_result)
        elif driver == "engine":
            from evaluator.mlip.engine import relax_engine

            relax_engine(mlip, items, 0.02, 300, max_atoms=max_atoms, on_result=on_result, stats=stats)
        else:
            from evaluator.mlip.relax import relax_batched

            relax_batched(mlip, items, 0.02, 300, max_atoms=max_atoms, max_structures=100_000,
                          on_result=on_result)
    except CapReached:
        capped = True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    t_relax = time.perf_counter() - prog.t0
    extra = {"capped": capped, "relax_s": round(t_relax, 1), "engine_stats": stats or None}
    if args.part == "b" and not capped:  # score what was relaxed, within what is left of the cap
        extra.update(_score(data, mlip_name, structures, results, max(cap - t_relax, 1.0)))
    prog.stop.set()
    prog.emit(**extra)


def _part_ray(args, n: int, cap: float, out: Path) -> None:
    """Part d: ``relax_all`` with the Ray executor, one actor per visible GPU (per CPU on --device cpu)."""
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")  # SIGTERM: clean exit (ray_executor doc)
    t_start = time.perf_counter()
    import logging

    import ray
    import torch

    from stability_speed import sample
    from evaluator.data import DataDir
    from evaluator.execution import ExecutionSettings
    from evaluator.families.stability.runner import RelaxSettings, relax_all

    cuda = args.device.startswith("cuda")
    structures = sample(DataDir(args.data_dir), n, args.seed, None, args.rattle)
    gpus = torch.cuda.device_count() if cuda else 0
    mlip_name = PARTS["d"][0]
    info = {"mlip": mlip_name, "driver": "ray executor", "device": args.device, "visible_gpus": gpus,
            "gpu": torch.cuda.get_device_name(0) if gpus else None, "ray": ray.__version__,
            "n_atoms_total": int(sum(len(s) for s in structures.values())), "cap_s": cap, "fmax": 0.02,
            "steps": 300, "rattle_A": args.rattle, "torch": torch.__version__}
    prog = Progress("d", len(structures), out, args.every, info)

    def progress(stage: str, done: int, total: int) -> None:
        with prog.lock:
            prog.done = done

    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, cap)
    prog.thread.start()
    capped, results, run_info = False, {}, {}
    try:
        ray.init(address="local", num_gpus=gpus, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
        info["ray_init_s"] = round(time.perf_counter() - t_start, 1)
        settings = RelaxSettings(mlip=mlip_name, device=args.device, steps=300,
                                 max_atoms=args.max_atoms or (200_000 if cuda else 4096))
        results, run_info = relax_all(structures, settings, None, progress, execution=ExecutionSettings("ray"))
    except CapReached:
        capped = True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        ray.shutdown()
    ok = [r for r in results.values() if r.ok]
    with prog.lock:
        prog.ok, prog.converged = len(ok), sum(bool(r.converged) for r in ok)
        prog.steps = sum(int(r.steps or 0) for r in ok)
    prog.stop.set()
    prog.emit(capped=capped, relax_s=round(time.perf_counter() - prog.t0, 1),
              execution=run_info.get("execution"), mode=run_info.get("mode"))


def _score(data, mlip_name, structures, results, budget_s: float) -> dict:
    """E_hull of the relaxed structures against the MP-20 DFT hull (MP2020 corrections)."""
    from evaluator.mlip import describe_mlip
    from evaluator.families.stability.energy import energy_route
    from evaluator.families.stability.family import score_energy
    from evaluator.reference.hull import load_mp20_hull

    t0 = time.perf_counter()
    hull = load_mp20_hull(data).get("dft")
    route = energy_route(describe_mlip(mlip_name), hull)
    n_scored = n_finite = 0
    signal.setitimer(signal.ITIMER_REAL, budget_s)
    capped = False
    try:
        for r in results.values():
            if not r.ok:
                continue
            n_finite += math.isfinite(score_energy(hull, route, r.relaxed_structure(), r.energy).e_above_hull)
            n_scored += 1
    except CapReached:
        capped = True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return {"score_s": round(time.perf_counter() - t0, 1), "n_scored": n_scored, "n_e_hull_finite": n_finite,
            "score_capped": capped}


if __name__ == "__main__":
    main()
