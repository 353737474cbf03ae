#!/usr/bin/env bash
# Automated restore of a snapshot by three loopback agents (one per member of a three-member
# target replica set), from job creation to FINISHED, vs `curl | tar xz` of the same archive
# into one directory.
#   usage: bench/agent_restore.sh [SIZE_MIB] [RUNS]
source "$(dirname "$0")/common.sh"
SIZE_MIB=${1:-512}
RUNS=${2:-3}
build_release
WORK=$(mktemp -d)
AGENT_PIDS=()
cleanup() {
  for pid in "${AGENT_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  stop_server 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

json_field() { python3 -c "import json,sys;d=json.load(sys.stdin);print(eval('d'+sys.argv[1]))" "$1"; }

"$DEVTOOLS" gen-dbpath --dir "$WORK/src" --size-mib "$SIZE_MIB" --seed 7 >/dev/null
start_server "$WORK/data"
SOURCE=$("$REWIND" cluster add --group "$GROUP" --name rs0 --json | json_field '["members"][0]["id"]')
TARGET=$("$REWIND" cluster add --group "$GROUP" --name target --json | json_field '["members"][0]["id"]')
SNAPSHOT=$("$REWIND" snapshot import --group "$GROUP" --cluster "$SOURCE" --from "$WORK/src" --json | json_field '["snapshotId"]')

for i in 0 1 2; do
  mkdir -p "$WORK/node$i/db"
  cat > "$WORK/node$i.toml" <<TOML
server = "$REWIND_SERVER"
public_key = "$REWIND_PUBLIC_KEY"
private_key = "$REWIND_PRIVATE_KEY"
group_id = "$GROUP"
cluster_id = "$TARGET"
replica_set = "target"
agent_id = "node$i"

[[members]]
name = "node$i:27017"
dbpath = "$WORK/node$i/db"
stop_command = "true"
start_command = "true"
TOML
  RUST_LOG=warn "$REWIND" agent --config "$WORK/node$i.toml" 2> "$WORK/node$i.log" &
  AGENT_PIDS+=($!)
done
sleep 2

# The job's own statusName: the last one in the body (the delivery's comes first). Parsed
# in bash: a python3 start per poll took about 0.1 s of CPU, so polling every 50 ms kept
# most of a core busy beside the restore being timed.
job_status() {
  local body
  body=$(curl -s --digest --user "$REWIND_PUBLIC_KEY:$REWIND_PRIVATE_KEY" \
    "$REWIND_SERVER/api/public/v1.0/groups/$GROUP/clusters/$SOURCE/restoreJobs/$1")
  [[ $body =~ .*\"statusName\":\"([A-Z_]+)\" ]] && echo "${BASH_REMATCH[1]}"
}

declare -a A C
for _ in $(seq 1 "$RUNS"); do
  body="{\"delivery\":{\"methodName\":\"AUTOMATED_RESTORE\",\"targetGroupId\":\"$GROUP\",\"targetClusterId\":\"$TARGET\"},\"snapshotId\":\"$SNAPSHOT\"}"
  start=$(date +%s.%N)
  JOB=$(curl -s --digest --user "$REWIND_PUBLIC_KEY:$REWIND_PRIVATE_KEY" -H 'Content-Type: application/json' \
    -X POST --data "$body" "$REWIND_SERVER/api/public/v1.0/groups/$GROUP/clusters/$SOURCE/restoreJobs" | json_field '["results"][0]["id"]')
  while :; do
    status=$(job_status "$JOB")
    [ "$status" = IN_PROGRESS ] || break
    sleep 0.05
  done
  end=$(date +%s.%N)
  [ "$status" = FINISHED ] || { echo "job $JOB ended $status" >&2; exit 1; }
  A+=("$(python3 -c "print(f'{$end - $start:.3f}')")")

  # The same archive with an HTTP job, then plain curl | tar xz into one directory.
  HJOB=$("$REWIND" restore start --group "$GROUP" --cluster "$SOURCE" --snapshot "$SNAPSHOT" --json | json_field '["results"][0]["id"]')
  until [ "$("$REWIND" restore get "$HJOB" --group "$GROUP" --cluster "$SOURCE" --json | json_field '["delivery"]["statusName"]')" = READY ]; do sleep 0.2; done
  URL=$("$REWIND" restore get "$HJOB" --group "$GROUP" --cluster "$SOURCE" --json | json_field '["delivery"]["url"]')
  rm -rf "$WORK/plain" && mkdir -p "$WORK/plain"
  read -r t _ < <(timed bash -c "curl -s '$URL' | tar xzf - -C '$WORK/plain'"); C+=("$t")
  diff -r "$WORK/src" "$WORK/node0/db" >/dev/null || { echo "node0 differs from the source" >&2; exit 1; }
done
a=$(median "${A[@]}"); c=$(median "${C[@]}")
printf '| %s MiB dbpath, median of %s | seconds | vs curl \\| tar xz |\n|---|---|---|\n' "$SIZE_MIB" "$RUNS"
echo "| automated restore, 3 loopback agents (creation → FINISHED) | $a | $(python3 -c "print(f'{$a/$c:.2f}x')") |"
echo "| curl \| tar xz, one directory | $c | 1.00x |"
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
