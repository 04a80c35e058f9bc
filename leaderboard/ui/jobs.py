"""Reading queue jobs for display: status rows, elapsed time, permalinks.

Kept apart from the tabs so it is testable without a browser.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import time

import pandas as pd

from leaderboard.jobs.eta import measured_rate, seconds_since_progress, stall_timeout_s, stall_warn_s, to_epoch
from leaderboard.jobs.progress import STORE_UNAVAILABLE_STAGE
from leaderboard.jobs.queue import ACTIVE, Job, JobStatus, lease_distrusted
from leaderboard.store import Store
from leaderboard.store.layout import meta_path

STATUS_ICONS: dict[str, str] = {}  # plain text: headless/offline browsers may lack emoji fonts
STATUS_COLUMNS = ["Submission", "Model", "Status", "Queue position", "Stage", "Progress", "ETA", "Elapsed",
                  "Failure reason", "Permalink"]
HISTORY_SHOWN = 12  # most recent history events in the detail panel


_MD_PUNCT = re.compile(r"([\\`*_\[\]|~])")  # inline markup only: md_text never starts a line
_PLAIN_URL = re.compile(r"https?://[^\s<>()\[\]`\"'\\]+")


def md_text(value: object) -> str:
    """``value`` (user-supplied: metadata, file names, reasons) as literal Markdown text on
    one line: HTML escaped and Markdown punctuation backslash-escaped, so it cannot add
    links, images, headings or HTML to the page."""
    s = html.escape(" ".join(str(value).split()), quote=False)
    return _MD_PUNCT.sub(r"\\\1", s)


MAX_SHOWN_ID = 100  # characters: the longest id the queue makes (queue.JOB_ID)


def shown_id(job_id: object) -> str:
    """A submission id as echoed back in messages: a user-typed id longer than any real one
    (e.g. 1 MB pasted into /status) is cut, with its length."""
    s = str(job_id)
    return s if len(s) <= MAX_SHOWN_ID else f"{s[:40]}… ({len(s):,} characters)"


def md_link(url: object) -> str:
    """A Markdown link for a plain http(s) URL, else the value as literal text."""
    url = str(url).strip()
    return f"[{md_text(url)}]({url})" if _PLAIN_URL.fullmatch(url) else md_text(url)


def _started_ended(job: Job) -> tuple[float | None, float | None]:
    """(start, end) of the job's run in seconds since the epoch (end: finished, else last update)."""
    return to_epoch(job.started_at), to_epoch(job.finished_at) or to_epoch(job.updated_at)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def elapsed(job: Job, now: float | None = None) -> str:
    """Waiting time while queued, run time while running, total run time when done."""
    now = now or time.time()
    created = to_epoch(job.created_at)
    started, ended = _started_ended(job)
    if job.status == JobStatus.PENDING:
        return f"waiting {fmt_duration(now - created)}" if created else "—"
    if job.status == JobStatus.RUNNING:
        return f"running {fmt_duration(now - started)}" if started else "—"
    if started and ended:
        return fmt_duration(ended - started)
    return "—"


def fmt_rate(rate: float | None) -> str:
    """Items per second as text: '12/s', '2.5/s', '0.42/s', '1 per 40 s'; '' if unknown."""
    if rate is None or rate <= 0:
        return ""
    if rate >= 10:
        return f"{rate:.0f}/s"
    if rate >= 1:
        return f"{rate:.1f}/s"
    if rate >= 0.1:
        return f"{rate:.2f}/s"
    return f"1 per {1 / rate:.0f} s"


def fmt_count(x: float) -> str:
    """A large count, short: 950, 12.3 k, 4.56 M."""
    if x >= 1e6:
        return f"{x / 1e6:.3g} M"
    if x >= 1e4:
        return f"{x / 1e3:.3g} k"
    return f"{x:,.0f}"


def step_text(job: Job) -> str:
    """What runs inside the items of the running stage, e.g. 'relaxing 123-atom cell, step
    140/300 (1.2 M of 3.4 M atom-steps)'; '' when the stage does not report it."""
    p = job.progress
    detail = p.get("detail") or ""
    done, total = float(p.get("work_done") or 0), float(p.get("work_total") or 0)
    work = f"{fmt_count(done)} of ~{fmt_count(total)} atom-steps" if total > 0 else ""
    if detail and work:
        return f"{detail} ({work})"
    return detail or work


