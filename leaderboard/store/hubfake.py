"""An in-memory fake of the small ``HfApi`` surface HubStore uses (offline tests).

Behaves like the Hub where it matters: every ``create_commit`` makes a new
commit sha, a stale ``parent_commit`` is refused with ``HfHubHTTPError`` 412,
missing repos/files raise ``RepositoryNotFoundError``/``RemoteEntryNotFoundError``.
``fail_next`` injects HTTP errors (e.g. ``[429, 503]``) into the next calls.

Like the Hub, a repo takes at most ``max_commits_per_hour`` (128) commits in any
hour: one more is refused with HTTP 429 (and a ``Retry-After`` header saying when
the oldest commit of the hour ages out); ``refused`` counts those refusals.
``list_repo_commits`` gives each commit's ``created_at``. ``clock`` (default
``time.time``) dates the commits, so a simulation can run on virtual time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx2
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete


class SimClock:
    """Virtual epoch seconds for simulations and tests: time passes only through ``sleep``.

    Threads that take part (``with clock.participant():``) share it as discrete-event
    time: a ``sleep`` blocks until the clock reaches its wake time, and the clock jumps to
    the earliest wake time only when every participant is asleep, so one thread's long
    wait never skips over the others' work. A thread that does not take part (a plain
    test) advances the clock at once when it sleeps. ``sleeps`` records every sleep.
    """

    def __init__(self, start: float | None = None):
        self.t = time.time() if start is None else float(start)
        self.sleeps: list[float] = []
        self._cv = threading.Condition()
        self._participants = 0
        self._wakes: dict[int, float] = {}

    def __call__(self) -> float:
        return self.t

    @contextmanager
    def participant(self) -> Iterator[None]:
        with self._cv:
            self._participants += 1
        try:
            yield
        finally:
            with self._cv:
                self._participants -= 1
                self._advance()

    def sleep(self, seconds: float) -> None:
        me = threading.get_ident()
        with self._cv:
            self.sleeps.append(seconds)
            wake = self.t + max(0.0, seconds)
            self._wakes[me] = wake
            self._advance()
            while self.t < wake:
                self._cv.wait()
            del self._wakes[me]

    def _advance(self) -> None:
        if self._wakes and len(self._wakes) >= self._participants:
            self.t = max(self.t, min(self._wakes.values()))
            self._cv.notify_all()


@dataclass
class _Commit:
    sha: str
    title: str
    files: dict[str, bytes]
    created_at: float = 0.0


@dataclass(frozen=True)
class RepoUrl:
    repo_id: str
    url: str


@dataclass(frozen=True)
class RepoInfo:
    id: str
    sha: str


@dataclass(frozen=True)
class CommitEntry:
    commit_id: str
    title: str
    created_at: dt.datetime


@dataclass(frozen=True)
class CommitInfo:
    oid: str
    commit_message: str
    commit_url: str


@dataclass
class _Repo:
    commits: list[_Commit] = field(default_factory=list)


HUB_COMMITS_PER_HOUR = 128  # the figure the Hub's refusals report
RATE_LIMIT_MESSAGE = ("429 Too Many Requests: you have exceeded the rate limit for repository commits "
                      "(128 per hour). Please retry later.")


def _response(status: int, url: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    import httpx2

    return httpx2.Response(status, request=httpx2.Request("GET", url), headers=headers)


class FakeHfApi:
    """In-memory repos; thread-safe; counts calls in ``calls``."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 max_commits_per_hour: int | None = HUB_COMMITS_PER_HOUR):
        self.repos: dict[str, _Repo] = {}
        self.fail_next: list[int] = []
        self.calls: dict[str, int] = {}
        self.clock = clock
        self.max_commits_per_hour = max_commits_per_hour
        self.refused = 0  # commits refused with 429 (rate limit)
        self._lock = threading.RLock()
        self._tmp = Path(tempfile.mkdtemp(prefix="fake-hf-"))

    # -- helpers ---------------------------------------------------------------
    def _enter(self, name: str) -> None:
        from huggingface_hub.errors import HfHubHTTPError

        self.calls[name] = self.calls.get(name, 0) + 1
        if self.fail_next:
            status = self.fail_next.pop(0)
            raise HfHubHTTPError(f"{status} injected error", response=_response(status, f"fake://{name}"))

    def _repo(self, repo_id: str) -> _Repo:
        from huggingface_hub.errors import RepositoryNotFoundError

        if repo_id not in self.repos:
            raise RepositoryNotFoundError(f"404 Repository Not Found: {repo_id}",
                                          response=_response(404, f"fake://{repo_id}"))
        return self.repos[repo_id]

    def _commit(self, repo_id: str, revision: str | None) -> _Commit:
        from huggingface_hub.errors import RevisionNotFoundError

        repo = self._repo(repo_id)
        if revision in (None, "main"):
            return repo.commits[-1]
        for c in repo.commits:
            if c.sha == revision:
                return c
        raise RevisionNotFoundError(f"404 Revision Not Found: {revision}",
                                    response=_response(404, f"fake://{repo_id}@{revision}"))

    # -- the HfApi surface -----------------------------------------------------
    def create_repo(self, repo_id: str, *, repo_type: str | None = None, private: bool | None = None,
                    exist_ok: bool = False, **kwargs: object) -> RepoUrl:
        with self._lock:
            self._enter("create_repo")
            if repo_id not in self.repos:
                sha = hashlib.sha1(f"{repo_id}/init".encode()).hexdigest()
                self.repos[repo_id] = _Repo([_Commit(sha, "initial commit", {".gitattributes": b""},
                                                     self.clock())])
            elif not exist_ok:
                raise ValueError(f"repo {repo_id} exists")
            return RepoUrl(repo_id=repo_id, url=f"https://huggingface.co/datasets/{repo_id}")

    def repo_info(self, repo_id: str, *, repo_type: str | None = None, revision: str | None = None,
                  **kwargs: object) -> RepoInfo:
        with self._lock:
            self._enter("repo_info")
            return RepoInfo(id=repo_id, sha=self._commit(repo_id, revision).sha)

    def list_repo_files(self, repo_id: str, *, repo_type: str | None = None, revision: str | None = None,
                        **kwargs: object) -> list[str]:
        with self._lock:
            self._enter("list_repo_files")
            return sorted(self._commit(repo_id, revision).files)

    def list_repo_commits(self, repo_id: str, *, repo_type: str | None = None, revision: str | None = None,
                          **kwargs: object) -> list[CommitEntry]:
        with self._lock:
            self._enter("list_repo_commits")
            return [CommitEntry(commit_id=c.sha, title=c.title,
                                created_at=dt.datetime.fromtimestamp(c.created_at, dt.UTC))
                    for c in reversed(self._repo(repo_id).commits)]

    def hf_hub_download(self, repo_id: str, filename: str, *, repo_type: str | None = None,
                        revision: str | None = None, **kwargs: object) -> str:
        from huggingface_hub.errors import RemoteEntryNotFoundError

        with self._lock:
            self._enter("hf_hub_download")
            commit = self._commit(repo_id, revision)
            if filename not in commit.files:
                raise RemoteEntryNotFoundError(f"404 Entry Not Found: {filename}",
                                               response=_response(404, f"fake://{repo_id}/{filename}"))
            data = commit.files[filename]
            out = self._tmp / commit.sha / filename
            if not out.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
            return str(out)

    def create_commit(self, repo_id: str, operations: Iterable[CommitOperationAdd | CommitOperationDelete], *,
                      commit_message: str, repo_type: str | None = None, revision: str | None = None,
                      parent_commit: str | None = None, **kwargs: object) -> CommitInfo:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete
        from huggingface_hub.errors import HfHubHTTPError

        with self._lock:
            self._enter("create_commit")
            repo = self._repo(repo_id)
            head = repo.commits[-1]
            t = self.clock()
            if self.max_commits_per_hour is not None:
                hour = [c.created_at for c in repo.commits[1:] if c.created_at > t - 3600]
                if len(hour) >= self.max_commits_per_hour:
                    self.refused += 1
                    wait = int(hour[-self.max_commits_per_hour] + 3600 - t) + 1
                    raise HfHubHTTPError(RATE_LIMIT_MESSAGE, response=_response(
                        429, f"fake://{repo_id}/commit", {"retry-after": str(wait)}))
            if parent_commit is not None and parent_commit != head.sha:
                raise HfHubHTTPError("412 Precondition Failed: A commit has happened since. "
                                     "Please refresh and try again.",
                                     response=_response(412, f"fake://{repo_id}/commit"))
            files = dict(head.files)
            for op in operations:
                if isinstance(op, CommitOperationAdd):
                    src = op.path_or_fileobj
                    if isinstance(src, bytes):
                        data = src
                    elif isinstance(src, (str, Path)):
                        data = Path(src).read_bytes()
                    else:
                        src.seek(0)
                        data = src.read()
                    files[op.path_in_repo] = data
                elif isinstance(op, CommitOperationDelete):
                    files.pop(op.path_in_repo, None)
                else:  # pragma: no cover
                    raise TypeError(f"unsupported operation {op!r}")
            sha = hashlib.sha1(f"{head.sha}/{len(repo.commits)}/{commit_message}".encode()).hexdigest()
            repo.commits.append(_Commit(sha, commit_message, files, t))
            return CommitInfo(oid=sha, commit_message=commit_message,
                              commit_url=f"https://huggingface.co/datasets/{repo_id}/commit/{sha}")

    @property
    def n_commits(self) -> int:
        return sum(len(r.commits) - 1 for r in self.repos.values())


