"""An in-memory fake of the small ``HfApi`` surface HubStore uses (offline tests).

Behaves like the Hub where it matters: every ``create_commit`` makes a new
commit sha, a stale ``parent_commit`` is refused with ``HfHubHTTPError`` 412,
missing repos/files raise ``RepositoryNotFoundError``/``RemoteEntryNotFoundError``.
``fail_next`` injects HTTP errors (e.g. ``[429, 503]``) into the next calls.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace


@dataclass
class _Commit:
    sha: str
    title: str
    files: dict[str, bytes]


@dataclass
class _Repo:
    commits: list[_Commit] = field(default_factory=list)


def _response(status: int, url: str):
    import httpx2

    return httpx2.Response(status, request=httpx2.Request("GET", url))


class FakeHfApi:
    """In-memory repos; thread-safe; counts calls in ``calls``."""

    def __init__(self):
        self.repos: dict[str, _Repo] = {}
        self.fail_next: list[int] = []
        self.calls: dict[str, int] = {}
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
    def create_repo(self, repo_id, *, repo_type=None, private=None, exist_ok=False, **kwargs):
        with self._lock:
            self._enter("create_repo")
            if repo_id not in self.repos:
                sha = hashlib.sha1(f"{repo_id}/init".encode()).hexdigest()
                self.repos[repo_id] = _Repo([_Commit(sha, "initial commit", {".gitattributes": b""})])
            elif not exist_ok:
                raise ValueError(f"repo {repo_id} exists")
            return SimpleNamespace(repo_id=repo_id, url=f"https://huggingface.co/datasets/{repo_id}")

    def repo_info(self, repo_id, *, repo_type=None, revision=None, **kwargs):
        with self._lock:
            self._enter("repo_info")
            return SimpleNamespace(id=repo_id, sha=self._commit(repo_id, revision).sha)

    def list_repo_files(self, repo_id, *, repo_type=None, revision=None, **kwargs):
        with self._lock:
            self._enter("list_repo_files")
            return sorted(self._commit(repo_id, revision).files)

    def list_repo_commits(self, repo_id, *, repo_type=None, revision=None, **kwargs):
        with self._lock:
            self._enter("list_repo_commits")
            return [SimpleNamespace(commit_id=c.sha, title=c.title)
                    for c in reversed(self._repo(repo_id).commits)]

    def hf_hub_download(self, repo_id, filename, *, repo_type=None, revision=None, **kwargs):
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

    def create_commit(self, repo_id, operations, *, commit_message, repo_type=None, revision=None,
                      parent_commit=None, **kwargs):
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete
        from huggingface_hub.errors import HfHubHTTPError

        with self._lock:
            self._enter("create_commit")
            repo = self._repo(repo_id)
            head = repo.commits[-1]
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
            repo.commits.append(_Commit(sha, commit_message, files))
            return SimpleNamespace(oid=sha, commit_message=commit_message,
                                   commit_url=f"https://huggingface.co/datasets/{repo_id}/commit/{sha}")

    @property
    def n_commits(self) -> int:
        return sum(len(r.commits) - 1 for r in self.repos.values())


