"""CHGNet backend (CHGNet 0.3.0 weights shipped inside the ``chgnet`` wheel).

Energies are MP2020-corrected-scale (CHGNet was trained on MPtrj energies with
the MP2020 corrections applied). Stress from CHGNet is in GPa; it is converted
to eV/Å³ (ASE convention) here. Embedding: CHGNet's ``atom_fea`` (64 invariant
features per atom, the input of the last message-passing layer), averaged over
atoms.
"""

from __future__ import annotations

import os

import numpy as np

from evaluator.mlip import MLIP, MLIPSpec, file_sha256

DEFAULT_MODEL = "0.3.0"
_CHECKPOINTS = {
    "0.3.0": "pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
    "0.2.0": "pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar",
}


def _checkpoint_path(model: str | None) -> tuple[str, str]:
    """(model_id, checkpoint path) for a CHGNet version name or a local file."""
    model = model or DEFAULT_MODEL
    if os.path.isfile(model):
        return f"file:{os.path.basename(model)}", os.path.abspath(model)
    if model not in _CHECKPOINTS:
        raise ValueError(f"unknown CHGNet model '{model}': use one of {sorted(_CHECKPOINTS)} "
                         "or a path to a CHGNet checkpoint")
    import importlib.util

    root = os.path.dirname(importlib.util.find_spec("chgnet").origin)
    return model, os.path.join(root, _CHECKPOINTS[model])


def spec(model: str | None) -> MLIPSpec:
    model_id, path = _checkpoint_path(model)
    return MLIPSpec("chgnet", model_id, path, "mp2020-corrected")


class CHGNetMLIP(MLIP):
    name = "chgnet"
    energy_scale = "mp2020-corrected"

    def __init__(self, model: str | None = None, device: str = "cpu", dtype: str = "float32",
                 batch_size: int = 64):
        if dtype != "float32":
            raise ValueError("CHGNet runs in float32 only (its graph converter builds float32 "
                             "tensors); use --dtype float32")
        from chgnet.model import CHGNet

        self.model_id, path = _checkpoint_path(model)
        if self.model_id in _CHECKPOINTS:
            self.model = CHGNet.load(model_name=self.model_id, use_device=device, verbose=False)
        else:
            self.model = CHGNet.from_file(path).to(device)
        self.model.graph_converter.set_isolated_atom_response("error")
        self.checkpoint_sha256 = file_sha256(path)
        self.device, self.dtype, self.batch_size = device, dtype, batch_size

    def calculator(self):
        from chgnet.model.dynamics import CHGNetCalculator

        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # it prints the device
            calc = CHGNetCalculator(model=self.model, use_device=self.device)
        self.model.graph_converter.set_isolated_atom_response("error")
        return calc

    def _graphs(self, atoms_list) -> tuple[list, dict[int, str]]:
        from pymatgen.io.ase import AseAtomsAdaptor

        graphs, errors = [], {}
        for i, atoms in enumerate(atoms_list):
            try:
                graphs.append(self.model.graph_converter(AseAtomsAdaptor.get_structure(atoms)))
            except Exception as exc:  # isolated atoms, too many neighbours...
                errors[i] = f"CHGNet graph: {exc}"
                graphs.append(None)
        return graphs, errors

    def predict(self, atoms_list) -> list[dict]:
        """Energies (eV), forces (eV/Å), Voigt stress (eV/Å³); ``{"error": ...}`` on failure."""
        from ase import units
        from ase.stress import full_3x3_to_voigt_6_stress

        graphs, errors = self._graphs(atoms_list)
        ok = [i for i, g in enumerate(graphs) if g is not None]
        out: list[dict] = [{"error": errors.get(i, "")} for i in range(len(atoms_list))]
        if not ok:
            return out
        preds = self.model.predict_graph([graphs[i] for i in ok], task="efs",
                                         batch_size=self.batch_size)
        if isinstance(preds, dict):
            preds = [preds]
        for i, p in zip(ok, preds, strict=True):
            n = len(atoms_list[i])
            out[i] = {"energy": float(p["e"]) * n, "forces": np.asarray(p["f"], dtype=float),
                      "stress": full_3x3_to_voigt_6_stress(np.asarray(p["s"], dtype=float) * units.GPa)}
        return out

    def embed(self, atoms_list) -> np.ndarray:
        """(n, 64) mean of CHGNet atom features; a structure that fails is a NaN row."""
        graphs, _ = self._graphs(atoms_list)
        out = np.full((len(atoms_list), 64), np.nan)
        ok = [i for i, g in enumerate(graphs) if g is not None]
        if ok:
            preds = self.model.predict_graph([graphs[i] for i in ok], task="e", return_atom_feas=True,
                                             batch_size=self.batch_size)
            if isinstance(preds, dict):
                preds = [preds]
            for i, p in zip(ok, preds, strict=True):
                out[i] = np.asarray(p["atom_fea"], dtype=float).mean(axis=0)
        return out
