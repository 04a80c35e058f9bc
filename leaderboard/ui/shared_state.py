"""What every tab shares: the store, the cached results table, identity, settings, and the
typed handle (``Wiring``) by which a tab hands an event handler to the app."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import gradio as gr
import pandas as pd

from evaluator.config import build_config
from evaluator.protocol import Protocol, protocol_of

from leaderboard.settings import LOCAL_USER
from leaderboard.publishing.results import leaderboard_etag, load_results_table
from leaderboard.store import Store, open_store
from leaderboard.table.results_cache import CachedResults

LOCAL_USER_ENV = LOCAL_USER.name
DEFAULT_LOCAL_USER = LOCAL_USER.default


def on_space() -> bool:
    """True when running as a Hugging Face Space (OAuth login available)."""
    return bool(os.environ.get("SPACE_ID"))


def local_user() -> str:
    """The configured identity when not on a Space."""
    return LOCAL_USER.read()


@dataclass
class AppContext:
    """Shared state of one app instance.

    ttl_s: how long the results table is served from cache before the store is
    asked whether it changed; refresh_s: the page's auto-refresh period.
    """

    store: Store
    ttl_s: float = 20.0
    refresh_s: float = 15.0
    status_refresh_s: float = 3.0
    space: bool = field(default_factory=on_space)
    pinned: Protocol | None = None  # the service's protocol; None: computed from the GENBENCH_* settings
    results: CachedResults = field(init=False)

    def __post_init__(self) -> None:
        self.results = CachedResults(self._load_results, ttl=self.ttl_s, fingerprint=self._fingerprint)

    def _load_results(self) -> pd.DataFrame:
        return load_results_table(self.store)

    def _fingerprint(self) -> object:
        """Cheap token of the results table's state (its etag in the store)."""
        return leaderboard_etag(self.store)

    @cached_property
    def protocol_status(self) -> tuple[Protocol | None, str | None]:
        """(the protocol this service pins, why there is none): the given one, else the
        protocol of the service's configuration (``GENBENCH_PROTOCOL`` names it, default
        SevenNet-l3i5; the other ``GENBENCH_*`` settings as the worker reads them)."""
        if self.pinned is not None:
            return self.pinned, None

        try:
            return protocol_of(build_config()), None
        except ValueError as exc:  # ProtocolError (missing weights or data) or a bad setting
            return None, str(exc)

    @property
    def protocol(self) -> Protocol | None:
        """The protocol this service pins (new submissions are queued under it; the
        leaderboard ranks it by default), or None when it cannot be computed here."""
        return self.protocol_status[0]

    def user(self, profile: gr.OAuthProfile | None = None) -> str | None:
        """Who is acting: the HF username on a Space (None if not logged in), else the local identity."""
        if self.space:
            return profile.username if profile is not None else None
        return local_user()


def make_context(store: Store | str | os.PathLike[str] | None = None, **kwargs: Any) -> AppContext:
    """An AppContext on ``store`` (a Store, a URI, or None for $GENBENCH_STORE / ./state);
    ``kwargs``: the other fields of ``AppContext``."""
    if not isinstance(store, Store):
        store = open_store(store)
    return AppContext(store, **kwargs)


@dataclass(frozen=True)
class Wiring:
    """An event handler a tab hands to the app, with the components it reads and writes:
    the app attaches it to its own events (page load, another tab's timer)."""

    fn: Callable[..., Any]
    inputs: Sequence[gr.components.Component]
    outputs: Sequence[gr.components.Component]
