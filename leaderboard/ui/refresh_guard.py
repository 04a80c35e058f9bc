"""Periodic refreshes that leave alone what the visitor is using.

Sending a dropdown its choices again, even the same ones, makes Gradio redraw its option
list: an open list closes under the visitor's pointer (the option clicked is gone) and a
value sent back fires its ``.change`` (the model page re-rendered every tick). So a refresh
sends a control new choices only when they differ from what this page was last sent
(``ChoiceMemo``), and the timer's other refreshes run only when the results were reloaded
since this page last saw them (``when_reloaded``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr

from leaderboard.table.results_cache import CachedResults

Sent = dict[str, str]  # control name -> digest of the choices (and value) last sent to this page


def digest(value: object) -> str:
    return hashlib.sha1(repr(value).encode()).hexdigest()


def first_sent(initial: Mapping[str, object]) -> Sent:
    """What the page holds when it is served (the components' initial choices)."""
    return {name: digest(v) for name, v in initial.items()}


def changed_only(sent: Sent | None, name: str, payload: object, update: Callable[[], Any]) -> tuple[Any, Sent]:
    """``update()`` when ``payload`` (what would be sent to control ``name``) differs from what
    this page was last sent, else no change (``gr.update()``); with the new record of what was sent."""
    record = dict(sent or {})
    d = digest(payload)
    if record.get(name) == d:
        return gr.update(), record
    record[name] = d
    return update(), record


def when_reloaded(results: CachedResults, fn: Callable[..., Any], n_outputs: int) -> Callable[..., tuple[Any, ...]]:
    """A timer handler ``(seen, *args) -> (results.loads, *outputs)``: ``fn(*args)`` when the
    results were reloaded since ``seen`` (the load this page last refreshed on), else
    ``n_outputs`` no-change updates."""

    def handler(seen: int | None, *args: Any) -> tuple[Any, ...]:
        results.get()  # within its TTL: no store read; after it: the results' etag only
        if seen == results.loads:
            return (seen, *(gr.update() for _ in range(n_outputs)))
        out = fn(*args)
        return (results.loads, *(out if isinstance(out, tuple) else (out,)))

    return handler
