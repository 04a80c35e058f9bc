"""Submit tab: upload structures, fill the metadata form, fast checks, enqueue.

The upload check and Submit reach one verdict on the same files: both run ``assess``, which
screens the files against the service's ``SubmissionPolicy`` (``leaderboard.intake``), reads
them with the policy's ingestion limits and applies the account's history. Files the check
refuses are deleted and leave the upload box; every message is in user terms (no server
path, whatever failed).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from evaluator.config import IngestLimits
from evaluator.ingest import IngestError, UploadCheck, inspect_upload
from evaluator.procpool import PoolFailure
from leaderboard.intake.example import EXAMPLE_META, build_example
from leaderboard.intake.policy import SubmissionPolicy, mb, policy_for
from leaderboard.intake.screening import Screened, in_user_terms, prior_problem, rate_standing, screen_files
from leaderboard.intake.submissions import SubmissionError, submit
from leaderboard.intake.uploads import discard_refused
from leaderboard.jobs.queue import ACTIVE, list_jobs, public_reason, queue_position
from leaderboard.ui.forms import SchemaForm, build_form
from leaderboard.ui.jobs import md_text
from leaderboard.ui.shared_state import AppContext
from leaderboard.store import Store
from leaderboard.ui.status_tab import Snapshot

log = logging.getLogger(__name__)

ACCEPTED_TEXT = ("CIF (one or many blocks), POSCAR/CONTCAR, extxyz/xyz, CSV/JSON/JSONL "
                 "(a structure column or pymatgen dicts), or a zip/tar/tar.gz of these")
EXAMPLE_LABEL = "Load the example submission (MatterGen base model: 21 unconditional samples)"
REMOVED_NOTE = "The refused files were removed from the upload box and deleted from the server."


def _paths(files: object) -> list[str]:
    """Paths of the upload box's value (a path, a list of paths, or Gradio file objects)."""
    if not files:
        return []
    items: Sequence[object] = [files] if isinstance(files, (str, bytes, os.PathLike)) else \
        list(files) if isinstance(files, (list, tuple)) else [files]
    out = []
    for f in items:
        if isinstance(f, bytes):
            out.append(f.decode(errors="replace"))
        elif isinstance(f, (str, os.PathLike)):
            out.append(os.fspath(f))
        else:
            out.append(str(getattr(f, "name", None) or getattr(f, "path", None) or f))
    return out


_CHECKS: dict[tuple[object, ...], UploadCheck | IngestError] = {}


def inspect(paths: Sequence[str], limits: IngestLimits | None = None) -> UploadCheck:
    """``inspect_upload`` memoised on (path, size, mtime) and the limits: the upload check and
    the submit button share one parse. Returns an UploadCheck or raises IngestError."""
    limits = limits or IngestLimits()
    key = (repr(limits), *((p, os.path.getsize(p), os.path.getmtime(p)) for p in paths))
    if key not in _CHECKS:
        try:
            _CHECKS[key] = inspect_upload(list(paths), limits=limits)
        except IngestError as exc:
            _CHECKS[key] = exc
        while len(_CHECKS) > 32:
            _CHECKS.pop(next(iter(_CHECKS)))
    out = _CHECKS[key]
    if isinstance(out, IngestError):
        raise out
    return out


def _machine_failure(exc: BaseException) -> str:
    return (f"the server could not read the upload just now ({public_reason(str(exc))}). "
            "The upload is not refused: try again in a minute.")


def store_of(ctx: AppContext) -> Store:
    """The app's store (``AppContext.store``, typed ``object`` until the context is typed)."""
    if not isinstance(ctx.store, Store):
        raise TypeError(f"the app's store is a {type(ctx.store).__name__}, not a Store")
    return ctx.store


def current_policy(ctx: AppContext | None) -> SubmissionPolicy:
    """The limits the check and Submit enforce: the account limits (environment) and the
    ingestion limits of the protocol this service pins."""
    return policy_for(ctx.protocol if ctx is not None else None)


@dataclass
class Verdict:
    """What the check (and Submit) says of an upload.

    ok: it may be submitted; checked: False when the server could not check it (not a
    refusal: the files stay); kept: the paths that stay in the upload box; text: markdown."""

    ok: bool
    text: str
    kept: list[str] = field(default_factory=list)
    checked: bool = True
    check: UploadCheck | None = None
    screened: Screened | None = None


