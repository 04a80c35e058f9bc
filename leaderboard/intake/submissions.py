"""Accepting a submission: validate metadata, deduplicate, rate-limit, store, enqueue.

``submit(store, meta, files, submitter)`` writes ``submissions/<id>/meta.json``
and ``submissions/<id>/files/<name>`` (write-once) and ``queue/<id>.json``
(PENDING) in one commit, and returns the Job. Anything the user must fix is a
:class:`SubmissionError` whose message can be shown as is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from leaderboard.jobs.queue import (CANCELLED, FAILED, HIDDEN, INFRASTRUCTURE, Job, create_job, hide, list_jobs,
                               new_job_id, now, parse_time)
from leaderboard import settings
from leaderboard.publishing.dataset import unpublish_hidden
from leaderboard.store import Store, dumps
from leaderboard.store.layout import meta_path, upload_path

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "submissions_schema.json"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,120}$")
SERVER_FIELDS = ("submitter", "file_sha256")  # filled in by submit()
MAX_META_DEPTH = 8  # nesting levels of the metadata JSON (the schema's fields are flat)
MAX_ECHO = 200  # characters of a user's value quoted back in a message


def stored_name(name: str) -> str:
    """A store-safe file name for an upload: characters outside letters, digits and
    ``._+-`` become ``_`` (``"my gens (v2).zip"`` -> ``"my_gens_v2_.zip"``); the extension,
    which decides the format, is kept."""
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).lstrip("._+-")[-121:].lstrip("._+-")
    return safe if SAFE_NAME.match(safe) else "upload" + Path(safe).suffix[:20]


class SubmissionError(ValueError):
    """The submission is refused; the message tells the user what to fix."""


def _clip(text: str, limit: int = MAX_ECHO) -> str:
    """A message quoting user values, cut short (a refusal never echoes a 10 MB field)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def meta_type_problem(meta) -> str | None:
    """Why ``meta`` is not usable metadata at all (not a JSON object, nested too deeply), or None."""
    from evaluator.ingest.jsonload import nesting_depth

    if not isinstance(meta, dict):
        kind = {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
                type(None): "null"}.get(type(meta), type(meta).__name__)
        return f"metadata must be a JSON object of fields (model_name, model_version, ...), not a {kind}"
    if nesting_depth(meta, MAX_META_DEPTH) > MAX_META_DEPTH:
        return f"metadata is nested too deeply (more than {MAX_META_DEPTH} levels); its fields are plain values"
    return None


@dataclass
class SubmissionPolicy:
    """Per-user limits. Environment overrides: GENBENCH_RATE_LIMIT (submissions per
    window, 0 = unlimited), GENBENCH_RATE_WINDOW_DAYS, GENBENCH_MAX_UPLOAD_MB,
    GENBENCH_MAX_ATTEMPTS (evaluation attempts on infrastructure failures)."""

    max_per_window: int = 5
    window_days: float = 7.0
    max_upload_bytes: int = 200 * 1024**2  # total of all files
    max_files: int = 20
    max_attempts: int = 3

    @classmethod
    def from_env(cls) -> SubmissionPolicy:
        p = cls()
        if (rate := settings.RATE_LIMIT.read()) is not None:
            p.max_per_window = rate
        if (days := settings.RATE_WINDOW_DAYS.read()) is not None:
            p.window_days = days
        if (mb := settings.MAX_UPLOAD_MB.read()) is not None:
            p.max_upload_bytes = int(mb * 1024**2)
        if (attempts := settings.MAX_ATTEMPTS.read()) is not None:
            p.max_attempts = attempts
        return p


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The submission JSON Schema (draft 2020-12), ``submissions_schema.json``."""
    return json.loads(SCHEMA_PATH.read_text())


def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema())


def _describe(error) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    props = load_schema()["properties"]
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = missing[0] if missing else error.message
        title = props.get(name, {}).get("title", name)
        return f"{title} ({name}) is required"
    if error.validator == "additionalProperties":
        return f"unknown field(s): {error.message.split('(')[-1].rstrip(')')}"
    title = props.get(where, {}).get("title", where) if where else "metadata"
    if error.validator == "enum":
        return f"{title}: {error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "pattern" and where.endswith("_url"):
        return f"{title}: must be an http(s) URL"
    return f"{title}: {error.message}"


def validate_meta(meta: dict, *, complete: bool = True) -> list[str]:
    """Error messages for ``meta`` against the schema ([] = valid).

    Messages name the field by its title, e.g. "Model name (model_name) is required".
    ``complete=False`` (a form before upload): the server-filled fields
    ``submitter`` and ``file_sha256`` may be missing; blank strings count as missing.
    """
    problem = meta_type_problem(meta)
    if problem:
        return [problem]
    if not complete:
        meta = clean_meta(meta)
        meta.setdefault("submitter", "placeholder")
        meta.setdefault("file_sha256", "0" * 64)
    errors = sorted(_validator().iter_errors(meta), key=lambda e: (list(e.absolute_path), e.message))
    return [_clip(_describe(e)) for e in errors]


def clean_meta(meta: dict) -> dict:
    """Drop empty optional values (form fields left blank) and strip strings."""
    out = {}
    for k, v in meta.items():
        if isinstance(v, str):
            v = v.strip()
            if not v:
                continue
        if v is None:
            continue
        out[k] = v
    return out


def files_digest(hashes: list[str]) -> str:
    """sha256 of a submission: the file's own for one file, else of the sorted digests."""
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# A submission whose files may be uploaded again: failed, cancelled or withdrawn (the
# duplicate refusal tells the submitter to withdraw the first one).
REUPLOADABLE = (FAILED, CANCELLED, HIDDEN)


