#!/usr/bin/env bash
# Starts a throwaway PostgreSQL on 127.0.0.1 for the tests and prints the export line for
# its URL; `scripts/postgres.sh stop DIR` stops it. Installs Debian's PostgreSQL if absent.
# Usage: eval "$(scripts/postgres.sh start)"   …   scripts/postgres.sh stop "$FANZHA_PG_DIR"
set -euo pipefail

port="${FANZHA_PG_PORT:-55432}"

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

case "${1:-start}" in
start)
  if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
    echo "installing PostgreSQL from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
  fi
  bin="$(pg_bin)"
  # initdb refuses to run as root: the server runs as the postgres system user.
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  fi
  dir="$(mktemp -d /tmp/fanzha-pg.XXXXXX)"
  chown postgres:postgres "$dir" 2>/dev/null || true
  run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
  run "'$bin/initdb' -D '$dir/data' -A trust -U postgres --no-sync" >/dev/null
  # TLS for the tests of `sslmode=require`: a throwaway CA and a server certificate for
  # 127.0.0.1 signed by it (the client verifies the chain and the address).
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=fanzha test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$dir/server.key" -out "$dir/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" >/dev/null 2>&1
  chmod 600 "$dir/server.key"
  chown postgres:postgres "$dir/server.key" "$dir/server.crt" 2>/dev/null || true
  run "'$bin/pg_ctl' -D '$dir/data' -l '$dir/log' -w -t 60 \
      -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200 -c ssl=on -c ssl_cert_file='$dir/server.crt' -c ssl_key_file='$dir/server.key'\" start" >&2
  echo "export FANZHA_PG_DIR='$dir' FANZHA_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:$port/postgres' FANZHA_TEST_PG_CA='$dir/ca.crt'"
  ;;
stop)
  dir="${2:?usage: postgres.sh stop DIR}"
  bin="$(pg_bin)"
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$dir/data' -m fast -w stop" >&2 || true
  else
    "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start | stop DIR" >&2
  exit 2
  ;;
esac
