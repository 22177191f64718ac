#!/bin/bash
# Runs two holdfast-bench binaries alternately in one session, so that both
# see the same machine (docs/benchmarks.md): rounds of A B, then B A, ...
# (ABBA, so a drift over the session does not favour either), each run
# pinned to one CPU, with 2 MiB hugepages and with 4 KiB pages, each run's
# results kept as JSON for summarize.py.
#
# usage: tests/bench/ab.sh A_BENCH B_BENCH OUTDIR [ROUNDS]
#   environment: CPU (default 1), REPS (repetitions per run, default 5),
#   MODES (default "huge 4k"), FILTER_A / FILTER_B (--benchmark_filter of
#   each binary; default: the layer-4 benchmarks both binaries have).
# Writes OUTDIR/{a,b}.{huge,4k}.ROUND.json. Hugepages must be reserved
# (about 680 for the current binary: echo 700 > /proc/sys/vm/nr_hugepages).
set -eu

if [ $# -lt 3 ]; then
  sed -n '2,15p' "$0"
  exit 2
fi
a=$1
b=$2
out=$3
rounds=${4:-3}
cpu=${CPU:-1}
reps=${REPS:-5}
modes=${MODES:-huge 4k}
# The established and new-connection benchmarks of the packet path (the
# cleaner variant is cleaner:64 in older binaries, cleaner now).
layer4='^established/conns:[0-9]+/csum:(on|off)(/cleaner(:64)?)?$|^new_connections/(fill|churn)/iterations'
filter_a=${FILTER_A:-$layer4}
filter_b=${FILTER_B:-$layer4}
mkdir -p "$out"

run() {
  local which=$1 bench=$2 filter=$3 mode=$4 round=$5
  local flags=()
  [ "$mode" = huge ] && flags+=(--hugepages)
  echo "$(date +%T) round $round: $which ($mode) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  taskset -c "$cpu" "$bench" "${flags[@]}" --benchmark_filter="$filter" \
    --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/$which.$mode.$round.json" --benchmark_out_format=json >/dev/null
}

for round in $(seq 1 "$rounds"); do
  for mode in $modes; do
    if [ $((round % 2)) -eq 1 ]; then
      run a "$a" "$filter_a" "$mode" "$round"
      run b "$b" "$filter_b" "$mode" "$round"
    else
      run b "$b" "$filter_b" "$mode" "$round"
      run a "$a" "$filter_a" "$mode" "$round"
    fi
  done
done
echo "$(date +%T) done" >&2