def _refused(reason: str, paths: Sequence[str | Path], screened: Screened | None = None) -> Verdict:
    discard_refused(paths)
    return Verdict(False, f"**Refused:** {reason}\n\n{REMOVED_NOTE}", [], screened=screened)


def _left_out_text(screened: Screened) -> str:
    if not screened.left_out:
        return ""
    names = "; ".join(f"{md_text(n)}: {md_text(why)}" for n, why in screened.left_out)
    return f"Left out of the upload (nothing to evaluate in them, removed from the upload box): {names}."


def _within_limits(policy: SubmissionPolicy, screened: Screened, check: UploadCheck,
                   used: int | None) -> str:
    rate = ""
    if used is not None and policy.max_per_window > 0:
        rate = (f"; your submissions in the last {policy.window_days:g} days: {used} of "
                f"{policy.max_per_window}")
    return (f"Within the limits: {len(screened.kept)} of at most {policy.max_files} files, "
            f"{mb(screened.total_bytes)} of {mb(policy.upload_bytes)}, {check.n_items:,} of at most "
            f"{policy.ingest.max_structures:,} structures{rate}.")


def assess(paths: Sequence[str], ctx: AppContext | None = None, user: str | None = None) -> Verdict:
    """The verdict on an upload: the policy's file limits (``screen_files``), the read
    (``inspect_upload`` under the policy's ingestion limits), then, for a known ``user``, their
    earlier submissions (duplicates, rate limit). Refused files are deleted (``discard_refused``)
    and leave ``kept``. The upload check shows it; Submit repeats it before enqueueing."""
    policy = current_policy(ctx)
    screened = screen_files(paths, policy)
    if screened.refusal:
        return _refused(md_text(screened.refusal), paths, screened)
    discard_refused(screened.left_out_paths)
    kept = [str(p) for p in screened.kept]
    try:
        check = inspect(kept, policy.read_limits())
    except PoolFailure as exc:  # the server's failure, not the upload's: nothing refused or discarded
        return Verdict(False, f"**Not checked:** {md_text(_machine_failure(exc))}", kept, checked=False,
                       screened=screened)
    except (IngestError, OSError) as exc:
        return _refused(f"{md_text(in_user_terms(exc))}\n\nAccepted formats: {ACCEPTED_TEXT}.", kept, screened)
    if check.n_parsed == 0:
        lines = [f"none of the {check.n_items} structures could be read."]
        lines += [f"- {md_text(src)}: {md_text(why)}" for src, why in check.failures]
        return _refused("\n".join(lines), kept, screened)
    used = None
    if ctx is not None and user:
        mine = list_jobs(store_of(ctx), submitter=user)
        problem = prior_problem(mine, policy, screened.file_sha256, check.structures_sha256)
        if problem:
            return _refused(md_text(problem), kept, screened)
        used = rate_standing(mine, policy)[0]
    lines = [f"**OK:** {check.n_items} structures found: {check.n_parsed} parsed"
             + (f", **{check.n_failed} failed to parse** (they stay in the submission and count "
                "as failures in every rate)." if check.n_failed else ".")]
    for src, why in check.failures:
        lines.append(f"- {md_text(src)}: {md_text(why)}")
    if check.n_failed > len(check.failures):
        lines.append(f"- … and {check.n_failed - len(check.failures)} more")
    paragraphs = ["\n".join(lines), _left_out_text(screened), _within_limits(policy, screened, check, used)]
    if ctx is not None and ctx.space and not user:
        paragraphs.append("Sign in with Hugging Face (top of the page) to submit.")
    return Verdict(True, "\n\n".join(p for p in paragraphs if p), kept, check=check, screened=screened)


def safely(paths: Sequence[str], ctx: AppContext | None, user: str | None) -> Verdict:
    """``assess``, with any failure of the server (a store outage, a bug) said in user terms;
    the upload is then neither refused nor deleted."""
    try:
        return assess(paths, ctx, user)
    except Exception as exc:  # noqa: BLE001 - shown in user terms, logged in full
        log.exception("upload check failed")
        return Verdict(False, f"**Not checked:** the server could not check the upload just now "
                              f"({md_text(in_user_terms(exc))}). The upload is not refused: try again in a "
                              "minute.", list(paths), checked=False)


