"""Speed of ingest + validity on the 2,473 Materials Project CIFs (goal: < 60 s on 2 cores).

Ingests ``structures/mp_sample`` with ``evaluator.ingest.read_inputs``, then runs the
validity family through ``evaluate_items`` with 2 worker processes, and, as the
baseline in the same run, with 1 process (in process, the default). Prints
structures/s, wall and CPU seconds, and the speed-up. On a shared machine the wall
times depend on the load (printed); the CPU seconds of the in-process run do not.

    .venv/bin/python bench/parse_validity_speed.py [--limit N] [--workers 2]
        [--start-method forkserver|spawn|fork] [--no-baseline]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def run_validity(items, workers: int, start_method: str):
    from evaluator.config import EvalConfig
    from evaluator.pipeline import evaluate_items

    config = EvalConfig(families=["validity"],
                        options={"validity": {"workers": workers, "start_method": start_method}})
    t0, c0 = time.perf_counter(), time.process_time()
    ev = evaluate_items(items, config)
    return ev, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="first N files only")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--start-method", default="forkserver")
    ap.add_argument("--no-baseline", action="store_true", help="skip the single-process run")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    from evaluator.data import DataDir
    from evaluator.ingest import read_inputs

    folder = DataDir().path("structures/mp_sample")
    inputs = sorted(folder.glob("*.cif"))[: args.limit] if args.limit else [folder]
    t0, c0 = time.perf_counter(), time.process_time()
    items = read_inputs(inputs)
    t_ingest, c_ingest = time.perf_counter() - t0, time.process_time() - c0
    n = len(items)
    n_parsed = sum(it.structure is not None for it in items)
    print(f"structures: {n} ({n_parsed} parsed), cores visible: {len(os.sched_getaffinity(0))}")
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.1f} (timings are wall clock; CPU s in brackets)")
    print(f"ingest:                       {t_ingest:7.1f} s  {n / t_ingest:7.1f} structures/s  [{c_ingest:.1f} CPU s]")

    ev, t_par, _ = run_validity(items, args.workers, args.start_method)
    m = ev.summary["metrics"]["validity"]
    print(f"validity, {args.workers} processes ({args.start_method}): {t_par:7.1f} s  {n / t_par:7.1f} structures/s")
    print(f"INGEST + VALIDITY ({args.workers} processes):  {t_ingest + t_par:7.1f} s  "
          f"{n / (t_ingest + t_par):7.1f} structures/s   (goal < 60 s for 2,473)")
    print(f"valid {m['valid_count']}/{n} ({m['valid_frac_submitted']:.2%}); charge steps {m['charge_step_counts']}")
    if not args.no_baseline:
        ev1, t_one, c_one = run_validity(items, 1, args.start_method)
        same = ev1.table["validity_valid"].equals(ev.table["validity_valid"])
        print(f"baseline validity, 1 process: {t_one:7.1f} s  {n / t_one:7.1f} structures/s  [{c_one:.1f} CPU s]  "
              f"(ingest + validity {t_ingest + t_one:.1f} s, {c_ingest + c_one:.1f} CPU s)")
        print(f"speed-up of validity with {args.workers} processes: {t_one / t_par:.2f}x; identical verdicts: {same}")


if __name__ == "__main__":
    main()
