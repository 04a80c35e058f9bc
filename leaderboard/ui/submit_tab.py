"""Submit tab: upload structures, fill the metadata form, fast checks, enqueue."""

from __future__ import annotations

import gradio as gr

from evaluator.ingest import IngestError, inspect_upload
from evaluator.procpool import PoolFailure
from leaderboard.jobs.eta import fmt_estimate
from leaderboard.intake.example import EXAMPLE_META, build_example
from leaderboard.jobs.queue import public_reason, queue_position
from leaderboard.intake.submissions import SubmissionError, submit
from leaderboard.ui.forms import build_form
from leaderboard.ui.jobs import md_text
from leaderboard.ui.shared_state import AppContext
from leaderboard.ui.status_tab import Snapshot, remember_size
from leaderboard.intake.uploads import discard_refused

ACCEPTED_TEXT = ("CIF (one or many blocks), POSCAR/CONTCAR, extxyz/xyz, CSV/JSON/JSONL "
                 "(a structure column or pymatgen dicts), or a zip/tar/tar.gz of these")
EXAMPLE_LABEL = "Load the example submission (MatterGen base model: 21 unconditional samples)"


def _paths(files) -> list[str]:
    if not files:
        return []
    if isinstance(files, (str, bytes)):
        files = [files]
    return [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]


_CHECKS: dict[tuple, object] = {}


def inspect(paths: list[str]):
    """``inspect_upload`` memoised on (path, size, mtime): the upload check and the
    submit button share one parse. Returns an UploadCheck or raises IngestError."""
    import os


    key = tuple((p, os.path.getsize(p), os.path.getmtime(p)) for p in paths)
    if key not in _CHECKS:
        try:
            _CHECKS[key] = inspect_upload(paths)
        except IngestError as exc:
            _CHECKS[key] = exc
        while len(_CHECKS) > 32:
            _CHECKS.pop(next(iter(_CHECKS)))
    out = _CHECKS[key]
    if isinstance(out, Exception):
        raise out
    return out


def _machine_failure(exc: PoolFailure) -> str:
    return (f"the server could not read the upload just now ({public_reason(str(exc))}). "
            "The upload is not refused: try again in a minute.")


def check_files(files, ctx: AppContext | None = None) -> str:
    """Fast pre-check of an upload (format, size, count, parse errors): markdown. With ``ctx``
    it ends with the estimated evaluation time on this deployment."""
    paths = _paths(files)
    if not paths:
        return ""

    try:
        check = inspect(paths)
    except PoolFailure as exc:  # the server's failure, not the upload's: nothing refused or discarded
        return f"**Not checked:** {md_text(_machine_failure(exc))}"
    except (IngestError, OSError) as exc:
        discard_refused(paths)
        return f"**Refused:** {md_text(exc)}\n\nAccepted formats: {ACCEPTED_TEXT}."
    if check.n_parsed == 0:
        discard_refused(paths)
        lines = [f"**Refused:** none of the {check.n_items} structures could be read."]
        lines += [f"- {md_text(src)}: {md_text(why)}" for src, why in check.failures]
        return "\n".join(lines)
    lines = [f"**OK:** {check.n_items} structures found: {check.n_parsed} parsed"
             + (f", **{check.n_failed} failed to parse** (they stay in the submission and count "
                "as failures in every rate)." if check.n_failed else ".")]
    for src, why in check.failures:
        lines.append(f"- {md_text(src)}: {md_text(why)}")
    if check.n_failed > len(check.failures):
        lines.append(f"- … and {check.n_failed - len(check.failures)} more")
    if ctx is not None:
        lines.append(upload_estimate(ctx, check.n_parsed, atoms=check.atoms))
    return "\n".join(lines)


def upload_estimate(ctx: AppContext, n_structures: int, verb: str = "would start",
                    atoms: list[int] | None = None) -> str:
    """Markdown: how long ``n_structures`` parsed structures (of ``atoms`` atoms each, when
    known: the relaxation's cost grows with the cell) take to evaluate on this deployment,
    and the wait behind the submissions now in the queue."""

    snap = Snapshot(ctx)
    est = snap.estimator.job(n_structures, atoms)
    queue, _ = snap.estimator.wait(None, snap.jobs, snap.sizes, snap.now, snap.atoms)
    sizes = ""
    if atoms:
        big = sum(1 for n in atoms if n > 100)
        sizes = (f"; cells of {min(atoms)}–{max(atoms)} atoms"
                 + (f", {big} of more than 100 atoms (their relaxation is capped by the atom-step budget)"
                    if big else ""))
    per = est.seconds / n_structures if est.seconds is not None and n_structures else 0.0
    text = (f"**Estimated evaluation time on this deployment: {fmt_estimate(est.seconds or 0.0)}** for "
            f"{n_structures} parsed structures ({per:.1f} s per structure on average{sizes}; "
            f"estimated from the {md_text(est.basis)}).")
    busy = [j for j in snap.jobs if j.status in ("PENDING", "RUNNING")]
    if busy:
        ahead = f"{len(busy)} submission{'s' * (len(busy) != 1)} ahead in the queue"
        text += (f" {ahead}: it {verb} in {fmt_estimate(queue.seconds)}." if queue.seconds is not None
                 else f" {ahead} (their size is not known, so the wait is not estimated).")
    return text


