"""Cutting a file into structures is bounded like reading it (issue 25, item 3).

Before, a file was cut whole before the structure limit and outside the readers' memory
cap: 60 MB of blank JSON lines took 167 s and 5.1 GB, 190 MB of empty xyz frames grew the
app by 5.7 GB. Each case here (tests/support/split_cases.py, 20 MB generated at test time)
runs the app's upload check (``inspect_upload``) and the worker's read (``read_inputs``) in
a child process, and asserts the answer and a bound on time and peak memory growth
(ru_maxrss). The bounds are several times what the cut needs on a loaded 2-core machine
and far below what the unbounded cut took; bench/ingest_split_bounds.py gives the figures
at 190 MB.
"""

from __future__ import annotations

import pytest

from evaluator.config import IngestLimits
from evaluator.procpool import call_bounded
from hostile_helpers import measured_read
from split_cases import CASES, measured_check

pytestmark = pytest.mark.timeout(300)

SIZE = 20_000_000
GiB = 1024**3
MAX_SECONDS = 60
MAX_GROWTH_MIB = 300  # the 20 MB input itself is held 2-3 times (bytes, text, cut entries)
NONE_FIRST = "no structures found in its first 10,000 entries, nor after them"
EXPECTED = {  # case -> (rows, or None when refused; the start of the refusal, after the file name)
    "blank_jsonl": (1, None),  # one row: "empty file"
    "empty_objects_jsonl": (None, NONE_FIRST),
    "empty_xyz_frames": (None, "too many structures: more than 10,000 (max_structures)"),
    "blank_csv": (None, "no structures found in the upload"),
    "empty_cells_csv": (None, "too many structures: more than 10,000 (max_structures)"),
    "json_array_of_empty_objects": (None, "no structures found"),
    "json_array_of_empty_arrays": (None, "no structures found"),
    "empty_cif_blocks": (None, "too many CIF data blocks without a structure in blocks.cif: more than 10,000"),
    "many_cif_structures": (None, "too many structures: more than 10,000 (max_structures)"),
}


def test_every_case_has_an_expectation():
    assert set(EXPECTED) == set(CASES)


def _check(got: dict, case: str, rows_key: str) -> None:
    rows, refusal = EXPECTED[case]
    if rows is None:
        assert got["refused"] is not None and refusal in got["refused"], got
    else:
        assert got["refused"] is None and got[rows_key] == rows, got
    assert got["seconds"] < MAX_SECONDS and got["grew_mib"] < MAX_GROWTH_MIB, got


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_upload_check_cuts_within_bounds(tmp_path, case):
    path = CASES[case](tmp_path, SIZE)
    out = call_bounded(measured_check, ([str(path)], IngestLimits()), timeout_s=240, max_memory_bytes=8 * GiB)
    assert out.ok, out.error
    _check(out.value, case, "n_items")


@pytest.mark.parametrize("case", ["blank_jsonl", "empty_xyz_frames", "json_array_of_empty_arrays", "blank_csv"])
def test_the_worker_read_cuts_within_bounds(tmp_path, case):
    path = CASES[case](tmp_path, SIZE)
    out = call_bounded(measured_read, ([str(path)], IngestLimits()), timeout_s=240, max_memory_bytes=8 * GiB)
    assert out.ok, out.error
    got = dict(out.value)
    got["n_rows"] = len(got["rows"]) if got["rows"] is not None else None
    _check(got, case, "n_rows")
