"""Evaluation protocols: everything a published number depends on, as one record with a
short stable id and a readable label.

A protocol record holds the summary schema version, the MLIP (backend, model, checkpoint
sha256, dtype, energy scale), the reference (id + content hash), the hull choice, the
relaxation settings (optimizer, cell filter, fmax, step cap), the stability thresholds,
the ingestion limits that decide which structures are read, and every family option that
changes a value. Its id is the first 12 hex digits of the sha256 of its canonical JSON
(sorted keys, no spaces, integral floats written as integers), so it is the same in every
process and for every key order, and changes when any of those settings changes.

What only decides *how* a run executes (device, processes, batch sizes, engine, time and
memory bounds of a process) is not part of it: those options are listed in
``EXECUTION_ONLY`` (family options) and ``EXECUTION_ONLY_LIMITS`` (ingestion limits), and
are recorded beside the protocol (``execution_of``). Every other option of a family's
options dataclass is part of the protocol, so a newly added option changes the id unless
it is declared execution-only here (``tests/evaluator/test_protocol.py`` checks the lists).

Named protocols (``PRESETS``) are the ones a service can pin by name: ``default``
(SevenNet-l3i5 with MP2020 corrections against the MP-20 DFT hull, on every device) and
``chgnet`` (CHGNet 0.3.0, opt-in). ``evaluator.config.build_config(protocol=...)`` starts
from a preset.

Summaries written before protocols existed get one derived from their provenance
(``derive_protocol``) where it records every part, else none ("protocol unknown").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.config import DEFAULT_PRESET, PRESETS, EvalConfig, IngestLimits
from evaluator.data import DataDir, sha256_file
from evaluator.family_registry import FAMILIES
from evaluator.mlip import describe_mlip
from evaluator.reference.registry import load_reference
from evaluator.summary import SCHEMA_VERSION, ProtocolBlock

if TYPE_CHECKING:
    from evaluator.families.base import Family

PROTOCOL_VERSION = 1
"""Version of the record's layout (part of the record)."""
ID_LENGTH = 12

# Family options that change how a run executes, never a value: left out of the protocol.
EXECUTION_ONLY: dict[str, frozenset[str]] = {
    "validity": frozenset({"workers", "start_method"}),
    "novelty": frozenset({"identity_processes"}),
    "stability": frozenset({"relax_mode", "relax_workers", "relax_max_atoms"}),
    "distribution": frozenset({"fd_build_reference"}),
}
# Ingestion limits that bound a reading process (or the app's upload check), not what is read.
EXECUTION_ONLY_LIMITS = frozenset({"read_workers", "max_read_seconds", "max_read_memory_bytes",
                                   "max_check_seconds"})
# EvalConfig fields and where the record takes them from (a new field must be placed here).
CONFIG_IN_RECORD = frozenset({"reference", "mlip", "mlip_model", "dtype", "relax_fmax", "relax_steps",
                              "stable_threshold", "metastable_threshold", "limits", "options"})
# families: which numbers, not their values; execution: the local or Ray executor (issue 22: the Ray actors
# run the local executor's functions, energies equal within 1e-6 eV/atom, tests/evaluator/families/
# stability/test_ray_executor.py)
CONFIG_EXECUTION_ONLY = frozenset({"device", "families", "execution"})

# Why the engine is beside the protocol, not in it: the batched engine and the ASE path give the
# same E_hull within these tolerances (eV/atom) on CPU (tests/evaluator/families/stability/
# test_stability_family.py::test_sevenn_family_engine_mode_matches_serial_mode; on 32 structures
# bench/engine_agreement.py measured 2.9e-6 unrelaxed and <= 0.01 relaxed).
ENGINE_AGREEMENT_EV_PER_ATOM = {"unrelaxed": 1e-4, "relaxed": 1e-3}

# Options added after summaries without a protocol block were written, with the value that
# reproduces what those runs did (``derive_protocol`` fills them in where the provenance does
# not record them): their only space group was spglib's at 0.01 Å, 5°.
LEGACY_OPTION_VALUES: dict[str, dict[str, Any]] = {
    "validity": {"spacegroup_symprec": 0.01, "spacegroup_angle_tolerance": 5.0},
}

_MODEL_LABELS = {("sevenn", "7net-l3i5"): "SevenNet-l3i5", ("sevenn", "7net-0"): "SevenNet-0",
                 ("sevenn", "7net-0_22may2024"): "SevenNet-0 (22 May 2024)"}
