"""Hugging Face dataset-repo store (``hf://datasets/ORG/NAME``).

Compare-and-swap uses ``HfApi.create_commit(parent_commit=head)``: the Hub
refuses the commit (HTTP 412, sometimes 409) when the branch moved since
``head`` was read; we then re-read, re-check the caller's etags and retry, so
unrelated commits never cause a spurious conflict. Every call retries with
exponential backoff on 429/5xx and network errors (a 429's ``Retry-After`` is
honoured). Callers batch several files per commit via ``Store.commit``.

Commit budget: the Hub refuses more than about 128 commits per hour per repo, however
many processes write to it. So the budget (``max_commits_per_hour``, default 120,
leaving room for processes that check at the same instant) is counted from the repo's
own commits of the last hour (their ``created_at``), not per process: before each
commit the store reads them and, when the hour is full, waits until the oldest ages
out. The app and every worker writing to one repo share it.

``URGENT_RESERVE`` of the budget is kept for urgent commits
(``leaderboard.store.urgent_commits``: lease renewals, which ``leaderboard.jobs.queue`` keeps
within a smaller share, ``HEARTBEAT_SHARE``): other commits (submissions, claims,
results, withdrawals) wait once the hour holds ``budget - reserve`` of them, every
commit once it holds ``budget``, so renewals never wait for the budget and no lease
lapses because the hour is full. (A reserve sized from recent renewals would free it
for short jobs, but lets ordinary commits fill the hour before renewals need it.)
Urgent commits are told apart by ``URGENT_TAG`` at the end of their title.
On the Hub the commit list is read page by page, newest first, only as far back as the
hour (``huggingface_hub.utils.paginate`` on the endpoint ``list_repo_commits`` uses);
an API object without an ``endpoint`` (the offline fake) is asked ``list_repo_commits``.

Only a small ``HfApi`` surface is used (``repo_info``, ``list_repo_files``,
``list_repo_commits``, ``hf_hub_download``, ``create_commit``, ``create_repo``) so tests
run offline against :class:`leaderboard.store.hubfake.FakeHfApi`.
"""

from __future__ import annotations

import builtins
import datetime as dt
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from huggingface_hub import CommitOperationAdd, CommitOperationDelete

from leaderboard.store.base import (ABSENT, PreconditionFailed, Store, StoreError, check_path, commits_are_urgent,
                               etag_of)

RETRY_STATUS = {429, 500, 502, 503, 504}
URGENT_RESERVE = 0.3  # of the hourly budget, kept for urgent commits
URGENT_TAG = " [lease]"  # ends the title of an urgent commit, so every process can count them
CONFLICT_STATUS = {409, 412}
T = TypeVar("T")


class RepoInfo(Protocol):
    @property
    def sha(self) -> str | None: ...


class CommitEntry(Protocol):
    @property
    def created_at(self) -> dt.datetime: ...

    @property
    def title(self) -> str: ...


class HubApi(Protocol):
    """The part of ``huggingface_hub.HfApi`` a HubStore uses (``FakeHfApi`` has it too)."""

    def repo_info(self, repo_id: str, *, repo_type: str | None = None,
                  revision: str | None = None) -> RepoInfo: ...

    def list_repo_files(self, repo_id: str, *, repo_type: str | None = None,
                        revision: str | None = None) -> list[str]: ...

    def list_repo_commits(self, repo_id: str, *, repo_type: str | None = None,
                          revision: str | None = None) -> Sequence[CommitEntry]: ...

    def hf_hub_download(self, repo_id: str, filename: str, *, repo_type: str | None = None,
                        revision: str | None = None) -> str: ...

    def create_repo(self, repo_id: str, *, repo_type: str | None = None, private: bool | None = None,
                    exist_ok: bool = False) -> object: ...

    def create_commit(self, repo_id: str, operations: Iterable[CommitOperationAdd | CommitOperationDelete], *,
                      commit_message: str, repo_type: str | None = None, revision: str | None = None,
                      parent_commit: str | None = None) -> object: ...


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


