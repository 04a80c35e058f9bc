"""Run configuration: every threshold a result depends on lives here and is
recorded in the summary's provenance.

``build_config`` is the one way the CLI and the worker turn user input into an
``EvalConfig``: explicit values, then ``GENBENCH_*`` environment variables, then the
defaults below. Family options are namespaced by family (``stability.relax_mode``);
the pipeline checks them against each family's options dataclass
(``evaluator.pipeline.check_config``), so a misspelled option is an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from evaluator.execution import ExecutionSettings
from evaluator.mlip import default_mlip

# Named protocols (evaluator.protocol): the config values a service pins by name
# (GENBENCH_PROTOCOL / build_config(protocol=...)); everything else keeps the defaults below.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"mlip": "sevenn", "mlip_model": None},  # SevenNet-l3i5 + MP2020 corrections, every device
    "chgnet": {"mlip": "chgnet", "mlip_model": None},  # CHGNet 0.3.0 (trained on MP2020-corrected labels), opt-in
}
DEFAULT_PRESET = "default"


@dataclass
class IngestLimits:
    """Safety limits on uploads; each breach is a clear IngestError."""

    max_upload_bytes: int = 200 * 1024**2
    max_archive_members: int = 20_000
    max_decompressed_bytes: int = 1024**3
    max_compression_ratio: float = 200.0
    max_atoms_per_structure: int = 500
    max_structures: int = 10_000
    max_json_depth: int = 64  # nesting levels of a JSON document (Structure dicts need < 10)
    # Reading one structure (block, frame, row, entry) runs in a child process, killed past
    # this wall-clock limit (s); None reads in this process, unbounded.
    max_read_seconds: float | None = 30.0
    max_read_memory_bytes: int | None = 6 * 1024**3  # address space of each reading process
    read_workers: int = 1  # reading processes (2 was slower than 1 on a loaded 2-core machine)
    max_check_seconds: float = 120.0  # the app's upload check (inspect_upload) as a whole (10,000 CIFs: ~85 s loaded)


@dataclass
class EvalConfig:
    """What to compute and how.

    options: family name -> {option name: value}, e.g. ``{"stability": {"relax_mode":
    "serial"}}``; each family turns its entry into its typed options dataclass.
    mlip: backend name (``build_config`` takes it from the named protocol, by default
    SevenNet-l3i5 on every device).
    """

    families: list[str] | None = None  # None = all registered families
    reference: str = "mp20"  # reference id (registry name) or path to a built reference
    mlip: str = "sevenn"  # SevenNet-l3i5 (evaluator.mlip.default_mlip), on CPU as on GPU
    mlip_model: str | None = None  # checkpoint path or foundation-model name
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "float32"
    relax_fmax: float = 0.02  # eV/Å
    relax_steps: int = 300
    stable_threshold: float = 0.0  # eV/atom, E_hull <= this is stable
    metastable_threshold: float = 0.1  # eV/atom, inclusive
    limits: IngestLimits = field(default_factory=IngestLimits)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # where the relaxations run (local or Ray): execution only, no value depends on it
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def family_options(self, family: str) -> dict[str, Any]:
        """The raw options of one family (``{}`` when none were given)."""
        return dict(self.options.get(family) or {})


ENV_PREFIX = "GENBENCH_"


def parse_option(pair: str) -> tuple[str, str, Any]:
    """``"stability.relax_mode=serial"`` -> ``("stability", "relax_mode", "serial")``.

    The value is JSON when it parses as JSON (numbers, booleans, lists), else the text.
    """
    key, sep, value = pair.partition("=")
    family, dot, name = key.strip().partition(".")
    if not sep or not dot or not family or not name:
        raise ValueError(f"an option is FAMILY.NAME=VALUE (e.g. stability.relax_mode=serial), got {pair!r}")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return family, name, parsed


def merge_options(*layers: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Family options of several layers, later layers overriding earlier ones key by key."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for family, values in (layer or {}).items():
            if not isinstance(values, Mapping):
                raise ValueError(f"options of family {family!r} must be an object of NAME: VALUE, "
                                 f"got {type(values).__name__}")
            out.setdefault(str(family), {}).update(values)
    return out


def build_config(
    *,
    families: str | Sequence[str] | None = None,
    reference: str | None = None,
    mlip: str | None = None,
    mlip_model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    relax_steps: int | None = None,
    options: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
    executor: str | None = None,
    ray_address: str | None = None,
    ray_actors: int | None = None,
    env: Mapping[str, str] | None = None,
    protocol: str | None = None,
) -> EvalConfig:
    """The EvalConfig of one run: explicit values, else ``GENBENCH_<NAME>`` variables
    (``GENBENCH_FAMILIES``, ``_REFERENCE``, ``_MLIP``, ``_MLIP_MODEL``, ``_DEVICE``,
    ``_DTYPE``, ``_RELAX_STEPS``, ``_OPTIONS`` = a JSON object ``{family: {name: value}}``,
    ``_EXECUTOR`` = local|ray, ``_RAY_ACTORS``), else the EvalConfig defaults. ``options`` is
    a list of ``FAMILY.NAME=VALUE`` strings or a mapping; it overrides ``GENBENCH_OPTIONS``
    key by key. ``protocol`` (else ``GENBENCH_PROTOCOL``, else ``default``) names the preset
    (``PRESETS``) the MLIP comes from when none is given: SevenNet-l3i5 on every device, or
    ``chgnet``. The Ray executor joins ``ray_address``, else ``$RAY_ADDRESS`` (read where it
    runs), else starts a local cluster. Option names are checked by the pipeline
    (``check_config``), not here.
    """
    env = os.environ if env is None else env

    def pick(value: Any, name: str) -> Any:
        return value if value not in (None, "") else (env.get(ENV_PREFIX + name) or None)

    cfg = EvalConfig()
    chosen = pick(families, "FAMILIES")
    if isinstance(chosen, str):
        chosen = chosen.split(",")
    if chosen:
        cfg.families = [f.strip() for f in chosen if f.strip()]
    cfg.reference = pick(reference, "REFERENCE") or cfg.reference
    cfg.device = pick(device, "DEVICE") or cfg.device
    cfg.dtype = pick(dtype, "DTYPE") or cfg.dtype
    steps = pick(relax_steps, "RELAX_STEPS")
    if steps is not None:
        cfg.relax_steps = int(steps)
    named = pick(protocol, "PROTOCOL") or DEFAULT_PRESET
    if named not in PRESETS:
        raise ValueError(f"unknown protocol {named!r}: named protocols are {', '.join(PRESETS)}")
    base = PRESETS[named]
    chosen_mlip = pick(mlip, "MLIP")
    cfg.mlip = chosen_mlip or base["mlip"] or default_mlip(cfg.device)
    cfg.mlip_model = pick(mlip_model, "MLIP_MODEL") or (None if chosen_mlip else base["mlip_model"])
    try:
        from_env = json.loads(env.get(ENV_PREFIX + "OPTIONS") or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"{ENV_PREFIX}OPTIONS is not JSON: {exc}") from None
    if not isinstance(from_env, dict):
        raise ValueError(f"{ENV_PREFIX}OPTIONS must be a JSON object {{family: {{name: value}}}}")
    given: dict[str, dict[str, Any]] = {}
    if isinstance(options, Mapping):
        given = merge_options(options)
    else:
        for pair in options or ():
            family, name, value = parse_option(pair)
            given.setdefault(family, {})[name] = value
    cfg.options = merge_options(from_env, given)
    actors = pick(ray_actors, "RAY_ACTORS")
    try:
        actors = int(actors) if actors is not None else None
    except ValueError:
        raise ValueError(f"the number of Ray actors must be a whole number, got {actors!r}") from None
    cfg.execution = ExecutionSettings(executor=pick(executor, "EXECUTOR") or "local",
                                      ray_address=ray_address or None, ray_actors=actors)
    return cfg
