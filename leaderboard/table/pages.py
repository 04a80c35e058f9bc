"""The leaderboard a page at a time, and the rendered views kept for the next switch.

The browser gets one page of the ranked table (``PAGE_SIZE`` rows), not all of it: at
2,000 submissions the whole styled table is megabytes per update. Ranking, filtering and
the cell tints are computed on every row; only the rows sent are cut (``Page``).

``ViewCache`` keeps the last rendered views keyed by the results' version and the
controls, so going back to a Rank-by entry or protocol already shown reads nothing and
ranks nothing again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

PAGE_SIZE = 50

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """Page ``number`` (1-based) of ``n_rows`` rows: rows ``start`` to ``stop`` (exclusive)."""

    number: int
    n_pages: int
    start: int
    stop: int
    n_rows: int

    @property
    def label(self) -> str:
        if self.n_rows == 0:
            return "no rows"
        return (f"rows {self.start + 1:,}–{self.stop:,} of {self.n_rows:,}"
                + (f" · page {self.number} of {self.n_pages}" if self.n_pages > 1 else ""))


def page_of(n_rows: int, number: int | float | None, size: int = PAGE_SIZE) -> Page:
    """Page ``number`` of a table of ``n_rows`` rows, clamped to the pages there are."""
    n_pages = max(1, -(-n_rows // size))
    k = min(max(1, int(number or 1)), n_pages)
    start = (k - 1) * size
    return Page(k, n_pages, start, min(n_rows, start + size), n_rows)


class ViewCache(Generic[T]):
    """Least-recently-used cache of rendered views (thread-safe: Gradio runs handlers in threads).

    ``get(version, key, make)``: the value cached for ``key`` at results ``version``, else
    ``make()`` (cached). A new ``version`` (the results were reloaded) empties the cache.
    """

    def __init__(self, size: int = 32):
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, T] = OrderedDict()
        self._version: Hashable = None
        self.misses = 0

    def get(self, version: Hashable, key: Hashable, make: Callable[[], T]) -> T:
        with self._lock:
            if version != self._version:
                self._items.clear()
                self._version = version
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: two sessions may render at once
        with self._lock:
            if version == self._version:
                self._items[key] = value
                self._items.move_to_end(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            self.misses += 1
        return value


def freeze(value: object) -> Hashable:
    """A hashable form of a control's value (lists, as multiselects give, become tuples)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    return value if isinstance(value, Hashable) else repr(value)
