"""How long one structure's relaxation takes: a per-structure cost model (atoms, MLIP, device).

    seconds(n) = setup_s + expected_steps(n) * (step_base_s + step_per_atom_s * n) * mlip_factor
    expected_steps(n) = min(typical_steps, the cell's step limit under the budget)

The step limit is :meth:`evaluator.mlip.relax.RelaxBudget.step_limit` (the step cap, or
``atom_steps // n`` for large cells), so the model knows that the atom-step budget caps
the cost of a large cell. The CPU constants are fitted by ``bench/relax_cost.py``
(CHGNet, one torch thread per pool worker as the CPU default runs it, FIRE to fmax 0.02
on rattled ``mp_sample`` cells of every size band; see the README for the measured error
of the prediction). The GPU constants come from the one GPU measurement (MLIP-NOTES: 95 ms
per step, one structure at a time on an H200) and are not fitted per atom.

Used to order the relaxations (largest expected cost first, so the two cores stay busy
and the largest cells are not left to the end), for the expected work reported while a
job relaxes (atoms × steps), and by the leaderboard's time estimates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evaluator.mlip.relax import RelaxBudget

# Relaxation cost relative to CHGNet's (MLIP-NOTES): MACE-MP-0 medium by its single-point
# cost at 10 atoms (0.075 s vs 0.068 s), SevenNet-l3i5 by its measured cost per relaxation (3.5x).
MLIP_FACTOR = {"chgnet": 1.0, "mace": 0.075 / 0.068, "sevenn": 3.5}


@dataclass(frozen=True)
class RelaxCostModel:
    """Seconds to relax one cell (see the module doc); ``source`` says where the figures come from."""

    step_base_s: float
    step_per_atom_s: float
    setup_s: float
    typical_steps: float
    source: str
    mlip_factor: float = 1.0

    def step_seconds(self, n_atoms: int) -> float:
        """Seconds per FIRE step (one energy + forces + stress call and the step) of an n-atom cell."""
        return (self.step_base_s + self.step_per_atom_s * max(1, n_atoms)) * self.mlip_factor

    def expected_steps(self, n_atoms: int, budget: RelaxBudget) -> float:
        return float(min(self.typical_steps, budget.step_limit(n_atoms)))

    def seconds(self, n_atoms: int, budget: RelaxBudget) -> float:
        return self.setup_s + self.expected_steps(n_atoms, budget) * self.step_seconds(n_atoms)

    def atom_steps(self, n_atoms: int, budget: RelaxBudget) -> int:
        """Expected work of one cell in atoms × FIRE steps (the unit of step progress)."""
        return max(1, round(max(1, n_atoms) * self.expected_steps(n_atoms, budget)))

    def total_seconds(self, sizes: Iterable[int], budget: RelaxBudget) -> float:
        return sum(self.seconds(n, budget) for n in sizes)


# Fitted by bench/relax_cost.py (CPU, CHGNet, 17 rattled mp_sample cells of 4-210 atoms,
# bench/relax_cost_rows.jsonl) on the shared 2-core machine while other jobs ran (load
# average 1 to 23): the per-atom step cost is that of a loaded machine (about 5x the idle
# per-call figures of MLIP-NOTES for large cells), so on an idle machine it overestimates;
# a running job's ETA uses its own measured work rate, and finished jobs replace the model.
CPU_CHGNET = RelaxCostModel(step_base_s=0.0, step_per_atom_s=0.0348, setup_s=0.3, typical_steps=61.0,
                            source="bench/relax_cost.py, CHGNet on a loaded 2-core CPU, one torch thread per worker")
CUDA_CHGNET = RelaxCostModel(step_base_s=0.095, step_per_atom_s=0.0, setup_s=0.5, typical_steps=131.0,
                             source="MLIP-NOTES: CHGNet on one H200, 95 ms per step (not fitted per atom)")


def cost_model(mlip: str, device: str) -> RelaxCostModel:
    """The cost model for ``mlip`` (chgnet, mace, sevenn; others: CHGNet's) on ``device``."""
    base = CUDA_CHGNET if str(device).startswith("cuda") else CPU_CHGNET
    return replace(base, mlip_factor=MLIP_FACTOR.get(mlip, 1.0))
