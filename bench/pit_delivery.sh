#!/usr/bin/env bash
# Point-in-time archive delivery (an oplog-timestamp restore, which cuts the same way): a snapshot of a SIZE_MIB dbpath plus ENTRIES oplog entries
# after it (generated over 23 hours, mongodump's oplog.bson format). Measures, for an HTTP
# restore of the snapshot alone and for a point-in-time restore whose oplog.bson holds all
# those entries: the time from job creation to READY (plan, oplog cut, SHA-1 pass), the
# download speed (curl to /dev/null, loopback, median of RUNS), and the server's peak memory
# during each phase (VmHWM, reset between phases).
#   usage: bench/pit_delivery.sh [ENTRIES] [SIZE_MIB] [RUNS]
source "$(dirname "$0")/common.sh"
ENTRIES=${1:-5000000}
SIZE_MIB=${2:-256}
RUNS=${3:-3}
build_release
WORK=$(mktemp -d)
trap 'stop_server 2>/dev/null; rm -rf "$WORK"' EXIT

json() { python3 -c "import json,sys;d=json.load(sys.stdin);print(eval('d'+sys.argv[1]))" "$1"; }
now_ms() { date +%s%3N; }
# reset_peak: makes VmHWM start again from the current RSS (Linux clear_refs value 5).
reset_peak() { echo 5 > "/proc/$SERVER_PID/clear_refs"; }

END=$(( $(date +%s) - 120 ))
"$DEVTOOLS" gen-dbpath --dir "$WORK/src" --size-mib "$SIZE_MIB" --seed 7 >/dev/null
"$DEVTOOLS" gen-oplog --out "$WORK/oplog.bson" --entries "$ENTRIES" --hours 23 --end "$END" --seed 1 > "$WORK/gen.log" 2>&1
# The snapshot is taken at the first entry: every entry after it is replayed.
FIRST=$(sed -n 's/.* from \([0-9]*:[0-9]*\) to .*/\1/p' "$WORK/gen.log")
# The restore replays up to and including the last entry: all but the first are in oplog.bson.
LAST=$(sed -n 's/.* to \([0-9]*\):\([0-9]*\) to .*/\1,\2/p' "$WORK/gen.log")
OPLOG_BYTES=$(stat -c %s "$WORK/oplog.bson")
start_server "$WORK/data"
CLUSTER=$("$REWIND" cluster add --group "$GROUP" --name rs0 --json | json '["members"][0]["id"]')
SNAPSHOT=$("$REWIND" snapshot import --group "$GROUP" --cluster "$CLUSTER" --from "$WORK/src" \
  --taken-at "$FIRST" --json | json '["snapshotId"]')
"$REWIND" oplog push --group "$GROUP" --cluster "$CLUSTER" --json "$WORK/oplog.bson" >/dev/null
rm -f "$WORK/oplog.bson"
sync

# restore BODY: creates a job, waits for READY; sets URL and PREP_SECS.
restore() {
  local start job
  start=$(now_ms)
  job=$(curl -s --digest --user "$REWIND_PUBLIC_KEY:$REWIND_PRIVATE_KEY" -H 'Content-Type: application/json' \
    -X POST --data "$1" "$REWIND_SERVER/api/public/v1.0/groups/$GROUP/clusters/$CLUSTER/restoreJobs" | json '["results"][0]["id"]')
  while :; do
    local got status
    got=$("$REWIND" restore get "$job" --group "$GROUP" --cluster "$CLUSTER" --json)
    status=$(echo "$got" | json '["delivery"]["statusName"]')
    [ "$status" = READY ] && break
    [ "$(echo "$got" | json '["statusName"]')" = BROKEN ] && { echo "job $job broke: $got" >&2; exit 1; }
    sleep 0.05
  done
  PREP_SECS=$(python3 -c "print(f'{($(now_ms) - $start) / 1000:.2f}')")
  URL=$(echo "$got" | json '["delivery"]["url"]')
}

# phase NAME BODY: prepares and downloads RUNS times; prints a table row.
phase() {
  reset_peak
  local rss_before; rss_before=$(rss_kib "$SERVER_PID")
  restore "$2"
  local bytes; bytes=$(curl -s -o /dev/null -w '%{size_download}' "$URL")
  local -a times=()
  for _ in $(seq 1 "$RUNS"); do times+=("$(curl -s -o /dev/null -w '%{time_total}' "$URL")"); done
  local d; d=$(median "${times[@]}")
  local peak; peak=$(peak_rss_kib "$SERVER_PID")
  echo "| $1 | $bytes | $PREP_SECS | $d | $(python3 -c "print(f'{$bytes / $d / 1e6:,.0f}')") | $((rss_before / 1024)) → $((peak / 1024)) |"
}

printf '| %s MiB dbpath, %s oplog entries (%s bytes), median of %s downloads | archive bytes | creation → READY, s | download, s | MB/s of archive | server RSS before → peak, MiB |\n|---|---|---|---|---|---|\n' \
  "$SIZE_MIB" "$ENTRIES" "$OPLOG_BYTES" "$RUNS"
phase "snapshot restore (baseline)" "{\"delivery\":{\"methodName\":\"HTTP\"},\"snapshotId\":\"$SNAPSHOT\"}"
phase "oplog-timestamp restore: snapshot + oplog.bson" "{\"delivery\":{\"methodName\":\"HTTP\"},\"oplogTs\":${LAST%,*},\"oplogInc\":${LAST#*,}}"
stop_server
