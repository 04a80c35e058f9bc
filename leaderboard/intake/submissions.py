"""Accepting a submission: validate metadata, deduplicate, rate-limit, store, enqueue.

``submit(store, meta, files, submitter)`` writes ``submissions/<id>/meta.json``
and ``submissions/<id>/files/<name>`` (write-once) and ``queue/<id>.json``
(PENDING) in one commit, and returns the Job. Anything the user must fix is a
:class:`SubmissionError` whose message can be shown as is.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from evaluator.ingest.jsonload import nesting_depth
from leaderboard.intake.policy import SubmissionPolicy
from leaderboard.intake.screening import REUPLOADABLE, clip, files_digest, prior_problem, screen_files, stored_name
from leaderboard.jobs.queue import Job, create_job, hide, list_jobs, new_job_id
from leaderboard.publishing.dataset import unpublish_hidden
from leaderboard.store import Store, dumps
from leaderboard.store.layout import meta_path, upload_path

__all__ = ["REUPLOADABLE", "SCHEMA_PATH", "SubmissionError", "SubmissionPolicy", "clean_meta", "file_paths",
           "files_digest", "load_schema", "meta_type_problem", "stored_name", "submit", "validate_meta",
           "withdraw"]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "submissions_schema.json"
SERVER_FIELDS = ("submitter", "file_sha256")  # filled in by submit()
MAX_META_DEPTH = 8  # nesting levels of the metadata JSON (the schema's fields are flat)


class SubmissionError(ValueError):
    """The submission is refused; the message tells the user what to fix."""


def meta_type_problem(meta: object) -> str | None:
    """Why ``meta`` is not usable metadata at all (not a JSON object, nested too deeply), or None."""
    if not isinstance(meta, dict):
        kinds: dict[type, str] = {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
                                  type(None): "null"}
        kind = kinds.get(type(meta), type(meta).__name__)
        return f"metadata must be a JSON object of fields (model_name, model_version, ...), not a {kind}"
    if nesting_depth(meta, MAX_META_DEPTH) > MAX_META_DEPTH:
        return f"metadata is nested too deeply (more than {MAX_META_DEPTH} levels); its fields are plain values"
    return None


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The submission JSON Schema (draft 2020-12), ``submissions_schema.json``."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema())


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    props: dict[str, dict[str, Any]] = load_schema()["properties"]
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = missing[0] if missing else error.message
        title = props.get(name, {}).get("title", name)
        return f"{title} ({name}) is required"
    if error.validator == "additionalProperties":
        return f"unknown field(s): {error.message.split('(')[-1].rstrip(')')}"
    title = props.get(where, {}).get("title", where) if where else "metadata"
    if error.validator == "enum":
        allowed = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{title}: {error.instance!r} is not one of {', '.join(map(str, allowed))}"
    if error.validator == "pattern" and where.endswith("_url"):
        return f"{title}: must be an http(s) URL"
    return f"{title}: {error.message}"


def validate_meta(meta: object, *, complete: bool = True) -> list[str]:
    """Error messages for ``meta`` against the schema ([] = valid).

    Messages name the field by its title, e.g. "Model name (model_name) is required".
    ``complete=False`` (a form before upload): the server-filled fields
    ``submitter`` and ``file_sha256`` may be missing; blank strings count as missing.
    """
    problem = meta_type_problem(meta)
    if problem or not isinstance(meta, dict):
        return [problem or "metadata must be a JSON object"]
    if not complete:
        meta = clean_meta(meta)
        meta.setdefault("submitter", "placeholder")
        meta.setdefault("file_sha256", "0" * 64)
    errors = sorted(_validator().iter_errors(meta), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [clip(_describe(e)) for e in errors]


def clean_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Drop empty optional values (form fields left blank) and strip strings."""
    out: dict[str, Any] = {}
    for k, v in meta.items():
        if isinstance(v, str):
            v = v.strip()
            if not v:
                continue
        if v is None:
            continue
        out[k] = v
    return out


