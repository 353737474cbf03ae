#!/usr/bin/env bash
# Server memory while serving a large snapshot: a SIZE_GIB file of one 64 MiB random block
# repeated (it deduplicates to one block, so the store stays small while the archive is
# SIZE_GIB long). Reports the server's resident memory before, during and after the download.
#   usage: bench/delivery_memory.sh [SIZE_GIB]
source "$(dirname "$0")/common.sh"
SIZE_GIB=${1:-10}
build_release
WORK=$(mktemp -d)
trap 'stop_server 2>/dev/null; rm -rf "$WORK"' EXIT
"$DEVTOOLS" repeated --file "$WORK/src/collection-0-1.wt" --size-mib $((SIZE_GIB * 1024))
start_server "$WORK/data"
CLUSTER=$("$REWIND" cluster add --group "$GROUP" --name rs0 --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["members"][0]["id"])')
SNAPSHOT=$("$REWIND" snapshot import --group "$GROUP" --cluster "$CLUSTER" --from "$WORK/src" --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["snapshotId"])')
JOB=$("$REWIND" restore start --group "$GROUP" --cluster "$CLUSTER" --snapshot "$SNAPSHOT" --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["results"][0]["id"])')
until [ "$("$REWIND" restore get "$JOB" --group "$GROUP" --cluster "$CLUSTER" --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["delivery"]["statusName"])')" = READY ]; do sleep 0.5; done
URL=$("$REWIND" restore get "$JOB" --group "$GROUP" --cluster "$CLUSTER" --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["delivery"]["url"])')
before=$(rss_kib "$SERVER_PID")
curl -s -o /dev/null -w '%{time_total} s, %{size_download} bytes\n' "$URL" &
CURL=$!
max=$(max_rss_while "$CURL")
wait "$CURL"
after=$(rss_kib "$SERVER_PID")
echo "| serving a ${SIZE_GIB} GiB archive | RSS before | max RSS during | RSS after | growth |"
echo "|---|---|---|---|---|"
echo "| rewind | $((before / 1024)) MiB | $((max / 1024)) MiB | $((after / 1024)) MiB | $(((max - before) / 1024)) MiB |"
