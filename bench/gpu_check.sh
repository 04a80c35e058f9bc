#!/usr/bin/env bash
# GPU stability check (issues 16 and 22), at most ~12 minutes on one CUDA GPU:
#   (a) one-at-a-time ASE path, SevenNet-l3i5, 20 mp_sample cells, cap 60 s
#   (b) batched engine, SevenNet-l3i5, all 2,473 mp_sample cells rattled 0.05 Å, cap 200 s
#   (c) today's lock-step CHGNet path on the same cells, cap 100 s
#   (d) the Ray executor, one actor per visible GPU (SevenNet-l3i5 engine in each), same cells,
#       cap 120 s including the local cluster's start-up and the actors' model loads (issue 22)
# PARTS="d" bench/gpu_check.sh OUTDIR runs only the listed parts (default "a b c d").
# A progress line every 15 s; OUTDIR/{a,b,c,d}.json are rewritten as results come,
# OUTDIR/log.txt keeps the output.
#
#   bench/gpu_check.sh OUTDIR                                  # on the GPU machine
#   bench/gpu_check.sh OUTDIR --device cpu --n 6 --cap 20 --every 5   # CPU dry run (typo check)
# Extra arguments go to every part (bench/gpu_check.py --help). PYTHON picks the interpreter.
# On a device machine the data beside the checkout does not travel: copy
# ../shared/data/structures/mp_sample and ../shared/data/reference/mp20 into an ignored
# folder of the checkout (same sub-paths, 17 MB), carry it, and pass --data-dir FOLDER.
# Python packages the GPU image lacks (cp312 wheels, see /work/.library/device/README.md):
# pymatgen (+ monty, spglib, ...), ase, chgnet, mace-torch, e3nn==0.4.4, sevenn==0.10.4,
# torch-sim-atomistic==0.3.0, vesin, vesin-torch, braceexpand; ray==2.60.0 for part d.
set -uo pipefail
OUTDIR=${1:?usage: bench/gpu_check.sh OUTDIR [--device cpu] [--n N] [--cap S] [--every S]}
shift
export PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
PY=${PYTHON:-python}
cd "$(dirname "$0")/.."
# the evaluator package: installed (pip install -e .), else this checkout (a bare device machine)
"$PY" -c "import evaluator" 2>/dev/null || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUTDIR"
rc=0
for part in ${PARTS:-a b c d}; do
  echo "== part $part $(date -u +%H:%M:%S)" | tee -a "$OUTDIR/log.txt"
  # hard stop 90 s past the part's own cap (model loading), whatever happens inside
  case $part in a) hard=150;; b) hard=290;; c) hard=190;; d) hard=210;; *) echo "unknown part $part"; exit 2;; esac
  timeout -k 10 "$hard" "$PY" bench/gpu_check.py --part "$part" --out "$OUTDIR" "$@" 2>&1 \
    | grep --line-buffered -v -E "Warning|warnings.warn|torch.load|^\s*$|_Jd, _W3j|val = self.func|return visitor" \
    | tee -a "$OUTDIR/log.txt"
  st=${PIPESTATUS[0]}
  [ "$st" -ne 0 ] && { echo "part $part exited $st" | tee -a "$OUTDIR/log.txt"; rc=1; }
done
echo "== done $(date -u +%H:%M:%S); results in $OUTDIR/<part>.json" | tee -a "$OUTDIR/log.txt"
exit $rc
