"""A job's status document, typed: its states, failure kinds and records, and how it is parsed.

A status document (``queue/<id>.json``) is JSON; ``parse_job`` turns its bytes into the
one typed job, ``Job``, once, where it is read (``leaderboard.jobs.job_store``), and refuses a
document that is not a job (``CorruptDocument``: the queue quarantines it). The records a
job carries are typed dictionaries, so the stored JSON is what it always was (old
documents load unchanged, ``to_dict`` writes the same keys):

* ``Progress``: the running attempt's stage and counts (``leaderboard.jobs.progress``);
* ``Failure``: why it failed (``failure``) or why the last attempt failed (``last_error``);
* ``HistoryEvent``: what happened to it ("submitted", "claimed", "retry", ...);
* ``FileEntry``: one uploaded file.

A known key of a record holding a value of the wrong type (a hand-edited or half-written
document) is dropped when parsing, so readers see it absent instead of guessing; a record
that is not an object makes the whole document corrupt.

Job states (``JobStatus``) and failure kinds (``FailureKind``) are ``StrEnum``s: their
values are the strings stored in documents and the queue index.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Required, TypedDict, cast

from leaderboard.settings import STALL_TIMEOUT


class JobStatus(StrEnum):
    """States::

        PENDING -> RUNNING -> FINISHED | FAILED       (CANCELLED: stopped by owner/admin)
        any     -> HIDDEN                             (withdrawn by its owner; kept, not shown)
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    HIDDEN = "HIDDEN"


ACTIVE: tuple[JobStatus, ...] = (JobStatus.PENDING, JobStatus.RUNNING)


class FailureKind(StrEnum):
    """Whose failure: the upload's (final) or the machine's (retried up to the attempt limit)."""

    USER_ERROR = "user"
    INFRASTRUCTURE = "infrastructure"


class Progress(TypedDict, total=False):
    """``progress`` of the current attempt (see ``leaderboard.jobs.progress``): stage, counts,
    ISO times of the stage's start and of the last change, rates (None: not measured yet)."""

    stage: str
    done: int
    total: int
    stage_started_at: str
    updated_at: str
    rate: float | None
    detail: str | None
    work_done: float
    work_total: float
    work_rate: float | None
    work_rates: dict[str, float]


class Failure(TypedDict, total=False):
    """``failure`` (on FAILED) or ``last_error`` (a retried attempt's, with its ``attempt``):
    a user-facing reason (``public_reason``), whose failure it is, when; ``detail`` says
    why a quarantined document was corrupt."""

    reason: Required[str]
    kind: Required[str]  # a FailureKind value (kept as stored when an old document holds another)
    at: str
    attempt: int
    detail: str


class HistoryEvent(TypedDict, total=False):
    """One history entry: ``event`` ("submitted", "claimed", "reclaimed", "released",
    "stalled", "retry", "failed", "finished", "withdrawn", "cancelled", "requeued",
    "quarantined"), when (``at``), by whom (``by``), the worker's ``attempt`` and what the
    event says (``previous_owner``, ``stage``, ``reason``/``why``, ``kind``, ...)."""

    at: str
    event: Required[str]
    by: str | None
    attempt: int
    previous_owner: str | None
    stage: str
    reason: str
    why: str
    kind: str
    detail: str
    copy: str


class FileEntry(TypedDict, total=False):
    """An uploaded file, stored under ``submissions/<id>/files/<name>``."""

    name: Required[str]
    sha256: str
    bytes: int
    original_name: str  # the name as uploaded, when it had to be changed to be stored


MAX_HISTORY = 50
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")  # what new_job_id makes (and test ids)
MAX_LEASE_S = 3600.0  # the longest lease a worker grants (defaults: 60 s locally, 900 s on the Hub)
# a RUNNING job whose worker has not heartbeaten for this long is stalled, whatever its lease
# says (workers heartbeat every few minutes at most; default: the worker's stall limit)
STALE_HEARTBEAT_S = STALL_TIMEOUT.read_or_default()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime | None = None) -> str:
    return (t or now()).isoformat(timespec="milliseconds")


