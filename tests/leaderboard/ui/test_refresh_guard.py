"""Refreshes leave alone the controls a visitor is using (issue 26 item 2): a control is sent
choices only when they changed; the timer's other refreshes run only after a reload."""

from __future__ import annotations

import pandas as pd

from leaderboard.table.results_cache import CachedResults
from leaderboard.ui.refresh_guard import changed_only, first_sent, when_reloaded


def is_no_change(update) -> bool:
    return update == {"__type__": "update"}


def test_choices_sent_only_when_they_changed():
    sent = first_sent({"rank_by": [("Valid ↑", "validity.valid")]})
    upd, sent = changed_only(sent, "rank_by", [("Valid ↑", "validity.valid")],
                             lambda: {"__type__": "update", "choices": "x"})
    assert is_no_change(upd)  # the same choices: the open option list is not redrawn
    upd, sent = changed_only(sent, "rank_by", [("Valid ↑", "validity.valid"), ("SUN ↑", "sun.sun")],
                             lambda: {"__type__": "update", "choices": "y"})
    assert upd["choices"] == "y"
    upd, _ = changed_only(sent, "rank_by", [("Valid ↑", "validity.valid"), ("SUN ↑", "sun.sun")],
                          lambda: {"__type__": "update", "choices": "z"})
    assert is_no_change(upd)
    upd, _ = changed_only(None, "task", ["All"], lambda: "first")  # nothing recorded yet: sent
    assert upd == "first"


def test_timer_refresh_runs_only_after_a_reload():
    token = ["v1"]
    results = CachedResults(lambda: pd.DataFrame({"a": [1]}), ttl=0.0, fingerprint=lambda: token[0])
    results.get()
    calls = []
    handler = when_reloaded(results, lambda current: calls.append(current) or ("choices", current), 2)
    seen, *out = handler(results.loads, "picked")
    assert calls == [] and all(is_no_change(u) for u in out) and seen == results.loads
    token[0] = "v2"  # a new submission was published: the next get() reloads
    seen2, *out = handler(seen, "picked")
    assert calls == ["picked"] and out == ["choices", "picked"] and seen2 == seen + 1
    seen3, *out = handler(seen2, "picked")
    assert calls == ["picked"] and seen3 == seen2