def progress_text(job: Job, now: float | None = None) -> tuple[str, str]:
    """(stage, 'done/total (pct)' and the running stage's measured rate when known, then
    what runs inside the items, e.g. 'relaxing 123-atom cell, step 140/300') of a job."""
    p = job.progress
    stage, done, total = p.get("stage") or "", p.get("done"), p.get("total")
    inside = step_text(job)
    if total:
        rate = fmt_rate(measured_rate(p, now))
        text = f"{done or 0}/{total} ({100 * (done or 0) / total:.0f} %)" + (f", {rate}" if rate else "")
        return stage, text + (f"; {inside}" if inside else "")
    return stage, inside


def stalled_for(job: Job, now: float | None = None, threshold_s: float | None = None) -> float | None:
    """Seconds without progress of a RUNNING job when past the stall-warning threshold, else None.
    A job whose lease the queue distrusts (``distrusted_lease``) is stalled whatever its progress
    says (a worker clock running ahead dates its progress in the future)."""
    if job.status != JobStatus.RUNNING:
        return None
    idle = seconds_since_progress(job, now or time.time())
    if distrusted_lease(job, now) is not None:
        return idle or 0.0
    if job.progress.get("stage") == STORE_UNAVAILABLE_STAGE:
        return None  # done; its worker retries publishing (and says so) until the store answers
    limit = stall_warn_s() if threshold_s is None else threshold_s
    return idle if idle is not None and idle >= limit else None


def distrusted_lease(job: Job, now: float | None = None) -> str | None:
    """Why the queue no longer trusts a RUNNING job's lease (``queue.lease_distrusted``), or None."""
    at = dt.datetime.fromtimestamp(now, dt.UTC) if now else None
    return lease_distrusted(job, at)


def failure_text(job: Job) -> str:
    f = job.failure
    if not f:
        return ""
    return f["reason"] + (f" ({f['kind']})" if f["kind"] else "")


def model_of(job: Job, store: Store | None = None) -> str:
    """The model's name and version: the job's, else its submission's metadata (read from ``store``)."""
    if job.model_name:
        return f"{job.model_name} {job.model_version}".strip()
    meta = None
    if store is not None:
        try:
            meta, _ = store.read_json(meta_path(job.id))
        except Exception:  # noqa: BLE001 - display only
            meta = None
    if isinstance(meta, dict):
        name, ver = meta.get("model_name") or meta.get("model") or "", meta.get("model_version") or ""
        return f"{name} {ver}".strip()
    return ""


def status_rows(jobs: list[Job], positions: dict[str, int | None], store: Store | None = None,
                now: float | None = None, etas: dict[str, str] | None = None,
                stall_s: float | None = None) -> pd.DataFrame:
    """One display row per job (newest first). ``etas``: {job id: short ETA text}."""
    rows = []
    for job in jobs:
        jid, st = job.id, job.status
        stage, prog = progress_text(job, now)
        pos = positions.get(jid)
        stalled = stalled_for(job, now, stall_s)
        rows.append({
            "Submission": jid,
            "Model": model_of(job, store),
            "Status": f"{STATUS_ICONS.get(st, '')} {st}".strip() + (" (stalled)" if stalled is not None else ""),
            "Queue position": str(pos) if pos else "",
            "Stage": stage if st in ACTIVE else "",
            "Progress": prog if st in ACTIVE else "",
            "ETA": (etas or {}).get(jid, "") if st in ACTIVE else "",
            "Elapsed": elapsed(job, now),
            "Failure reason": failure_text(job) if st == JobStatus.FAILED else "",
            "Permalink": f"[open](?submission={jid})",
            "_t": to_epoch(job.created_at) or 0.0,
        })
    df = pd.DataFrame(rows, columns=[*STATUS_COLUMNS, "_t"])
    return df.sort_values("_t", ascending=False, kind="mergesort").drop(columns="_t").reset_index(drop=True)


def _when(value: str | None) -> str:
    t = to_epoch(value)
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if t else "—"