_BACKEND_LABELS = {"chgnet": "CHGNet", "sevenn": "SevenNet", "mace": "MACE"}
_REFERENCE_LABELS = {"mp20": "MP-20"}
# What novelty is measured against, as a reader needs it next to the number ("novel w.r.t. …").
NOVELTY_REFERENCE_LABELS = {"mp20": "MP-20 (≤ 20 atoms)", "lemat-bulk": "LeMat-Bulk"}


class ProtocolError(ValueError):
    """The protocol of a configuration cannot be produced here (e.g. missing weights)."""


@dataclass(frozen=True)
class Protocol:
    """One protocol: its record, id (12 hex digits) and label."""

    id: str
    label: str
    record: dict[str, Any]

    def block(self) -> ProtocolBlock:
        """The ``protocol`` block of ``summary.json``."""
        return {"id": self.id, "label": self.label, "record": self.record}

    def describe(self) -> str:
        """``label (id)`` for messages."""
        return f"{self.label} ({self.id})"


# ------------------------------------------------------------------ canonical form
def _normalise(value: Any) -> Any:
    """JSON-ready value with one spelling per number (30.0 -> 30) and sorted mappings."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return str(value)


def canonical_json(record: Mapping[str, Any]) -> str:
    """The record as canonical JSON: sorted keys, no spaces, normalised numbers."""
    return json.dumps(_normalise(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def protocol_id(record: Mapping[str, Any]) -> str:
    """First 12 hex digits of the sha256 of the record's canonical JSON."""
    return hashlib.sha256(canonical_json(record).encode()).hexdigest()[:ID_LENGTH]


def label_of(record: Mapping[str, Any]) -> str:
    """A readable name, e.g. ``SevenNet-l3i5 · MP-20 hull · FIRE fmax 0.02, 300 steps``."""
    mlip = record.get("mlip") or {}
    backend, model = str(mlip.get("backend")), str(mlip.get("model"))
    name = _MODEL_LABELS.get((backend, model)) or f"{_BACKEND_LABELS.get(backend, backend)} {model}"
    if mlip.get("dtype") not in (None, "float32"):
        name += f" ({mlip.get('dtype')})"
    ref = record.get("reference") or {}
    ref_name = _REFERENCE_LABELS.get(str(ref.get("id")), Path(str(ref.get("id"))).name)
    hull = record.get("hull") or {}
    if hull.get("file_sha256"):
        hull_name = f"hull file {str(hull['file_sha256'])[:8]}"
    elif hull.get("mode"):
        hull_name = f"{ref_name} {hull['mode']} hull"
    else:
        hull_name = f"{ref_name} hull"
    relax = record.get("relaxation") or {}
    fmax = _normalise(relax.get("fmax_eV_per_A"))
    return (f"{name} · {hull_name} · {relax.get('optimizer', 'FIRE')} fmax {fmax}, "
            f"{relax.get('max_steps')} steps")


def reference_label(record: Mapping[str, Any] | None) -> str | None:
    """The novelty reference a protocol record names, for a caveat such as "novel w.r.t.
    MP-20 (≤ 20 atoms)": a registered label, else the reference's own id (a built
    reference's folder or ``--id``); None when the record names none."""
    ref = (record or {}).get("reference")
    ref_id = ref.get("id") if isinstance(ref, Mapping) else None
    if not ref_id:
        return None
    return NOVELTY_REFERENCE_LABELS.get(str(ref_id), Path(str(ref_id)).name)


def make_protocol(record: Mapping[str, Any]) -> Protocol:
    rec = _normalise(record)
    return Protocol(protocol_id(rec), label_of(rec), rec)


