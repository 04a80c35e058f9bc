"""The one Reference every family compares against.

A Reference has an id, a content hash (over the data files that define it) and
lazily loaded components:
- ``novelty``: what novelty compares against (fingerprints only, or fingerprints
  plus structures indexed by reduced formula) — see ``evaluator.identity``;
- ``hull``: reference convex-hull energies and their energy scale — see
  ``evaluator.reference.hull``. None when the reference has no energies.
- ``coverage``: what it covers (one sentence, size, largest cell) — see
  ``evaluator.reference.coverage``.

This module is a leaf (it imports only ``evaluator.data``): the registered
references and ``load_reference`` live in ``evaluator.reference.registry``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from evaluator.data import sha256_file


@dataclass
class Reference:
    id: str
    description: str
    files: dict[str, Path]  # name -> file; their hashes make the content hash
    novelty_loader: Callable[[], Any] | None = None
    hull_loader: Callable[[], Any] | None = None
    info: dict = field(default_factory=dict)
    coverage_loader: Callable[[], dict] | None = None  # see evaluator.reference.coverage

    @cached_property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(f"{name}={sha256_file(self.files[name])}\n".encode())
        return h.hexdigest()

    @cached_property
    def novelty(self):
        if self.novelty_loader is None:
            raise ValueError(f"reference '{self.id}' has no structures or fingerprints for novelty")
        return self.novelty_loader()

    @cached_property
    def hull(self):
        if self.hull_loader is None:
            raise ValueError(f"reference '{self.id}' has no energies: it cannot score stability")
        return self.hull_loader()

    @cached_property
    def coverage(self) -> dict | None:
        """{"description", "n_structures", "max_sites"} (``evaluator.reference.coverage``)."""
        return self.coverage_loader() if self.coverage_loader is not None else None

    def describe(self) -> dict:
        """Provenance: id, content hash, description, coverage and component details."""
        return {"id": self.id, "content_hash": self.content_hash,
                "description": self.description, "coverage": self.coverage, **self.info}