def check_files(files: object, ctx: AppContext | None = None, user: str | None = None) -> str:
    """Fast pre-check of an upload (the policy's limits, format, parse errors, and for a known
    ``user`` duplicates and the rate limit): markdown. With ``ctx`` it ends with the estimated
    evaluation time on this deployment, in a paragraph of its own."""
    paths = _paths(files)
    if not paths:
        return ""
    return shown(safely(paths, ctx, user), ctx)


def shown(verdict: Verdict, ctx: AppContext | None) -> str:
    """The check's markdown: the verdict, then (with ``ctx``, for an upload that may be
    submitted) the estimate in a paragraph of its own."""
    if not (verdict.ok and ctx is not None and verdict.check is not None):
        return verdict.text
    try:
        return verdict.text + "\n\n" + upload_estimate(ctx, verdict.check.n_parsed, atoms=verdict.check.atoms)
    except Exception as exc:  # noqa: BLE001 - the estimate is display only
        log.warning("upload estimate failed: %s", exc)
        return verdict.text


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
    if est.seconds is None:
        text = f"**Evaluation time on this deployment not estimated** ({md_text(est.basis)})."
    else:
        per = est.seconds / n_structures
        text = (f"**Estimated evaluation time on this deployment: {est.short()}** for "
                f"{n_structures} parsed structures ({per:.1f} s per structure on average{sizes}; "
                f"estimated from the {md_text(est.basis)}).")
    busy = [j for j in snap.jobs if j.status in ACTIVE]
    if busy:
        ahead = f"{len(busy)} submission{'s' * (len(busy) != 1)} ahead in the queue"
        text += (f" {ahead}: it {verb} in {md_text(queue.text())}." if queue.seconds is not None
                 else f" {ahead}; the wait behind them is not estimated ({md_text(queue.basis)}).")
    return text


def do_submit(ctx: AppContext, files: object, user: str | None, meta: object) -> tuple[str, str | None]:
    """Validate and enqueue; returns (markdown message, submission id or None). The upload
    gets the check's verdict again (``assess``), so Submit never contradicts the check."""
    if not user:
        return "**Not submitted:** please sign in with Hugging Face first (top of the page).", None
    paths = _paths(files)
    if not paths:
        return ("**Not submitted:** the upload box is empty: upload the generated structures (files the "
                "check refused were removed from it).", None)
    verdict = safely(paths, ctx, user)
    if not verdict.ok or verdict.check is None or verdict.screened is None:
        return (verdict.text if verdict.checked else
                verdict.text.replace("**Not checked:**", "**Not submitted:**", 1)), None
    check, screened = verdict.check, verdict.screened
    try:
        estimate = upload_estimate(ctx, check.n_parsed, verb="starts", atoms=check.atoms)  # before this one
    except Exception as exc:  # noqa: BLE001 - the estimate is display only
        log.warning("upload estimate failed: %s", exc)
        estimate = ""
    try:
        pinned = ctx.protocol
        job = submit(store_of(ctx), meta, screened.kept, user, current_policy(ctx),
                     protocol=pinned.id if pinned else "", structures_sha256=check.structures_sha256,
                     n_structures=check.n_parsed, atoms=check.atoms)
    except SubmissionError as exc:
        return f"**Not submitted:** {md_text(exc)}", None
    except Exception as exc:  # noqa: BLE001 - shown in user terms, logged in full
        log.exception("submission failed")
        return (f"**Not submitted:** the service could not queue it just now ({md_text(in_user_terms(exc))}); "
                "nothing was queued: try again in a minute."), None
    pos = queue_position(store_of(ctx), job.id)
    where = f"position **{pos}** in the queue" if pos else "queued"
    paragraphs = [f"**Accepted:** submission **`{job.id}`** ({where}). Follow it in **My submissions**; "
                  f"permalink: [`?submission={job.id}`](?submission={job.id})",
                  _left_out_text(screened), estimate]
    return "\n\n".join(p for p in paragraphs if p), job.id


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