class HubStore(Store):
    """A dataset repo on the Hub as a store.

    api: an ``HfApi`` (default: ``HfApi(token=token or $HF_TOKEN)``).
    max_commits_per_hour: the repo's commit budget, shared with every process writing
    to it (counted from the repo's commits; sleeps when spent). clock: epoch seconds
    (a simulation passes its virtual clock, with ``sleep``).
    """

    heartbeat_interval_s = 240.0  # ~15 commits/hour per running worker
    lease_s = 900.0

    def __init__(self, repo_id: str, *, api: HubApi | None = None, token: str | None = None,
                 revision: str = "main", private: bool = True, max_commits_per_hour: int | None = 120,
                 retries: int = 6, backoff_s: float = 2.0, max_conflict_retries: int = 20,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time):
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token or os.environ.get("HF_TOKEN"))
        self.api: HubApi = api
        self.repo_id = repo_id
        self.revision = revision
        self.private = private
        self.uri = f"hf://datasets/{repo_id}" + ("" if revision == "main" else f"@{revision}")
        self.max_commits_per_hour = max_commits_per_hour
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_conflict_retries = max_conflict_retries
        self._sleep = sleep
        self._clock = clock
        self._repo_checked = False
        self.budget_waits: list[float] = []  # seconds waited for the commit budget
        self.urgent_waits: list[float] = []  # of those, by urgent commits (lease renewals)

    @classmethod
    def from_uri(cls, uri: str, *, private: bool = True, api: HubApi | None = None) -> HubStore:
        """``hf://datasets/ORG/NAME[@revision]`` -> HubStore."""
        rest = uri[len("hf://"):]
        if not rest.startswith("datasets/"):
            raise StoreError(f"only dataset repos are supported: {uri!r} (use hf://datasets/ORG/NAME)")
        rest = rest[len("datasets/"):]
        repo_id, _, revision = rest.partition("@")
        if repo_id.count("/") != 1:
            raise StoreError(f"bad Hub store uri {uri!r}: expected hf://datasets/ORG/NAME")
        return cls(repo_id, revision=revision or "main", private=private, api=api)

    # -- retries -------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: object, _retried: list[int | None] | None = None,
              **kwargs: object) -> T:
        """``fn(*args, **kwargs)`` retried with backoff on 429/5xx/network errors
        (each retry is appended to ``_retried`` when given)."""
        for attempt in range(self.retries):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - classified below
                status = _status(exc)
                transient = status in RETRY_STATUS or (status is None and _is_network_error(exc))
                if not transient or attempt == self.retries - 1:
                    raise
                delay = self.backoff_s * 2**attempt * (1 + random.random() / 2)
                retry_after = getattr(getattr(exc, "response", None), "headers", {}).get("retry-after")
                if retry_after and str(retry_after).isdigit():
                    delay = max(delay, float(retry_after))
                if _retried is not None:
                    _retried.append(status)
                self._sleep(delay)
        raise StoreError(f"no attempt made: {self.retries} retries configured")

    # -- Store primitives ----------------------------------------------------
    def _head(self) -> str | None:
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        try:
            info = self._call(self.api.repo_info, self.repo_id, repo_type="dataset", revision=self.revision)
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return None
        return info.sha

    def _download(self, path: str, revision: str | None) -> Path | None:
        from huggingface_hub.errors import (EntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)

        try:
            local = self._call(self.api.hf_hub_download, self.repo_id, path, repo_type="dataset",
                               revision=revision or self.revision)
        except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
            return None
        return Path(local)

    def _read_at(self, path: str, revision: str | None) -> bytes | None:
        local = self._download(check_path(path), revision)
        return None if local is None else local.read_bytes()

    def read(self, path: str) -> tuple[bytes | None, str | None]:
        data = self._read_at(path, None)
        return (None, None) if data is None else (data, etag_of(data))

    def local_path(self, path: str) -> Path | None:
        return self._download(check_path(path), None)

    def list(self, prefix: str = "") -> list[str]:
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        prefix = prefix.replace("\\", "/").lstrip("/")
        try:
            files = self._call(self.api.list_repo_files, self.repo_id, repo_type="dataset",
                               revision=self.revision)
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return []
        return sorted(f for f in files if f.startswith(prefix) and not f.startswith("."))

    def _ensure_repo(self) -> None:
        if not self._repo_checked:
            self._call(self.api.create_repo, self.repo_id, repo_type="dataset", private=self.private,
                       exist_ok=True)
            self._repo_checked = True

    def recent_commits(self, window_s: float = 3600.0) -> builtins.list[tuple[float, bool]]:
        """(creation time in epoch seconds, urgent?) of the repo's commits of the last
        ``window_s`` seconds, newest first, whoever made them."""
        since = self._clock() - window_s
        out: builtins.list[tuple[float, bool]] = []
        for created, title in self._commit_dates():
            t = created.timestamp()
            if t <= since:
                break  # newest first: the rest is older
            out.append((t, str(title or "").endswith(URGENT_TAG)))
        return out

    def recent_commit_times(self, window_s: float = 3600.0) -> builtins.list[float]:
        """Creation times (newest first) of the repo's commits of the last ``window_s`` seconds."""
        return [t for t, _ in self.recent_commits(window_s)]

    def _commit_dates(self) -> Iterator[tuple[dt.datetime, str | None]]:
        """(date, title) of the repo's commits, newest first, fetched lazily page by page."""
        endpoint = getattr(self.api, "endpoint", None)
        if endpoint is None:  # the offline fake: the public call
            commits = self._call(self.api.list_repo_commits, self.repo_id, repo_type="dataset",
                                 revision=self.revision)
            for c in commits:
                yield c.created_at, c.title
            return
        from urllib.parse import quote

        # huggingface_hub.utils re-exports these without listing them in an __all__
        from huggingface_hub.utils import paginate, parse_datetime  # type: ignore[attr-defined]

        url = f"{endpoint}/api/datasets/{self.repo_id}/commits/{quote(self.revision, safe='')}"
        headers = self.api._build_hf_headers()  # type: ignore[attr-defined]  # HfApi's (the fake has no endpoint)
        for item in paginate(url, params={}, headers=headers):
            yield parse_datetime(item["date"]), item.get("title")

    def _pace(self) -> None:
        """Wait while the repo's last hour holds the budget (no budget: never); a commit that
        is not urgent also waits while the hour holds ``budget - reserve`` non-urgent ones."""
        while self.max_commits_per_hour:
            budget = self.max_commits_per_hour
            recent = self._call(self.recent_commits)
            times = [t for t, _ in recent]
            if not commits_are_urgent():
                limit = max(1, budget - int(budget * URGENT_RESERVE))
                plain = [t for t, urgent in recent if not urgent]
                if len(plain) >= limit:
                    times, budget = plain, limit
            if len(times) < budget:
                return
            # the (budget)-th newest commit counted must age out of the hour
            wait = max(1.0, times[budget - 1] + 3600 - self._clock() + random.random())
            self.budget_waits.append(wait)
            if commits_are_urgent():
                self.urgent_waits.append(wait)
            self._sleep(wait)

    def commit(self, writes: Mapping[str, bytes | None], *, if_match: Mapping[str, str] | None = None,
               message: str = "") -> None:
        files = {check_path(p): v for p, v in writes.items()}
        conds = {check_path(p): v for p, v in (if_match or {}).items()}
        self._ensure_repo()
        ambiguous = False  # a commit attempt whose outcome we did not hear
        for _ in range(self.max_conflict_retries):
            head = self._head()
            existing = None
            for path, expected in conds.items():
                data = self._read_at(path, head)
                if (etag_of(data) if data is not None else ABSENT) != expected:
                    if ambiguous and self._landed(files, head):
                        return  # an earlier attempt was applied although its reply was lost
                    raise PreconditionFailed(f"{path} changed since it was read")
            ops: list[CommitOperationAdd | CommitOperationDelete] = []
            for path, data in files.items():
                if data is None:
                    if existing is None:
                        existing = set(self._call(self.api.list_repo_files, self.repo_id,
                                                  repo_type="dataset", revision=head))
                    if path in existing:
                        ops.append(CommitOperationDelete(path_in_repo=path))
                else:
                    ops.append(CommitOperationAdd(path_in_repo=path, path_or_fileobj=data))
            if not ops:
                return
            self._pace()
            retried: list[int | None] = []
            try:
                title = (message or "update") + (URGENT_TAG if commits_are_urgent() else "")
                self._call(self.api.create_commit, self.repo_id, ops, commit_message=title,
                           repo_type="dataset", revision=self.revision, parent_commit=head,
                           _retried=retried)
                return
            except Exception as exc:  # noqa: BLE001
                ambiguous = ambiguous or bool(retried)
                if _status(exc) in CONFLICT_STATUS:
                    self._sleep(random.random() * 0.5)
                    continue  # the branch moved: re-check our preconditions and retry
                raise
        raise StoreError(f"could not commit to {self.uri}: the branch kept moving "
                         f"({self.max_conflict_retries} attempts)")

    def _landed(self, files: Mapping[str, bytes | None], head: str | None) -> bool:
        return all(self._read_at(p, head) == data for p, data in files.items())


def _is_network_error(exc: BaseException) -> bool:
    try:
        import httpx2

        if isinstance(exc, httpx2.TransportError):
            return True
    except ImportError:  # pragma: no cover - older huggingface_hub uses requests
        pass
    return isinstance(exc, (ConnectionError, TimeoutError))
