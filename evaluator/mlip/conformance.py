"""The conformance check every MLIP backend passes: what the evaluator relies on, checked on
real outputs of a loaded model (the torch-sim ``validate_model_outputs`` pattern).

``check_backend("mace", "model.pt")`` loads a registered backend through the production path
(``load_mlip``) and returns a :class:`ConformanceReport`: one :class:`CheckResult` per
property (passed, failed with the reason, or not run because an earlier check it needs
failed). ``check_mlip(mlip, spec, cells)`` checks an already loaded model. The command line
is ``python -m evaluator mlip-check --backend NAME [--model M] [--module MOD]``
(``--module`` imports a module that registers an out-of-tree backend first).

The properties, in order (:data:`CHECKS`):

- ``registered``: the model's class is the registered backend of its name;
- ``provenance``: ``describe()`` has the provenance keys and matches ``describe_mlip``
  (name, model id, checkpoint sha256, a known energy scale);
- ``empty batch``: ``predict([])`` is ``[]``;
- ``outputs``: one prediction per structure, no error, a finite float energy, finite
  forces (n, 3) and Voigt stress (6,);
- ``forces sum to zero``, ``translation invariance`` (a rigid shift, wrapped back into the
  cell, changes nothing), ``single vs batch`` (a structure predicted alone and in a batch);
- ``forces = -dE/dx``, ``stress = dE/dε / V``: central differences of the energy (the
  forces and stress of the first cell must be far from zero for this to mean anything);
- ``ASE calculator``: ``calculator()`` is the same model;
- ``embeddings``: present iff ``supports_embeddings`` (an (n, d) finite mean over atoms);
- ``torch-sim model``: present iff ``supports_engine`` and the same model (symmetric
  stress).

The default cells (:func:`conformance_cells`) are two real 2-atom MP-20 crystals of the
embedded data (KI rocksalt, tetragonal NaBi), rattled and strained so that forces and
stress are far from zero. Importing this module loads no ML library (the checks import
ase, pymatgen and torch-sim when they run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from evaluator.data import DataDir
from evaluator.mlip import describe_mlip, load_mlip
from evaluator.mlip.base import (
    ENERGY_SCALES,
    MLIP,
    MLIPSpec,
    Prediction,
    UnsupportedCapability,
    backend_class,
    engine_backends,
    registered_backends,
    voigt_stress,
)

if TYPE_CHECKING:
    from ase import Atoms

__all__ = ["CHECKS", "CELL_MATERIALS", "CheckResult", "ConformanceReport", "Tolerances", "TOLERANCES",
           "check_backend", "check_mlip", "conformance_cells"]

Status = Literal["passed", "failed", "not run"]

CELL_MATERIALS = ("mp-22898", "mp-22924")  # KI (rocksalt), NaBi (tetragonal): 2 atoms each
PROVENANCE_KEYS = frozenset({"name", "model_id", "checkpoint_sha256", "device", "dtype", "energy_scale"})


@dataclass(frozen=True)
class Tolerances:
    """Finite-difference step (Å, or strain) and absolute tolerances of one dtype."""

    step: float
    force: float  # eV/Å
    stress: float  # eV/Å³
    energy: float  # eV


# float32 energies carry ~1e-6 relative round-off, so their differences need a larger step
TOLERANCES = {"float64": Tolerances(1e-3, 1e-6, 1e-7, 1e-8), "float32": Tolerances(3e-3, 2e-3, 5e-5, 2e-4)}
_SHEAR = {3: (1, 2), 4: (0, 2), 5: (0, 1)}  # ASE Voigt order xx yy zz yz xz xy


@dataclass(frozen=True)
class CheckResult:
    """One property: ``passed`` (``detail``: what was measured, e.g. the largest difference
    and its tolerance), ``failed`` (``detail`` says why) or ``not run`` (``detail`` names the
    failed check it needs)."""

    name: str
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class ConformanceReport:
    """Every check of one loaded model (backend, model id, device, dtype), in :data:`CHECKS` order."""

    backend: str
    model_id: str
    device: str
    dtype: str
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        """True when every check ran and passed."""
        return bool(self.checks) and all(c.status == "passed" for c in self.checks)

    def failed(self) -> list[CheckResult]:
        """The checks that failed or could not run."""
        return [c for c in self.checks if c.status != "passed"]

    def text(self) -> str:
        """One line per check, then the verdict."""
        lines = [f"MLIP conformance: {self.backend} {self.model_id} ({self.device}, {self.dtype})"]
        lines += [f"  {c.status:7}  {c.name}" + (f": {c.detail}" if c.detail else "") for c in self.checks]
        bad = self.failed()
        lines.append("conforms" if self.passed else f"does not conform: {len(bad)} of {len(self.checks)} checks "
                                                     f"failed or not run ({', '.join(c.name for c in bad)})")
        return "\n".join(lines)


class _Mismatch(AssertionError):
    """A property does not hold; the message says by how much."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _Mismatch(message)


