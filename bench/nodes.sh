#!/usr/bin/env bash
# Restore-job creation and authenticated API throughput on the embedded store, one node
# over PostgreSQL and two nodes over PostgreSQL, in one run (crates/rewind/benches/
# nodes_load.rs), on a throwaway PostgreSQL of its own (.ci/postgres.sh; no fsync, as in
# CI) with pg_stat_statements counting the statements per request.
#   usage: bench/nodes.sh [PORT]     (BENCH_ROUNDS, BENCH_SECS, BENCH_CONNECTIONS as in the bench)
source "$(dirname "$0")/common.sh"
PORT=${1:-55499}
WORK=$(mktemp -d)
PGDIR="$WORK/pg"
chmod 755 "$WORK"
trap '"$ROOT/.ci/postgres.sh" stop "$PGDIR" 2>/dev/null; rm -rf "$WORK"' EXIT

"$ROOT/.ci/postgres.sh" start "$PGDIR" "$PORT"
# pg_stat_statements must be loaded at start: restart with it.
bin=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "$(printf '%q ' "$@")"; else "$@"; fi; }
as_pg "$bin/pg_ctl" -D "$PGDIR" -w -m fast stop >/dev/null
as_pg "$bin/pg_ctl" -D "$PGDIR" -l "$PGDIR/server.log" -w start \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $PGDIR -c fsync=off -c max_connections=300 -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all" >/dev/null
SERVER_URL="postgres://postgres@127.0.0.1:$PORT"
for db in one_node two_nodes; do
  psql "$SERVER_URL/postgres" -qAtc "CREATE DATABASE $db"
  psql "$SERVER_URL/$db" -qAtc "CREATE EXTENSION pg_stat_statements"
done

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$ROOT" && BENCH_POSTGRES_PID=$(head -1 "$PGDIR/postmaster.pid") BENCH_ONE_NODE_URL="$SERVER_URL/one_node" BENCH_TWO_NODES_URL="$SERVER_URL/two_nodes" \
  cargo bench -q -p rewind --bench nodes_load)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# Where the two-node deployment's statements went, most called first.
psql "$SERVER_URL/two_nodes" -Atc "SELECT calls, round(total_exec_time::numeric / calls, 3) AS ms_per_call, left(regexp_replace(query, '\s+', ' ', 'g'), 90) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'two_nodes') ORDER BY calls DESC LIMIT 12"
