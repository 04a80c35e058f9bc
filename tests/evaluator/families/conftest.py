"""Fixtures shared by the family tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def isolated_cache(tmp_path_factory):
    """Generated caches (FD statistics, MMD self-sums) go to a temporary folder."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("genbench_cache")
    mp.setenv("GENBENCH_CACHE_DIR", str(path))
    yield path
    mp.undo()