def _close(actual: ArrayLike, expected: ArrayLike, atol: float, what: str, unit: str) -> str:
    """Nothing if ``actual`` is within ``atol`` of ``expected`` everywhere (then returns the
    largest difference, as a detail), else _Mismatch saying by how much."""
    a, b = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    _require(a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}")
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    _require(err <= atol, f"{what} differ by up to {err:.3g} {unit} (tolerance {atol:.3g})")
    return f"largest difference {err:.2g} {unit} (tolerance {atol:.2g})"


def _same(p: Prediction, q: Prediction, tol: Tolerances, what: str, energy_factor: float = 1.0) -> None:
    _require("error" not in p, f"{what}: error {p.get('error')}")
    _close(p["energy"], q["energy"], tol.energy * energy_factor, f"{what}: energies", "eV")
    _close(p["forces"], q["forces"], tol.force, f"{what}: forces", "eV/Å")
    _close(p["stress"], q["stress"], tol.stress, f"{what}: stresses", "eV/Å³")


def conformance_cells(data: DataDir | None = None) -> list[Atoms]:
    """The two cells of :data:`CELL_MATERIALS` (``structures/mp_sample`` of the data
    directory), rattled (0.05 Å, seeded) and strained (1 %)."""
    from pymatgen.core.structure import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    data = data or DataDir()
    strain = np.array([[0.01, 0.005, 0.0], [0.005, -0.01, 0.002], [0.0, 0.002, 0.005]])
    cells: list[Atoms] = []
    for seed, material in enumerate(CELL_MATERIALS, start=1):
        path = data.path(f"structures/mp_sample/mp_{material}.cif")
        atoms: Any = AseAtomsAdaptor.get_atoms(Structure.from_file(path))
        atoms.rattle(0.05, seed=seed)
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
        cells.append(atoms)
    return cells


def _strained(atoms: Any, j: int, h: float) -> Any:  # ase is untyped
    """``atoms`` under the symmetric strain whose Voigt component ``j`` is ``h`` (engineering shear)."""
    eps = np.zeros((3, 3))
    if j < 3:
        eps[j, j] = h
    else:
        a, b = _SHEAR[j]
        eps[a, b] = eps[b, a] = h / 2
    out: Any = atoms.copy()
    out.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    return out


