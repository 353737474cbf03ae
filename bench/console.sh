#!/usr/bin/env bash
# Console: the cluster page of a replica set with 10,000 snapshots over a year and a year
# of oplog, served by the real binary (crates/rewind/benches/console_cluster.rs): median,
# p95 and max of sequential GETs of the page as first opened, zoomed out to the year and
# at its second page of snapshots, next to the API's snapshot listing in the same run;
# RUNS such runs.
#   usage: bench/console.sh [RUNS]
#   (BENCH_SNAPSHOTS, BENCH_ROUNDS and REWIND_BENCH_DATABASE_URL as in the bench)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${1:-1}
for run in $(seq 1 "$RUNS"); do
  echo "run $run"
  (cd "$ROOT" && cargo bench -q -p rewind --bench console_cluster)
done
