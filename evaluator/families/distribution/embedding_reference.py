"""Fréchet distance of MLIP embeddings and the reference statistics it needs.

FD = |μ₁ - μ₂|² + Tr(Σ₁ + Σ₂ - 2 (Σ₁^½ Σ₂ Σ₁^½)^½), the squared Fréchet (Wasserstein-2)
distance between Gaussians fitted to two sets of mean-pooled per-atom embeddings (the
FID / LeMat-GenBench convention: the square is reported). Units: squared embedding units.

Reference statistics (μ, Σ with ddof = 1, float64) are computed with the same model
(name, model_id, checkpoint sha256) on a reference sample of structures — by default
every CIF under ``structures/lemat_sample`` (2,000 LeMat-Bulk structures) — and stored
in ``$GENBENCH_CACHE_DIR/fd_reference/`` (default ``~/.cache/genbench``) as ``.npz`` +
``.json``. They are built on first use or with ``python -m evaluator fd-reference``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.core.structure import Structure

DEFAULT_SAMPLE = "structures/lemat_sample"
CACHE_ENV = "GENBENCH_CACHE_DIR"
EMBED_BATCH = 32


FloatArray = npt.NDArray[np.float64]
Track = Callable[[Iterable[int], str], Iterable[int]]  # ctx.track(items, stage)


class ModelKey(Protocol):
    """What names a model's statistics: an ``MLIPSpec`` (not loaded) or a loaded ``MLIP``."""

    @property
    def name(self) -> str: ...

    @property
    def model_id(self) -> str: ...

    @property
    def checkpoint_sha256(self) -> str | None: ...


class Embedder(Protocol):
    """Anything with ``MLIP.embed``'s call: (n, d) mean-pooled embeddings of ASE Atoms."""

    def embed(self, atoms_list: Sequence[Atoms], /) -> npt.ArrayLike: ...


class EmbeddingModel(ModelKey, Embedder, Protocol):
    """A loaded model that names its statistics and embeds structures (an ``MLIP``)."""


class FDStats(TypedDict):
    """Reference statistics: mean ``mu`` (d,), covariance ``sigma`` (d, d), the cached
    ``.json`` metadata and the ``.npz`` path."""

    mu: FloatArray
    sigma: FloatArray
    meta: dict[str, Any]
    path: str


def cache_dir() -> Path:
    """Root of generated, rebuildable files (``$GENBENCH_CACHE_DIR`` or ~/.cache/genbench)."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/genbench").expanduser()


def _sqrtm_psd(a: FloatArray) -> FloatArray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    root: FloatArray = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return root


def frechet_distance(mu1: npt.ArrayLike, sigma1: npt.ArrayLike, mu2: npt.ArrayLike,
                     sigma2: npt.ArrayLike) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Tr((Σ₁Σ₂)^½) is computed as Σ √λ over the eigenvalues of the symmetric PSD
    matrix Σ₁^½ Σ₂ Σ₁^½ (same spectrum as Σ₁Σ₂), which needs no complex sqrtm and
    is exact for singular covariances.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, float)), np.atleast_1d(np.asarray(mu2, float))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, float)), np.atleast_2d(np.asarray(sigma2, float))
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"dimension mismatch: {mu1.shape} vs {mu2.shape}, {s1.shape} vs {s2.shape}")
    r1 = _sqrtm_psd(s1)
    lam = np.linalg.eigvalsh(r1 @ s2 @ r1)
    tr_covmean = float(np.sqrt(np.clip(lam, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def embedding_stats(emb: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Mean and covariance (ddof = 1) of embeddings (n, d), float64."""
    emb = np.asarray(emb, dtype=np.float64)
    return emb.mean(axis=0), np.cov(emb, rowvar=False).reshape(emb.shape[1], emb.shape[1])


def embed_structures(mlip: Embedder, structures: Sequence[Structure], track: Track | None = None
                     ) -> tuple[FloatArray, list[str | None]]:
    """Embeddings (n, d) of pymatgen structures; a row that fails is NaN with its reason.

    Batches of EMBED_BATCH; a failing batch is retried one structure at a time.
    ``track(iterable, stage)`` reports progress (ctx.track), optional.
    """
    from pymatgen.io.ase import AseAtomsAdaptor

    n = len(structures)
    rows: list[FloatArray | None] = [None] * n
    errors: list[str | None] = [None] * n
    starts = range(0, n, EMBED_BATCH)
    for start in (track(starts, "distribution: embeddings") if track else starts):
        idx = list(range(start, min(start + EMBED_BATCH, n)))
        try:
            out = np.asarray(mlip.embed([AseAtomsAdaptor.get_atoms(structures[i]) for i in idx]),
                             dtype=np.float64)
            for j, i in enumerate(idx):
                rows[i] = out[j]
        except Exception:  # noqa: BLE001 - a failing batch is retried one structure at a time
            for i in idx:  # one at a time: only the structures that fail lose their embedding
                try:
                    atoms = AseAtomsAdaptor.get_atoms(structures[i])
                    rows[i] = np.asarray(mlip.embed([atoms]), dtype=np.float64)[0]
                except Exception as exc:  # noqa: BLE001 - this structure loses its embedding, with the reason
                    errors[i] = f"embedding failed: {type(exc).__name__}: {exc}"[:300]
    dims = {r.shape[0] for r in rows if r is not None}
    if len(dims) > 1:
        raise ValueError(f"inconsistent embedding sizes {sorted(dims)}")
    d = dims.pop() if dims else 0
    emb = np.full((n, d), np.nan)
    for i, r in enumerate(rows):
        if r is not None:
            if np.all(np.isfinite(r)):
                emb[i] = r
            else:
                errors[i] = "MLIP gave no embedding (NaN; e.g. CHGNet: an atom with no neighbour within 6 Å)"
    return emb, errors


