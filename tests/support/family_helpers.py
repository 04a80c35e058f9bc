"""Helpers for the diversity / distribution / HHI tests (imported explicitly)."""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path


from evaluator.config import EvalConfig
from evaluator.context import EvalContext
from evaluator.data import DataDir
from evaluator.ingest.types import Item
from evaluator.pipeline import build_table, reference_loader


def make_ctx(structures, data=None, **config) -> EvalContext:
    """An EvalContext over ``structures`` (all parsed; no validity column), with the
    usual reference loader (and CHGNet unless ``mlip`` is given). Family options go to
    ``family.run(ctx, options)``."""
    items = [Item(f"s{i}", s) for i, s in enumerate(structures)]
    table, parsed = build_table(items)
    config.setdefault("mlip", "chgnet")  # tests that need *a* model pin CHGNet (the default, SevenNet-l3i5, is ~3.5x)
    cfg = EvalConfig(**config)
    data = data or DataDir()
    return EvalContext(table, parsed, cfg, data, reference_loader=reference_loader(cfg, data))


@lru_cache(maxsize=4)
def read_cifs(folder: str, limit: int | None = None) -> tuple:
    """Structures of the CIFs in ``folder`` (sorted by name), cached per session."""
    from pymatgen.core import Structure

    files = sorted(Path(folder).glob("*.cif"))[:limit]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(Structure.from_file(p) for p in files)