def parse_time(s: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(s) if s else None


def new_job_id() -> str:
    """Time-sortable unique id, e.g. ``20250101-120000-1a2b3c4d``."""
    return f"{now():%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


def _initial_progress() -> Progress:
    return {"done": 0, "total": 0, "stage": ""}


@dataclass
class Job:
    """The status document of one submission.

    progress: the current attempt's ``Progress``. history: ``HistoryEvent``s, the last
    ``MAX_HISTORY``. stage_rates: {stage: items/s} measured by the worker that finished
    the job. failure: on FAILED; a retried infrastructure failure is kept in
    ``last_error``. files: the upload's ``FileEntry``s.
    """

    id: str
    status: JobStatus = JobStatus.PENDING
    submitter: str = ""
    model_name: str = ""
    model_version: str = ""
    created_at: str = ""
    updated_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    max_attempts: int = 3
    lease_owner: str | None = None
    lease_expires: str | None = None
    heartbeat: str | None = None
    not_before: str | None = None  # earliest retry time after an infrastructure failure
    progress: Progress = field(default_factory=_initial_progress)
    failure: Failure | None = None
    last_error: Failure | None = None
    files: list[FileEntry] = field(default_factory=list)
    file_sha256: str = ""
    structures_sha256: str = ""  # content digest of the parsed structures (evaluator.ingest.fingerprint)
    hidden_from: JobStatus | None = None  # status before HIDDEN
    version: int = 0
    history: list[HistoryEvent] = field(default_factory=list)
    seq: int = 0  # submission order, assigned by create_job (0: created before sequencing)
    stage_rates: dict[str, float] | None = None  # {stage: items/s}, set when FINISHED
    protocol: str = ""  # id of the evaluation protocol it was queued under ("": before protocols, any)
    source: str = ""  # a re-scoring job: the submission whose upload and metadata it scores again
    # its size, from the upload check (None / []: not known, e.g. a job from before sizes were kept)
    n_structures: int | None = None  # structures the upload check parsed
    cell_atoms: list[list[int]] = field(default_factory=list)  # [[atoms, how many cells], ...]

    def __post_init__(self) -> None:
        self.status = JobStatus(self.status)  # a caller's plain "RUNNING" becomes the member

    @property
    def order_key(self) -> tuple[int, str, str]:
        """Sort key for first-in first-out: (seq, created_at, id)."""
        return (self.seq, self.created_at, self.id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        """The job of an already checked document (``parse_job`` checks one)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def lease_expired(self) -> bool:
        """The lease ended, or cannot be trusted (``lease_distrusted``)."""
        exp = parse_time(self.lease_expires)
        return exp is None or exp <= now() or lease_distrusted(self) is not None

    @property
    def visible(self) -> bool:
        """Shown on the leaderboard: finished and not withdrawn."""
        return self.status == JobStatus.FINISHED

    def log(self, event: str, by: str | None = None, **extra: Any) -> None:
        # ``extra``: the event's other HistoryEvent keys (previous_owner, stage, reason, ...)
        self.history.append(cast(HistoryEvent, {"at": iso(), "event": event, "by": by, **extra}))
        del self.history[:-MAX_HISTORY]


def lease_distrusted(job: Job, at: dt.datetime | None = None, max_lease_s: float = MAX_LEASE_S,
                     stale_s: float = STALE_HEARTBEAT_S) -> str | None:
    """Why a RUNNING job's unexpired lease cannot be trusted, or None: it ends further ahead
    than any worker grants (``MAX_LEASE_S``; a worker clock running ahead), or the last
    heartbeat is older than ``STALE_HEARTBEAT_S`` (the worker stopped beating)."""
    if job.status != JobStatus.RUNNING:
        return None
    t = at or now()
    try:
        exp, beat = parse_time(job.lease_expires), parse_time(job.heartbeat)
    except (TypeError, ValueError):
        return "unreadable lease times"
    if exp is not None and (exp - t).total_seconds() > max_lease_s:
        return (f"its lease ends {(exp - t).total_seconds() / 3600:.1f} h from now, longer than any worker "
                f"grants ({max_lease_s:g} s): the worker's clock runs ahead")
    if beat is not None and (t - beat).total_seconds() > stale_s:
        return f"no heartbeat for {(t - beat).total_seconds():.0f} s (stall limit {stale_s:g} s)"
    return None


# absolute file paths (two parts at least) not inside a URL or a word: /srv/state/queue/x.json
_SERVER_PATH = re.compile(r"(?<![\w.:/~-])(?:~/|/)(?:[^\s/'\"()\[\]<>,;]+/)+([^\s/'\"()\[\]<>,;]*)")


def public_reason(text: str) -> str:
    """``text`` without server file paths (each becomes ``…/<its last part>``): failure
    reasons are shown to everyone; the worker's log keeps the full message."""
    return _SERVER_PATH.sub(lambda m: f"…/{m.group(1)}" if m.group(1) else "…/", text)


# ------------------------------------------------------------------ parsing
class CorruptDocument(ValueError):
    """A status document that is not a well-formed job document."""


_STR = ("submitter", "model_name", "model_version", "file_sha256", "structures_sha256", "protocol", "source")
_OPT_STR = ("lease_owner",)
_TIMES = ("created_at", "updated_at", "started_at", "finished_at", "lease_expires", "heartbeat",
          "not_before")
_INTS = ("attempts", "max_attempts", "version", "seq")
_OPT_DICTS = ("failure", "last_error", "stage_rates")
_NUMBER = (int, float)

# the type of each known key of a record; a value of another type is dropped when parsing
_PROGRESS_KEYS: dict[str, tuple[type, ...]] = {
    "stage": (str,), "done": (int,), "total": (int,), "stage_started_at": (str,), "updated_at": (str,),
    "rate": (*_NUMBER, type(None)), "detail": (str, type(None)), "work_done": _NUMBER, "work_total": _NUMBER,
    "work_rate": (*_NUMBER, type(None)), "work_rates": (dict,)}
_FAILURE_KEYS: dict[str, tuple[type, ...]] = {
    "reason": (str,), "kind": (str,), "at": (str,), "attempt": (int,), "detail": (str,)}
_EVENT_KEYS: dict[str, tuple[type, ...]] = {
    "at": (str,), "event": (str,), "by": (str, type(None)), "attempt": (int,),
    "previous_owner": (str, type(None)), "stage": (str,), "reason": (str,), "why": (str,), "kind": (str,),
    "detail": (str,), "copy": (str,)}
_FILE_KEYS: dict[str, tuple[type, ...]] = {"name": (str,), "sha256": (str,), "bytes": (int,),
                                           "original_name": (str,)}


def _checked(raw: dict[str, Any], keys: dict[str, tuple[type, ...]]) -> dict[str, Any]:
    """``raw`` without the known keys whose value has the wrong type (``bool`` is no number)."""
    return {k: v for k, v in raw.items()
            if k not in keys or (isinstance(v, keys[k]) and not (isinstance(v, bool) and bool not in keys[k]))}


def _rates(raw: object) -> dict[str, float]:
    """{stage: rate} with the numeric rates of ``raw`` (a stored mapping)."""
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, _NUMBER) and not isinstance(v, bool)}


