"""My submissions: queue position, stage, progress with its rate, ETA, last progress and
stall warning, attempts and history, failures, withdraw (with a confirmation)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal, TypedDict

import gradio as gr
import pandas as pd

from leaderboard.jobs.eta import Estimate, Estimator, seconds_since_progress
from leaderboard.jobs.queue import ACTIVE, Job, JobStatus, QueueError, get_job, list_jobs
from leaderboard.intake.submission_meta import load_meta
from leaderboard.intake.submissions import withdraw as do_withdraw
from leaderboard.ui import jobs as J
from leaderboard.ui.shared_state import AppContext

Datatype = Literal["str", "markdown"]


def _datatypes(columns: int) -> list[Datatype]:
    """Plain text in every column but the last (the permalink, Markdown)."""
    return ["markdown" if i == columns - 1 else "str" for i in range(columns)]


STATUS_DATATYPES = _datatypes(len(J.STATUS_COLUMNS))
STATUS_WIDTHS: list[str | int] = ["13%", "12%", "9%", "9%", "9%", "12%", "9%", "9%", "9%", "9%"]
QUEUE_COLUMNS = [c for c in J.STATUS_COLUMNS if c != "Failure reason"]
QUEUE_DATATYPES = _datatypes(len(QUEUE_COLUMNS))
QUEUE_WIDTHS: list[str | int] = ["14%", "13%", "10%", "10%", "12%", "13%", "10%", "9%", "9%"]

# Number of structures of older jobs that do not carry their size: the submitter's declared
# ``n_structures`` (uploads are write-once, so the values stay valid).
_SIZES: dict[str, int | None] = {}


def job_sizes(ctx: AppContext, jobs: list[Job]) -> dict[str, int | None]:
    """{job id: number of structures or None}: the job's own size (its upload check), else,
    for an active job from before sizes were kept, the submitter's declared count."""
    for j in jobs:
        if j.status in ACTIVE and not j.n_structures and j.id not in _SIZES:
            try:
                n = (load_meta(ctx.store, j.id) or {}).get("n_structures")
            except Exception:  # noqa: BLE001 - display only: the estimate says the size is unknown
                n = None
            _SIZES[j.id] = int(n) if isinstance(n, int) and n > 0 else None
    return {j.id: j.n_structures or _SIZES.get(j.id) for j in jobs}


def job_atoms(job: Job) -> list[int]:
    """Atoms per parsed structure, as the job carries them (its upload check; [] for older jobs)."""
    return [n for n, count in job.cell_atoms for _ in range(count)]


class Snapshot:
    """Every job read once, with what the estimates need."""

    def __init__(self, ctx: AppContext, now: float | None = None):
        self.now = now or time.time()
        self.jobs = list_jobs(ctx.store)
        self.estimator = Estimator.from_jobs(self.jobs)
        self.sizes = job_sizes(ctx, self.jobs)
        self.atoms = {j.id: cells for j in self.jobs if (cells := job_atoms(j))}

    def position(self, job_id: str) -> int | None:
        pending = [j.id for j in self.jobs if j.status == JobStatus.PENDING]
        return pending.index(job_id) + 1 if job_id in pending else None

    def estimates(self, job: Job) -> list[tuple[str, Estimate]]:
        """(label, estimate) lines: time left for a running job, start/finish for a pending one."""
        if job.status == JobStatus.RUNNING:
            return [("ETA", self.estimator.remaining(job, self.now, self.sizes.get(job.id), self.atoms.get(job.id)))]
        if job.status == JobStatus.PENDING:
            start, finish = self.estimator.wait(job, self.jobs, self.sizes, self.now, self.atoms)
            return [("Starts in", start), ("Finishes in", finish)]
        return []

    def eta_cell(self, job: Job) -> str:
        """Short ETA text for the tables."""
        est = dict(self.estimates(job))
        e = est.get("ETA") or est.get("Finishes in")
        if e is None or e.seconds is None:
            return ""  # the detail says why
        return ("done in " if job.status == JobStatus.PENDING else "") + e.short()

    def rows(self, jobs: list[Job]) -> pd.DataFrame:
        positions = {j.id: self.position(j.id) for j in jobs}
        return J.status_rows(jobs, positions, None, self.now, {j.id: self.eta_cell(j) for j in jobs})

    def detail(self, ctx: AppContext, job_id: str | None) -> str:
        if not job_id:
            return ""
        job = next((j for j in self.jobs if j.id == job_id), None)
        if job is None:
            job = get_job(ctx.store, job_id)
        if job is None:
            return f"No submission with id {J.md_text(J.shown_id(job_id))}."
        eta = [(label, J.md_text(e.text())) for label, e in self.estimates(job)]
        return J.job_detail(job, self.position(job.id), ctx.store, now=self.now, eta=eta)


