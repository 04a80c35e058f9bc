"""Screening an upload against the submission policy: the one verdict the upload check and
Submit share.

``screen_files`` applies the policy's file limits (count, total size, names) and leaves out
empty files (they hold no structure, so nothing is lost); ``prior_problem`` applies the
account's history (the same upload or the same structures again, the rate limit). The
upload check (``leaderboard.ui.submit_tab``) and ``submissions.submit`` both call them, so
Submit refuses exactly what the check refused. ``in_user_terms`` turns any exception of
the flow into a sentence without server paths.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from leaderboard.intake.policy import SubmissionPolicy, mb
from leaderboard.jobs.queue import (CANCELLED, FAILED, HIDDEN, INFRASTRUCTURE, FileEntry, Job, now, parse_time,
                                    public_reason)

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,120}$")
MAX_ECHO = 200  # characters of a user's value quoted back in a message
BLANK_PROBE_BYTES = 1 << 20  # files up to this size are read to see whether they hold only whitespace

# A submission whose files may be uploaded again: failed, cancelled or withdrawn (the
# duplicate refusal tells the submitter to withdraw the first one).
REUPLOADABLE = (FAILED, CANCELLED, HIDDEN)

FileInfo = FileEntry  # {"name", "sha256", "bytes"[, "original_name"]}: a job's ``files`` entry


def clip(text: object, limit: int = MAX_ECHO) -> str:
    """A message quoting user values, cut short (a refusal never echoes a 10 MB field)."""
    out = str(text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def stored_name(name: str) -> str:
    """A store-safe file name for an upload: characters outside letters, digits and
    ``._+-`` become ``_`` (``"my gens (v2).zip"`` -> ``"my_gens_v2_.zip"``); the extension,
    which decides the format, is kept."""
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).lstrip("._+-")[-121:].lstrip("._+-")
    return safe if SAFE_NAME.match(safe) else "upload" + Path(safe).suffix[:20]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def files_digest(hashes: Sequence[str]) -> str:
    """sha256 of a submission: the file's own for one file, else of the sorted digests."""
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def _blank(path: Path, size: int) -> bool:
    """The file holds nothing: no byte, or only whitespace (a small file is read to see)."""
    if size == 0:
        return True
    if size > BLANK_PROBE_BYTES:
        return False
    return path.read_bytes().isspace()


@dataclass
class Screened:
    """An upload screened against the policy's file limits.

    kept: the files that go on (to the check's parse and to Submit); infos: theirs, as the
    job records them; left_out: (file name, why) of files dropped with nothing lost (empty);
    refusal: why the upload as a whole is refused (None: it may go on)."""

    kept: list[Path] = field(default_factory=list)
    infos: list[FileInfo] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    left_out_paths: list[Path] = field(default_factory=list)
    refusal: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(i["bytes"] for i in self.infos)

    @property
    def file_sha256(self) -> str:
        return files_digest([i["sha256"] for i in self.infos])


def screen_files(files: Sequence[str | Path], policy: SubmissionPolicy) -> Screened:
    """The policy's file limits on ``files``: too many files, too many bytes, a file no
    longer on the server or two files of one name refuse the upload; empty files are left
    out (with the reason), and an upload of empty files only is refused."""
    out = Screened()
    paths = [Path(f) for f in files]
    if not paths:
        out.refusal = "no file uploaded: attach the generated structures"
        return out
    if len(paths) > policy.max_files:
        out.refusal = (f"too many files ({len(paths)}): at most {policy.max_files} files per submission; "
                       "put them in one zip or tar archive instead")
        return out
    names: set[str] = set()
    for p in paths:
        shown = clip(p.name, 120)
        try:
            if not p.is_file():
                raise FileNotFoundError(p.name)
            size = p.stat().st_size
            blank = _blank(p, size)
        except OSError:
            out.refusal = (f"{shown!r} is no longer on the server (uploads are kept for a limited time); "
                           "remove it and upload it again")
            return out
        if blank:
            out.left_out.append((shown, "empty file (no structure in it)"))
            out.left_out_paths.append(p)
            continue
        name = stored_name(p.name)
        if name in names:
            out.refusal = (f"two uploaded files are both named {name!r}: rename one, or put them in "
                           "one zip or tar archive")
            return out
        names.add(name)
        info: FileInfo = {"name": name, "sha256": sha256_of(p), "bytes": size}
        if name != p.name:
            info["original_name"] = p.name
        out.kept.append(p)
        out.infos.append(info)
    if out.total_bytes > policy.upload_bytes:
        out.refusal = (f"the upload is {mb(out.total_bytes)}; the limit is {mb(policy.upload_bytes)} "
                       "for all files together")
    elif not out.kept:
        out.refusal = "nothing to submit: " + "; ".join(f"{n}: {why}" for n, why in out.left_out)
    return out


def _counts_for_rate(job: Job) -> bool:
    """Submissions that count against the rate limit: all but those the service failed."""
    return not (job.status == FAILED and job.failure is not None and job.failure.get("kind") == INFRASTRUCTURE)


def rate_standing(mine: Sequence[Job], policy: SubmissionPolicy) -> tuple[int, dt.datetime | None]:
    """(submissions in the current window that count, when the oldest of them leaves it)."""
    since = now() - dt.timedelta(days=policy.window_days)
    created = [parse_time(j.created_at) for j in mine if _counts_for_rate(j)]
    recent = [t for t in created if t is not None and t >= since]
    if not recent:
        return 0, None
    return len(recent), min(recent) + dt.timedelta(days=policy.window_days)


def prior_problem(mine: Sequence[Job], policy: SubmissionPolicy, file_sha256: str,
                  structures_sha256: str = "") -> str | None:
    """Why the account's own submissions ``mine`` refuse this upload (the same files or the
    same structures again, unless that one failed, was cancelled or was withdrawn; the rate
    limit), or None."""
    for job in mine:
        if job.status in REUPLOADABLE:
            continue
        if job.file_sha256 == file_sha256:
            return (f"you already submitted this file (submission {job.id}, {job.status.lower()}); "
                    "withdraw it or upload different structures")
        if structures_sha256 and job.structures_sha256 == structures_sha256:
            return (f"you already submitted these structures, in other files (submission {job.id}, "
                    f"{job.status.lower()}); withdraw it or upload different structures")
    if policy.max_per_window > 0:
        used, again = rate_standing(mine, policy)
        if used >= policy.max_per_window and again is not None:
            return (f"rate limit: at most {policy.max_per_window} submissions per {policy.window_days:g} days; "
                    f"you can submit again after {again:%Y-%m-%d %H:%M} UTC")
    return None


def in_user_terms(exc: BaseException) -> str:
    """An exception of the upload flow as a sentence for the page: no server path, no errno."""
    if isinstance(exc, FileNotFoundError):
        name = Path(str(exc.filename)).name if exc.filename else "a file"
        return (f"{clip(name, 120)!r} is no longer on the server (uploads are kept for a limited time); "
                "remove it and upload it again")
    if isinstance(exc, OSError):
        what = exc.strerror or type(exc).__name__
        name = f" {clip(Path(str(exc.filename)).name, 120)!r}" if exc.filename else ""
        return f"the server could not read the upload{name} ({what.lower()})"
    return clip(public_reason(str(exc)) or type(exc).__name__, 300)
