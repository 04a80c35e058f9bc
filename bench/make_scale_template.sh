#!/usr/bin/env bash
# Re-make bench/data/scale_template (the real evaluator output bench/leaderboard_scale.py varies):
# `python -m evaluator score` on three MP crystals under the default protocol, on this machine.
# Re-run it whenever the default protocol changes, so the bench's rows carry the current protocol.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${GENBENCH_DATA_DIR:-../shared/data}/structures/mp_sample"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
.venv/bin/python -m evaluator score --out "$out" \
  "$data/mp_mp-1219922.cif" "$data/mp_mp-22924.cif" "$data/mp_mp-2524.cif"
cp "$out/summary.json" "$out/structures.parquet" bench/data/scale_template/
echo "bench/data/scale_template: protocol $(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["protocol"]["id"])' bench/data/scale_template/summary.json)"
