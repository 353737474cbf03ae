# Shared helpers of the benchmark scripts: a release build, a throwaway Rewind server on
# loopback, its credentials, and peak-memory measurement. Sourced, not run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REWIND="$ROOT/target/release/rewind"
DEVTOOLS="$ROOT/target/release/rewind-devtools"

build_release() {
  (cd "$ROOT" && cargo build --release -q -p rewind -p rewind-devtools)
}

# start_server DATA_DIR: inits and starts a server; sets SERVER_PID, REWIND_SERVER,
# REWIND_PUBLIC_KEY, REWIND_PRIVATE_KEY, GROUP.
start_server() {
  local data=$1
  "$REWIND" init --data-dir "$data" --json > "$data.creds.json"
  GROUP=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["groupId"])' "$data.creds.json")
  export REWIND_PUBLIC_KEY=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["publicKey"])' "$data.creds.json")
  export REWIND_PRIVATE_KEY=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["privateKey"])' "$data.creds.json")
  "$REWIND" serve --data-dir "$data" --listen 127.0.0.1:0 --log-format json > "$data.out" 2> "$data.log" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if grep -q "listening on" "$data.out" 2>/dev/null; then break; fi
    sleep 0.1
  done
  export REWIND_SERVER=$(sed -n 's/^Rewind listening on //p' "$data.out")
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}

# Peak resident memory (KiB) of a running process.
peak_rss_kib() {
  awk '/VmHWM/ {print $2}' "/proc/$1/status"
}

# Current resident memory (KiB) of a running process.
rss_kib() {
  awk '/VmRSS/ {print $2}' "/proc/$1/status"
}

# timed CMD...: runs CMD, prints "SECONDS PEAK_RSS_KIB CPU_SECONDS" of it (children
# included; CPU is user plus system time).
timed() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
start = time.monotonic()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
elapsed = time.monotonic() - start
if done.returncode != 0:
    sys.exit(f"command failed ({done.returncode}): {' '.join(sys.argv[1:])}")
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{elapsed:.3f} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime:.2f}")
PY
}

# CPU seconds (user + system) a running process has used so far.
cpu_secs() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

median() {
  python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"
}

# max_rss_while PID: the server's largest resident memory (KiB), sampled every 0.1 s while
# the process PID runs.
max_rss_while() {
  local max now
  max=$(rss_kib "$SERVER_PID")
  while kill -0 "$1" 2>/dev/null; do
    now=$(rss_kib "$SERVER_PID")
    [ "$now" -gt "$max" ] && max=$now
    sleep 0.1
  done
  echo "$max"
}
