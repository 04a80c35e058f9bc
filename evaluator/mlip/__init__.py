"""Machine-learned interatomic potentials behind one small interface.

``load_mlip(name, model, device, dtype)`` returns an :class:`MLIP`:

- ``predict(atoms_list)`` -> one dict per structure: ``energy`` (eV, total),
  ``forces`` (n, 3) eV/Å, ``stress`` (6,) eV/Å³ (ASE Voigt order and sign);
  structures go through the model in batches (one forward pass per batch).
- ``calculator()`` -> an ASE calculator for one-structure-at-a-time use.
- ``embed(atoms_list)`` -> (n, d) mean over atoms of the model's invariant
  per-atom features (the Fréchet-distance embedding).

Backends: ``chgnet`` (CHGNet 0.3.0, weights inside the ``chgnet`` wheel, works
offline), ``mace`` (mace-torch: a local checkpoint path or a foundation-model
name that mace-torch downloads and caches when online) and ``sevenn``
(SevenNet-l3i5 default, SevenNet-0; weights inside the ``sevenn`` wheel).
MACE and SevenNet also provide ``ts_model()`` (a torch-sim model), which the
batched engine (``evaluator.mlip.engine``) relaxes with.

``energy_scale`` says what the energies mean: ``mp2020-corrected`` (CHGNet:
trained on MP2020-corrected labels), ``raw-pbe`` (MACE-MP: raw PBE/PBE+U, needs
MP2020 corrections before comparison with an MP2020 DFT hull) or
``raw-pbe-omat`` (OMat24-trained models: no MP2020 compatibility).
Heavy imports (torch, chgnet, mace) happen inside the backends.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BACKENDS = ("chgnet", "mace", "sevenn")
ENGINE_BACKENDS = ("mace", "sevenn")  # backends with a torch-sim model (the batched engine)
_SHA_CACHE: dict[str, str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a checkpoint file (cached per path within the process)."""
    key = str(Path(path).resolve())
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(key, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"unknown device '{device}': use auto, cpu or cuda")
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_mlip(device: str = "auto") -> str:
    """The backend a worker uses unless told otherwise: ``sevenn`` (SevenNet-l3i5, the most
    accurate offline model) on a GPU, ``chgnet`` on CPU (SevenNet-l3i5 costs several times
    CHGNet per relaxation there; README "Stability")."""
    return "sevenn" if resolve_device(device).startswith("cuda") else "chgnet"


@dataclass(frozen=True)
class MLIPSpec:
    """What a model is, known without loading its weights (for checks and keys)."""

    name: str
    model_id: str
    checkpoint_path: str | None
    energy_scale: str

    @property
    def checkpoint_sha256(self) -> str | None:
        if self.checkpoint_path and os.path.isfile(self.checkpoint_path):
            return file_sha256(self.checkpoint_path)
        return None


def describe_mlip(name: str = "chgnet", model: str | None = None, energy_scale: str | None = None) -> MLIPSpec:
    """Resolve a backend name + model to an :class:`MLIPSpec` without loading it.

    ``energy_scale`` overrides the backend's default (e.g. a local MACE
    checkpoint fine-tuned on OMat24 is ``raw-pbe-omat``). For a MACE foundation
    name whose checkpoint is not cached this does not download anything:
    ``checkpoint_path`` is then None.
    """
    if name == "chgnet":
        from evaluator.mlip.chgnet_backend import spec

        s = spec(model)
    elif name == "mace":
        from evaluator.mlip.mace_backend import spec

        s = spec(model)
    elif name == "sevenn":
        from evaluator.mlip.sevenn_backend import spec

        s = spec(model)
    else:
        raise ValueError(f"unknown MLIP '{name}': choose from {', '.join(BACKENDS)}")
    if energy_scale:
        s = MLIPSpec(s.name, s.model_id, s.checkpoint_path, energy_scale)
    return s


class MLIP:
    """Interface every backend implements (see module docstring for units)."""

    name: str
    model_id: str
    checkpoint_sha256: str
    device: str
    dtype: str
    energy_scale: str

    def calculator(self):  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, atoms_list) -> list[dict]:  # pragma: no cover - interface
        raise NotImplementedError

    def embed(self, atoms_list) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> dict:
        """Provenance: backend, model, checkpoint hash, device, dtype, energy scale."""
        return {"name": self.name, "model_id": self.model_id,
                "checkpoint_sha256": self.checkpoint_sha256, "device": self.device,
                "dtype": self.dtype, "energy_scale": self.energy_scale}


def load_mlip(name: str = "chgnet", model: str | None = None, device: str = "auto",
              dtype: str = "float32", energy_scale: str | None = None) -> MLIP:
    """Load a backend. ``model``: checkpoint path or foundation-model name (None = default)."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, not '{dtype}'")
    device = resolve_device(device)
    if name == "chgnet":
        from evaluator.mlip.chgnet_backend import CHGNetMLIP

        mlip = CHGNetMLIP(model, device, dtype)
    elif name == "mace":
        from evaluator.mlip.mace_backend import MACEMLIP

        mlip = MACEMLIP(model, device, dtype)
    elif name == "sevenn":
        from evaluator.mlip.sevenn_backend import SevenNetMLIP

        mlip = SevenNetMLIP(model, device, dtype)
    else:
        raise ValueError(f"unknown MLIP '{name}': choose from {', '.join(BACKENDS)}")
    if energy_scale:
        mlip.energy_scale = energy_scale
    return mlip