def parse_progress(raw: dict[str, Any]) -> Progress:
    p = _checked(raw, _PROGRESS_KEYS)
    if "work_rates" in p:
        p["work_rates"] = _rates(p["work_rates"])
    return cast(Progress, p)  # keys and value types checked above


def parse_failure(raw: dict[str, Any]) -> Failure:
    f = _checked(raw, _FAILURE_KEYS)
    f.setdefault("reason", "")
    f.setdefault("kind", "")
    if f["kind"] in set(FailureKind):
        f["kind"] = FailureKind(f["kind"])
    return cast(Failure, f)  # keys and value types checked above


def parse_event(raw: dict[str, Any]) -> HistoryEvent:
    e = _checked(raw, _EVENT_KEYS)
    e.setdefault("event", "?")
    return cast(HistoryEvent, e)  # keys and value types checked above


def parse_file(raw: dict[str, Any]) -> FileEntry:
    """An upload's file entry; CorruptDocument without a name (the upload could not be found)."""
    f = _checked(raw, _FILE_KEYS)
    if "name" not in f:
        raise CorruptDocument("a file entry without a name")
    return cast(FileEntry, f)  # keys and value types checked above


def _check_fields(doc: dict[str, Any]) -> list[str]:
    """The names of ``doc``'s fields of the wrong type or value."""
    bad = [k for k in _STR if not isinstance(doc.get(k, ""), str)]
    bad += [k for k in _OPT_STR if not isinstance(doc.get(k), (str, type(None)))]
    bad += [k for k in ("hidden_from",) if doc.get(k) is not None and doc.get(k) not in set(JobStatus)]
    bad += [k for k in _INTS if type(doc.get(k, 0)) is not int]
    bad += [k for k in _OPT_DICTS if not isinstance(doc.get(k), (dict, type(None)))]
    bad += [k for k in ("progress",) if not isinstance(doc.get(k, {}), dict)]
    bad += [k for k in ("n_structures",) if doc.get(k) is not None and type(doc.get(k)) is not int]
    bad += [k for k in ("cell_atoms",) if not isinstance(doc.get(k, []), list)
            or not all(isinstance(x, list) and len(x) == 2 and all(type(n) is int for n in x)
                       for x in doc.get(k, []))]
    bad += [k for k in ("files", "history") if not isinstance(doc.get(k, []), list)
            or not all(isinstance(x, dict) for x in doc.get(k, []))]
    for k in _TIMES:
        v = doc.get(k)
        if k == "created_at" or v is not None:
            try:
                t = parse_time(v) if isinstance(v, str) else None
                if t is None or t.tzinfo is None:
                    bad.append(k)
            except (TypeError, ValueError):
                bad.append(k)
    return bad


def parse_job(data: bytes, job_id: str) -> Job:
    """The Job in a status document's bytes; raises CorruptDocument if it is not one."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptDocument(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CorruptDocument(f"a JSON {type(doc).__name__}, not an object")
    if doc.get("id") != job_id:
        raise CorruptDocument(f"id {doc.get('id')!r} does not match the file name")
    if doc.get("status") not in set(JobStatus):
        raise CorruptDocument(f"unknown status {doc.get('status')!r}")
    bad = _check_fields(doc)
    if bad:
        raise CorruptDocument(f"wrong type or value of {', '.join(sorted(set(bad)))}")
    doc = dict(doc)
    if doc.get("hidden_from") is not None:
        doc["hidden_from"] = JobStatus(doc["hidden_from"])
    if "progress" in doc:
        doc["progress"] = parse_progress(doc["progress"])
    for k in ("failure", "last_error"):
        if doc.get(k) is not None:
            doc[k] = parse_failure(doc[k])
    if doc.get("stage_rates") is not None:
        doc["stage_rates"] = _rates(doc["stage_rates"])
    doc["history"] = [parse_event(e) for e in doc.get("history", [])]
    doc["files"] = [parse_file(f) for f in doc.get("files", [])]
    return Job.from_dict(doc)
