"""Paths of the repository and of the test data, for tests in any folder."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
SUPPORT = TESTS / "support"  # helper modules; on pytest's pythonpath (pytest.ini)
BAD_INPUTS = TESTS / "bad_inputs"  # malformed uploads, one per failure mode
ARTIFACTS = TESTS / "artifacts"  # screenshots the browser tests leave for inspection