def sample_files(sample_dir: Path) -> list[Path]:
    """The reference sample: every CIF under ``sample_dir``, sorted."""
    return sorted(p for p in Path(sample_dir).rglob("*.cif") if p.is_file())


def sample_hash(files: list[Path], root: Path) -> str:
    """sha256 over (relative path, content) of the sample files."""
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(root)).encode())
        h.update(b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-")[:60] or "model"


def stats_paths(mlip: ModelKey, sample_sha: str, root: Path | None = None) -> tuple[Path, Path]:
    """(npz, json) cache paths for this model and reference sample."""
    ckpt = (getattr(mlip, "checkpoint_sha256", None) or "nockpt")[:12]
    stem = f"{_slug(mlip.name)}-{_slug(mlip.model_id)}-{ckpt}-{sample_sha[:12]}"
    d = (root or cache_dir()) / "fd_reference"
    return d / f"{stem}.npz", d / f"{stem}.json"


def load_stats(mlip: ModelKey, sample_sha: str, root: Path | None = None) -> FDStats | None:
    """Cached statistics for (model, sample), or None when absent or for another model."""
    npz, meta_path = stats_paths(mlip, sample_sha, root)
    if not (npz.exists() and meta_path.exists()):
        return None
    meta = json.loads(meta_path.read_text())
    if (meta.get("model_id") != mlip.model_id
            or meta.get("checkpoint_sha256") != getattr(mlip, "checkpoint_sha256", None)
            or meta.get("sample_sha256") != sample_sha):
        return None
    with np.load(npz) as z:
        return {"mu": z["mu"], "sigma": z["sigma"], "meta": meta, "path": str(npz)}


def build_stats(mlip: EmbeddingModel, sample_dir: Path, root: Path | None = None,
                progress: Callable[[int, int], None] | None = None,
                sample_label: str | None = None) -> FDStats:
    """Embed every CIF of ``sample_dir`` with ``mlip``, save μ/Σ to the cache, return them.

    ``progress(done, total)`` is called after each batch, optional.
    """
    import warnings

    from pymatgen.core.structure import Structure

    t0 = time.perf_counter()
    sample_dir = Path(sample_dir)
    files = sample_files(sample_dir)
    if not files:
        raise FileNotFoundError(f"no CIF files under {sample_dir}")
    sha = sample_hash(files, sample_dir)
    structures: list[Structure] = []
    parse_errors: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in files:
            try:
                structures.append(Structure.from_file(p))
            except Exception as exc:  # noqa: BLE001 - an unreadable sample file is counted, not fatal
                parse_errors[str(p.relative_to(sample_dir))] = f"{type(exc).__name__}: {exc}"[:200]

    def track(items: Iterable[int], stage: str) -> Iterator[int]:
        items = list(items)
        for k, it in enumerate(items, 1):
            yield it
            if progress:
                progress(min(k * EMBED_BATCH, len(structures)), len(structures))

    emb, errors = embed_structures(mlip, structures, track)
    ok = np.array([e is None for e in errors])
    if ok.sum() < 2:
        raise ValueError(f"only {int(ok.sum())} reference structures could be embedded")
    mu, sigma = embedding_stats(emb[ok])
    meta = {
        "model": mlip.name,
        "model_id": mlip.model_id,
        "checkpoint_sha256": getattr(mlip, "checkpoint_sha256", None),
        "embedding": "mean-pooled invariant per-atom features (MLIP.embed)",
        "dim": int(mu.shape[0]),
        "sample": sample_label or str(sample_dir),
        "sample_sha256": sha,
        "n_files": len(files),
        "n_used": int(ok.sum()),
        "n_parse_failed": len(parse_errors),
        "n_embed_failed": int((~ok).sum()),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    npz, meta_path = stats_paths(mlip, sha, root)
    npz.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz.with_suffix(".tmp.npz")
    np.savez(tmp, mu=mu, sigma=sigma)
    os.replace(tmp, npz)
    meta_path.write_text(json.dumps(meta, indent=2))
    return {"mu": mu, "sigma": sigma, "meta": meta, "path": str(npz)}
