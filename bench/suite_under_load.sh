#!/usr/bin/env bash
# The suite from a fresh clone, with N CPU-bound busy loops beside it (default 4: load average
# about 3x the 2 cores), sampling the load average every 30 s. Reproduces the README's suite times.
#   bash bench/suite_under_load.sh [N_BUSY] [OUTDIR]      (N_BUSY=0: no extra load)
# Needs ../shared beside the clone, as make test does; the clone goes to OUTDIR/clone.
set -u
busy=${1:-4}
out=${2:-/tmp/suite_under_load}
repo=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out" && mkdir -p "$out"
git clone -q "$repo" "$out/clone"
ln -sfn "$(cd "$repo/.." && pwd)/shared" "$out/shared"
pids=()
for _ in $(seq 1 "$busy"); do python3 -c "while True: pass" & pids+=($!); done
( while true; do uptime >> "$out/load.txt"; sleep 30; done ) & pids+=($!)
start=$(date +%s)
(cd "$out/clone" && CI=true bash .ci/run > "$out/suite.log" 2>&1)
rc=$?
kill "${pids[@]}" 2>/dev/null
awk -F'load average: ' '{split($2, a, ", "); s += a[1]; n++; if (n == 1 || a[1] < lo) lo = a[1]; if (a[1] > hi) hi = a[1]}
     END {if (n) printf "load average: min %.1f, mean %.1f, max %.1f (%d samples)\n", lo, s / n, hi, n}' "$out/load.txt"
tail -n 1 "$out/suite.log" | grep -E "passed|failed" || tail -n 3 "$out/suite.log"
echo "exit $rc, wall $(( $(date +%s) - start )) s (venv build included)"
exit $rc
