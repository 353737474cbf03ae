#!/usr/bin/env bash
# Console timeline: renders the cluster page's timeline picture of a cluster at production
# scale (three shards and a config server with a year of oplog in 5,000 stretches each,
# 10,000 snapshots, 5,760 checkpoints) at several zooms, RENDERS times each, and prints the
# median and 90th percentile render time and the picture's size per zoom; RUNS such runs.
#   usage: bench/timeline_render.sh [RENDERS] [RUNS]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RENDERS=${1:-500}
RUNS=${2:-3}
(cd "$ROOT" && cargo build --release -q -p rewind-server --example timeline_render)
for run in $(seq 1 "$RUNS"); do
  echo "run $run"
  "$ROOT/target/release/examples/timeline_render" "$RENDERS"
done
