"""Putting MLIP energies on a reference hull's energy scale (never mixing scales).

Routes (``energy_route(mlip_spec, hull)``):

- ``direct``: the MLIP's total energy is already on the hull's scale
  (CHGNet ``mp2020-corrected`` vs the ``dft-mp2020`` hull; an MLIP vs its own
  ``mlip:*`` hull).
- ``direct`` also for raw-PBE MLIPs vs an uncorrected PBE DFT hull
  (``dft-pbe-raw``, LeMat-Bulk).
- ``mp2020``: raw PBE(+U) energies (MACE-MP, ``raw-pbe``) vs the ``dft-mp2020``
  hull: MaterialsProject2020Compatibility corrections first. The entry is a
  ComputedStructureEntry with ``run_type`` GGA+U and MP's U values when the
  most electronegative element is O or F and a U element is present, else GGA
  (what MP would have run), POTCAR check off.

Any other pair is refused with :class:`IncompatibleEnergyScale` (a ValueError),
e.g. CHGNet vs a MACE own-MLIP hull. The stability option ``hull_declared_compatible``
lets a user declare an own-MLIP hull pair compatible (recorded in provenance).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure
    from pymatgen.entries.compatibility import MaterialsProject2020Compatibility

    from evaluator.mlip import MLIPSpec
    from evaluator.reference.hull import HullReference

EnergyRoute = Literal["direct", "mp2020"]


class IncompatibleEnergyScale(ValueError):
    """The MLIP's energies and the reference hull are on different scales."""


def energy_route(spec: MLIPSpec, hull: HullReference, declared_compatible: bool = False) -> EnergyRoute:
    """``direct`` or ``mp2020`` for a compatible (MLIP spec, hull) pair; raises otherwise."""
    scale = hull.energy_scale
    if scale == "dft-mp2020":
        if spec.energy_scale == "mp2020-corrected":
            return "direct"
        if spec.energy_scale == "raw-pbe":
            return "mp2020"
        raise IncompatibleEnergyScale(
            f"MLIP {spec.name} ({spec.model_id}) predicts '{spec.energy_scale}' energies, which cannot be "
            f"placed on the MP2020 DFT hull of '{hull.name}' (only MP2020-corrected or raw MP-compatible "
            "PBE(+U) energies can)")
    if scale == "dft-pbe-raw":  # uncorrected PBE(+U) DFT (LeMat-Bulk compatible_pbe)
        if spec.energy_scale == "raw-pbe":
            return "direct"
        raise IncompatibleEnergyScale(
            f"MLIP {spec.name} ({spec.model_id}) predicts '{spec.energy_scale}' energies; the hull "
            f"'{hull.name}' holds uncorrected PBE(+U) DFT energies, comparable only with raw-PBE MLIPs "
            "(e.g. MACE-MP). Use the mp20 DFT hull for CHGNet")
    if scale.startswith("mlip:"):
        allowed = hull.compatible.get(spec.name, [])
        if spec.model_id in allowed or declared_compatible:
            return "direct"
        which = (f"declared for {', '.join(f'{k}:{m}' for k, v in hull.compatible.items() for m in v)}"
                 if hull.compatible else "declared for no MLIP available here")
        raise IncompatibleEnergyScale(
            f"refusing to score {spec.name} ({spec.model_id}) energies against the own-MLIP hull "
            f"'{hull.name}' (energy scale {scale}, {which}): energies of different MLIPs have "
            "different zeros. Use the DFT hull, or declare the pair compatible with "
            "the option stability.hull_declared_compatible=true if this really is the same model")
    raise IncompatibleEnergyScale(f"unknown hull energy scale '{scale}' of '{hull.name}'")


_COMPAT: MaterialsProject2020Compatibility | None = None


def mp2020_compatibility() -> MaterialsProject2020Compatibility:
    global _COMPAT
    if _COMPAT is None:
        from pymatgen.entries.compatibility import MaterialsProject2020Compatibility

        _COMPAT = MaterialsProject2020Compatibility(check_potcar=False)
    return _COMPAT


def mp2020_corrected_energy(structure: Structure, energy: float) -> tuple[float, str | None]:
    """(MP2020-corrected total energy in eV, None) or (NaN, reason) for raw PBE(+U) ``energy``."""
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    compat = mp2020_compatibility()
    comp = structure.composition.element_composition
    most_en = max(comp.elements, key=lambda e: (e.X if not math.isnan(e.X) else -1)).symbol
    u_values = compat.u_settings.get(most_en, {})
    hubbards = {e.symbol: float(u_values[e.symbol]) for e in comp.elements if e.symbol in u_values}
    entry = ComputedStructureEntry(
        structure, energy,
        parameters={"run_type": "GGA+U" if hubbards else "GGA", "hubbards": hubbards,
                    "is_hubbard": bool(hubbards)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        processed = compat.process_entry(entry)
    if processed is None:
        return math.nan, "MP2020 compatibility rejected the entry"
    return float(processed.energy), None


def hull_energy(route: str, structure: Structure, energy: float) -> tuple[float, str | None]:
    """Total energy (eV) on the hull's scale for an MLIP ``energy`` of ``structure``."""
    if not math.isfinite(energy):
        return math.nan, "no energy"
    if route == "direct":
        return float(energy), None
    if route == "mp2020":
        return mp2020_corrected_energy(structure, energy)
    raise ValueError(f"unknown energy route '{route}'")
