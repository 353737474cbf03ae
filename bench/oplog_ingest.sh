#!/usr/bin/env bash
# Oplog ingest: generates ENTRIES oplog entries spread over 24 hours (a day of a busy replica
# set, mongodump's oplog.bson format), pushes the file with `rewind oplog push` into a
# throwaway server, and reports entries/s and MB/s of the push (generation is not timed),
# the stored size, the CPU seconds of client and server, and the client's peak memory.
# A re-push of the same file (every entry compared with the stored one, nothing written)
# is timed as well.
#   usage: bench/oplog_ingest.sh [ENTRIES] [RUNS]
source "$(dirname "$0")/common.sh"
ENTRIES=${1:-10000000}
RUNS=${2:-3}
build_release
WORK=$(mktemp -d)
trap 'stop_server 2>/dev/null; rm -rf "$WORK"' EXIT

"$DEVTOOLS" gen-oplog --out "$WORK/oplog.bson" --entries "$ENTRIES" --hours 24 --seed 1 >&2
BYTES=$(stat -c %s "$WORK/oplog.bson")
sync

declare -a PUSH REPUSH CLIENT_CPU SERVER_CPU MEM STORED
for run in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/data" "$WORK"/data.*
  start_server "$WORK/data"
  CLUSTER=$("$REWIND" cluster add --group "$GROUP" --name rs0 --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["members"][0]["id"])')
  PUSH_CMD=("$REWIND" oplog push --group "$GROUP" --cluster "$CLUSTER" --json "$WORK/oplog.bson")
  before=$(cpu_secs "$SERVER_PID")
  read -r t mem cpu < <(timed "${PUSH_CMD[@]}")
  after=$(cpu_secs "$SERVER_PID")
  PUSH+=("$t"); MEM+=("$mem"); CLIENT_CPU+=("$cpu")
  SERVER_CPU+=("$(python3 -c "print(round($after - $before, 2))")")
  STORED+=("$(du -sb "$WORK/data/blocks/oplog" | cut -f1)")
  read -r t _ _ < <(timed "${PUSH_CMD[@]}")
  REPUSH+=("$t")
  echo "run $run: push ${PUSH[-1]}s (client cpu ${CLIENT_CPU[-1]}s, server cpu ${SERVER_CPU[-1]}s), re-push ${REPUSH[-1]}s, stored ${STORED[-1]}B" >&2
  stop_server
done

rate() { python3 -c "print(f'{$1 / $2:,.0f}')"; }
mbps() { python3 -c "print(f'{$1 / $2 / 1e6:,.1f}')"; }
p=$(median "${PUSH[@]}"); r=$(median "${REPUSH[@]}")
printf '| measure (median of %s runs, %s entries, %s bytes) | value |\n|---|---|\n' "$RUNS" "$ENTRIES" "$BYTES"
echo "| push, s | $p |"
echo "| push, entries/s | $(rate "$ENTRIES" "$p") |"
echo "| push, MB/s of entries | $(mbps "$BYTES" "$p") |"
echo "| re-push of the same file (nothing new), entries/s | $(rate "$ENTRIES" "$r") |"
echo "| client CPU, s | $(median "${CLIENT_CPU[@]}") |"
echo "| server CPU during the push, s | $(median "${SERVER_CPU[@]}") |"
echo "| stored bytes (slice objects) | $(median "${STORED[@]}") ($(python3 -c "print(f'{$BYTES / $(median "${STORED[@]}"):.1f}')")x smaller) |"
echo "| client peak RSS, MiB (max over runs) | $(python3 -c "print(round(max(${MEM[*]/%/,}0)/1024,1))") |"
