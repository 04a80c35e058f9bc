"""The MLIP contract: the abstract :class:`MLIP` every backend implements, and the backend registry.

A backend is a subclass of :class:`MLIP` decorated with :func:`register_backend`. It
declares its ``name`` and its capabilities as class data and implements:

- ``spec(model)`` (class method): the :class:`MLIPSpec` of a model name or checkpoint,
  resolved without loading the weights (checks, cache keys, energy routes);
- ``__init__(model, device, dtype)``: load the weights;
- ``predict(atoms_list)``: one :class:`Prediction` per structure, structures batched
  through the network: ``energy`` (eV, total), ``forces`` (n, 3) eV/Å, ``stress`` (6,)
  eV/Å³ in ASE's Voigt order (xx, yy, zz, yz, xz, xy) and sign (``(1/V) dE/dε``), or
  ``error`` (why this structure failed; the others are unaffected);
- ``calculator()``: an ASE calculator over the same network, one structure at a time.

Optional capabilities, declared by class flags and otherwise refused with
:class:`UnsupportedCapability` (a ``NotImplementedError``):

- ``supports_embeddings``: ``embed(atoms_list)`` -> (n, d) mean over atoms of the
  model's per-atom features (the Fréchet-distance embedding);
- ``supports_engine``: ``ts_model()`` -> a torch-sim model around the same network, which
  the batched engine (``evaluator.mlip.engine``) relaxes with.

``evaluator.mlip.conformance`` checks that a backend keeps this contract (``python -m
evaluator mlip-check --backend NAME``); ``tests/evaluator/mlip/test_mlip_conformance.py`` runs
it over every registered backend. This module imports no ML library (torch, ase, chgnet,
mace, sevenn): the registry is read by processes that never load a model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypedDict, TypeVar

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import torch
    from ase import Atoms
    from ase.calculators.calculator import Calculator

__all__ = ["ENERGY_SCALES", "MLIP", "MLIPSpec", "Prediction", "TorchSimModel", "UnsupportedCapability",
           "backend_class", "engine_backends", "file_sha256", "register_backend", "registered_backends",
           "voigt_stress"]

# What a backend's energies mean (see evaluator.families.stability.energy for their routes):
# "mp2020-corrected" (trained on MP2020-corrected labels, e.g. CHGNet 0.3.0), "raw-pbe" (raw
# PBE/PBE+U, MP2020 corrections applied before comparison with an MP2020 DFT hull), "raw-pbe-omat"
# (OMat24-trained: no MP2020 compatibility).
ENERGY_SCALES = ("mp2020-corrected", "raw-pbe", "raw-pbe-omat")
DTYPES = ("float32", "float64")

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


def voigt_stress(stress_3x3: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """(..., 3, 3) stress -> (..., 6) in ASE's Voigt order (xx, yy, zz, yz, xz, xy); shear averaged."""
    s = np.asarray(stress_3x3, dtype=np.float64)
    return np.stack([s[..., 0, 0], s[..., 1, 1], s[..., 2, 2], (s[..., 1, 2] + s[..., 2, 1]) / 2,
                     (s[..., 0, 2] + s[..., 2, 0]) / 2, (s[..., 0, 1] + s[..., 1, 0]) / 2], axis=-1)


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

    def with_energy_scale(self, energy_scale: str | None) -> MLIPSpec:
        """This spec with its energy scale overridden (None or "" keeps it)."""
        return dataclasses.replace(self, energy_scale=energy_scale) if energy_scale else self


class Prediction(TypedDict, total=False):
    """One structure's result from :meth:`MLIP.predict`: the three fields, or ``error``."""

    energy: float  # eV, total
    forces: NDArray[np.float64]  # (n_atoms, 3) eV/Å
    stress: NDArray[np.float64]  # (6,) eV/Å³, ASE Voigt order and sign
    error: str


class TorchSimModel(Protocol):
    """What the batched engine uses of a torch-sim model (``torch_sim.models.interface``)."""

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def __call__(self, state: Any) -> dict[str, torch.Tensor]: ...  # state: torch_sim.SimState


class UnsupportedCapability(NotImplementedError):
    """A backend was asked for a capability it does not declare (embeddings, the engine model)."""


class MLIP(ABC):
    """A loaded machine-learned interatomic potential (see the module docstring for units)."""

    name: ClassVar[str]  # registry key, e.g. "chgnet"
    supports_embeddings: ClassVar[bool] = False
    supports_engine: ClassVar[bool] = False  # has ts_model() for evaluator.mlip.engine

    model_id: str
    checkpoint_sha256: str
    device: str
    dtype: str
    energy_scale: str

    @classmethod
    @abstractmethod
    def spec(cls, model: str | None) -> MLIPSpec:
        """Resolve a model name or checkpoint path (None = the default) without loading it."""

    @abstractmethod
    def __init__(self, model: str | None = None, device: str = "cpu", dtype: str = "float32") -> None:
        """Load the weights of ``model`` (None = the backend's default) on ``device``."""

    @abstractmethod
    def calculator(self) -> Calculator:
        """An ASE calculator over this network, for one structure at a time."""

    @abstractmethod
    def predict(self, atoms_list: Sequence[Atoms]) -> list[Prediction]:
        """Energy, forces and stress of each structure (batched); ``{"error": ...}`` on failure."""

    def embed(self, atoms_list: Sequence[Atoms], invariants_only: bool = True) -> NDArray[np.float64]:
        """(n, d) mean over atoms of the model's per-atom features (if ``supports_embeddings``).

        ``invariants_only=False`` keeps equivariant channels where the model has them.
        """
        raise UnsupportedCapability(f"{self.name} has no embeddings")

    def ts_model(self) -> TorchSimModel:
        """A torch-sim model around the same network (if ``supports_engine``)."""
        raise UnsupportedCapability(f"{self.name} has no torch-sim model: the batched engine needs "
                                    f"one of {', '.join(engine_backends())}")

    def describe(self) -> dict[str, str]:
        """Provenance: backend, model, checkpoint hash, device, dtype, energy scale."""
        return {"name": self.name, "model_id": self.model_id,
                "checkpoint_sha256": self.checkpoint_sha256, "device": self.device,
                "dtype": self.dtype, "energy_scale": self.energy_scale}


_REGISTRY: dict[str, type[MLIP]] = {}
B = TypeVar("B", bound=MLIP)


def register_backend(cls: type[B]) -> type[B]:
    """Class decorator: make a backend loadable by its ``name`` (``load_mlip(name)``)."""
    name = cls.name
    if _REGISTRY.get(name, cls) is not cls:
        raise ValueError(f"MLIP backend '{name}' is already registered by {_REGISTRY[name].__qualname__}")
    _REGISTRY[name] = cls
    return cls


def registered_backends() -> dict[str, type[MLIP]]:
    """Backend name -> class, in registration order (a copy)."""
    return dict(_REGISTRY)


def engine_backends() -> tuple[str, ...]:
    """Names of the backends with a torch-sim model (the batched engine)."""
    return tuple(name for name, cls in _REGISTRY.items() if cls.supports_engine)


def backend_class(name: str) -> type[MLIP]:
    """The registered backend called ``name``; ValueError naming the choices otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown MLIP '{name}': choose from {', '.join(_REGISTRY)}") from None
