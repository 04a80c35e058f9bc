"""MACE backend (mace-torch): a local checkpoint or a foundation-model name.

``model``: a path to a ``.model`` file (loaded as is; only load trusted files:
importing mace turns off torch's safe loading), or a MACE-MP foundation name
(``medium-mpa-0`` default, ``medium``, ``small``, ``medium-0b3``, ...), which
mace-torch downloads once into its cache (``$XDG_CACHE_HOME/mace``); offline,
a name works only when its file is already cached.

Energy scale: MACE-MP models (MPtrj / sAlex) predict raw PBE(+U) energies
(``raw-pbe``); OMat24/MatPES-trained names are ``raw-pbe-omat``. A local file is
assumed ``raw-pbe`` unless the caller overrides it. Stress is eV/Å³ (ASE).
Embedding: invariant node features of all interaction layers, averaged over atoms.
Engine: :func:`torch_sim_model` (torch-sim's ``MaceModel`` with a batched neighbour list).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from evaluator.mlip.base import MLIP, MLIPSpec, Prediction, TorchSimModel, file_sha256, register_backend, voigt_stress

if TYPE_CHECKING:
    import torch
    from ase import Atoms
    from ase.calculators.calculator import Calculator

DEFAULT_MODEL = "medium-mpa-0"
OMAT_NAMES = ("small-omat-0", "medium-omat-0", "mace-matpes-pbe-0", "mace-matpes-r2scan-0")


def _import_mace() -> None:
    """Import mace before anything that imports e3nn (see MLIP notes)."""
    import mace  # noqa: F401
    import mace.calculators  # noqa: F401


def _spec(model: str | None) -> MLIPSpec:
    """Resolve without downloading: the cached/local file if there is one."""
    model = model or DEFAULT_MODEL
    if os.path.isfile(model):
        return MLIPSpec("mace", f"file:{os.path.basename(model)}", os.path.abspath(model), "raw-pbe")
    _import_mace()
    from mace.calculators import foundations_models as fm

    if model not in fm.mace_mp_urls:
        raise ValueError(f"unknown MACE model '{model}': a local checkpoint path or one of "
                         f"{sorted(fm.mace_mp_urls)}")
    url: str = fm.mace_mp_urls[model]
    path: str
    if model == DEFAULT_MODEL and os.path.isfile(fm.local_model_path):
        path = fm.local_model_path
    else:
        from mace.tools.utils import get_cache_dir

        name = "".join(c for c in os.path.basename(url) if c.isalnum() or c in "_")
        path = os.path.join(get_cache_dir(), name)
    scale = "raw-pbe-omat" if model in OMAT_NAMES else "raw-pbe"
    return MLIPSpec("mace", model, path if os.path.isfile(path) else None, scale)


def resolve_checkpoint(model: str | None) -> tuple[str, str, str]:
    """(model_id, local checkpoint path, energy scale); downloads a named model if needed."""
    s = _spec(model)
    if s.checkpoint_path:
        return s.model_id, s.checkpoint_path, s.energy_scale
    from mace.calculators.foundations_models import download_mace_mp_checkpoint

    try:
        path: str = download_mace_mp_checkpoint(s.model_id)
    except Exception as exc:  # noqa: BLE001 - any download failure means "not available offline"
        raise ValueError(f"MACE foundation model '{s.model_id}' is not cached and could not be "
                         f"downloaded ({exc}); pass a local checkpoint with --mlip-model PATH") from exc
    return s.model_id, path, s.energy_scale


@register_backend
class MACEMLIP(MLIP):
    name = "mace"
    supports_embeddings = True
    supports_engine = True

    @classmethod
    def spec(cls, model: str | None) -> MLIPSpec:
        return _spec(model)

    def __init__(self, model: str | None = None, device: str = "cpu", dtype: str = "float32",
                 batch_size: int = 64) -> None:
        _import_mace()
        import contextlib
        import io

        from mace.calculators import MACECalculator

        self.model_id, path, self.energy_scale = resolve_checkpoint(model)
        with contextlib.redirect_stdout(io.StringIO()):
            self._calc = MACECalculator(model_paths=path, device=device, default_dtype=dtype)
        self.model = self._calc.models[0]
        self.checkpoint_sha256 = file_sha256(path)
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self._ts_model: TorchSimModel | None = None

    def calculator(self) -> Calculator:
        calc: Calculator = self._calc
        return calc

    def ts_model(self) -> TorchSimModel:
        """torch-sim ``MaceModel`` around the same network (for the batched engine)."""
        if self._ts_model is None:
            import torch

            self._ts_model = torch_sim_model(self.model, torch.device(self.device), getattr(torch, self.dtype))
        return self._ts_model

    def _batch(self, atoms_list: Sequence[Atoms]) -> Any:
        """One mace-torch ``Batch`` of the structures, in the network's dtype."""
        import torch
        from mace import data as mace_data
        from mace.tools import torch_geometric, torch_tools

        calc = self._calc
        keyspec = mace_data.KeySpecification(info_keys=calc.info_keys, arrays_keys=calc.arrays_keys)
        with torch_tools.default_dtype(calc.default_dtype):
            graphs = [mace_data.AtomicData.from_config(
                mace_data.config_from_atoms(a, key_specification=keyspec, head_name=calc.head),
                z_table=calc.z_table, cutoff=calc.r_max, heads=calc.available_heads)
                for a in atoms_list]
        batch = torch_geometric.Batch.from_data_list(graphs).to(calc.device)  # type: ignore[no-untyped-call]
        dtype = next(self.model.parameters()).dtype
        for key in batch.keys:
            value = batch[key]
            if torch.is_tensor(value) and torch.is_floating_point(value):
                batch[key] = value.to(dtype=dtype)
        return batch

    def predict(self, atoms_list: Sequence[Atoms]) -> list[Prediction]:
        """Energies (eV), forces (eV/Å), Voigt stress (eV/Å³), one forward pass per batch."""

        out: list[Prediction] = []
        for start in range(0, len(atoms_list), self.batch_size):
            chunk = atoms_list[start:start + self.batch_size]
            try:
                batch = self._batch(chunk)
                res = self.model(batch.to_dict(), compute_stress=True, training=False)
            except Exception as exc:  # noqa: BLE001 - the chunk fails as a whole, reported per structure
                out.extend({"error": f"MACE: {exc}"} for _ in chunk)
                continue
            energy = res["energy"].detach().cpu().numpy().astype(float)
            forces = res["forces"].detach().cpu().numpy().astype(float)
            stress = res["stress"].detach().cpu().numpy().astype(float)
            ptr = batch["ptr"].cpu().numpy()
            for k in range(len(chunk)):
                out.append({"energy": float(energy[k]), "forces": forces[ptr[k]:ptr[k + 1]],
                            "stress": voigt_stress(stress[k])})
        return out

    def embed(self, atoms_list: Sequence[Atoms], invariants_only: bool = True) -> NDArray[np.float64]:
        """(n, d) mean over atoms of MACE descriptors (all layers).

        ``invariants_only=False`` keeps the equivariant channels too (LeMat-GenBench's
        640-dim MACE-MPA-0 features); the default is the invariant part only.
        """
        rows = [np.asarray(self._calc.get_descriptors(a, invariants_only=invariants_only),  # type: ignore[no-untyped-call]
                           dtype=np.float64).mean(axis=0) for a in atoms_list]
        return np.vstack(rows) if rows else np.zeros((0, 0))