def atom_histogram(atoms: Sequence[int]) -> list[list[int]]:
    """``[[atoms, how many cells], ...]`` (ascending): the cell sizes a job carries, compactly."""
    return [[n, c] for n, c in sorted(Counter(int(a) for a in atoms).items())]


def submit(store: Store, meta: object, files: Sequence[str | Path], submitter: str,
           policy: SubmissionPolicy | None = None, protocol: str = "", structures_sha256: str = "",
           n_structures: int | None = None, atoms: Sequence[int] = ()) -> Job:
    """Validate, deduplicate, rate-limit and enqueue one submission; returns its PENDING Job.

    ``submitter`` (the logged-in account) overrides any ``meta["submitter"]``;
    ``file_sha256`` is computed here. Raises SubmissionError for invalid
    metadata, a duplicate upload (same file hash, or same ``structures_sha256``, by the same
    submitter, unless that one failed, was cancelled or was withdrawn), too many submissions in the
    window, or a refused upload (no file, too many/large files, an empty or missing file, two files
    of one name): the checks of ``screening``, which the upload check runs too. ``protocol``: the id
    of the protocol the service pins; the job carries it (only a worker producing it runs it).
    ``structures_sha256``: the upload check's content digest of the parsed structures
    (``evaluator.ingest.UploadCheck.structures_sha256``), so the same structures in a rebuilt
    or renamed archive are recognised; the job carries it ("": not known, bytes only).
    ``n_structures`` and ``atoms``: the structures the upload check parsed and their cells' atoms;
    the job carries them so that every estimate knows its size.
    """
    policy = policy or SubmissionPolicy.from_env()
    problem = meta_type_problem(meta)
    if problem or not isinstance(meta, dict):
        raise SubmissionError(problem or "metadata must be a JSON object")
    screened = screen_files(files, policy)
    if screened.refusal:
        raise SubmissionError(screened.refusal)
    if screened.left_out:  # the app leaves empty files out before it calls submit(); a caller here must too
        raise SubmissionError("; ".join(f"file {name}: {why}" for name, why in screened.left_out)
                              + ": remove it from the upload")

    meta = clean_meta(dict(meta))
    meta["submitter"] = submitter
    meta["file_sha256"] = screened.file_sha256
    errors = validate_meta(meta)
    if errors:
        raise SubmissionError("invalid metadata: " + "; ".join(errors))

    refusal = prior_problem(list_jobs(store, submitter=submitter), policy, meta["file_sha256"], structures_sha256)
    if refusal:
        raise SubmissionError(refusal)

    job = Job(id=new_job_id(), submitter=submitter, model_name=meta["model_name"],
              model_version=meta["model_version"], files=list(screened.infos), file_sha256=meta["file_sha256"],
              structures_sha256=structures_sha256, max_attempts=policy.max_attempts, protocol=protocol,
              n_structures=n_structures, cell_atoms=atom_histogram(atoms))
    writes = {meta_path(job.id): dumps(meta)}
    for p, info in zip(screened.kept, screened.infos):
        writes[upload_path(job.id, str(info["name"]))] = p.read_bytes()
    return create_job(store, job, writes, message=f"submission {job.id} by {submitter}")


def withdraw(store: Store, job_id: str, user: str | None, *, admin: bool = False) -> Job:
    """Hide a submission (owner only, or admin): it is kept in the requests store but no
    longer shown; a pending/running one stops. Removes it from the public results (its
    leaderboard row, per-structure rows, summary and card entry: ``leaderboard.publishing.dataset``)."""
    return unpublish_hidden(store, lambda: hide(store, job_id, user, admin=admin))


def file_paths(job: Job) -> list[str]:
    """Store paths of the job's uploaded files (a re-scoring job's are its source submission's)."""
    return [upload_path(job.source or job.id, f["name"]) for f in job.files]