def my_jobs(ctx: AppContext, user: str | None, snap: Snapshot | None = None) -> tuple[pd.DataFrame, list[Job]]:
    """(display rows, jobs) of ``user``'s submissions, withdrawn ones included."""
    if not user:
        return pd.DataFrame(columns=J.STATUS_COLUMNS), []
    snap = snap or Snapshot(ctx)
    mine = [j for j in snap.jobs if j.submitter == user]
    return snap.rows(mine), mine


def queue_rows(ctx: AppContext, snap: Snapshot | None = None) -> pd.DataFrame:
    """Everyone's pending and running submissions, in queue order (public)."""
    snap = snap or Snapshot(ctx)
    df = snap.rows([j for j in snap.jobs if j.status in ACTIVE])
    return df.drop(columns=["Failure reason"]).iloc[::-1].reset_index(drop=True)


def detail(ctx: AppContext, job_id: str | None, snap: Snapshot | None = None) -> str:
    if not job_id:
        return ""
    return (snap or Snapshot(ctx)).detail(ctx, job_id)


def can_withdraw(job: Job | None, user: str | None) -> bool:
    """Whether ``user`` is offered the Withdraw button for ``job``: their own submission,
    not already withdrawn."""
    return job is not None and bool(user) and job.submitter == user and job.status != JobStatus.HIDDEN


def withdraw_button(snap: Snapshot, user: str | None, job_id: str | None) -> dict[str, Any]:
    """The Withdraw button shown only for a submission ``user`` can still withdraw."""
    job = next((j for j in snap.jobs if j.id == job_id), None) if job_id else None
    return gr.update(visible=can_withdraw(job, user))


class StatusTab(TypedDict):
    """What the app wires to the status tab: its refresh (function, inputs, outputs), the
    submission picker, the detail panel and the refresh timer."""

    refresh: tuple[Callable[..., tuple[object, ...]], list[gr.components.Component], list[gr.components.Component]]
    pick: gr.Dropdown
    info: gr.Markdown
    timer: gr.Timer


