"""Every limit an upload must meet, in one object: the upload check and Submit both read it.

``SubmissionPolicy`` holds the per-account limits (files, bytes, rate) and the ingestion
limits the worker will read the upload with (``IngestLimits``, those of the protocol the
service pins). ``limits_text`` states them on the page before anything is uploaded, from
the same object the check and Submit enforce, so the page never promises what Submit refuses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from evaluator.config import IngestLimits
from evaluator.protocol import Protocol
from leaderboard import settings

MIB = 1024**2


@dataclass
class SubmissionPolicy:
    """Per-user limits. Environment overrides: GENBENCH_RATE_LIMIT (submissions per
    window, 0 = unlimited), GENBENCH_RATE_WINDOW_DAYS, GENBENCH_MAX_UPLOAD_MB,
    GENBENCH_MAX_ATTEMPTS (evaluation attempts on infrastructure failures).
    ``ingest``: the limits the upload is read with (structures, atoms, archives)."""

    max_per_window: int = 5
    window_days: float = 7.0
    max_upload_bytes: int = 200 * MIB  # total of all files
    max_files: int = 20
    max_attempts: int = 3
    ingest: IngestLimits = field(default_factory=IngestLimits)

    @classmethod
    def from_env(cls, ingest: IngestLimits | None = None) -> SubmissionPolicy:
        p = cls(ingest=ingest or IngestLimits())
        if (rate := settings.RATE_LIMIT.read()) is not None:
            p.max_per_window = rate
        if (days := settings.RATE_WINDOW_DAYS.read()) is not None:
            p.window_days = days
        if (mb := settings.MAX_UPLOAD_MB.read()) is not None:
            p.max_upload_bytes = int(mb * MIB)
        if (attempts := settings.MAX_ATTEMPTS.read()) is not None:
            p.max_attempts = attempts
        return p

    @property
    def upload_bytes(self) -> int:
        """The size limit of an upload (all files together): the smaller of the account
        limit and the reading limit."""
        return min(self.max_upload_bytes, self.ingest.max_upload_bytes)

    def read_limits(self) -> IngestLimits:
        """The ingestion limits an upload is checked with (its size limit: ``upload_bytes``)."""
        return dataclasses.replace(self.ingest, max_upload_bytes=self.upload_bytes)

    def rate_text(self) -> str:
        """The rate limit in words."""
        if self.max_per_window <= 0:
            return "no limit on submissions per account"
        return f"at most {self.max_per_window} submissions per account every {self.window_days:g} days"

    def limits_text(self) -> str:
        """Markdown: every limit the check and Submit enforce, stated before upload."""
        lim = self.ingest
        return (f"**Limits:** at most **{self.max_files} files** per submission (or one zip/tar archive "
                f"holding up to {lim.max_archive_members:,} files), **{mb(self.upload_bytes)} in all**; "
                f"at most **{lim.max_structures:,} structures**, each of at most "
                f"{lim.max_atoms_per_structure:,} atoms (a larger cell counts as a failed structure); "
                f"empty files are left out; the check must finish within {lim.max_check_seconds:g} s; "
                f"{self.rate_text()}; the same structures once per account (again after a withdrawal).")


def mb(n_bytes: float) -> str:
    """``200 MB``, ``1.5 MB``: a size in MiB as the page states it."""
    value = n_bytes / MIB
    return f"{value:.0f} MB" if value >= 10 or value == int(value) else f"{value:.1f} MB"


def ingest_limits(protocol: Protocol | None) -> IngestLimits:
    """The ingestion limits the worker reads uploads with under ``protocol`` (its record's
    ``ingest`` block over the defaults; the defaults where there is no protocol)."""
    record = protocol.record.get("ingest") if protocol is not None else None
    if not isinstance(record, dict):
        return IngestLimits()
    limits = IngestLimits()
    for f in dataclasses.fields(IngestLimits):
        value = record.get(f.name)
        default = getattr(limits, f.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(default, (int, float)):
            setattr(limits, f.name, type(default)(value))  # the record's JSON spelling: 30 for 30.0
    return limits


def policy_for(protocol: Protocol | None) -> SubmissionPolicy:
    """The policy of a service pinning ``protocol`` (account limits from the environment)."""
    return SubmissionPolicy.from_env(ingest_limits(protocol))
