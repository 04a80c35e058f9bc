"""My submissions: queue position, stage, progress, elapsed time, failures, withdraw."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from leaderboard.ui import jobs as J
from leaderboard.ui.context import AppContext


def my_jobs(ctx: AppContext, user: str | None) -> tuple[pd.DataFrame, list]:
    """(display rows, jobs) of ``user``'s submissions, withdrawn ones included."""
    from leaderboard.queue import list_jobs, queue_position

    if not user:
        return pd.DataFrame(columns=J.STATUS_COLUMNS), []
    everything = list_jobs(ctx.store)
    mine = [j for j in everything if j.submitter == user]
    positions = {j.id: queue_position(ctx.store, j.id, everything) for j in mine}
    return J.status_rows(mine, positions, ctx.store), mine


def queue_rows(ctx: AppContext) -> pd.DataFrame:
    """Everyone's pending and running submissions, in queue order (public)."""
    from leaderboard.queue import ACTIVE, list_jobs, queue_position

    everything = list_jobs(ctx.store)
    active = [j for j in everything if j.status in ACTIVE]
    positions = {j.id: queue_position(ctx.store, j.id, everything) for j in active}
    df = J.status_rows(active, positions, ctx.store)
    return df.drop(columns=["Failure reason"]).iloc[::-1].reset_index(drop=True)


def detail(ctx: AppContext, job_id: str | None) -> str:
    from leaderboard.queue import get_job, queue_position

    if not job_id:
        return ""
    job = get_job(ctx.store, job_id)
    if job is None:
        return f"No submission with id {J.md_text(job_id)}."
    return J.job_detail(job, queue_position(ctx.store, job_id), ctx.store)


def build(ctx: AppContext, user_state) -> dict:
    who = gr.Markdown(elem_id="status-user")
    table = gr.Dataframe(pd.DataFrame(columns=J.STATUS_COLUMNS), interactive=False, wrap=True,
                         datatype=["str"] * 8 + ["markdown"], label="My submissions", elem_id="status-table",
                         column_widths=["16%", "20%", "9%", "7%", "13%", "10%", "10%", "9%", "6%"])
    with gr.Row():
        pick = gr.Dropdown([], label="Submission", allow_custom_value=True, scale=3, elem_id="status-pick")
        withdraw_btn = gr.Button("Withdraw (hide) this submission", variant="stop", scale=1,
                                 elem_id="status-withdraw")
    info = gr.Markdown(elem_id="status-detail")
    with gr.Accordion("Queue (all submitters)", open=False):
        queue_table = gr.Dataframe(interactive=False, wrap=True, elem_id="queue-table")
    timer = gr.Timer(ctx.status_refresh_s, active=False)  # activated while this tab is open

    def refresh(user, current):
        rows, mine = my_jobs(ctx, user)
        ids = [j.id for j in reversed(mine)]
        cur = current if current else (ids[0] if ids else None)
        label = (f"Signed in as **{J.md_text(user)}**." if user else
                 "Sign in with Hugging Face to see and manage your submissions.")
        if not ctx.space and user:
            label = f"Local identity: **{J.md_text(user)}** (set `GENBENCH_LOCAL_USER` to change)."
        return (label, rows, gr.update(choices=ids, value=cur), detail(ctx, cur), queue_rows(ctx))

    outs = [who, table, pick, info, queue_table]
    timer.tick(refresh, [user_state, pick], outs, api_visibility="private", show_progress="hidden")
    pick.change(lambda jid: detail(ctx, jid), pick, info, api_visibility="private", show_progress="hidden")

    def withdraw(user, job_id):
        from leaderboard.queue import QueueError, withdraw as do_withdraw

        if not job_id:
            return "Choose a submission first."
        try:
            do_withdraw(ctx.store, job_id, user)
        except QueueError as exc:
            return f"**Refused:** {J.md_text(exc)}"
        ctx.results.invalidate()
        return f"Submission `{job_id}` withdrawn: it is hidden from the leaderboard (kept, not deleted).\n\n" \
               + detail(ctx, job_id)

    withdraw_btn.click(withdraw, [user_state, pick], info, api_visibility="private")

    # API: status of one submission (anyone: status is public), withdraw as the local identity.
    with gr.Group(visible=False):
        api_id = gr.Textbox(label="submission id")
        api_out = gr.JSON(label="status")
        api_status_btn, api_withdraw_btn = gr.Button("status"), gr.Button("withdraw")

    def status_api(job_id):
        from leaderboard.queue import get_job, queue_position

        job = get_job(ctx.store, job_id)
        if job is None:
            return {"id": job_id, "status": None, "message": "no such submission"}
        d = job.to_dict()
        keep = ("id", "status", "submitter", "model_name", "model_version", "created_at", "started_at",
                "finished_at", "progress", "failure", "attempts")
        out = {k: d.get(k) for k in keep}
        out["queue_position"] = queue_position(ctx.store, job_id)
        out["elapsed"] = J.elapsed(job)
        return out

    def withdraw_api(job_id):
        from leaderboard.queue import QueueError, withdraw as do_withdraw

        if ctx.space:
            return {"ok": False, "message": "use the page (signed in) to withdraw on the Space"}
        try:
            job = do_withdraw(ctx.store, job_id, ctx.user())
        except QueueError as exc:
            return {"ok": False, "message": str(exc)}
        ctx.results.invalidate()
        return {"ok": True, "status": job.status}

    api_status_btn.click(status_api, api_id, api_out, api_name="status")
    api_withdraw_btn.click(withdraw_api, api_id, api_out, api_name="withdraw_submission")
    return {"refresh": (refresh, [user_state, pick], outs), "pick": pick, "info": info, "timer": timer}
