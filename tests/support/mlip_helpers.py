"""Shared test helpers for the MLIP and stability tests.

- ``build_tiny_mace``: mace-torch builds a small randomly initialised model in well under
  a second; tests save it and load it through exactly the production path
  (``load_mlip("mace", path)``).
- ``mp_sample_cifs``, ``SMALL_MP20``: real MP-20 crystals of the embedded data.

The conformance check every backend passes is in the library
(``evaluator.mlip.conformance``), so a new backend can run it on itself.
"""

from __future__ import annotations

from pathlib import Path

TINY_ELEMENTS = ("H", "Li", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "Cl", "K", "Ca", "Ti", "Fe",
                 "Ni", "Cu", "Zn", "Sr", "Pd", "In", "I", "Ba", "Bi")


def build_tiny_mace(path: Path, elements=TINY_ELEMENTS) -> Path:
    """Save a float64 random ScaleShiftMACE (r_max 4 Å, one small layer) to ``path``."""
    import mace  # noqa: F401  (before e3nn)
    import numpy as np
    import torch
    from e3nn import o3
    from mace import modules
    from pymatgen.core import Element

    torch.manual_seed(0)
    z = sorted(Element(e).Z for e in elements)
    model = modules.ScaleShiftMACE(
        r_max=4.0, num_bessel=4, num_polynomial_cutoff=5, max_ell=1,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2, num_elements=len(z), hidden_irreps=o3.Irreps("8x0e + 8x1o"),
        MLP_irreps=o3.Irreps("8x0e"), atomic_energies=-np.linspace(1.0, 3.0, len(z)),
        avg_num_neighbors=8.0, atomic_numbers=z, correlation=2, gate=torch.nn.functional.silu,
        atomic_inter_scale=1.0, atomic_inter_shift=0.0,
    ).to(torch.float64)
    torch.save(model, path)
    return path


def mp_sample_cifs(data, material_ids):
    """Paths of mp_sample CIFs by material id (real MP-20 crystals)."""
    folder = data.path("structures/mp_sample/metadata.csv").parent
    return [folder / f"mp_{m}.cif" for m in material_ids]


# Small MP-20 materials of structures/mp_sample (1-2 atoms per cell), for fast tests.
SMALL_MP20 = ["mp-2", "mp-1487", "mp-20411", "mp-22924", "mp-348", "mp-11564", "mp-22704", "mp-22898"]