HISTORY_WORDS = {"submitted": "submitted", "claimed": "claimed", "reclaimed": "reclaimed (lease expired)",
                 "released": "released back to the queue", "stalled": "stalled", "retry": "failed, will retry",
                 "failed": "failed", "finished": "finished", "withdrawn": "withdrawn", "cancelled": "cancelled",
                 "requeued": "requeued"}


def history_lines(job: Job, limit: int = HISTORY_SHOWN) -> list[str]:
    """The job's history (claims, reclaims, releases, stalls, retries...) as Markdown list
    items, most recent last; older entries are counted, not listed."""
    events = job.history
    lines = []
    if len(events) > limit:
        lines.append(f"  - … {len(events) - limit} earlier events")
    for e in events[-limit:]:
        ev = e["event"]
        text = f"  - {_when(e.get('at'))}: {md_text(HISTORY_WORDS.get(ev, ev))}"
        if by := e.get("by"):
            text += f" by {md_text(by)}"
        if previous := e.get("previous_owner"):
            text += f" from {md_text(previous)}"
        if (attempt := e.get("attempt")) is not None:
            text += f" (attempt {md_text(attempt)})"
        if stage := e.get("stage"):
            text += f" at {md_text(stage)}"
        why = e.get("reason") or e.get("why")
        if why:
            text += f": {md_text(why)}"
        lines.append(text)
    return lines


def job_detail(job: Job, position: int | None, store: Store | None = None, *, now: float | None = None,
               eta: list[tuple[str, str]] | None = None, stall_s: float | None = None) -> str:
    """Markdown detail of one job. ``eta``: (label, text) lines of time estimates."""
    now = now or time.time()
    jid, st = job.id, job.status
    stage, prog = progress_text(job, now)
    attempts, max_attempts = job.attempts, job.max_attempts
    attempt = (f" · attempt **{attempts}**" + (f" of {max_attempts}" if max_attempts else "")
               if attempts and st != JobStatus.PENDING else "")
    if st == JobStatus.PENDING and attempts:
        attempt = f" · {attempts} attempt{'s' * (attempts != 1)} so far"
    lines = [f"### {STATUS_ICONS.get(st, '')} `{jid}` — {md_text(model_of(job, store) or 'submission')}",
             f"- **Status:** {st}" + (f" · queue position **{position}**" if position else "") + attempt,
             f"- **Submitter:** {md_text(job.submitter)}"]
    if job.protocol:
        lines.append(f"- **Protocol:** `{md_text(job.protocol)}` (queued under it; only a worker that "
                     "produces it runs it)")
    if job.source:
        lines.append(f"- **Re-scoring of:** `{md_text(job.source)}` (its upload, scored again under "
                     "this protocol; its earlier results stay under their own)")
    if st in ACTIVE and (stage or prog):
        lines.append(f"- **Stage:** {md_text(stage or '—')}" + (f" · **{prog}**" if prog else ""))
    for label, text in eta or []:
        lines.append(f"- **{label}:** {text}")
    if st == JobStatus.RUNNING:
        idle = seconds_since_progress(job, now)
        if idle is not None:
            lines.append(f"- **Last progress:** {fmt_duration(idle)} ago")
        stalled = stalled_for(job, now, stall_s)
        distrusted = distrusted_lease(job, now)
        if distrusted is not None:
            lines.append(f"- **STALLED:** {md_text(distrusted)}; the next free worker takes it over.")
        elif stalled is not None:
            lines.append(f"- **STALLED:** no progress for {fmt_duration(stalled)}. The worker's watchdog "
                         f"stops a job after {fmt_duration(stall_timeout_s())} without progress and retries "
                         "it (an infrastructure failure, up to the attempt limit).")
    lines.append(f"- **Elapsed:** {elapsed(job, now)}")
    if st == JobStatus.FAILED:
        lines.append(f"- **Failure:** {md_text(failure_text(job) or 'unknown')}")
    if st in ACTIVE and job.last_error and job.last_error["reason"]:
        lines.append(f"- **Last failed attempt:** {md_text(job.last_error['reason'])}")
    lines.append(f"- **Permalink:** [?submission={jid}](?submission={jid})")
    if st == JobStatus.FINISHED:
        lines.append("- Results: see the **Model page** tab.")
    hist = history_lines(job)
    if hist:
        lines.append("- **History:**")
        lines += hist
    return "\n".join(lines)