def do_submit(ctx: AppContext, files, user: str | None, meta: dict) -> tuple[str, str | None]:
    """Validate and enqueue; returns (markdown message, submission id or None)."""
    from pathlib import Path


    if not user:
        return "**Please sign in with Hugging Face** first (top of the page).", None
    paths = _paths(files)
    if not paths:
        return "**Please upload at least one file.**", None

    try:  # fast checks before enqueueing: format, size, count, parse errors
        check = inspect(paths)
    except PoolFailure as exc:
        return f"**Not submitted:** {md_text(_machine_failure(exc))}", None
    except (IngestError, OSError) as exc:
        discard_refused(paths)
        return f"**Upload refused:** {md_text(exc)}", None
    if check.n_parsed == 0:
        discard_refused(paths)
        first = "; ".join(f"{md_text(s)}: {md_text(w)}" for s, w in check.failures[:3])
        return f"**Upload refused:** none of the {check.n_items} structures could be read ({first}).", None
    # the queue as it was before this one
    estimate = upload_estimate(ctx, check.n_parsed, verb="starts", atoms=check.atoms)
    try:
        pinned = ctx.protocol
        job = submit(ctx.store, meta, [Path(p) for p in paths], user, protocol=pinned.id if pinned else "",
                     structures_sha256=check.structures_sha256)
    except SubmissionError as exc:
        return f"**Submission refused:** {md_text(exc)}", None


    remember_size(job.id, check.n_parsed, check.atoms)
    pos = queue_position(ctx.store, job.id)
    where = f"position **{pos}** in the queue" if pos else "queued"
    return (f"**Accepted:** submission **`{job.id}`** ({where}). Follow it in **My submissions**; "
            f"permalink: [`?submission={job.id}`](?submission={job.id})\n\n"
            + estimate), job.id


def protocol_text(ctx: AppContext) -> str:
    """What the service scores new submissions under (its pinned protocol)."""
    pinned, why = ctx.protocol_status
    if pinned is None:
        return (f"**Evaluation protocol:** not available on this deployment ({md_text(why or 'unknown')}); "
                "submissions are queued for any worker.")
    rec = pinned.record
    mlip, ref = rec.get("mlip", {}), rec.get("reference", {})
    return (f"**Evaluation protocol:** {md_text(pinned.label)} (id `{pinned.id}`). Every submission is scored "
            f"under it: MLIP {md_text(mlip.get('backend'))} {md_text(mlip.get('model'))} "
            f"(checkpoint sha256 `{str(mlip.get('checkpoint_sha256'))[:12]}…`, {md_text(mlip.get('dtype'))}, "
            f"energies {md_text(mlip.get('energy_scale'))}), reference {md_text(ref.get('id'))} "
            f"(content hash `{str(ref.get('content_hash'))[:12]}…`). The leaderboard ranks results of one "
            "protocol at a time; the device, batch size and engine a worker used are recorded beside it.")


def build(ctx: AppContext, user_state) -> dict:
    gr.Markdown(protocol_text(ctx), elem_id="submit-protocol")
    gr.Markdown(f"Upload the structures your model generated (one file or several): {ACCEPTED_TEXT}. "
                "Files are checked as soon as they are uploaded; a bad upload is refused before it is "
                "queued. Every structure counts, including those that fail to parse.")
    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(label="Structures", file_count="multiple", elem_id="submit-files")
            example = gr.Button(EXAMPLE_LABEL, size="sm", elem_id="submit-example")
            check_md = gr.Markdown(elem_id="submit-check")
        with gr.Column(scale=2):
            form = build_form()
    submit_btn = gr.Button("Submit for evaluation", variant="primary", elem_id="submit-button")
    result_md = gr.Markdown(elem_id="submit-result")
    last_id = gr.State(None)

    def check_shown(files):
        return check_files(files, ctx)

    files.change(check_shown, files, check_md, api_visibility="private", show_progress="minimal")

    def load_example():
        built = build_example()
        if built is None:
            return [None, "The example file is not in the data directory (set GENBENCH_DATA_DIR)."] + \
                [gr.update() for _ in form.components]
        path, n = built
        values = [gr.update(value=str(n) if name == "n_structures" else EXAMPLE_META[name])
                  if name in EXAMPLE_META or name == "n_structures" else gr.update() for name in form.names]
        return [[str(path)], gr.update()] + values  # files.change runs the check

    example.click(load_example, None, [files, check_md, *form.components], api_visibility="private")

    def on_submit(files, user, *values):
        msg, job_id = do_submit(ctx, files, user, form.collect(*values))
        return msg, job_id

    ev = submit_btn.click(on_submit, [files, user_state, *form.components], [result_md, last_id],
                          api_visibility="private")

    # API (gradio_client): files are uploaded through a hidden File component, never
    # read from server paths the caller names.
    with gr.Group(visible=False):
        api_files = gr.File(file_count="multiple", label="files")
        api_meta = gr.JSON(label="meta")
        api_out = gr.JSON(label="result")
        api_check = gr.Markdown()
        api_btn, api_check_btn = gr.Button("submit"), gr.Button("check")

    def submit_api(files, meta):
        """Enqueue a submission as the local identity (refused on a Space: use the form)."""
        if ctx.space:
            return {"ok": False, "id": None,
                    "message": "API submissions are disabled on the Space; use the form."}
        msg, job_id = do_submit(ctx, files, ctx.user(), {} if meta is None else meta)  # submit() checks its type
        return {"ok": job_id is not None, "message": msg, "id": job_id}

    api_btn.click(submit_api, [api_files, api_meta], api_out, api_name="submit")
    def check_upload(files):
        """Fast pre-check of an upload, with the estimated evaluation time on this deployment."""
        return check_files(files, ctx)

    api_check_btn.click(check_upload, api_files, api_check, api_name="check_upload")
    return {"files": files, "example": example, "submit": submit_btn, "result": result_md,
            "last_id": last_id, "submitted": ev, "form": form}