class _Checks:
    """The checks of one model on one set of cells (each method raises on failure)."""

    def __init__(self, mlip: MLIP, spec: MLIPSpec, cells: Sequence[Atoms]) -> None:
        self.mlip, self.spec = mlip, spec
        self.cells: list[Any] = list(cells)  # ase Atoms (untyped)
        self.tol = TOLERANCES[mlip.dtype]
        self.preds: list[Prediction] = []
        self._fd: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None

    def registered(self) -> str:
        _require(isinstance(self.mlip, MLIP), f"{type(self.mlip).__qualname__} is not an MLIP")
        cls = registered_backends().get(self.mlip.name)
        _require(cls is type(self.mlip), f"the backend registered as '{self.mlip.name}' is "
                                         f"{cls.__qualname__ if cls else 'none'}, not {type(self.mlip).__qualname__}")
        return f"{type(self.mlip).__qualname__} is registered as '{self.mlip.name}'"

    def provenance(self) -> str:
        d = self.mlip.describe()
        _require(set(d) == PROVENANCE_KEYS, f"describe() keys {sorted(d)} != {sorted(PROVENANCE_KEYS)}")
        _require(d["energy_scale"] in ENERGY_SCALES, f"energy scale '{d['energy_scale']}' not one of {ENERGY_SCALES}")
        _require(d["energy_scale"] == self.spec.energy_scale,
                 f"energy scale '{d['energy_scale']}' != the spec's '{self.spec.energy_scale}'")
        _require((d["name"], d["model_id"]) == (self.spec.name, self.spec.model_id),
                 f"(name, model_id) {(d['name'], d['model_id'])} != the spec's {(self.spec.name, self.spec.model_id)}")
        _require(len(d["checkpoint_sha256"]) == 64, f"checkpoint_sha256 '{d['checkpoint_sha256']}' is not a sha256")
        _require(d["checkpoint_sha256"] == self.spec.checkpoint_sha256,
                 f"checkpoint_sha256 {d['checkpoint_sha256']} != the spec's file's {self.spec.checkpoint_sha256}")
        return f"energy scale {d['energy_scale']}, checkpoint sha256 {d['checkpoint_sha256'][:12]}…"

    def empty_batch(self) -> str:
        out = self.mlip.predict([])
        _require(out == [], f"predict([]) returned {out!r}")
        return ""

    def outputs(self) -> str:
        _require(len(self.cells) > 0, "no cells to check")
        preds = self.mlip.predict(self.cells)
        _require(len(preds) == len(self.cells), f"{len(preds)} predictions for {len(self.cells)} structures")
        for k, (atoms, p) in enumerate(zip(self.cells, preds, strict=True)):
            _require("error" not in p, f"cell {k}: error {p.get('error')}")
            _require(isinstance(p["energy"], float) and bool(np.isfinite(p["energy"])),
                     f"cell {k}: energy {p['energy']!r} is not a finite float")
            forces, stress = np.asarray(p["forces"]), np.asarray(p["stress"])
            _require(forces.shape == (len(atoms), 3), f"cell {k}: forces shape {forces.shape} != ({len(atoms)}, 3)")
            _require(stress.shape == (6,), f"cell {k}: stress shape {stress.shape} != (6,)")
            _require(bool(np.all(np.isfinite(forces)) and np.all(np.isfinite(stress))),
                     f"cell {k}: forces or stress not finite")
        self.preds = preds
        return f"{len(preds)} cells ({', '.join(str(len(a)) for a in self.cells)} atoms)"

    def forces_sum_to_zero(self) -> str:
        net = [np.asarray(p["forces"]).sum(axis=0) for p in self.preds]
        return _close(net, np.zeros((len(net), 3)), self.tol.force, "net forces and zero", "eV/Å")

    def translation_invariance(self) -> str:
        for k, (atoms, p) in enumerate(zip(self.cells, self.preds, strict=True)):
            shifted = atoms.copy()
            shifted.positions += [0.31, -0.17, 2.23]
            shifted.wrap()
            _same(self.mlip.predict([shifted])[0], p, self.tol, f"cell {k} translated")
        return ""

    def single_vs_batch(self) -> str:
        for k, (atoms, p) in enumerate(zip(self.cells, self.preds, strict=True)):
            _same(self.mlip.predict([atoms])[0], p, self.tol, f"cell {k} alone vs in the batch")
        return ""

    def _differences(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(-dE/dx, dE/dε / V) of the first cell by central differences, one batch."""
        atoms, h = self.cells[0], self.tol.step
        n = len(atoms)
        moved = []
        for i in range(n):
            for k in range(3):
                for sign in (1, -1):
                    b = atoms.copy()
                    b.positions[i, k] += sign * h
                    moved.append(b)
        moved += [_strained(atoms, j, sign * h) for j in range(6) for sign in (1, -1)]
        preds = self.mlip.predict(moved)
        bad = [p["error"] for p in preds if "error" in p]
        _require(not bad, f"displaced cells failed: {bad[:1]}")
        e = np.array([p["energy"] for p in preds], dtype=np.float64)
        fd_forces = -(e[:6 * n:2] - e[1:6 * n:2]).reshape(n, 3) / (2 * h)
        fd_stress = (e[6 * n::2] - e[6 * n + 1::2]) / (2 * h) / float(atoms.get_volume())
        return fd_forces, fd_stress

    def forces_are_gradients(self) -> str:
        forces = np.asarray(self.preds[0]["forces"])
        _require(float(np.abs(forces).max()) > 20 * self.tol.force,
                 f"the first cell's forces (max {np.abs(forces).max():.3g} eV/Å) are too small to test")
        self._fd = self._differences()
        return _close(forces, self._fd[0], self.tol.force, "forces and -dE/dx", "eV/Å")

    def stress_is_strain_derivative(self) -> str:
        stress = np.asarray(self.preds[0]["stress"])
        _require(float(np.abs(stress).max()) > 20 * self.tol.stress,
                 f"the first cell's stress (max {np.abs(stress).max():.3g} eV/Å³) is too small to test")
        fd = self._fd or self._differences()
        return _close(stress, fd[1], self.tol.stress, "stress and dE/dε / V", "eV/Å³")

    def ase_calculator(self) -> str:
        atoms = self.cells[0].copy()
        atoms.calc = self.mlip.calculator()
        got: Prediction = {"energy": float(atoms.get_potential_energy()), "forces": atoms.get_forces(),
                           "stress": atoms.get_stress()}
        _same(got, self.preds[0], self.tol, "ASE calculator vs predict", energy_factor=10)
        return ""

    def embeddings(self) -> str:
        atoms = self.cells[0]
        if not self.mlip.supports_embeddings:
            return _refused(lambda: self.mlip.embed([atoms]), "embed()")
        emb = np.asarray(self.mlip.embed([atoms, atoms * (2, 1, 1)]))
        _require(emb.ndim == 2 and emb.shape[0] == 2 and emb.shape[1] > 0,
                 f"embed() of 2 structures has shape {emb.shape}, not (2, d)")
        _require(bool(np.all(np.isfinite(emb))), "embeddings not finite")
        _close(emb[1], emb[0], 1e-4, "embeddings of a cell and its 2x1x1 supercell (a mean over atoms)", "")
        return f"dimension {emb.shape[1]}"

    def torch_sim_model(self) -> str:
        declared = self.mlip.supports_engine
        _require((self.mlip.name in engine_backends()) == declared,
                 f"supports_engine is {declared} but the registry says {not declared}")
        if not declared:
            return _refused(self.mlip.ts_model, "ts_model()")
        import torch_sim as ts

        model = self.mlip.ts_model()
        out = model(ts.io.atoms_to_state(self.cells, model.device, model.dtype))
        lo = 0
        for k, (cell, q) in enumerate(zip(self.cells, self.preds, strict=True)):
            full = out["stress"][k].detach().cpu().numpy()
            _require(full.shape == (3, 3), f"cell {k}: torch-sim stress shape {full.shape} != (3, 3)")
            _close(full, full.T, self.tol.stress, f"cell {k}: torch-sim stress and its transpose", "eV/Å³")
            got: Prediction = {"energy": float(out["energy"][k]),
                               "forces": out["forces"][lo:lo + len(cell)].detach().cpu().numpy().astype(float),
                               "stress": voigt_stress(full)}
            _same(got, q, self.tol, f"cell {k}: torch-sim model vs predict")
            lo += len(cell)
        return ""


def _refused(call: Callable[[], Any], what: str) -> str:
    try:
        call()
    except UnsupportedCapability:
        return "not declared: refused with UnsupportedCapability"
    raise _Mismatch(f"{what} is not declared but did not raise UnsupportedCapability")


# check -> (method: raises on failure, else returns a detail; the checks whose results it needs)
_PLAN: dict[str, tuple[Callable[[_Checks], str], tuple[str, ...]]] = {
    "registered": (_Checks.registered, ()),
    "provenance": (_Checks.provenance, ()),
    "empty batch": (_Checks.empty_batch, ()),
    "outputs": (_Checks.outputs, ()),
    "forces sum to zero": (_Checks.forces_sum_to_zero, ("outputs",)),
    "translation invariance": (_Checks.translation_invariance, ("outputs",)),
    "single vs batch": (_Checks.single_vs_batch, ("outputs",)),
    "forces = -dE/dx": (_Checks.forces_are_gradients, ("outputs",)),
    "stress = dE/dε / V": (_Checks.stress_is_strain_derivative, ("outputs",)),
    "ASE calculator": (_Checks.ase_calculator, ("outputs",)),
    "embeddings": (_Checks.embeddings, ()),
    "torch-sim model": (_Checks.torch_sim_model, ("outputs",)),
}
CHECKS = tuple(_PLAN)


def check_mlip(mlip: MLIP, spec: MLIPSpec, cells: Sequence[Atoms] | None = None) -> ConformanceReport:
    """Run every check of :data:`CHECKS` on a loaded model.

    ``spec``: what ``describe_mlip`` says of the same backend and model; ``cells``:
    small periodic structures with non-zero forces and stress (default
    :func:`conformance_cells`). A check that raises fails with the exception as its reason;
    the others still run, except those that need its result (``not run``).
    """
    checks = _Checks(mlip, spec, conformance_cells() if cells is None else cells)
    results: dict[str, CheckResult] = {}
    for name, (method, needs) in _PLAN.items():
        missing = [n for n in needs if results[n].status != "passed"]
        if missing:
            results[name] = CheckResult(name, "not run", f"needs {', '.join(missing)}")
            continue
        try:
            detail = method(checks)
        except _Mismatch as exc:
            results[name] = CheckResult(name, "failed", str(exc))
        except Exception as exc:  # noqa: BLE001 - a backend's exception is the check's failure, reported
            results[name] = CheckResult(name, "failed", f"raised {type(exc).__name__}: {exc}")
        else:
            results[name] = CheckResult(name, "passed", detail)
    return ConformanceReport(mlip.name, mlip.model_id, mlip.device, mlip.dtype, tuple(results.values()))


def check_backend(name: str, model: str | None = None, *, device: str = "cpu", dtype: str = "float32",
                  energy_scale: str | None = None, cells: Sequence[Atoms] | None = None) -> ConformanceReport:
    """Load a registered backend through ``load_mlip`` and check it (:func:`check_mlip`).

    A model that cannot load gives a report whose one check, ``load``, failed with the reason
    (an unknown backend name is a ValueError, as for ``load_mlip``)."""
    backend_class(name)  # an unknown name: ValueError naming the choices
    try:
        mlip = load_mlip(name, model, device=device, dtype=dtype, energy_scale=energy_scale)
    except Exception as exc:  # noqa: BLE001 - reported as the failed load
        return ConformanceReport(name, model or "(default)", device, dtype,
                                 (CheckResult("load", "failed", f"raised {type(exc).__name__}: {exc}"),))
    spec = describe_mlip(name, model, energy_scale)  # after loading: a downloaded model now has its file
    return check_mlip(mlip, spec, cells)

