"""A TTL cache of the store's results table, refreshed without restarting the app."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import pandas as pd


class CachedResults:
    """TTL cache of ``loader()`` (the store's results table), never restarted to refresh.

    Within ``ttl`` seconds ``get()`` returns the cached table. After that it asks
    ``fingerprint()`` (a cheap token of the store's results state, e.g. the
    etag of ``results/leaderboard.parquet``) and reloads only if it changed
    (without a fingerprint it reloads every ``ttl``). ``get(force=True)`` always
    reloads (the Refresh button).
    """

    def __init__(self, loader: Callable[[], pd.DataFrame], ttl: float = 30.0,
                 fingerprint: Callable[[], object] | None = None):
        self.loader, self.ttl, self.fingerprint = loader, ttl, fingerprint
        self._lock = threading.Lock()
        self._value: pd.DataFrame | None = None
        self._at = -math.inf
        self._key: object = None
        self.loads = 0

    def _fingerprint(self) -> object:
        if self.fingerprint is None:
            return object()  # never equal: reload on every expiry
        try:
            return self.fingerprint()
        except Exception:  # noqa: BLE001 - unknown state: reload
            return object()

    def get(self, force: bool = False) -> pd.DataFrame:
        with self._lock:
            now = time.monotonic()
            if self._value is not None and not force:
                if now - self._at < self.ttl:
                    return self._value
                key = self._fingerprint()
                if key == self._key:
                    self._at = now
                    return self._value
            key = self._fingerprint()
            self._value = self.loader()
            self._key, self._at = key, now
            self.loads += 1
            return self._value

    def invalidate(self) -> None:
        """Make the next ``get()`` reload."""
        with self._lock:
            self._value = None
