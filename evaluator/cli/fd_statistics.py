"""``python -m evaluator fd-reference``: (re)build the Fréchet-distance reference statistics.

The MLIP, device and dtype default as for ``score`` (``evaluator.config.build_config``:
flags, then ``GENBENCH_*`` variables, then the defaults), so the statistics built are
the ones a ``score`` run with the same settings looks up.
"""

from __future__ import annotations

import argparse

from evaluator.cli.common import bar, fail
from evaluator.config import EvalConfig, build_config
from evaluator.data import DataDir, MissingDataError
from evaluator.families.distribution import embedding_reference as er
from evaluator.families.distribution.embedding_reference import DEFAULT_SAMPLE
from evaluator.mlip import describe_mlip, load_mlip
from evaluator.mlip.base import backend_class


def cmd_fd_reference(args: argparse.Namespace) -> int:
    try:
        cfg = build_config(mlip=args.mlip, mlip_model=args.mlip_model, device=args.device, dtype=args.dtype,
                           protocol=args.protocol)
    except ValueError as exc:
        return fail(exc)
    if not backend_class(cfg.mlip).supports_embeddings:
        return fail(f"MLIP {cfg.mlip} gives no embeddings, so runs with it compute no Fréchet distance "
                    "(the default protocol, SevenNet-l3i5, is one); use --protocol chgnet or --mlip chgnet|mace")
    data = DataDir(args.data_dir)
    try:
        sample_dir = data.path(args.sample)
    except MissingDataError as exc:
        return fail(exc)
    files = er.sample_files(sample_dir)
    sha = er.sample_hash(files, sample_dir)
    spec = describe_mlip(cfg.mlip, cfg.mlip_model)  # identifies the model without loading it
    if not args.force and (stats := er.load_stats(spec, sha)) is not None:
        print(f"up to date: {stats['path']} ({stats['meta']['n_used']} structures, dim {stats['meta']['dim']})")
        return 0
    mlip = load_mlip(cfg.mlip, model=cfg.mlip_model, device=cfg.device, dtype=cfg.dtype)
    progress_bar = bar(f"embedding with {mlip.name} {mlip.model_id}", len(files))

    def progress(done: int, total: int) -> None:
        progress_bar.total = total
        progress_bar.n = done
        progress_bar.refresh()

    try:
        stats = er.build_stats(mlip, sample_dir, progress=progress, sample_label=args.sample)
    finally:
        progress_bar.close()
    meta = stats["meta"]
    print(f"wrote {stats['path']}: {meta['n_used']}/{meta['n_files']} structures, dim {meta['dim']}, "
          f"{meta['build_seconds']} s")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("fd-reference", help="build the MLIP-embedding statistics the Fréchet "
                                                   "distance compares against (cached)",
                              description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--protocol", help="named protocol the MLIP comes from, as for score (default "
                                      "$GENBENCH_PROTOCOL or default: SevenNet-l3i5, which has no embeddings)")
    p.add_argument("--mlip", help="MLIP backend (default as for score: $GENBENCH_MLIP, else the named protocol's)")
    p.add_argument("--mlip-model", help="checkpoint path or model name (default $GENBENCH_MLIP_MODEL or the "
                                        "backend's default)")
    p.add_argument("--device", help=f"auto, cpu or cuda (default $GENBENCH_DEVICE or {EvalConfig.device})")
    p.add_argument("--dtype", choices=["float32", "float64"], help=f"default $GENBENCH_DTYPE or {EvalConfig.dtype}")
    p.add_argument("--sample", default=DEFAULT_SAMPLE,
                   help=f"folder of reference CIFs, relative to the data dir or absolute (default {DEFAULT_SAMPLE})")
    p.add_argument("--data-dir", help="data directory (default $GENBENCH_DATA_DIR or ../shared/data)")
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p.set_defaults(func=cmd_fd_reference)
