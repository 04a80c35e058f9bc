"""Reference convex hulls and energy above hull.

A :class:`HullReference` holds reference formation energies per atom on one
energy scale, the elemental reference energies ``mu`` (eV/atom) that define
that scale's zero, and which MLIPs may be compared against it:

- ``dft-mp2020``: MP2020-corrected GGA/GGA+U formation energies (MP-20 hull);
  ``mu`` = MP elemental ground-state energies per atom. Any MLIP on the
  ``mp2020-corrected`` scale (CHGNet) is compared directly; ``raw-pbe`` models
  (MACE-MP) get MP2020 corrections first (see ``energy.py``).
- ``mlip:<model>``: one MLIP's own energies on the reference structures
  ("own-MLIP" hull, LeMat-GenBench style); ``mu`` = that MLIP's lowest energy
  per atom among unary reference entries. Only the declared models may use it.

Energy above hull: a pymatgen PhaseDiagram of the reference entries whose
elements are a subset of the candidate's chemical system, plus a zero-energy
terminal entry per element (the elemental references), built once per chemical
system and cached. Negative values (below the reference hull) are kept.

Compact file format (parquet, see :func:`write_hull_file`): columns
``entry_id``, ``formula`` (cell formula), ``e_form_per_atom`` (eV/atom);
file metadata ``genbench_hull`` = JSON with ``energy_scale``, ``mu``,
``compatible`` ({backend: [model ids]} for own-MLIP hulls), ``name``, ``source``.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

if TYPE_CHECKING:
    from pymatgen.analysis.phase_diagram import PhaseDiagram
    from pymatgen.core.composition import Composition

    from evaluator.data import DataDir

MP20_DIR = "reference/mp20"
META_KEY = b"genbench_hull"
# mace-torch 0.3.16's default foundation model produced mp20_hull.parquet's mace column.
MP20_OWN_HULLS = {
    "mace": ("mace_energy_total", {"mace": ["medium-mpa-0"]}, "MACE-MPA-0 medium (mace-torch default)"),
    "orb": ("orb_energy_total", {}, "ORB v3 conservative-inf-omat (no backend here)"),
    "uma": ("uma_energy_total", {}, "UMA s-1 omat (no backend here)"),
}


def chemsys_key(elements: Iterable[object]) -> tuple[str, ...]:
    """A chemical system as the sorted tuple of its distinct element symbols."""
    return tuple(sorted({str(e) for e in elements}))


@dataclass
class HullResult:
    e_above_hull: float  # eV/atom; NaN when not computable
    n_ref_entries: int  # reference entries (not the synthetic elemental terminals) in the chemical system
    reason: str | None = None


@dataclass(frozen=True)
class HullEntry:
    """One reference entry of a :class:`HullReference` (see :meth:`HullReference.entries_in`)."""

    row: int  # position in ``HullReference.entries``
    entry_id: str
    composition: Composition  # the cell formula's composition
    e_form_per_atom: float  # eV/atom on the hull's energy scale


@dataclass
class HullReference:
    """Reference entries on one energy scale; see module docstring."""

    name: str
    energy_scale: str
    entries: pd.DataFrame  # entry_id, formula, e_form_per_atom
    mu: dict[str, float]  # eV/atom
    compatible: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""
    _by_chemsys: dict[tuple[str, ...], list[int]] = field(default_factory=dict, init=False, repr=False)
    _pd_cache: dict[tuple[str, ...], tuple[PhaseDiagram, int]] = field(default_factory=dict, init=False,
                                                                      repr=False)
    _comps: list[Composition] = field(default_factory=list, init=False, repr=False)
    _e_form: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0), init=False, repr=False)

    def __post_init__(self) -> None:
        from pymatgen.core.composition import Composition

        comps = [Composition(f) for f in self.entries["formula"]]
        self._comps = comps
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, c in enumerate(comps):
            groups.setdefault(chemsys_key(e.symbol for e in c.elements), []).append(i)
        self._by_chemsys = groups
        self._e_form = self.entries["e_form_per_atom"].to_numpy(float)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "energy_scale": self.energy_scale, "n_entries": len(self.entries),
                "n_elements": len(self.mu), "compatible": self.compatible, "source": self.source}

    def formation_energy_per_atom(self, composition: Composition, energy: float) -> float:
        """(E − Σ nᵢ μᵢ)/N in eV/atom; raises KeyError naming an element without μ."""
        comp = composition.element_composition
        missing = [e.symbol for e in comp.elements if e.symbol not in self.mu]
        if missing:
            raise KeyError(f"no reference energy for element(s) {', '.join(missing)} in hull '{self.name}'")
        ref = sum(self.mu[e.symbol] * n for e, n in comp.items())
        return float((energy - ref) / comp.num_atoms)

    def _subsystems(self, key: tuple[str, ...]) -> list[int]:
        if len(key) <= 12:
            rows: list[int] = []
            for r in range(1, len(key) + 1):
                for sub in itertools.combinations(key, r):
                    rows.extend(self._by_chemsys.get(sub, ()))
            return rows
        keyset = set(key)
        return [i for k, idx in self._by_chemsys.items() if keyset.issuperset(k) for i in idx]

    def entries_in(self, key: tuple[str, ...]) -> list[HullEntry]:
        """The reference entries whose elements are a subset of the chemical system ``key``
        (a :func:`chemsys_key`), in table order; the synthetic elemental terminals of
        :meth:`phase_diagram` are not among them."""
        ids = self.entries["entry_id"]
        return [HullEntry(i, str(ids.iat[i]), self._comps[i], float(self._e_form[i]))
                for i in self._subsystems(key)]

    def phase_diagram(self, key: tuple[str, ...]) -> tuple[PhaseDiagram, int]:
        """(PhaseDiagram, n reference entries) for a chemical system, cached."""
        if key not in self._pd_cache:
            from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
            from pymatgen.core.composition import Composition

            rows = self._subsystems(key)
            entries = [PDEntry(Composition({el: 1}), 0.0, name=f"{el} (reference)") for el in key]
            entries += [PDEntry(self._comps[i], float(self._e_form[i]) * self._comps[i].num_atoms,
                                name=str(self.entries["entry_id"].iat[i])) for i in rows]
            self._pd_cache[key] = (PhaseDiagram(entries), len(rows))
        return self._pd_cache[key]

    def e_above_hull(self, composition: Composition, e_form_per_atom: float) -> HullResult:
        """Energy above this hull (eV/atom) of a composition with that formation energy."""
        from pymatgen.analysis.phase_diagram import PDEntry

        comp = composition.element_composition
        key = chemsys_key(e.symbol for e in comp.elements)
        missing = [e for e in key if e not in self.mu]
        if missing:
            return HullResult(math.nan, 0, f"element(s) {', '.join(missing)} absent from reference '{self.name}'")
        if not math.isfinite(e_form_per_atom):
            return HullResult(math.nan, 0, "no formation energy")
        try:
            pd_, n_ref = self.phase_diagram(key)
            entry = PDEntry(comp, e_form_per_atom * comp.num_atoms)
            _, e_hull = pd_.get_decomp_and_e_above_hull(entry, allow_negative=True)
        except Exception as exc:  # noqa: BLE001 - any pymatgen failure is this structure's reason, not a crash
            return HullResult(math.nan, 0, f"hull error: {type(exc).__name__}: {exc}")
        if e_hull is None:  # pymatgen returns None only with on_error="ignore", not used here
            return HullResult(math.nan, 0, "hull error: no decomposition")
        return HullResult(float(e_hull), int(n_ref), None)


class HullSet:
    """The hulls of one reference, by mode (``dft`` or an own-MLIP name), built lazily."""

    def __init__(self, builders: Mapping[str, Callable[[], HullReference]], default: str = "dft"):
        self._builders = dict(builders)
        self.default = default
        self._built: dict[str, HullReference] = {}

    @property
    def modes(self) -> list[str]:
        return list(self._builders)

    def get(self, mode: str | None = None) -> HullReference:
        mode = mode or self.default
        if mode not in self._builders:
            raise ValueError(f"this reference has no '{mode}' hull; available: {', '.join(self._builders)}")
        if mode not in self._built:
            self._built[mode] = self._builders[mode]()
        return self._built[mode]


# ---- loaders -------------------------------------------------------------------------------

def mp_elemental_mu(path: Path) -> dict[str, float]:
    """MP elemental reference energies per atom (eV/atom) from the gzipped pymatgen JSON."""
    from pymatgen.entries.computed_entries import ComputedEntry

    with gzip.open(path, "rt") as fh:
        raw = json.load(fh)
    items = raw.items() if isinstance(raw, dict) else ((None, e) for e in raw)
    mu: dict[str, float] = {}
    for _, d in items:
        e = ComputedEntry.from_dict(d)
        mu[e.composition.elements[0].symbol] = e.energy_per_atom
    return mu


def load_mp20_hull(data: DataDir) -> HullSet:
    """MP-20 hulls: ``dft`` (default) and own-MLIP ``mace``/``orb``/``uma`` from mp20_hull.parquet."""
    table_path = data.path(f"{MP20_DIR}/mp20_hull.parquet")
    elements_path = data.path(f"{MP20_DIR}/mp_elemental_reference_entries.json.gz")

    def table() -> pd.DataFrame:
        return pd.read_parquet(table_path)

    def dft() -> HullReference:
        df = table()
        entries = pd.DataFrame({"entry_id": df["material_id"], "formula": df["formula"],
                                "e_form_per_atom": df["e_form_per_atom_mp2020_dft"]})
        return HullReference("mp20/dft", "dft-mp2020", entries, mp_elemental_mu(elements_path),
                             source="MP-20 DFT (MP2020-corrected) formation energies + MP elemental references")

    def own(kind: str) -> Callable[[], HullReference]:
        def build() -> HullReference:
            column, compatible, model = MP20_OWN_HULLS[kind]
            mu_path = data.path(f"{MP20_DIR}/mlip_elemental_mu.json")
            mu = json.loads(Path(mu_path).read_text())[kind]
            df = table()
            return from_total_energies(f"mp20/{kind}", f"mlip:{kind}", df["material_id"], df["formula"],
                                       df[column].to_numpy(float), mu, compatible,
                                       source=f"MP-20 {column} ({model}) on the DFT geometries")
        return build

    return HullSet({"dft": dft, **{k: own(k) for k in MP20_OWN_HULLS}}, default="dft")


def from_total_energies(name: str, energy_scale: str, ids: Iterable[object], formulas: Sequence[str] | pd.Series[str],
                        energies: Sequence[float] | npt.NDArray[np.float64], mu: Mapping[str, float],
                        compatible: dict[str, list[str]] | None = None, source: str = "") -> HullReference:
    """A HullReference from total energies per cell (eV) and elemental μ (eV/atom)."""
    from pymatgen.core.composition import Composition

    e_form: list[float] = []
    for f, e in zip(formulas, energies, strict=True):
        c = Composition(f)
        if not math.isfinite(e) or any(el.symbol not in mu for el in c.elements):
            e_form.append(math.nan)
            continue
        e_form.append((e - sum(mu[el.symbol] * n for el, n in c.items())) / c.num_atoms)
    entries = pd.DataFrame({"entry_id": list(map(str, ids)), "formula": list(formulas),
                            "e_form_per_atom": e_form})
    entries = entries[np.isfinite(entries["e_form_per_atom"])].reset_index(drop=True)
    return HullReference(name, energy_scale, entries, {k: float(v) for k, v in mu.items()},
                         compatible or {}, source)


def write_hull_file(hull: HullReference, path: str | Path) -> Path:
    """Write the compact parquet form of ``hull`` (see module docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(hull.entries[["entry_id", "formula", "e_form_per_atom"]], preserve_index=False)
    meta = {"name": hull.name, "energy_scale": hull.energy_scale, "mu": hull.mu,
            "compatible": hull.compatible, "source": hull.source}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def load_hull_file(path: str | Path) -> HullReference:
    """Read a compact hull parquet written by :func:`write_hull_file`."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise ValueError(f"{path} is not a compact hull file (no '{META_KEY.decode()}' metadata)")
    meta = json.loads(raw)
    return HullReference(meta["name"], meta["energy_scale"], table.to_pandas(), meta["mu"],
                         meta.get("compatible", {}), meta.get("source", ""))
