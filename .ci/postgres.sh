#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: `start DIR PORT` creates a cluster in DIR
# (which must not exist yet) and serves it on 127.0.0.1:PORT with no password (trust) and no
# fsync; `stop DIR` stops it. DIR is left for the caller to remove.
# The suite then runs with REWIND_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres.
set -euo pipefail

PG_VERSION=15
bin="/usr/lib/postgresql/$PG_VERSION/bin"

# PostgreSQL refuses to run as root: as root, run its tools as the `postgres` user.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    su postgres -c "$(printf '%q ' "$@")"
  else
    "$@"
  fi
}

case "${1:-}" in
  start)
    dir="${2:?usage: $0 start DIR PORT}"
    port="${3:?usage: $0 start DIR PORT}"
    if [ ! -x "$bin/initdb" ]; then
      # Only the binaries: Debian's package would otherwise create and start a cluster of
      # its own on port 5432.
      if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
      fi
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$PG_VERSION" >/dev/null
    fi
    if [ "$(id -u)" -eq 0 ]; then
      install -d -o postgres -m 700 "$dir"
    else
      install -d -m 700 "$dir"
    fi
    as_postgres "$bin/initdb" -D "$dir" -U postgres -A trust --no-sync >/dev/null
    as_postgres "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300" >/dev/null
    ;;
  stop)
    dir="${2:?usage: $0 stop DIR}"
    as_postgres "$bin/pg_ctl" -D "$dir" -w -m fast stop >/dev/null
    ;;
  *)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
