"""The one Reference every family compares against.

A Reference has an id, a content hash (over the data files that define it) and
lazily loaded components:
- ``novelty``: what novelty compares against (fingerprints only, or fingerprints
  plus structures indexed by reduced formula) — see ``evaluator.identity``;
- ``hull``: reference convex-hull energies and their energy scale — see
  ``evaluator.reference.hull``. None when the reference has no energies.
- ``coverage``: what it covers (one sentence, size, largest cell) — see
  ``evaluator.reference.coverage``.

This module is a leaf (it imports only ``evaluator.data``, and the component types
for type checking): the registered references and ``load_reference`` live in
``evaluator.reference.registry``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from evaluator.data import sha256_file

if TYPE_CHECKING:
    from evaluator.identity.fingerprint_index import FingerprintIndex
    from evaluator.identity.structure_index import StructureIndex
    from evaluator.reference.hull import HullReference, HullSet


class Coverage(TypedDict):
    """What a reference covers (``evaluator.reference.coverage``): one sentence, its
    size and its largest cell in sites (None when unknown)."""

    description: str
    n_structures: int
    max_sites: int | None


@dataclass
class Reference:
    id: str
    description: str
    files: dict[str, Path]  # name -> file; their hashes make the content hash
    novelty_loader: Callable[[], FingerprintIndex | StructureIndex] | None = None
    hull_loader: Callable[[], HullSet | HullReference] | None = None
    info: dict[str, Any] = field(default_factory=dict)  # JSON provenance, merged into describe()
    coverage_loader: Callable[[], Coverage] | None = None  # see evaluator.reference.coverage

    @cached_property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(f"{name}={sha256_file(self.files[name])}\n".encode())
        return h.hexdigest()

    @cached_property
    def novelty(self) -> FingerprintIndex | StructureIndex:
        """Fingerprints only (``FingerprintIndex``) or structures by formula (``StructureIndex``)."""
        if self.novelty_loader is None:
            raise ValueError(f"reference '{self.id}' has no structures or fingerprints for novelty")
        return self.novelty_loader()

    @cached_property
    def hull(self) -> HullSet | HullReference:
        """The hulls by mode (``HullSet``) or a single hull (``HullReference``)."""
        if self.hull_loader is None:
            raise ValueError(f"reference '{self.id}' has no energies: it cannot score stability")
        return self.hull_loader()

    @cached_property
    def coverage(self) -> Coverage | None:
        """{"description", "n_structures", "max_sites"} (``evaluator.reference.coverage``)."""
        return self.coverage_loader() if self.coverage_loader is not None else None

    def describe(self) -> dict[str, Any]:
        """Provenance: id, content hash, description, coverage and component details."""
        return {"id": self.id, "content_hash": self.content_hash,
                "description": self.description, "coverage": self.coverage, **self.info}

