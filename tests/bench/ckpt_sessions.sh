#!/bin/bash
# Checkpointing on against off, and recovery, in sessions (docs/benchmarks.md).
# Each group runs the benchmarks of one scenario (the same table and frames,
# checkpoint attached or not) with their repetitions randomly interleaved
# (--benchmark_enable_random_interleaving), pinned to one CPU; each
# group's results go to OUTDIR/GROUP.SESSION.json for summarize.py --ckpt
# and --recovery.
#
# usage: tests/bench/ckpt_sessions.sh BENCH OUTDIR [SESSIONS]
#   environment: CPU (default 1), REPS (default 10; recovery and the 1M
#   fills use fewer), HUGE (default 1: --hugepages; reserve about 680),
#   ONLY (group names to run, default: all of those below).
set -eu

if [ $# -lt 2 ]; then
  sed -n '2,14p' "$0"
  exit 2
fi
bench=$1
out=$2
sessions=${3:-3}
cpu=${CPU:-1}
reps=${REPS:-10}
flags=()
[ "${HUGE:-1}" = 1 ] && flags+=(--hugepages)
mkdir -p "$out"

# group name, filter, repetitions
all_groups=(
  "ack1k|^established/conns:1000/csum:on(/ckpt(/lap:1s)?)?$|$reps"
  "ack100k|^established/conns:100000/csum:on(/ckpt(/lap:1s)?)?$|$reps"
  "ack1m|^established/conns:1000000/csum:on(/ckpt(/lap:1s)?)?$|$reps"
  "data1k|^established_data/conns:1000/|$reps"
  "data100k|^established_data/conns:100000/|$reps"
  "data1m|^established_data/conns:1000000/|$reps"
  "fill|^new_connections/fill|5"
  "churn|^new_connections/churn|5"
  "rec10k1|^recovery/conns:10000/workers:1to|5"
  "rec10k2|^recovery/conns:10000/workers:2to|5"
  "rec100k1|^recovery/conns:100000/workers:1to|5"
  "rec100k2|^recovery/conns:100000/workers:2to|5"
  "rec1m1|^recovery/conns:1000000/workers:1to|5"
  "rec1m2|^recovery/conns:1000000/workers:2to|5"
)
wanted=${ONLY:-}

for session in $(seq 1 "$sessions"); do
  for g in "${all_groups[@]}"; do
    IFS='|' read -r name filter r <<<"$g"
    if [ -n "$wanted" ] && ! grep -qw "$name" <<<"$wanted"; then continue; fi
    echo "$(date +%T) session $session: $name load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    taskset -c "$cpu" "$bench" "${flags[@]}" --benchmark_filter="$filter" \
      --benchmark_repetitions="$r" --benchmark_enable_random_interleaving=true \
      --benchmark_report_aggregates_only=true \
      --benchmark_out="$out/$name.$session.json" --benchmark_out_format=json >/dev/null
  done
done
echo "$(date +%T) done" >&2
