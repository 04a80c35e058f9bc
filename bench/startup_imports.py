"""What each process of the service imports before it works: modules, heavy libraries and the
CPU time of the imports, for this tree and optionally a base tree (e.g. ``git archive main``
unpacked somewhere), measured interleaved in fresh interpreters.

    .venv/bin/python bench/startup_imports.py [--base DIR] [--reps 5]

CPU time (``time.process_time`` in the child) rather than wall time, so a loaded machine
moves the numbers less; the module and library sets do not depend on the load at all.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HEAVY = {"torch", "torch_sim", "pymatgen", "ase", "spglib", "chgnet", "mace", "sevenn", "smact", "e3nn", "networkx",
         "scipy", "sklearn", "matplotlib", "pandas", "pyarrow", "datasets", "huggingface_hub", "ray", "gradio",
         "plotly"}
# process -> the modules it imports before it works (the calls its start makes included)
PROCESSES = {
    "worker start (module, check_config, check_protocol)": ["leaderboard.worker", "evaluator.pipeline",
                                                            "evaluator.protocol"],
    "app (serve, ui, protocol, worker supervisor)": ["leaderboard.serve", "leaderboard.ui",
                                                     "leaderboard.ui.shared_state", "leaderboard.worker",
                                                     "evaluator.protocol"],
    "evaluation child (evalproc + WARM)": ["leaderboard.jobs.evalproc", "evaluator.pipeline", "evaluator.outputs",
                                           "evaluator.ingest", "evaluator.families.validity.family"],
    "evaluator CLI (parser)": ["evaluator.cli"],
    "fork server preload (fingerprint)": ["evaluator.identity.fingerprint"],
    "validity pool child (its module)": ["evaluator.families.validity.core"],
    "relaxation pool child (runner, evaluator.mlip)": ["evaluator.families.stability.runner", "evaluator.mlip"],
}
CHILD = """
import json, sys, time
t = time.process_time()
for m in {mods!r}:
    __import__(m)
dt = time.process_time() - t
print(json.dumps({{"cpu_s": dt, "modules": sorted(sys.modules)}}))
"""


def measure(root: Path, mods: list[str]) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(root), "GRADIO_ANALYTICS_ENABLED": "False"}
    out = subprocess.run([sys.executable, "-c", CHILD.format(mods=mods)], cwd=root, env=env, capture_output=True,
                         text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, help="a base source tree to compare with")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    trees = {"this": Path(__file__).resolve().parent.parent}
    if args.base:
        trees = {"base": args.base.resolve(), **trees}
    for name, mods in PROCESSES.items():
        runs: dict[str, list[dict[str, object]]] = {t: [] for t in trees}
        for _ in range(args.reps):
            for t, root in trees.items():
                runs[t].append(measure(root, mods))
        print(name)
        for t in trees:
            loaded = set(runs[t][0]["modules"])  # type: ignore[arg-type]
            project = sum(m.split(".")[0] in ("evaluator", "leaderboard") for m in loaded)
            heavy = sorted({m.split(".")[0] for m in loaded} & HEAVY)
            cpu = statistics.median(float(r["cpu_s"]) for r in runs[t])  # type: ignore[arg-type]
            print(f"  {t:5} {cpu:5.2f} s CPU  {len(loaded):4} modules ({project:3} of the project)  heavy: "
                  f"{', '.join(heavy) or 'none'}")
        if args.base:
            added = set(runs["this"][0]["modules"]) - set(runs["base"][0]["modules"])  # type: ignore[arg-type]
            project_added = sorted(m for m in added if m.split(".")[0] in ("evaluator", "leaderboard"))
            print(f"  added project modules: {', '.join(project_added) or 'none'}")


if __name__ == "__main__":
    main()
