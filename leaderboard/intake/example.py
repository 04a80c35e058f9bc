"""The example submission: MatterGen's unconditional base-model samples, honestly labelled.

The MatterGen paper's CIF archive (``structures/mattergen_paper/cifs.zip`` in the data
directory) mixes conditional samples (band gap, chemical system, magnetic density, bulk
modulus, space group, experimental), base-model samples and random-search/substitution
baselines. The example keeps only the base model's unconditional samples, the folder
``cifs/mattergen/mattergen_base/``: 21 structures, each released twice, as generated and as
a ``*_symmetrized.cif`` twin. The twins are left out so that no structure is submitted twice
(which would halve uniqueness). The zip is built at run time in a temporary folder; no data
is copied into the repository.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from evaluator.data import DataDir, MissingDataError

PAPER_ZIP_REL = "structures/mattergen_paper/cifs.zip"
BASE_FOLDER = "cifs/mattergen/mattergen_base/"
TWIN_SUFFIX = "_symmetrized.cif"
EXAMPLE_NAME = "mattergen_base_unconditional.zip"

EXAMPLE_META = {
    "model_name": "MatterGen (base model)",
    "model_version": "paper release 2025",
    "organisation": "Microsoft Research (example upload)",
    "training_set": "Alex-MP-20",
    "task": "unconditional",
    "relaxed_before_submission": True,
    "relaxation_method": "DFT (as released with the MatterGen paper)",
    "paper_url": "https://www.nature.com/articles/s41586-025-08628-5",
    "code_url": "https://github.com/microsoft/mattergen",
    "license": "MIT",
    "notes": "Example submission: the unconditional samples of the MatterGen base model released with "
             "the paper (cifs/mattergen/mattergen_base), as generated; their _symmetrized twins, the "
             "paper's conditional samples and its baselines are left out.",
}


def base_members(names: list[str]) -> list[str]:
    """The archive members that are base-model samples as generated (no symmetrized twins)."""
    return sorted(n for n in names
                  if n.startswith(BASE_FOLDER) and n.endswith(".cif") and not n.endswith(TWIN_SUFFIX)
                  and "/" not in n[len(BASE_FOLDER):])


def paper_zip() -> Path | None:
    """The MatterGen paper archive in the data directory (GENBENCH_DATA_DIR), or None."""
    try:
        return DataDir().path(PAPER_ZIP_REL)
    except MissingDataError:
        return None


def build_example(source: Path | None = None, out_dir: Path | None = None) -> tuple[Path, int] | None:
    """Write the example zip (base samples only, flat names) to ``out_dir`` (default: a new
    temporary folder, which Gradio may serve); returns (path, number of CIFs) or None when
    the paper archive is not in the data directory."""
    source = source or paper_zip()
    if source is None:
        return None
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="genbench-example-"))
    out = out_dir / EXAMPLE_NAME
    with zipfile.ZipFile(source) as src:
        members = base_members(src.namelist())
        if not members:
            raise ValueError(f"{source} has no CIFs under {BASE_FOLDER}")
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
            for name in members:
                dst.writestr(PurePosixPath(name).name, src.read(name))
    return out, len(members)
