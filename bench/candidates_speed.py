"""Cost of one candidate page (evaluator.candidates) on real structures.

    .venv/bin/python bench/candidates_speed.py [--n 40]

The first N structures of structures/mp_sample (sorted by file name) are made candidates
with a formation energy 20 meV/atom above the MP-20 DFT hull; the reference hulls are built (and
cached) before timing, as in a pipeline run where the stability family has already built them. Baseline in the same run:
the same pages with bonds from pymatgen's CrystalNN instead of the covalent-radius cutoff.
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd

from evaluator import candidates as C
from evaluator.data import DataDir
from evaluator.build.reference_from_cifs import read_cif
from evaluator.reference.registry import load_reference
from evaluator.reference.hull import chemsys_key

warnings.filterwarnings("ignore")  # pymatgen and spglib chatter on odd structures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    args = ap.parse_args()
    hull = load_reference("mp20", DataDir()).hull.get("dft")
    rows = []
    for f in sorted(DataDir().path("structures/mp_sample").glob("*.cif"))[: args.n]:
        s = read_cif(f)[0][1]
        comp = s.composition.element_composition
        pd_, _ = hull.phase_diagram(chemsys_key(e.symbol for e in comp.elements))
        e_form = float(pd_.get_hull_energy_per_atom(comp)) + 0.02
        rows.append({"formula": comp.formula, "structure": s.to_json(), "stability_relaxed_structure": s.to_json(),
                     "stability_e_above_hull": 0.02, "stability_unrelaxed_e_above_hull": 0.05,
                     "stability_rmsd": 0.1, "stability_formation_energy_per_atom": e_form})
    table = pd.DataFrame(rows)
    C.candidate_pages(table.iloc[:1], [], [0], hull)  # warm-up (plotly import)
    t0 = time.perf_counter()
    pages, prov = C.candidate_pages(table, [], list(table.index), hull)
    t = time.perf_counter() - t0
    sizes = [len(p) for p in pages]
    n_pd = sum('"phase_diagram": null' not in p for p in pages)
    print(f"{len(pages)} pages ({n_pd} with a phase diagram, {len(prov['failures'])} failures): "
          f"{t:.2f} s, {t / len(pages):.3f} s per candidate; "
          f"page size median {sorted(sizes)[len(sizes) // 2] / 1e3:.0f} kB")
    from pymatgen.analysis.local_env import CrystalNN

    cnn = CrystalNN()
    from pymatgen.core import Structure

    t0 = time.perf_counter()
    for r in rows:
        s = Structure.from_str(r["stability_relaxed_structure"], fmt="json")
        for i in range(len(s)):
            cnn.get_nn_info(s, i)
    t_cnn = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in rows:
        C.structure_view(Structure.from_str(r["stability_relaxed_structure"], fmt="json"))
    t_cov = time.perf_counter() - t0
    print(f"bonds: covalent-radius cutoff {t_cov / len(rows) * 1e3:.1f} ms per structure; "
          f"CrystalNN {t_cnn / len(rows) * 1e3:.0f} ms per structure ({t_cnn / t_cov:.0f}x)")


if __name__ == "__main__":
    main()