def box_update(paths: Sequence[str], verdict: Verdict) -> Any:
    """The upload box after a check: unchanged, or without the files the check removed."""
    if verdict.kept == list(paths):
        return gr.update()
    return gr.update(value=verdict.kept or None)


@dataclass(frozen=True)
class SubmitTab:
    """What the app wires to the submit tab: the upload box, the example and Submit buttons,
    the check's and the submission's messages, the submitted job's id and the Submit event
    (the status view follows it), and the metadata form."""

    files: gr.File
    example: gr.Button
    submit: gr.Button
    result: gr.Markdown
    last_id: gr.State
    submitted: Any  # the Submit click's event dependency (``.then`` chains on it)
    form: SchemaForm
    check: gr.Markdown


def build(ctx: AppContext, user_state: gr.State) -> SubmitTab:
    policy = current_policy(ctx)
    gr.Markdown(protocol_text(ctx), elem_id="submit-protocol")
    gr.Markdown(f"Upload the structures your model generated (one file or several): {ACCEPTED_TEXT}. "
                "Files are checked as soon as they are uploaded against the limits below, the same ones "
                "Submit applies; files the check turns down leave the upload box. Every structure counts, "
                "including those that fail to parse.")
    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(label=f"Structures (at most {policy.max_files} files, {mb(policy.upload_bytes)})",
                            file_count="multiple", elem_id="submit-files")
            gr.Markdown(policy.limits_text(), elem_id="submit-limits")
            example = gr.Button(EXAMPLE_LABEL, size="sm", elem_id="submit-example")
            check_md = gr.Markdown(elem_id="submit-check")
        with gr.Column(scale=2):
            form = build_form()
    submit_btn = gr.Button("Submit for evaluation", variant="primary", elem_id="submit-button")
    result_md = gr.Markdown(elem_id="submit-result")
    last_id = gr.State(None)

    def check_shown(files: object, user: str | None) -> tuple[str, Any]:
        """The check of what is in the box; the box loses the files the check refused."""
        paths = _paths(files)
        if not paths:
            return "", gr.update()
        verdict = safely(paths, ctx, user)
        return shown(verdict, ctx), box_update(paths, verdict)

    # ``upload`` and ``delete`` fire on the user's actions only, not when the check itself
    # updates the box, so the check's message stays on the page.
    for event in (files.upload, files.delete):
        event(check_shown, [files, user_state], [check_md, files], api_visibility="private",
              show_progress="minimal")
    files.clear(lambda: "", None, check_md, api_visibility="private", show_progress="hidden")

    def load_example() -> list[Any]:
        built = build_example()
        if built is None:
            return [None, "The example file is not in the data directory (set GENBENCH_DATA_DIR)."] + \
                [gr.update() for _ in form.components]
        path, n = built
        values = [gr.update(value=str(n) if name == "n_structures" else EXAMPLE_META[name])
                  if name in EXAMPLE_META or name == "n_structures" else gr.update() for name in form.names]
        return [[str(path)], "", *values]  # the check runs next (``then``), on the box's value

    example.click(load_example, None, [files, check_md, *form.components], api_visibility="private").then(
        check_shown, [files, user_state], [check_md, files], api_visibility="private", show_progress="minimal")

    def on_submit(files: object, user: str | None, *values: object) -> tuple[str, str | None]:
        return do_submit(ctx, files, user, form.collect(*values))

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

    def submit_api(files: object, meta: object) -> dict[str, Any]:
        """Enqueue a submission as the local identity (refused on a Space: use the form)."""
        if ctx.space:
            return {"ok": False, "id": None,
                    "message": "API submissions are disabled on the Space; use the form."}
        msg, job_id = do_submit(ctx, files, ctx.user(), {} if meta is None else meta)  # submit() checks its type
        return {"ok": job_id is not None, "message": msg, "id": job_id}

    api_btn.click(submit_api, [api_files, api_meta], api_out, api_name="submit")

    def check_upload(files: object) -> str:
        """Fast pre-check of an upload, with the estimated evaluation time on this deployment."""
        return check_files(files, ctx, None if ctx.space else ctx.user())

    api_check_btn.click(check_upload, api_files, api_check, api_name="check_upload")
    return SubmitTab(files=files, example=example, submit=submit_btn, result=result_md, last_id=last_id,
                     submitted=ev, form=form, check=check_md)

