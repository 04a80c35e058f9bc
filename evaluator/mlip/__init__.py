"""Machine-learned interatomic potentials behind one abstract interface and a registry.

``load_mlip(name, model, device, dtype)`` returns an :class:`MLIP` (contract and units:
``evaluator.mlip.base``): ``predict(atoms_list)`` (energy, forces, Voigt stress per
structure, batched), ``calculator()`` (ASE), and where the backend declares them
``embed(atoms_list)`` (``supports_embeddings``: the Fréchet-distance embedding) and
``ts_model()`` (``supports_engine``: the torch-sim model the batched engine,
``evaluator.mlip.engine``, relaxes with). ``describe_mlip(name, model)`` resolves the
:class:`MLIPSpec` without loading weights.

Registered backends (each module registers its class with ``register_backend``):

- ``chgnet``: CHGNet 0.3.0, weights inside the ``chgnet`` wheel (offline); embeddings;
- ``mace``: mace-torch, a local checkpoint or a foundation-model name that mace-torch
  downloads and caches when online; embeddings and the engine;
- ``sevenn``: SevenNet-l3i5 (default) or SevenNet-0, weights inside the ``sevenn``
  wheel; the engine.

``energy_scale`` says what the energies mean: ``mp2020-corrected`` (CHGNet: trained on
MP2020-corrected labels), ``raw-pbe`` (MACE-MP, SevenNet: raw PBE/PBE+U, needs MP2020
corrections before comparison with an MP2020 DFT hull) or ``raw-pbe-omat``
(OMat24-trained models: no MP2020 compatibility). Importing this package is cheap: heavy
imports (torch, ase, chgnet, mace, sevenn) happen inside the backends' methods.
"""

from __future__ import annotations

from evaluator.mlip import chgnet_backend, mace_backend, sevenn_backend  # noqa: F401 - registers them
from evaluator.mlip.base import (
    DTYPES,
    MLIP,
    MLIPSpec,
    Prediction,
    UnsupportedCapability,
    backend_class,
    engine_backends,
    file_sha256,
    register_backend,
    registered_backends,
)

__all__ = ["BACKENDS", "ENGINE_BACKENDS", "MLIP", "MLIPSpec", "Prediction", "UnsupportedCapability",
           "default_mlip", "describe_mlip", "file_sha256", "load_mlip", "register_backend",
           "registered_backends", "resolve_device"]

BACKENDS = tuple(registered_backends())  # ("chgnet", "mace", "sevenn")
ENGINE_BACKENDS = engine_backends()  # backends with a torch-sim model (the batched engine)


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"unknown device '{device}': use auto, cpu or cuda")
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_mlip(device: str = "auto") -> str:
    """The backend of the default protocol, the same on every device: ``sevenn``
    (SevenNet-l3i5 with MP2020 corrections, the most accurate offline model; on CPU it
    costs about 3.5x CHGNet per relaxation, README "Stability"). ``device`` is checked but
    no longer chooses the model: numbers from a CPU and a GPU worker must be comparable.
    CHGNet is the named opt-in protocol ``chgnet`` (``evaluator.config.PRESETS``)."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"unknown device '{device}': use auto, cpu or cuda")
    return "sevenn"


def describe_mlip(name: str = "chgnet", model: str | None = None, energy_scale: str | None = None) -> MLIPSpec:
    """Resolve a backend name + model to an :class:`MLIPSpec` without loading it.

    ``energy_scale`` overrides the backend's default (e.g. a local MACE
    checkpoint fine-tuned on OMat24 is ``raw-pbe-omat``). For a MACE foundation
    name whose checkpoint is not cached this does not download anything:
    ``checkpoint_path`` is then None.
    """
    return backend_class(name).spec(model).with_energy_scale(energy_scale)


def load_mlip(name: str = "chgnet", model: str | None = None, device: str = "auto",
              dtype: str = "float32", energy_scale: str | None = None) -> MLIP:
    """Load a backend. ``model``: checkpoint path or foundation-model name (None = default)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, not '{dtype}'")
    device = resolve_device(device)
    mlip = backend_class(name)(model, device, dtype)
    if energy_scale:
        mlip.energy_scale = energy_scale
    return mlip
