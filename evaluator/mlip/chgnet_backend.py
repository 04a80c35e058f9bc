"""CHGNet backend (CHGNet 0.3.0 weights shipped inside the ``chgnet`` wheel).

Energies are MP2020-corrected-scale (CHGNet was trained on MPtrj energies with
the MP2020 corrections applied). Stress from CHGNet is in GPa; it is converted
to eV/Å³ (ASE convention) here. Embedding: CHGNet's ``atom_fea`` (64 invariant
features per atom, the input of the last message-passing layer), averaged over
atoms. No torch-sim model: the batched engine does not run CHGNet.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from evaluator.mlip.base import MLIP, MLIPSpec, Prediction, file_sha256, register_backend, voigt_stress

if TYPE_CHECKING:
    from ase import Atoms
    from ase.calculators.calculator import Calculator

DEFAULT_MODEL = "0.3.0"
_CHECKPOINTS = {
    "0.3.0": "pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
    "0.2.0": "pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar",
}
EMBEDDING_DIM = 64


def _checkpoint_path(model: str | None) -> tuple[str, str]:
    """(model_id, checkpoint path) for a CHGNet version name or a local file."""
    model = model or DEFAULT_MODEL
    if os.path.isfile(model):
        return f"file:{os.path.basename(model)}", os.path.abspath(model)
    if model not in _CHECKPOINTS:
        raise ValueError(f"unknown CHGNet model '{model}': use one of {sorted(_CHECKPOINTS)} "
                         "or a path to a CHGNet checkpoint")
    import importlib.util

    found = importlib.util.find_spec("chgnet")
    if found is None or found.origin is None:
        raise ValueError("CHGNet is not installed (pip install chgnet)")
    return model, os.path.join(os.path.dirname(found.origin), _CHECKPOINTS[model])


@register_backend
class CHGNetMLIP(MLIP):
    name = "chgnet"
    supports_embeddings = True
    energy_scale = "mp2020-corrected"

    @classmethod
    def spec(cls, model: str | None) -> MLIPSpec:
        model_id, path = _checkpoint_path(model)
        return MLIPSpec(cls.name, model_id, path, "mp2020-corrected")

    def __init__(self, model: str | None = None, device: str = "cpu", dtype: str = "float32",
                 batch_size: int = 64) -> None:
        if dtype != "float32":
            raise ValueError("CHGNet runs in float32 only (its graph converter builds float32 "
                             "tensors); use --dtype float32")
        from chgnet.model.model import CHGNet

        self.model_id, path = _checkpoint_path(model)
        if self.model_id in _CHECKPOINTS:
            self.model = CHGNet.load(model_name=self.model_id, use_device=device, verbose=False)
        else:
            self.model = CHGNet.from_file(path).to(device)
        self.model.graph_converter.set_isolated_atom_response("error")
        self.checkpoint_sha256 = file_sha256(path)
        self.device, self.dtype, self.batch_size = device, dtype, batch_size

    def calculator(self) -> Calculator:
        import contextlib
        import io

        from chgnet.model.dynamics import CHGNetCalculator

        with contextlib.redirect_stdout(io.StringIO()):  # it prints the device
            calc: Calculator = CHGNetCalculator(model=self.model, use_device=self.device)
        self.model.graph_converter.set_isolated_atom_response("error")
        return calc

    def _graphs(self, atoms_list: Sequence[Atoms]) -> tuple[list[Any], dict[int, str]]:
        """CHGNet crystal graphs (None where the converter refuses the structure) and why."""
        from pymatgen.io.ase import AseAtomsAdaptor

        graphs: list[Any] = []
        errors: dict[int, str] = {}
        for i, atoms in enumerate(atoms_list):
            try:
                graphs.append(self.model.graph_converter(AseAtomsAdaptor.get_structure(atoms)))
            except Exception as exc:  # noqa: BLE001 - isolated atoms, too many neighbours...: this structure only
                errors[i] = f"CHGNet graph: {exc}"
                graphs.append(None)
        return graphs, errors

    def _predict_graphs(self, graphs: list[Any], **kwargs: Any) -> list[dict[str, Any]]:
        preds = self.model.predict_graph(graphs, batch_size=self.batch_size, **kwargs)
        return [preds] if isinstance(preds, dict) else list(preds)

    def predict(self, atoms_list: Sequence[Atoms]) -> list[Prediction]:
        """Energies (eV), forces (eV/Å), Voigt stress (eV/Å³); ``{"error": ...}`` on failure."""
        from ase import units

        graphs, errors = self._graphs(atoms_list)
        ok = [i for i, g in enumerate(graphs) if g is not None]
        out: list[Prediction] = [{"error": errors.get(i, "")} for i in range(len(atoms_list))]
        if not ok:
            return out
        preds = self._predict_graphs([graphs[i] for i in ok], task="efs")
        for i, p in zip(ok, preds, strict=True):
            n = len(atoms_list[i])
            pred: Prediction = {"energy": float(p["e"]) * n, "forces": np.asarray(p["f"], dtype=np.float64),
                                "stress": voigt_stress(np.asarray(p["s"], dtype=np.float64) * units.GPa)}
            out[i] = pred
        return out

    def embed(self, atoms_list: Sequence[Atoms], invariants_only: bool = True) -> NDArray[np.float64]:
        """(n, 64) mean of CHGNet atom features; a structure that fails is a NaN row.

        CHGNet's atom features are all invariant: ``invariants_only`` changes nothing.
        """
        graphs, _ = self._graphs(atoms_list)
        out = np.full((len(atoms_list), EMBEDDING_DIM), np.nan)
        ok = [i for i, g in enumerate(graphs) if g is not None]
        if ok:
            preds = self._predict_graphs([graphs[i] for i in ok], task="e", return_atom_feas=True)
            for i, p in zip(ok, preds, strict=True):
                out[i] = np.asarray(p["atom_fea"], dtype=np.float64).mean(axis=0)
        return out