def _counts_for_rate(job: Job) -> bool:
    """Submissions that count against the rate limit: all but those the service failed."""
    return not (job.status == FAILED and (job.failure or {}).get("kind") == INFRASTRUCTURE)


def submit(store: Store, meta: dict, files: list[str | Path], submitter: str,
           policy: SubmissionPolicy | None = None, protocol: str = "", structures_sha256: str = "") -> Job:
    """Validate, deduplicate, rate-limit and enqueue one submission; returns its PENDING Job.

    ``submitter`` (the logged-in account) overrides any ``meta["submitter"]``;
    ``file_sha256`` is computed here. Raises SubmissionError for invalid
    metadata, a duplicate upload (same file hash, or same ``structures_sha256``, by the same
    submitter, unless that one failed, was cancelled or was withdrawn), too many submissions in the window, or
    a refused upload (no file, too many/large files, unsafe file name). ``protocol``: the id
    of the protocol the service pins; the job carries it (only a worker producing it runs it).
    ``structures_sha256``: the upload check's content digest of the parsed structures
    (``evaluator.ingest.UploadCheck.structures_sha256``), so the same structures in a rebuilt
    or renamed archive are recognised; the job carries it ("": not known, bytes only).
    """
    policy = policy or SubmissionPolicy.from_env()
    problem = meta_type_problem(meta)
    if problem:
        raise SubmissionError(problem)
    paths = [Path(f) for f in files]
    if not paths:
        raise SubmissionError("no file uploaded: attach the generated structures")
    if len(paths) > policy.max_files:
        raise SubmissionError(f"too many files ({len(paths)}); upload at most {policy.max_files} "
                              f"or put them in one zip/tar archive")
    names, infos, total = set(), [], 0
    for p in paths:
        if not p.is_file():
            raise SubmissionError(f"upload {_clip(repr(p.name), 120)} is not a readable file")
        name = stored_name(p.name)
        if name in names:
            raise SubmissionError(f"two uploaded files are both named {name!r}")
        names.add(name)
        size = p.stat().st_size
        if size == 0:
            raise SubmissionError(f"file {name!r} is empty")
        total += size
        info = {"name": name, "sha256": _sha256(p), "bytes": size}
        if name != p.name:
            info["original_name"] = p.name
        infos.append(info)
    if total > policy.max_upload_bytes:
        raise SubmissionError(f"upload is {total / 1024**2:.1f} MB; the limit is "
                              f"{policy.max_upload_bytes / 1024**2:.0f} MB")

    meta = clean_meta(dict(meta))
    meta["submitter"] = submitter
    meta["file_sha256"] = files_digest([i["sha256"] for i in infos])
    errors = validate_meta(meta)
    if errors:
        raise SubmissionError("invalid metadata: " + "; ".join(errors))

    mine = list_jobs(store, submitter=submitter)
    for job in mine:
        if job.status in REUPLOADABLE:
            continue
        if job.file_sha256 == meta["file_sha256"]:
            raise SubmissionError(f"you already submitted this file (submission {job.id}, "
                                  f"{job.status.lower()}); withdraw it or upload different structures")
        if structures_sha256 and job.structures_sha256 == structures_sha256:
            raise SubmissionError(f"you already submitted these structures, in other files (submission "
                                  f"{job.id}, {job.status.lower()}); withdraw it or upload different structures")
    if policy.max_per_window > 0:
        since = now() - dt.timedelta(days=policy.window_days)
        recent = [j for j in mine if parse_time(j.created_at) >= since and _counts_for_rate(j)]
        if len(recent) >= policy.max_per_window:
            oldest = min(parse_time(j.created_at) for j in recent)
            again = oldest + dt.timedelta(days=policy.window_days)
            raise SubmissionError(f"rate limit: at most {policy.max_per_window} submissions per "
                                  f"{policy.window_days:g} days; you can submit again after "
                                  f"{again:%Y-%m-%d %H:%M} UTC")

    job = Job(id=new_job_id(), submitter=submitter, model_name=meta["model_name"],
              model_version=meta["model_version"], files=infos, file_sha256=meta["file_sha256"],
              structures_sha256=structures_sha256,
              max_attempts=policy.max_attempts, protocol=protocol)
    writes = {meta_path(job.id): dumps(meta)}
    for p, info in zip(paths, infos):
        writes[upload_path(job.id, info["name"])] = p.read_bytes()
    return create_job(store, job, writes, message=f"submission {job.id} by {submitter}")


def withdraw(store: Store, job_id: str, user: str | None, *, admin: bool = False) -> Job:
    """Hide a submission (owner only, or admin): it is kept in the requests store but no
    longer shown; a pending/running one stops. Removes it from the public results (its
    leaderboard row, per-structure rows, summary and card entry: ``leaderboard.publishing.dataset``)."""
    return unpublish_hidden(store, lambda: hide(store, job_id, user, admin=admin))


def file_paths(job: Job) -> list[str]:
    """Store paths of the job's uploaded files (a re-scoring job's are its source submission's)."""
    return [upload_path(job.source or job.id, f["name"]) for f in job.files]
