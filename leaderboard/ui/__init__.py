"""The Gradio 6 app, one module per tab; ``build_app`` wires them together.

Identity: on a Hugging Face Space (``SPACE_ID`` set) users sign in with
``gr.LoginButton`` and handlers receive ``gr.OAuthProfile``; elsewhere the
configured local identity (``GENBENCH_LOCAL_USER``, default "local-user") acts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from evaluator.config import IngestLimits
from leaderboard.jobs.queue import FINISHED, get_job
from leaderboard.ui import compare_tab, leaderboard_tab, model_tab, plots_tab, status_tab, submit_tab
from leaderboard.store import Store
from leaderboard.ui.refresh_guard import when_reloaded
from leaderboard.ui.shared_state import AppContext, make_context

TITLE = "Crystal generative-model leaderboard"
TAB_IDS = ("leaderboard", "plots", "submit", "status", "model", "compare")
CSS = """
#leaderboard-table table { font-variant-numeric: tabular-nums; }
#lb-updated, #lb-caption { color: var(--body-text-color-subdued); }
/* No client-side sort/filter menu on the leaderboard: it reorders rows without renumbering #.
   Ranking is the "Rank by" control's job (server side, # recomputed). */
#leaderboard-table .cell-menu-button { display: none !important; }
/* Headers wrap, so a column is as wide as its numbers: the compact view fits a laptop screen. */
#leaderboard-table thead th, #leaderboard-table thead th * { white-space: normal !important; }
"""


def theme() -> gr.themes.Base:
    """Default theme with system fonts only (nothing fetched from a CDN: the page works offline)."""
    return gr.themes.Default(font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
                             font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


def launch_kwargs() -> dict[str, Any]:
    """Arguments for ``Blocks.launch`` that belong to the app (theme, CSS, and an upload size
    limit equal to the ingestion limit, so Gradio refuses a bigger file before storing it)."""
    return {"theme": theme(), "css": CSS, "footer_links": ["api"],
            "max_file_size": IngestLimits().max_upload_bytes}


def build_app(ctx: AppContext | None = None, store: Store | str | None = None) -> gr.Blocks:
    """The whole app on ``ctx`` (or a new context on ``store``)."""
    ctx = ctx or make_context(store)
    app = gr.Blocks(title=TITLE, analytics_enabled=False)
    with app as demo:
        with gr.Row():
            gr.Markdown(f"# {TITLE}", elem_id="title")
            if ctx.space:
                gr.LoginButton(scale=0)
        user_state = gr.State(None)
        with gr.Tabs(selected="leaderboard") as tabs:
            with gr.Tab("Leaderboard", id="leaderboard", elem_id="tab-leaderboard") as t_lb:
                lb = leaderboard_tab.build(ctx)
            with gr.Tab("Plots", id="plots", elem_id="tab-plots") as t_pl:
                pl = plots_tab.build(ctx)
            with gr.Tab("Submit", id="submit", elem_id="tab-submit") as t_sb:
                sb = submit_tab.build(ctx, user_state)
            with gr.Tab("My submissions", id="status", elem_id="tab-status") as t_st:
                st = status_tab.build(ctx, user_state)
            with gr.Tab("Model page & downloads", id="model", elem_id="tab-model") as t_md:
                md = model_tab.build(ctx)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare") as t_cmp:
                cmp = compare_tab.build(ctx)

        # The status table polls the store only while its tab is open.
        for tab in (t_lb, t_pl, t_sb, t_st, t_md, t_cmp):
            tab.select(lambda on=tab is t_st: gr.Timer(active=on), None, st["timer"], api_visibility="private",
                       show_progress="hidden")

        st_fn, st_in, st_out = st["refresh"]

        def on_load(request: gr.Request, profile: gr.OAuthProfile | None = None) -> tuple[object, ...]:
            """Identity, then the permalink ``?submission=<id>``: open its model page when
            finished, its status otherwise."""
            user = ctx.user(profile)
            sid = (dict(request.query_params).get("submission") or "").strip() if request else ""
            # the picker and the page agree: nothing picked, the empty state worded for the store as it is now
            # (the picker's choices come when its tab is opened)
            tab, pick, status_pick = gr.update(), gr.update(value=None), None
            page = list(md.show(None))
            if sid:
                job = get_job(ctx.store, sid)
                if job is not None and job.status == FINISHED:
                    tab, pick = gr.update(selected="model"), gr.update(choices=model_tab.finished_choices(ctx),
                                                                       value=sid)
                    page = list(md.show(sid))  # a value set by a load event does not fire .change
                else:
                    tab, status_pick = gr.update(selected="status"), sid
            # "My submissions" reads every job of the queue: only when it is the tab shown (else on its select)
            status = st_fn(user, status_pick) if status_pick is not None else tuple(gr.update() for _ in st_out)
            return (user, tab, pick, gr.Timer(active=status_pick is not None), *status, *page)

        # Gradio passes the signed-in profile to a handler whose signature asks for one (on a Space).
        def space_load(request: gr.Request, profile: gr.OAuthProfile | None) -> tuple[object, ...]:
            return on_load(request, profile)

        def local_load(request: gr.Request) -> tuple[object, ...]:
            return on_load(request, None)

        load_fn: Callable[..., tuple[object, ...]] = space_load if ctx.space else local_load

        demo.load(load_fn, None, [user_state, tabs, md.pick, st["timer"], *st_out, *md.outs],
                  api_visibility="private")
        t_st.select(st_fn, list(st_in), list(st_out), api_visibility="private", show_progress="hidden")
        # After a submission, show it in "My submissions" at once.
        sb.submitted.then(lambda u, jid: st_fn(u, jid), [user_state, sb.last_id], st_out,
                             api_visibility="private")
        # Keep the model and compare pickers' choices in step with the leaderboard's refreshes: on
        # a tick only after the results were reloaded (new choices redraw an open option list).
        md_seen, cmp_seen = gr.State(ctx.results.loads), gr.State(None)
        lb.timer.tick(when_reloaded(ctx.results, md.refresh_choices, 1), [md_seen, md.pick], [md_seen, md.pick],
                      api_visibility="private", show_progress="hidden")
        lb.refresh.click(md.refresh_choices, md.pick, md.pick, api_visibility="private")
        lb.timer.tick(when_reloaded(ctx.results, cmp.refresh_choices, 1), [cmp_seen, cmp.pick],
                      [cmp_seen, cmp.pick], api_visibility="private", show_progress="hidden")
        lb.refresh.click(cmp.refresh_choices, cmp.pick, cmp.pick, api_visibility="private", show_progress="hidden")
        # The pickers list every finished submission: sent when their tab is opened, not with every page.
        t_md.select(md.refresh_choices, md.pick, md.pick, api_visibility="private", show_progress="hidden")
        t_cmp.select(cmp.refresh_choices, cmp.pick, cmp.pick, api_visibility="private", show_progress="hidden")
        # The leaderboard download buttons hold their files before anyone clicks (a DownloadButton
        # whose file is made by its own click downloads nothing on the first click).
        dl = md.refresh_downloads
        demo.load(dl.fn, None, list(dl.outputs), api_visibility="private", show_progress="hidden")
        lb.timer.tick(dl.fn, None, list(dl.outputs), api_visibility="private", show_progress="hidden")
        lb.refresh.click(dl.fn, None, list(dl.outputs), api_visibility="private", show_progress="hidden")
        # The components' initial values were computed when the app was built: bring them
        # up to date for every new page.
        demo.load(lb.load.fn, list(lb.load.inputs), list(lb.load.outputs), api_visibility="private",
                  show_progress="hidden")
        # The plots are drawn when their tab is first opened (and redrawn after a reload), not
        # with every page: the leaderboard's table comes first.
        redraw = pl.redraw
        t_pl.select(redraw.fn, list(redraw.inputs), list(redraw.outputs), api_visibility="private",
                    show_progress="hidden")

        def redraw_if_drawn(*values: Any) -> Any:
            """Timer: plots never drawn on this page (tab not opened) wait for their tab."""
            if values[-1] is None:
                return [gr.update() for _ in redraw.outputs]
            return redraw.fn(*values)

        lb.timer.tick(redraw_if_drawn, list(redraw.inputs), list(redraw.outputs), api_visibility="private",
                      show_progress="hidden")
    return app
