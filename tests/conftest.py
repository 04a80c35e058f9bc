"""Shared test set-up: single-threaded BLAS (2-core machines) and data paths."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from evaluator.data import DataDir  # noqa: E402


@pytest.fixture(scope="session")
def data() -> DataDir:
    return DataDir()


@pytest.fixture(scope="session")
def mp_sample(data) -> Path:
    return data.path("structures/mp_sample")
