"""What kind of file a name (and its first bytes) is, and which files to skip.

Detection is by file name; content is only sniffed for pickles (refused) and
zip archives without a ``.zip`` name.
"""

from __future__ import annotations

import re

STRUCTURE_COLUMNS = ("structure", "cif", "cif_string", "LeMatStructs")

ACCEPTED = (
    ".cif (multi-block allowed), POSCAR/CONTCAR (POSCAR*, CONTCAR*, *.vasp, *.poscar), "
    ".extxyz/.xyz (periodic, with Lattice=), .csv with a "
    + "/".join(STRUCTURE_COLUMNS)
    + " column (CIF text or pymatgen Structure JSON), .json/.jsonl (pymatgen Structure dicts), "
    "archives of these (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz) and single gzip files (e.g. .cif.gz)"
)

PICKLE_MESSAGE = (
    "pickle files are refused: loading a pickle can execute arbitrary code. "
    "Save your structures as CIF files (e.g. a .zip of CIFs), extxyz, or a CSV/JSON of "
    "pymatgen Structure dicts (structure.as_dict()) instead"
)

TEXT_KINDS = ("cif", "poscar", "xyz", "csv", "json", "jsonl")
ARCHIVE_KINDS = ("zip", "tar", "tar.gz", "tar.bz2", "tar.xz")

_PICKLE_EXT = (".pkl", ".pickle", ".pt", ".pth", ".joblib")
_SUFFIXES = (  # longest first
    ((".tar.gz", ".tgz"), "tar.gz"),
    ((".tar.bz2", ".tbz2", ".tbz"), "tar.bz2"),
    ((".tar.xz", ".txz"), "tar.xz"),
    ((".tar",), "tar"),
    ((".zip",), "zip"),
    ((".gz",), "gz"),
    ((".cif",), "cif"),
    ((".vasp", ".poscar"), "poscar"),
    ((".extxyz", ".xyz"), "xyz"),
    ((".csv",), "csv"),
    ((".jsonl", ".ndjson"), "jsonl"),
    ((".json",), "json"),
)
# Not structures, skipped silently in folders and archives.
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
_DOC_RE = re.compile(
    r"(^(readme|license|licence|changelog|notice)(\..*)?$)|"
    r"\.(md|txt|rst|pdf|png|jpe?g|gif|svg|html?|log|ya?ml|toml|ini|cfg|py|ipynb|sh)$",
    re.I,
)


def basename(name: str) -> str:
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def is_pickle_magic(head: bytes) -> bool:
    """Pickle protocol 2-5 streams start with 0x80 and the protocol number."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def detect(name: str, head: bytes = b"") -> str:
    """One of TEXT_KINDS, ARCHIVE_KINDS, "gz", "pickle" or "unknown"."""
    low = basename(name).lower()
    if low.endswith(_PICKLE_EXT) or is_pickle_magic(head):
        return "pickle"
    if low.startswith(("poscar", "contcar")):
        return "poscar"
    for suffixes, kind in _SUFFIXES:
        if low.endswith(suffixes):
            return kind
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return "unknown"


def strip_gz(name: str) -> str:
    """``a.cif.gz`` -> ``a.cif`` (the name used to detect the inner format)."""
    return name[:-3] if name.lower().endswith(".gz") else name


def is_ignored(relpath: str) -> bool:
    """Hidden files, macOS/Windows junk and documentation: not part of a submission.

    A name that is a structure format (or an archive, or a pickle, which is refused) is
    never documentation, whatever it looks like (``README.cif``, ``LICENSE.vasp``,
    ``POSCAR.txt``): it is read."""
    parts = [p for p in relpath.replace("\\", "/").split("/") if p]
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return True
    name = parts[-1] if parts else ""
    if name.lower() in _JUNK_NAMES:
        return True
    return bool(_DOC_RE.search(name)) and detect(name) == "unknown"
