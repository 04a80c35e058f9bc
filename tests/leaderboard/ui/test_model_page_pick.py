"""The model page's picker and the page agree (issue 26 item 2), without a browser: on a store
that already holds results when the app is built, nothing is picked while the page says no
submission is shown, and every entry (the first included) opens its page when picked."""

from __future__ import annotations

import gradio as gr
import pytest

from leaderboard_fixtures import publish_fixture


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from leaderboard.ui import build_app
    from leaderboard.ui.shared_state import make_context

    root = tmp_path_factory.mktemp("pick")
    ctx = make_context(str(root / "state"), ttl_s=0.0)
    ids = [publish_fixture(ctx.store, root, name, 8, 2, 1) for name in ("Alpha", "Beta")]
    return build_app(ctx), ctx, ids


def _component(demo: gr.Blocks, elem_id: str):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _load(demo: gr.Blocks):
    """The page-load handler that fills the picker and the page (``on_load``), called as a
    visit without a permalink makes it."""
    fn = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") in ("local_load", "space_load"))
    return fn(None)


def _on_select(demo: gr.Blocks, tab_id: str, output: gr.components.Component):
    """The handler the tab's select event runs with ``output`` among its outputs."""
    tab = _component(demo, tab_id)
    return next(f.fn for f in demo.fns.values()
                if (tab._id, "select") in [(t[0], t[1]) for t in f.targets] and output in f.outputs)


def test_nothing_is_picked_while_no_submission_is_shown(app):
    from leaderboard.ui.model_tab import EMPTY_TEXT

    demo, ctx, ids = app
    pick = _component(demo, "model-pick")
    assert pick.value is None  # Gradio's default would preselect the first choice
    assert pick.choices == []  # one per submission: not in every page's HTML (issue 26 item 2)
    out = _load(demo)
    picked, empty = out[2], out[4 + 6]  # (user, tab, pick, timer, *status outputs (6), *model page)
    assert picked["value"] is None
    assert empty["value"] == EMPTY_TEXT and empty["visible"] is True
    # opening the tab lists every finished submission, still picking none
    listed = _on_select(demo, "tab-model", pick)(None)
    assert listed["value"] is None and {v for _, v in listed["choices"]} == set(ids)
    compare = _component(demo, "compare-pick")
    assert compare.choices == []
    assert {v for _, v in _on_select(demo, "tab-compare", compare)(None)["choices"]} == set(ids)


@pytest.mark.parametrize("which", [0, 1])
def test_picking_any_entry_shows_its_page(app, which):
    from leaderboard.ui.model_tab import finished_choices, show_page

    demo, ctx, ids = app
    job_id = finished_choices(ctx)[which][1]
    out = show_page(ctx, job_id)
    assert out[0]["visible"] is False and out[1]["visible"] is True  # the empty text hidden, the page shown
    assert job_id in out[2] and out[-1] == job_id