# ------------------------------------------------------------------ the record
def value_options(family: Family[Any], options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A family's effective options (defaults filled in, checked by its dataclass) without
    the execution-only ones."""
    typed = family.options_from(options)
    skip = EXECUTION_ONLY.get(family.name, frozenset())
    return {k: v for k, v in dataclasses.asdict(typed).items() if k not in skip}


def _limits(limits: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in limits.items() if k not in EXECUTION_ONLY_LIMITS}


def build_record(*, mlip: Mapping[str, Any], reference: Mapping[str, Any], dtype: str, fmax: float,
                 steps: int, stable: float, metastable: float, limits: Mapping[str, Any],
                 options: Mapping[str, Mapping[str, Any]], hull_file_sha256: str | None = None,
                 families: Sequence[Family[Any]] = FAMILIES) -> dict[str, Any]:
    """The protocol record from resolved parts.

    mlip: {"backend", "model", "checkpoint_sha256", "energy_scale"}; reference: {"id",
    "content_hash"}; options: raw options by family (defaults are filled in, execution-only
    ones dropped); hull_file_sha256 replaces the path of ``stability.hull_file``.
    """
    by_family = {f.name: value_options(f, options.get(f.name)) for f in families}
    stability = by_family.get("stability", {})
    if stability.get("hull_file") is not None:
        stability["hull_file"] = f"sha256:{hull_file_sha256}"
    return {
        "protocol_version": PROTOCOL_VERSION,
        "summary_schema_version": SCHEMA_VERSION,
        "mlip": {"backend": mlip["backend"], "model": mlip["model"], "checkpoint_sha256": mlip["checkpoint_sha256"],
                 "dtype": dtype, "energy_scale": mlip["energy_scale"]},
        "reference": {"id": reference["id"], "content_hash": reference["content_hash"]},
        "hull": {"mode": stability.get("hull"), "file_sha256": hull_file_sha256},
        "relaxation": {"optimizer": "FIRE", "cell_filter": "FrechetCellFilter", "fmax_eV_per_A": fmax,
                       "max_steps": steps},
        "thresholds_eV_per_atom": {"stable": stable, "metastable": metastable},
        "ingest": _limits(limits),
        "options": by_family,
    }


def _mlip_part(config: EvalConfig) -> dict[str, Any]:
    scale = (config.options.get("stability") or {}).get("mlip_energy_scale")
    try:
        spec = describe_mlip(config.mlip, config.mlip_model, scale)
    except (ValueError, KeyError, ImportError, OSError) as exc:
        raise ProtocolError(f"MLIP {config.mlip} ({config.mlip_model or 'default model'}) is not available "
                            f"here: {exc}") from None
    sha = spec.checkpoint_sha256
    if sha is None:
        raise ProtocolError(f"MLIP {spec.name} ({spec.model_id}): checkpoint "
                            f"{spec.checkpoint_path or '(not downloaded)'} not found, so its weights cannot be "
                            "identified")
    return {"backend": spec.name, "model": spec.model_id, "checkpoint_sha256": sha,
            "energy_scale": spec.energy_scale}


def _reference_part(config: EvalConfig, data: DataDir) -> dict[str, Any]:
    try:
        ref = load_reference(config.reference, data)
        return {"id": ref.id, "content_hash": ref.content_hash}
    except (ValueError, OSError) as exc:
        raise ProtocolError(f"reference {config.reference!r} is not available here: {exc}") from None


def protocol_of(config: EvalConfig, data: DataDir | None = None) -> Protocol:
    """The protocol a run of ``config`` produces. Hashes the MLIP checkpoint and the
    reference files (no model is loaded); raises ``ProtocolError`` when either is missing,
    and ValueError for an unknown or ill-typed option."""
    data = data or DataDir()
    hull_file = (config.options.get("stability") or {}).get("hull_file")
    hull_sha = None
    if hull_file:
        try:
            hull_sha = sha256_file(Path(hull_file))
        except OSError as exc:
            raise ProtocolError(f"hull file {hull_file} is not readable: {exc}") from None
    record = build_record(mlip=_mlip_part(config), reference=_reference_part(config, data), dtype=config.dtype,
                          fmax=config.relax_fmax, steps=config.relax_steps, stable=config.stable_threshold,
                          metastable=config.metastable_threshold, limits=dataclasses.asdict(config.limits),
                          options=config.options, hull_file_sha256=hull_sha)
    return make_protocol(record)


def execution_of(config: EvalConfig, stability_provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What is recorded beside the protocol: device, engine, batch size, processes and the
    executor (``ray``: the cluster and actors, from the stability provenance)."""
    relax = (stability_provenance or {}).get("relaxation") or {}
    ran = (stability_provenance or {}).get("execution") or {}
    stability = config.options.get("stability") or {}
    return {"executor": ran.get("executor") or config.execution.executor,
            "ray": {k: v for k, v in ran.items() if k != "executor"} if ran.get("executor") == "ray" else None,
            "device": relax.get("device") or config.device,
            "relax_mode": relax.get("mode") or stability.get("relax_mode", "auto"),
            "engine": relax.get("engine"),
            "relax_workers": relax.get("workers", stability.get("relax_workers")),
            "relax_max_atoms": stability.get("relax_max_atoms"),
            "families": list(config.families) if config.families else None}


# ------------------------------------------------------------------ stored summaries
def from_block(block: Any) -> Protocol | None:
    """The Protocol of a summary's ``protocol`` block, or None when it is absent or its id
    does not match its record (a hand-edited block is not trusted)."""
    if not isinstance(block, Mapping) or not isinstance(block.get("record"), Mapping):
        return None
    protocol = make_protocol(block["record"])
    return protocol if protocol.id == block.get("id") else None


def derive_protocol(provenance: Mapping[str, Any]) -> Protocol | None:
    """The protocol of a summary written before the ``protocol`` block existed, from its
    provenance: the config, each family's effective options, the reference's content hash
    and the stability family's MLIP record (checkpoint sha256). None when a part is not
    recorded (stability did not run, no reference hash, ...): "protocol unknown"."""
    config = provenance.get("config")
    reference = provenance.get("reference")
    stability = ((provenance.get("family") or {}).get("stability") or {})
    mlip = stability.get("mlip") if isinstance(stability, Mapping) else None
    if not (isinstance(config, Mapping) and isinstance(reference, Mapping) and isinstance(mlip, Mapping)):
        return None
    if not (reference.get("id") and reference.get("content_hash") and mlip.get("checkpoint_sha256")):
        return None
    options = provenance.get("options")
    options = options if isinstance(options, Mapping) else {}
    given = config.get("options")
    given = given if isinstance(given, Mapping) else {}
    raw = {**{k: dict(v) for k, v in given.items() if isinstance(v, Mapping)},
           **{k: dict(v) for k, v in options.items() if isinstance(v, Mapping)}}
    for family, legacy in LEGACY_OPTION_VALUES.items():
        raw[family] = {**legacy, **raw.get(family, {})}
    scale = (raw.get("stability") or {}).get("mlip_energy_scale")
    try:
        energy_scale = scale or describe_mlip(str(mlip.get("name"))).energy_scale  # the backend's scale
        known = {f.name: {f2.name for f2 in dataclasses.fields(f.options)} for f in FAMILIES}
        options_now = {fam: {k: v for k, v in opts.items() if k in known.get(fam, set())}
                       for fam, opts in raw.items() if fam in known}
        if (options_now.get("stability") or {}).get("hull_file"):
            return None  # the hull file's content was not recorded
        record = build_record(
            mlip={"backend": mlip.get("name"), "model": mlip.get("model_id"),
                  "checkpoint_sha256": mlip.get("checkpoint_sha256"), "energy_scale": energy_scale},
            reference=reference, dtype=str(config.get("dtype", "float32")),
            fmax=float(config.get("relax_fmax", 0.02)), steps=int(config.get("relax_steps", 300)),
            stable=float(config.get("stable_threshold", 0.0)),
            metastable=float(config.get("metastable_threshold", 0.1)),
            limits={**dataclasses.asdict(IngestLimits()), **(config.get("limits") or {})}, options=options_now,
            hull_file_sha256=None)
    except (ValueError, TypeError, KeyError, ImportError, OSError):
        return None
    return make_protocol(record)


def summary_protocol(summary: Mapping[str, Any]) -> tuple[Protocol | None, str]:
    """(protocol, source) of a stored summary: source is ``summary`` (its block),
    ``derived`` (from an older summary's provenance) or ``unknown`` (protocol None)."""
    block = summary.get("protocol")
    if block is not None:
        found = from_block(block)
        return (found, "summary") if found is not None else (None, "unknown")
    prov = summary.get("provenance")
    derived = derive_protocol(prov) if isinstance(prov, Mapping) else None
    return (derived, "derived") if derived is not None else (None, "unknown")


__all__ = ["DEFAULT_PRESET", "ENGINE_AGREEMENT_EV_PER_ATOM", "EXECUTION_ONLY", "EXECUTION_ONLY_LIMITS", "PRESETS",
           "Protocol", "ProtocolError", "build_record", "canonical_json", "derive_protocol", "execution_of",
           "from_block", "label_of", "make_protocol", "protocol_id", "protocol_of", "reference_label",
           "summary_protocol"]
