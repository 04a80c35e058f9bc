"""Zip / tar / gzip read in memory, never extracted to disk, within IngestLimits.

Zip bombs are caught twice: declared sizes and ratios are checked before reading,
and bytes are counted while decompressing (headers are never trusted alone).
Sizes in bytes.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from evaluator.config import IngestLimits
from evaluator.ingest.checks import shorten
from evaluator.ingest.detect import is_ignored
from evaluator.ingest.types import IngestError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20
RATIO_FLOOR = 1 << 20  # the compression-ratio limit applies to outputs above 1 MiB


def _gunzip(f: io.BytesIO) -> gzip.GzipFile:
    return gzip.GzipFile(fileobj=f)


# codec -> a decompressing reader over the compressed bytes
_OPENERS: dict[str, Callable[[io.BytesIO], io.BufferedIOBase]] = {
    "gz": _gunzip, "bz2": bz2.BZ2File, "xz": lzma.LZMAFile}
_DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)


@dataclass
class Member:
    """A file inside an archive: its bytes, or why it could not be read."""

    name: str
    data: bytes | None = None
    error: str | None = None


class Budget:
    """Decompressed bytes and archive entries (folders included) counted over the whole upload."""

    def __init__(self, limits: IngestLimits):
        self.limits = limits
        self.decompressed = 0
        self.members = 0

    def add_bytes(self, n: int, where: str) -> None:
        self.decompressed += n
        if self.decompressed > self.limits.max_decompressed_bytes:
            raise IngestError(
                f"decompressed size limit exceeded while reading {shorten(where, 160)}: more than "
                f"{self.limits.max_decompressed_bytes:,} bytes (max_decompressed_bytes)")

    def add_member(self, where: str) -> None:
        self.members += 1
        if self.members > self.limits.max_archive_members:
            raise IngestError(
                f"too many archive members in {shorten(where, 160)}: more than "
                f"{self.limits.max_archive_members:,} (max_archive_members)")

    def check_ratio(self, out: int, compressed: int, where: str) -> None:
        ratio = out / max(compressed, 1)
        if out > RATIO_FLOOR and ratio > self.limits.max_compression_ratio:
            raise IngestError(
                f"suspicious compression ratio in {shorten(where, 160)}: {ratio:.0f}x > "
                f"{self.limits.max_compression_ratio:g}x (max_compression_ratio); possible zip bomb")


def check_member_path(archive: str, name: str) -> None:
    """Refuse absolute paths and ``..`` components (they would escape an extraction folder)."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or ".." in norm.split("/"):
        raise IngestError(f"{archive}: member {shorten(repr(name), 120)} has an unsafe path (absolute or '..'); "
                          "the archive is refused")


def decompress(data: bytes, codec: str, where: str, budget: Budget) -> bytes:
    """gzip/bz2/xz stream -> bytes, counting output against the budget and ratio."""
    out = bytearray()
    try:
        with _OPENERS[codec](io.BytesIO(data)) as f:
            while chunk := f.read(CHUNK):
                out += chunk
                budget.add_bytes(len(chunk), where)
                budget.check_ratio(len(out), len(data), where)
    except _DECOMPRESS_ERRORS as exc:
        raise IngestError(shorten(f"{where}: corrupt {codec} data ({exc})")) from exc
    return bytes(out)


def _zip_entry_count(data: bytes) -> int | None:
    """Entry count from the end-of-central-directory record, before parsing the directory."""
    pos = data.rfind(b"PK\x05\x06", max(0, len(data) - 65557))
    if pos < 0 or pos + 12 > len(data):
        return None
    (count,) = struct.unpack("<H", data[pos + 10 : pos + 12])
    return None if count == 0xFFFF else count  # 0xFFFF: zip64, counted after opening


