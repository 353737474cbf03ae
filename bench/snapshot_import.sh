#!/usr/bin/env bash
# Snapshot import vs restic on the same generated 512 MiB dbpath, in one run:
# full import time, incremental import time after ~1% scattered 64 KiB overwrites,
# bytes stored after each, and the import client's peak memory.
#   usage: bench/snapshot_import.sh [SIZE_MIB] [RUNS]
source "$(dirname "$0")/common.sh"
SIZE_MIB=${1:-512}
RUNS=${2:-3}
WRITES=$(( SIZE_MIB * 1024 * 1024 / 100 / 65536 ))   # ~1% of the bytes, in 64 KiB writes
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic >/dev/null; }
build_release
WORK=$(mktemp -d)
trap 'stop_server 2>/dev/null; rm -rf "$WORK"' EXIT
export RESTIC_PASSWORD=bench

declare -a R_FULL R_INCR R_STORED1 R_GROWTH R_MEM S_FULL S_INCR S_STORED1 S_GROWTH
for run in $(seq 1 "$RUNS"); do
  rm -rf "$WORK"/*
  "$DEVTOOLS" gen-dbpath --dir "$WORK/src" --size-mib "$SIZE_MIB" --seed "$run" >/dev/null
  sync
  start_server "$WORK/data"
  CLUSTER=$("$REWIND" cluster add --group "$GROUP" --name rs0 --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["members"][0]["id"])')
  IMPORT=("$REWIND" snapshot import --group "$GROUP" --cluster "$CLUSTER" --from "$WORK/src" --json)
  read -r t mem _ < <(timed "${IMPORT[@]}"); R_FULL+=("$t"); R_MEM+=("$mem")
  stored1=$(du -sb "$WORK/data/blocks" | cut -f1); R_STORED1+=("$stored1")
  restic init -q -r "$WORK/restic" >/dev/null
  read -r t _ < <(timed restic backup -q -r "$WORK/restic" "$WORK/src"); S_FULL+=("$t")
  rstored1=$(du -sb "$WORK/restic" | cut -f1); S_STORED1+=("$rstored1")
  changed=$("$DEVTOOLS" scatter --dir "$WORK/src" --writes "$WRITES" --seed $((run + 100)))
  sync
  read -r t mem _ < <(timed "${IMPORT[@]}"); R_INCR+=("$t"); R_MEM+=("$mem")
  stored2=$(du -sb "$WORK/data/blocks" | cut -f1)
  R_GROWTH+=("$(python3 -c "print(($stored2 - $stored1) / $changed)")")
  read -r t _ < <(timed restic backup -q -r "$WORK/restic" "$WORK/src"); S_INCR+=("$t")
  rstored2=$(du -sb "$WORK/restic" | cut -f1)
  S_GROWTH+=("$(python3 -c "print(($rstored2 - $rstored1) / $changed)")")
  echo "run $run: rewind full ${R_FULL[-1]}s incr ${R_INCR[-1]}s growth ${R_GROWTH[-1]}x stored ${stored1}B; restic full ${S_FULL[-1]}s incr ${S_INCR[-1]}s growth ${S_GROWTH[-1]}x stored ${rstored1}B; changed ${changed}B" >&2
  stop_server
done

printf '| measure (median of %s runs, %s MiB) | rewind | restic | rewind / restic |\n|---|---|---|---|\n' "$RUNS" "$SIZE_MIB"
rf=$(median "${R_FULL[@]}"); sf=$(median "${S_FULL[@]}")
ri=$(median "${R_INCR[@]}"); si=$(median "${S_INCR[@]}")
rs=$(median "${R_STORED1[@]}"); ss=$(median "${S_STORED1[@]}")
rg=$(median "${R_GROWTH[@]}"); sg=$(median "${S_GROWTH[@]}")
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo "| full import, s | $rf | $sf | $(ratio "$rf" "$sf") |"
echo "| incremental import after ~1% scattered 64 KiB writes, s | $ri | $si | $(ratio "$ri" "$si") |"
echo "| bytes stored after the full import | $rs | $ss | $(ratio "$rs" "$ss") |"
echo "| stored growth of the incremental / bytes changed | $rg | $sg | $(ratio "$rg" "$sg") |"
echo "| import client peak RSS, MiB (max over runs) | $(python3 -c "print(round(max(${R_MEM[*]/%/,}0)/1024,1))") | - | - |"