def build(ctx: AppContext, user_state: gr.State) -> StatusTab:
    who = gr.Markdown(elem_id="status-user")
    table = gr.Dataframe(pd.DataFrame(columns=J.STATUS_COLUMNS), interactive=False, wrap=True,
                         datatype=STATUS_DATATYPES, label="My submissions", elem_id="status-table",
                         column_widths=STATUS_WIDTHS)
    with gr.Row():
        pick = gr.Dropdown([], label="Submission", allow_custom_value=True, scale=3, elem_id="status-pick")
        withdraw_btn = gr.Button("Withdraw (hide) this submission", variant="stop", scale=1,
                                 elem_id="status-withdraw", visible=False)  # shown for a withdrawable pick
    with gr.Group(visible=False, elem_id="status-confirm") as confirm_box:
        confirm_md = gr.Markdown(elem_id="status-confirm-text")
        with gr.Row():
            confirm_btn = gr.Button("Yes, withdraw it", variant="stop", elem_id="status-confirm-yes")
            cancel_btn = gr.Button("Cancel", elem_id="status-confirm-no")
    info = gr.Markdown(elem_id="status-detail")
    with gr.Accordion("Queue (all submitters)", open=False, elem_id="queue-accordion"):
        queue_table = gr.Dataframe(pd.DataFrame(columns=QUEUE_COLUMNS), interactive=False, wrap=True,
                                   datatype=QUEUE_DATATYPES, column_widths=QUEUE_WIDTHS, elem_id="queue-table")
    timer = gr.Timer(ctx.status_refresh_s, active=False)  # activated while this tab is open

    def refresh(user: str | None, current: str | None, note: str = "") -> tuple[object, ...]:
        snap = Snapshot(ctx)
        rows, mine = my_jobs(ctx, user, snap)
        ids = [j.id for j in reversed(mine)]
        cur = current if current else (ids[0] if ids else None)
        label = (f"Signed in as **{J.md_text(user)}**." if user else
                 "Sign in with Hugging Face to see and manage your submissions.")
        if not ctx.space and user:
            label = f"Local identity: **{J.md_text(user)}** (set `GENBENCH_LOCAL_USER` to change)."
        body = detail(ctx, cur, snap)
        return (label, rows, gr.update(choices=ids, value=cur), f"{note}\n\n{body}" if note else body,
                queue_rows(ctx, snap), withdraw_button(snap, user, cur))

    outs = [who, table, pick, info, queue_table, withdraw_btn]
    timer.tick(refresh, [user_state, pick], outs, api_visibility="private", show_progress="hidden")

    def on_pick(user: str | None, jid: str | None) -> tuple[object, ...]:
        snap = Snapshot(ctx)
        return detail(ctx, jid, snap), gr.Group(visible=False), withdraw_button(snap, user, jid)

    pick.change(on_pick, [user_state, pick], [info, confirm_box, withdraw_btn],
                api_visibility="private", show_progress="hidden")

    def ask(user: str | None, job_id: str | None) -> tuple[object, ...]:
        """First click: say what withdrawing does and ask to confirm."""
        job = get_job(ctx.store, job_id) if job_id else None
        if job is None:
            return gr.Group(visible=False), "", "Choose a submission first."
        if user != job.submitter:
            return gr.Group(visible=False), "", "**Refused:** only the submitter can withdraw this submission."
        what = {JobStatus.PENDING: "It leaves the queue and will not be evaluated.",
                JobStatus.RUNNING: "Its evaluation stops.",
                JobStatus.FINISHED: "Its row leaves the leaderboard."}.get(job.status, "")
        text = (f"**Withdraw `{job.id}` ({J.md_text(J.model_of(job, ctx.store))}, {job.status})?** {what} "
                "It is hidden, not deleted: the files and results stay in the store.")
        return gr.Group(visible=True), text, gr.update()

    withdraw_btn.click(ask, [user_state, pick], [confirm_box, confirm_md, info], api_visibility="private",
                       show_progress="hidden")
    cancel_btn.click(lambda: gr.Group(visible=False), None, confirm_box, api_visibility="private",
                     show_progress="hidden")

    def withdraw(user: str | None, job_id: str | None) -> tuple[object, ...]:
        """Confirmed: withdraw, then redraw the table and the detail from the same read."""

        if not job_id:
            return (gr.Group(visible=False), *refresh(user, job_id, "Choose a submission first."))
        try:
            do_withdraw(ctx.store, job_id, user)
        except QueueError as exc:
            return (gr.Group(visible=False), *refresh(user, job_id, f"**Refused:** {J.md_text(exc)}"))
        ctx.results.invalidate()
        note = f"Submission `{job_id}` withdrawn: it is hidden from the leaderboard (kept, not deleted)."
        return (gr.Group(visible=False), *refresh(user, job_id, note))

    confirm_btn.click(withdraw, [user_state, pick], [confirm_box, *outs], api_visibility="private")

    # API: status of one submission (anyone: status is public), withdraw as the local identity.
    with gr.Group(visible=False):
        api_id = gr.Textbox(label="submission id")
        api_out = gr.JSON(label="status")
        api_status_btn, api_withdraw_btn = gr.Button("status"), gr.Button("withdraw")

    def status_api(job_id: str) -> dict[str, object]:
        job = get_job(ctx.store, job_id)
        if job is None:
            return {"id": J.shown_id(job_id), "status": None, "message": "no such submission"}
        d = job.to_dict()
        keep = ("id", "status", "submitter", "model_name", "model_version", "created_at", "started_at",
                "finished_at", "progress", "failure", "attempts")
        out = {k: d.get(k) for k in keep}
        snap = Snapshot(ctx)
        out["queue_position"] = snap.position(job_id)
        out["elapsed"] = J.elapsed(job, snap.now)
        out["history"] = d.get("history") or []
        out["estimates"] = {label: {"seconds": e.seconds, "text": e.text(), "basis": e.basis}
                            for label, e in snap.estimates(job)}

        out["last_progress_s"] = seconds_since_progress(job, snap.now) if job.status == JobStatus.RUNNING else None
        out["stalled"] = J.stalled_for(job, snap.now) is not None
        return out

    def withdraw_api(job_id: str) -> dict[str, object]:

        if ctx.space:
            return {"ok": False, "message": "use the page (signed in) to withdraw on the Space"}
        try:
            job = do_withdraw(ctx.store, job_id, ctx.user())
        except QueueError as exc:
            return {"ok": False, "message": str(exc).replace(str(job_id), J.shown_id(job_id))}
        ctx.results.invalidate()
        return {"ok": True, "status": job.status}

    api_status_btn.click(status_api, api_id, api_out, api_name="status")
    api_withdraw_btn.click(withdraw_api, api_id, api_out, api_name="withdraw_submission")
    return {"refresh": (refresh, [user_state, pick], outs), "pick": pick, "info": info, "timer": timer}
