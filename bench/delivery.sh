#!/usr/bin/env bash
# HTTP delivery of a restore archive over loopback vs `tar czf` and `tar cf | pigz` of the
# same directory, in one run; plus server memory while delivering.
#   usage: bench/delivery.sh [SIZE_MIB] [RUNS]
source "$(dirname "$0")/common.sh"
SIZE_MIB=${1:-512}
RUNS=${2:-5}
command -v pigz >/dev/null || { apt-get update -qq && apt-get install -y -qq pigz >/dev/null; }
build_release
WORK=$(mktemp -d)
trap 'stop_server 2>/dev/null; rm -rf "$WORK"' EXIT

"$DEVTOOLS" gen-dbpath --dir "$WORK/src" --size-mib "$SIZE_MIB" --seed 7 >/dev/null
start_server "$WORK/data"
CLUSTER=$("$REWIND" cluster add --group "$GROUP" --name rs0 --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["members"][0]["id"])')
SNAPSHOT=$("$REWIND" snapshot import --group "$GROUP" --cluster "$CLUSTER" --from "$WORK/src" --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["snapshotId"])')
JOB=$("$REWIND" restore start --group "$GROUP" --cluster "$CLUSTER" --snapshot "$SNAPSHOT" --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["results"][0]["id"])')
until [ "$("$REWIND" restore get "$JOB" --group "$GROUP" --cluster "$CLUSTER" --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["delivery"]["statusName"])')" = READY ]; do sleep 0.2; done
URL=$("$REWIND" restore get "$JOB" --group "$GROUP" --cluster "$CLUSTER" --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["delivery"]["url"])')
ARCHIVE_BYTES=$(curl -s -o /dev/null -w '%{size_download}' "$URL")   # also warms the page cache
rss_before=$(rss_kib "$SERVER_PID")
declare -a D TZ TP
for _ in $(seq 1 "$RUNS"); do
  D+=("$(curl -s -o /dev/null -w '%{time_total}' "$URL")")
  # GNU tar skips reading files when its archive is /dev/null itself, so pipe it.
  read -r t _ < <(timed bash -c "tar czf - -C '$WORK/src' . | cat > /dev/null"); TZ+=("$t")
  read -r t _ < <(timed bash -c "tar cf - -C '$WORK/src' . | pigz > /dev/null"); TP+=("$t")
done
rss_after=$(rss_kib "$SERVER_PID"); peak=$(peak_rss_kib "$SERVER_PID")
d=$(median "${D[@]}"); tz=$(median "${TZ[@]}"); tp=$(median "${TP[@]}")
mbps() { python3 -c "print(f'{$ARCHIVE_BYTES / $1 / 1e6:.0f}')"; }
printf '| %s MiB dbpath (archive %s bytes), median of %s | seconds | MB/s of archive | vs rewind |\n|---|---|---|---|\n' "$SIZE_MIB" "$ARCHIVE_BYTES" "$RUNS"
echo "| rewind HTTP delivery (curl, loopback) | $d | $(mbps "$d") | 1.00 |"
echo "| tar czf | $tz | $(mbps "$tz") | $(python3 -c "print(f'{$tz/$d:.1f}x slower')") |"
echo "| tar cf \| pigz (2 cores) | $tp | $(mbps "$tp") | $(python3 -c "print(f'{$tp/$d:.1f}x slower')") |"
echo
echo "server RSS before the timed downloads: $((rss_before / 1024)) MiB, after: $((rss_after / 1024)) MiB, peak: $((peak / 1024)) MiB"
stop_server
