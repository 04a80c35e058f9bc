"""Shared test set-up: single-threaded BLAS (2-core machines), data paths, and the app
server fixtures (``tests/support/app_fixtures.py``: the UI tests and the hostile-upload
endpoint test use them). Tests live in folders mirroring the packages; helper modules
shared across folders are in ``tests/support`` (on pytest's pythonpath)."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from evaluator.data import DataDir  # noqa: E402

pytest_plugins = ["app_fixtures"]


@pytest.fixture(scope="session")
def data() -> DataDir:
    return DataDir()


@pytest.fixture(scope="session")
def mp_sample(data) -> Path:
    return data.path("structures/mp_sample")
