"""Agreement with LeMat-GenBench's validity verdicts on a fixed LeMat-Bulk subset.

The full 2,000-structure comparison is bench/validity_parity.py (99.1 % agreement);
here an evenly spread fixed subset keeps the test fast.
"""

from __future__ import annotations

import importlib.util

from evaluator.data import DataDir
from repo_paths import REPO

BENCH = REPO / "bench" / "validity_parity.py"


def _bench():
    spec = importlib.util.spec_from_file_location("validity_parity", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_agreement_with_lemat_genbench_at_least_90_percent():
    bench = _bench()
    files = bench.sample_files(DataDir(), limit=500)
    assert len(files) == 500
    cats = {cat for _, cat in files}
    assert {"both_valid", "both_invalid", "ours_valid_smact_invalid"} <= cats
    rows = bench.evaluate(files, workers=1)
    lemat = [bench.CATEGORIES[cat] for _, cat in files]
    ours = [bool(r["valid"]) for r in rows]
    agreement = sum(a == b for a, b in zip(lemat, ours)) / len(files)
    assert agreement >= 0.90, agreement
    # The subset has LeMat-invalid structures; we must reject most of them, not pass everything.
    invalid = [o for o, theirs in zip(ours, lemat) if not theirs]
    assert len(invalid) >= 10 and sum(not o for o in invalid) / len(invalid) >= 0.5
