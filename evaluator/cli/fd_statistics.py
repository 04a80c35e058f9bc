"""``python -m evaluator fd-reference``: (re)build the Fréchet-distance reference statistics."""

from __future__ import annotations

import sys


def cmd_fd_reference(args) -> int:
    from evaluator.data import DataDir, MissingDataError
    from evaluator.families.distribution import embedding_reference as er
    from evaluator.mlip import describe_mlip, load_mlip

    data = DataDir(args.data_dir)
    try:
        sample_dir = data.path(args.sample)
    except MissingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = er.sample_files(sample_dir)
    sha = er.sample_hash(files, sample_dir)
    spec = describe_mlip(args.mlip, args.mlip_model)  # identifies the model without loading it
    if not args.force and (stats := er.load_stats(spec, sha)) is not None:
        print(f"up to date: {stats['path']} ({stats['meta']['n_used']} structures, dim {stats['meta']['dim']})")
        return 0
    mlip = load_mlip(args.mlip, model=args.mlip_model, device=args.device, dtype=args.dtype)
    from tqdm import tqdm

    bar = tqdm(total=len(files), desc=f"embedding with {mlip.name} {mlip.model_id}", unit="struct",
               file=sys.stderr)

    def progress(done, total):
        bar.total = total
        bar.n = done
        bar.refresh()

    stats = er.build_stats(mlip, sample_dir, progress=progress, sample_label=args.sample)
    bar.close()
    meta = stats["meta"]
    print(f"wrote {stats['path']}: {meta['n_used']}/{meta['n_files']} structures, dim {meta['dim']}, "
          f"{meta['build_seconds']} s")
    return 0


def register(subparsers) -> None:
    from evaluator.families.distribution.embedding_reference import DEFAULT_SAMPLE

    p = subparsers.add_parser("fd-reference", help="build the MLIP-embedding statistics the Fréchet "
                                                   "distance compares against (cached)")
    p.add_argument("--mlip", default="chgnet", help="MLIP backend (default chgnet)")
    p.add_argument("--mlip-model", default=None, help="checkpoint path or model name")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--sample", default=DEFAULT_SAMPLE,
                   help=f"folder of reference CIFs, relative to the data dir or absolute (default {DEFAULT_SAMPLE})")
    p.add_argument("--data-dir", default=None, help="data directory (default ../shared/data or $GENBENCH_DATA_DIR)")
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p.set_defaults(func=cmd_fd_reference)