def torch_sim_model(network: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> TorchSimModel:
    """torch-sim's ``MaceModel`` whose forward builds one neighbour list for the whole batch.

    torch-sim 0.3.0 builds a list per structure in a Python loop (through the CPU) and
    rebuilds the one-hot node attributes with a per-structure loop whenever the batch
    changes; here both are single tensor operations on the device
    (``evaluator.mlip.neighbors``). ``neighbors = "vesin"`` restores torch-sim's forward.
    """
    import torch
    from torch_sim.models.mace import MaceModel

    class BatchedNLMaceModel(MaceModel):  # type: ignore[misc]  # torch-sim is untyped
        neighbors = "batched"

        def forward(self, state: Any) -> dict[str, torch.Tensor]:
            if self.neighbors != "batched":
                out: dict[str, torch.Tensor] = super().forward(state)
                return out
            from evaluator.mlip.neighbors import batched_neighbor_list, wrap_positions

            idx = state.system_idx
            counts = torch.bincount(idx, minlength=state.n_systems)
            cells = state.row_vector_cell.to(self.dtype)
            pos = wrap_positions(state.positions.to(self.dtype), cells, idx)
            edge_index, unit_shifts = batched_neighbor_list(pos, cells, counts, float(self.r_max))
            shifts = torch.bmm(unit_shifts.unsqueeze(1), cells[idx[edge_index[0]]]).squeeze(1)
            lut = torch.full((119,), -1, dtype=torch.long, device=pos.device)
            zs = torch.as_tensor(self.z_table.zs, dtype=torch.long, device=pos.device)
            lut[zs] = torch.arange(len(zs), device=pos.device)
            species = lut[state.atomic_numbers.long()]
            if bool((species < 0).any()):
                unknown = sorted(set(state.atomic_numbers[species < 0].tolist()))
                raise ValueError(f"MACE model has no element with Z = {unknown}")
            node_attrs = torch.nn.functional.one_hot(species, len(zs)).to(self.dtype)
            ptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
            out = self.model(dict(ptr=ptr, node_attrs=node_attrs, batch=idx, pbc=state.pbc, cell=cells,
                                  positions=pos, edge_index=edge_index, unit_shifts=unit_shifts, shifts=shifts),
                             compute_force=True, compute_stress=True)
            return {"energy": out["energy"].detach(), "forces": out["forces"].detach(),
                    "stress": out["stress"].detach()}

    return BatchedNLMaceModel(network, device=device, dtype=dtype, compute_forces=True, compute_stress=True)
