"""SevenNet backend (sevenn 0.10.4): SevenNet-l3i5 (default) and SevenNet-0 ship in its wheel.

``model``: ``7net-l3i5`` (default), ``7net-0`` (SevenNet-0, 11 Jul 2024),
``7net-0_22may2024``, or a path to a SevenNet checkpoint (only load trusted
files). SevenNet models are trained on MPtrj and predict raw PBE(+U) energies
(``raw-pbe``): against the MP2020 DFT hull they get MP2020 corrections, like MACE.
Runs in float32 only. Stress is eV/Å³ (ASE sign and Voigt order).

``import mace`` comes first: sevenn imports e3nn 0.4.4, which fails to import
under torch's safe loading unless mace (which turns it off) was imported before
(see ../shared/docs/MLIP-NOTES.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any


from evaluator.mlip.base import MLIP, MLIPSpec, Prediction, TorchSimModel, file_sha256, register_backend, voigt_stress

if TYPE_CHECKING:
    import torch
    from ase import Atoms
    from ase.calculators.calculator import Calculator

DEFAULT_MODEL = "7net-l3i5"
NAMES = ("7net-l3i5", "7net-0", "7net-0_22may2024")
# the checkpoints inside the sevenn wheel (sevenn.util.pretrained_name_to_path, sevenn._const)
_PRETRAINED = {"7net-l3i5": "pretrained_potentials/SevenNet_l3i5/checkpoint_l3i5.pth",
               "7net-0": "pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
               "7net-0_22may2024": "pretrained_potentials/SevenNet_0__22May2024/checkpoint_sevennet_0.pth"}


def _import_sevenn() -> None:
    import mace  # noqa: F401  (before e3nn; see module docstring)
    import sevenn  # noqa: F401


def _checkpoint_path(model: str | None) -> tuple[str, str]:
    """(model_id, checkpoint path) for a SevenNet name or a local checkpoint file."""
    model = model or DEFAULT_MODEL
    if os.path.isfile(model):
        return f"file:{os.path.basename(model)}", os.path.abspath(model)
    if model.lower() not in NAMES:
        raise ValueError(f"unknown SevenNet model '{model}': use one of {list(NAMES)} or a checkpoint path")
    # found without importing sevenn (which imports torch, e3nn and mace): the protocol of a
    # run (evaluator.protocol) hashes the checkpoint in processes that never load a model
    import importlib.util

    found = importlib.util.find_spec("sevenn")
    if found is None or found.origin is None:
        raise ValueError("SevenNet is not installed (pip install sevenn)")
    return model.lower(), os.path.join(os.path.dirname(found.origin), _PRETRAINED[model.lower()])


def _load_network(path: str) -> Any:
    """The SevenNet network of a checkpoint (a torch module; sevenn is untyped)."""
    from sevenn.util import model_from_checkpoint

    network, _config = model_from_checkpoint(path)
    network.modal_map = None  # type: ignore[assignment]  # torch types it Tensor | Module; sevenn 0.10 predates multi-fidelity models; torch-sim 0.3 reads it
    return network


def torch_sim_model(network: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> TorchSimModel:
    """torch-sim's ``SevenNetModel`` with a forward that works with sevenn 0.10.4.

    torch-sim 0.3.0's forward sets ``sevenn._keys.DATA_MODALITY`` (sevenn >= 0.11 only);
    this forward is the same graph building without that key: per-structure
    neighbour lists (torch-sim's vesin wrapper), one collated batch, one model call.
    """
    import torch
    import sevenn._keys as key
    from sevenn.atom_graph_data import AtomGraphData
    from torch_geometric.loader.dataloader import Collater
    from torch_sim.elastic import voigt_6_to_full_3x3_stress
    from torch_sim.models.sevennet import SevenNetModel

    class SevenNet010Model(SevenNetModel):  # type: ignore[misc]  # torch-sim is untyped
        neighbors = "batched"  # or "vesin": torch-sim's per-structure lists

        def forward(self, state: Any) -> dict[str, torch.Tensor]:
            state = state.to(self._device) if state.device != self._device else state
            if self.neighbors == "batched":
                return self._forward_batched(state)
            counts = torch.bincount(state.system_idx).tolist()
            data_list: list[Any] = []
            lo = 0
            for b, n in enumerate(counts):
                pos = state.positions[lo:lo + n]
                numbers = state.atomic_numbers[lo:lo + n]
                lo += n
                cell = state.row_vector_cell[b]
                edge_idx, shifts_idx = self.neighbor_list_fn(positions=pos, cell=cell, pbc=state.pbc,
                                                             cutoff=self.cutoff)
                edge_vec = pos[edge_idx[1]] - pos[edge_idx[0]] + shifts_idx @ cell
                data = AtomGraphData(**{
                    key.NODE_FEATURE: numbers, key.ATOMIC_NUMBERS: numbers.to(torch.int64), key.POS: pos,
                    key.EDGE_IDX: edge_idx, key.EDGE_VEC: edge_vec, key.CELL: cell,
                    key.CELL_SHIFT: shifts_idx, key.CELL_VOLUME: torch.det(cell),
                    key.NUM_ATOMS: torch.tensor(n, device=self.device)})
                data[key.INFO] = {}
                data_list.append(data)
            batched = Collater([], follow_batch=None, exclude_keys=None)(data_list)
            batched.to(self.device)
            output = self.model(batched)
            return {"energy": output[key.PRED_TOTAL_ENERGY].detach(),
                    "forces": output[key.PRED_FORCE].detach(),
                    "stress": -voigt_6_to_full_3x3_stress(output[key.PRED_STRESS].detach()[..., [0, 1, 2, 4, 5, 3]])}

        def _forward_batched(self, state: Any) -> dict[str, torch.Tensor]:
            """One neighbour list for the whole batch (evaluator.mlip.neighbors), one model call."""
            from evaluator.mlip.neighbors import batched_neighbor_list, wrap_positions

            idx = state.system_idx
            counts = torch.bincount(idx, minlength=state.n_systems)
            cells = state.row_vector_cell
            pos = wrap_positions(state.positions, cells, idx)
            edge_idx, shifts_idx = batched_neighbor_list(pos, cells, counts, float(self.cutoff))
            edge_vec = pos[edge_idx[1]] - pos[edge_idx[0]] + torch.bmm(
                shifts_idx.unsqueeze(1), cells[idx[edge_idx[0]]]).squeeze(1)
            numbers = state.atomic_numbers.to(torch.int64)
            data = {key.NODE_FEATURE: numbers, key.ATOMIC_NUMBERS: numbers, key.POS: pos,
                    key.EDGE_IDX: edge_idx, key.EDGE_VEC: edge_vec, key.CELL: cells.reshape(-1, 3),
                    key.CELL_SHIFT: shifts_idx, key.CELL_VOLUME: torch.linalg.det(cells),
                    key.NUM_ATOMS: counts, key.BATCH: idx}
            output = self.model(data)
            return {"energy": output[key.PRED_TOTAL_ENERGY].detach(),
                    "forces": output[key.PRED_FORCE].detach(),
                    "stress": -voigt_6_to_full_3x3_stress(output[key.PRED_STRESS].detach()[..., [0, 1, 2, 4, 5, 3]])}

    return SevenNet010Model(network, device=device, dtype=dtype)


@register_backend
class SevenNetMLIP(MLIP):
    """SevenNet; no embeddings (the Fréchet-distance embedding uses CHGNet or MACE)."""

    name = "sevenn"
    supports_engine = True
    energy_scale = "raw-pbe"

    @classmethod
    def spec(cls, model: str | None) -> MLIPSpec:
        model_id, path = _checkpoint_path(model)
        return MLIPSpec(cls.name, model_id, path, "raw-pbe")

    def __init__(self, model: str | None = None, device: str = "cpu", dtype: str = "float32") -> None:
        if dtype != "float32":
            raise ValueError("SevenNet runs in float32 only; use --dtype float32")
        _import_sevenn()
        from sevenn.calculator import SevenNetCalculator

        self.model_id, self.path = _checkpoint_path(model)
        self._calc = SevenNetCalculator(self.path, device=device)
        self.checkpoint_sha256 = file_sha256(self.path)
        self.device, self.dtype = device, dtype
        self._ts_model: TorchSimModel | None = None

    def calculator(self) -> Calculator:
        calc: Calculator = self._calc
        return calc

    def ts_model(self) -> TorchSimModel:
        """torch-sim ``SevenNetModel`` (a second copy of the network, in batch mode)."""
        if self._ts_model is None:
            import torch

            self._ts_model = torch_sim_model(_load_network(self.path), torch.device(self.device), torch.float32)
        return self._ts_model

    def predict(self, atoms_list: Sequence[Atoms]) -> list[Prediction]:
        """Energies (eV), forces (eV/Å), Voigt stress (eV/Å³): one batched forward pass."""
        import torch_sim as ts

        if not atoms_list:
            return []
        model = self.ts_model()
        try:
            state = ts.io.atoms_to_state(list(atoms_list), model.device, model.dtype)
            res = model(state)
        except Exception as exc:  # noqa: BLE001 - the batch fails as a whole, reported per structure
            return [{"error": f"SevenNet: {exc}"} for _ in atoms_list]
        energy = res["energy"].detach().cpu().numpy().astype(float)
        forces = res["forces"].detach().cpu().numpy().astype(float)
        stress = res["stress"].detach().cpu().numpy().astype(float)
        out: list[Prediction] = []
        lo = 0
        for k, atoms in enumerate(atoms_list):
            out.append({"energy": float(energy[k]), "forces": forces[lo:lo + len(atoms)],
                        "stress": voigt_stress(stress[k])})
            lo += len(atoms)
        return out