def iter_zip(data: bytes, name: str, budget: Budget) -> Iterator[Member]:
    """Members in archive order; ignored files (hidden, __MACOSX, docs) are skipped."""
    limits = budget.limits
    declared = _zip_entry_count(data)
    if declared is not None and budget.members + declared > limits.max_archive_members:
        raise IngestError(f"too many archive members in {name}: {declared:,} > "
                          f"{limits.max_archive_members:,} (max_archive_members)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        raise IngestError(shorten(f"{name} is not a readable zip archive ({exc})")) from exc
    infos = zf.infolist()
    for info in infos:
        check_member_path(name, info.filename)
        budget.add_member(name)
    files = [i for i in infos if not i.is_dir()]
    total = sum(i.file_size for i in files)
    if budget.decompressed + total > limits.max_decompressed_bytes:
        raise IngestError(f"{name} declares {total:,} decompressed bytes > "
                          f"{limits.max_decompressed_bytes:,} (max_decompressed_bytes)")
    for info in files:
        budget.check_ratio(info.file_size, info.compress_size, f"{name}:{info.filename}")
    for info in files:
        if is_ignored(info.filename):
            continue
        where = f"{name}:{info.filename}"
        out = bytearray()
        try:
            with zf.open(info) as f:
                while chunk := f.read(CHUNK):
                    out += chunk
                    budget.add_bytes(len(chunk), where)
                    budget.check_ratio(len(out), info.compress_size, where)
        except IngestError:
            raise
        except RuntimeError as exc:  # encrypted
            yield Member(info.filename, error=shorten(f"unreadable member: {exc}"))
            continue
        except (zipfile.BadZipFile, NotImplementedError, *_DECOMPRESS_ERRORS) as exc:
            yield Member(info.filename, error=shorten(f"corrupt zip member: {exc}"))
            continue
        yield Member(info.filename, bytes(out))


class _CountedStream(io.RawIOBase):
    """A read-only stream that counts every byte it yields against the budget and the ratio.

    Wraps a tar archive's bytes, or the decompressor over them (``.tar.gz``), so that every
    byte tarfile reads (headers, PAX records, member data) is counted as it is produced.
    """

    def __init__(self, raw: io.BufferedIOBase, budget: Budget, where: str, compressed: int):
        super().__init__()
        self.raw, self.budget, self.where, self.compressed = raw, budget, where, compressed
        self.out = 0  # bytes produced so far, plus sparse holes charged with ``charge``

    def readable(self) -> bool:
        return True

    def charge(self, n: int, where: str) -> None:
        """Count ``n`` bytes that tarfile makes up without reading them (sparse holes)."""
        self.out += n
        self.budget.add_bytes(n, where)
        self.budget.check_ratio(self.out, self.compressed, where)

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer)
        chunk = self.raw.read(min(len(view), CHUNK))
        n = len(chunk)
        view[:n] = chunk
        self.charge(n, self.where)
        return n


def _sparse_holes(info: tarfile.TarInfo) -> int:
    """Bytes a (GNU or PAX) sparse member expands to beyond the data stored for it."""
    if not info.sparse:
        return 0
    # tarfile sets ``sparse`` to [(offset, size), ...] (typeshed says bytes)
    sparse = cast("list[tuple[int, int]]", info.sparse)
    return max(0, info.size - sum(size for _, size in sparse))


def _read_member(tf: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    """A member's bytes, read in bounded chunks (the counting is the stream's)."""
    out = bytearray()
    f = tf.extractfile(info)
    if f is None:  # not a regular file: the caller reads only those
        raise IngestError(f"{info.name}: not a regular file")
    while chunk := f.read(CHUNK):
        out += chunk
    return bytes(out)


def iter_tar(data: bytes, name: str, budget: Budget, codec: str | None = None) -> Iterator[Member]:
    """Members in archive order, streamed: a compressed tar is decompressed as it is read.

    Every byte out of the (decompressed) stream counts against ``max_decompressed_bytes``
    and the compression ratio; a sparse member is charged its expanded size before any of
    it is read, so a 1 GiB sparse member in a 10 KB tar is refused at once.
    """
    raw: io.BufferedIOBase = _OPENERS[codec](io.BytesIO(data)) if codec else io.BytesIO(data)
    stream = _CountedStream(raw, budget, name, len(data))
    try:
        tf = tarfile.open(fileobj=stream, mode="r|")
        for info in tf:
            budget.add_member(name)
            check_member_path(name, info.name)
            if info.isdir() or is_ignored(info.name):
                continue
            if not info.isfile():
                yield Member(info.name, error="not a regular file (link or device)")
                continue
            stream.charge(_sparse_holes(info), f"{name}:{info.name} (sparse member)")
            yield Member(info.name, _read_member(tf, info))
    except IngestError:
        raise
    except tarfile.TarError as exc:
        raise IngestError(shorten(f"{name} is not a readable tar archive ({exc})")) from exc
    except _DECOMPRESS_ERRORS as exc:
        what = f"corrupt {codec} data" if codec else "corrupt tar archive"
        raise IngestError(shorten(f"{name}: {what} ({exc})")) from exc


def iter_archive(kind: str, data: bytes, name: str, budget: Budget) -> Iterator[Member]:
    """Dispatch on kind: zip, tar, tar.gz, tar.bz2, tar.xz."""
    if kind == "zip":
        return iter_zip(data, name, budget)
    return iter_tar(data, name, budget, kind.split(".", 1)[1] if "." in kind else None)
