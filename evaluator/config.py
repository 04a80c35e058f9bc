"""Run configuration: every threshold a result depends on lives here and is
recorded in the summary's provenance."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
    """What to compute and how. ``options`` carries family-specific extras."""

    families: list[str] | None = None  # None = all registered families
    reference: str = "mp20"  # reference id (registry name) or path to a built reference
    mlip: str = "chgnet"
    mlip_model: str | None = None  # checkpoint path or foundation-model name
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "float32"
    relax_fmax: float = 0.02  # eV/Å
    relax_steps: int = 300
    stable_threshold: float = 0.0  # eV/atom, E_hull <= this is stable
    metastable_threshold: float = 0.1  # eV/atom, inclusive
    limits: IngestLimits = field(default_factory=IngestLimits)
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)
