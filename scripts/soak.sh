#!/usr/bin/env bash
# Soak and fault injection for `fanzha serve` on this machine (issue #16; not part of CI).
#
# For SOAK_MINUTES (default 10): SIP INVITEs over UDP at SOAK_RATE per second (default
# 20000: set it to half the loss-free rate `scripts/bench-sip.sh` measures), a flood of
# TCP connections and slow senders, HTTP screening and ledger writes, and call records over
# HTTP, against one `serve` on PostgreSQL with a Kafka consumer. Meanwhile it injects
# faults on a schedule:
#   minute 2: the decision-log directory made read-only for a minute (a read-only bind
#             mount);
#   minute 4: the disk full (the data dir is a small tmpfs; a file fills it for a minute);
#   minute 6: PostgreSQL restarted;
#   minute 8: the Kafka broker stopped for a minute, then started again.
# It prints a line per minute (SIP calls answered, loss, p99) and RSS every 10 s, and at
# the end the decision-log losses the service counted (expected 0 outside the two disk
# faults) and `fanzha decisions verify`. Needs root (mounts), python3, openssl.
# Usage: sudo scripts/soak.sh            (SOAK_MINUTES=3 for a short run)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${SOAK_MINUTES:-10}"
rate="${SOAK_RATE:-20000}"
[ "$(id -u)" = 0 ] || { echo "soak.sh mounts tmpfs and bind mounts: run it as root" >&2; exit 2; }

cargo build --release -p fanzha >&2
bin="$PWD/target/release/fanzha"
work=$(mktemp -d /tmp/fanzha-soak.XXXXXX)
data="$work/data"
mkdir -p "$data"
mount -t tmpfs -o size=256m tmpfs "$data"

# Its own PostgreSQL, on a port of its own (a test server may be running on the default).
export FANZHA_PG_PORT="${FANZHA_PG_PORT:-55439}"
pg_env=$(bash scripts/postgres.sh start) || { echo "soak: PostgreSQL did not start" >&2; exit 1; }
eval "$pg_env"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
url="$FANZHA_TEST_DATABASE_URL"
tansu="$(bash scripts/kafka.sh)"
kport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_broker() {
  "$tansu" broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
    --storage-engine memory://tansu/ >/dev/null 2>&1 &
  echo $! > "$work/broker.pid"
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$kport) 2>/dev/null && break; sleep 0.1; done
  "$tansu" topic create cdr --partitions 2 --broker "tcp://127.0.0.1:$kport" >/dev/null 2>&1 || true
}
start_broker

cleanup() {
  set +e
  kill "$(cat "$work/serve.pid" 2>/dev/null)" "$(cat "$work/broker.pid" 2>/dev/null)" "${load_pids[@]}" 2>/dev/null
  wait 2>/dev/null
  umount "$data/decisions" 2>/dev/null
  umount "$data" 2>/dev/null
  bash scripts/postgres.sh stop "$FANZHA_PG_DIR" >/dev/null 2>&1
  rm -rf "$work"
}
load_pids=()
trap cleanup EXIT

f() { "$bin" --data-dir "$data" --database-url "$url" "$@"; }
for role in gateway system_admin ingest monitoring; do
  f auth add-token "soak-$role" --role "$role" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' > "$work/$role.token"
done
cat > "$work/serve.toml" <<TOML
[http]
listen = "127.0.0.1:0"
[sip]
listen = "127.0.0.1:0"
trunk_map = ["127.0.0.0/8=soak-intl"]
trusted = ["127.0.0.1"]
[decisions]
fsync_ms = 1000
[kafka]
brokers = "127.0.0.1:$kport"
topic = "cdr"
group = "soak"
TOML
printf 'trunk_id,kind,owner_uscc,peer,contracted_numbers,forwarding_approved,state\nsoak-intl,international,,,,false,active\n' > "$work/trunks.csv"
f ledger import trunks "$work/trunks.csv" >/dev/null
# Started directly (not through `f`, whose subshell would be the process measured).
"$bin" --data-dir "$data" --database-url "$url" serve --config "$work/serve.toml" \
  > "$work/serve.out" 2> "$work/serve.err" &
echo $! > "$work/serve.pid"
for _ in $(seq 1 200); do grep -q "sip_udp=" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
line=$(head -n 1 "$work/serve.out")
field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
http=$(field http); sip_udp=$(field sip_udp); sip_tcp=$(field sip_tcp)
pid=$(cat "$work/serve.pid")
echo "soak: serve pid $pid http=$http sip_udp=$sip_udp sip_tcp=$sip_tcp, $minutes min at $rate INVITE/s" >&2

# HTTP screening, ledger writes and call records; a TCP flood and slow senders.
python3 - "$http" "$sip_tcp" "$work" "$((minutes * 60))" <<'PY' &
import json, os, socket, sys, threading, time, urllib.request
http, sip_tcp, work, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tok = {r: open(f"{work}/{r}.token").read().strip() for r in ("gateway", "system_admin", "ingest", "monitoring")}
end = time.time() + seconds
def post(path, body, role, ctype):
    req = urllib.request.Request(f"http://{http}{path}", data=body.encode(), method="POST",
        headers={"Authorization": f"Bearer {tok[role]}", "Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return 0
def screens():
    i = 0
    while time.time() < end:
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        calls = [{"id": f"h{i}-{k}", "ts": now, "trunk": "soak-intl", "caller": f"+8529{(i*7+k) % 10**7:07d}",
                  "callee": "13912345678"} for k in range(20)]
        post("/v1/screen", json.dumps(calls), "gateway", "application/json")
        i += 1
        time.sleep(0.02)
def writes():
    i = 0
    while time.time() < end:
        csv = "number,source,reason,added_at,expires_at\n" + "".join(f"+85261{(i*10+k) % 10**6:06d},manual,soak,,\n" for k in range(10))
        post("/v1/ledger/blocklist", csv, "system_admin", "text/csv")
        i += 1
        time.sleep(0.5)
def cdrs():
    i = 0
    while time.time() < end:
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        rows = "".join(f"{now},+8613{(i*50+k) % 10**9:09d},+8613900000000,30,soak-intl,,\n" for k in range(50))
        post("/v1/cdr", "start,caller,callee,duration_s,trunk,imei,cell\n" + rows, "ingest", "text/csv")
        i += 1
        time.sleep(0.2)
def flood():
    host, port = sip_tcp.rsplit(":", 1)
    held = []
    while time.time() < end:
        try:
            s = socket.create_connection((host, int(port)), timeout=2)
            held.append(s)
        except OSError:
            time.sleep(0.05)
        if len(held) > 3000:
            for s in held[:1000]:
                s.close()
            held = held[1000:]
        time.sleep(0.002)
def slow():
    host, port = sip_tcp.rsplit(":", 1)
    msg = b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKslow\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: slow\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    while time.time() < end:
        try:
            s = socket.create_connection((host, int(port)), timeout=5)
            for b in msg:
                s.send(bytes([b]))
                time.sleep(0.01)
            s.close()
        except OSError:
            time.sleep(0.5)
threads = [threading.Thread(target=t, daemon=True) for t in (screens, writes, cdrs, flood, slow, slow)]
for t in threads: t.start()
while time.time() < end: time.sleep(1)
PY
load_pids+=($!)

# RSS every 10 s.
( while kill -0 "$pid" 2>/dev/null; do
    echo "rss $(date +%s) $(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null) kB"; sleep 10
  done > "$work/rss.log" ) &
load_pids+=($!)

# Faults on a schedule (minutes since the start).
faults() {
  local t0=$1
  at() { while [ $(( $(date +%s) - t0 )) -lt $(( $1 * 60 )) ]; do sleep 1; done; }
  [ "$minutes" -ge 3 ] && { at 2; echo "fault: decision log read-only" >&2
    mount --bind "$data/decisions" "$data/decisions"; mount -o remount,bind,ro "$data/decisions"
    sleep 60; umount "$data/decisions"; echo "fault over: decision log writable" >&2; }
  [ "$minutes" -ge 5 ] && { at 4; echo "fault: disk full" >&2
    dd if=/dev/zero of="$data/filler" bs=1M count=400 status=none 2>/dev/null || true
    sleep 60; rm -f "$data/filler"; echo "fault over: disk has room" >&2; }
  [ "$minutes" -ge 7 ] && { at 6; echo "fault: PostgreSQL restart" >&2
    su postgres -s /bin/sh -c "'$pg_bin/pg_ctl' -D '$FANZHA_PG_DIR/data' -m fast -w restart" >/dev/null 2>&1 || true; }
  [ "$minutes" -ge 9 ] && { at 8; echo "fault: Kafka broker stopped" >&2
    kill "$(cat "$work/broker.pid")"; sleep 60; start_broker; echo "fault over: broker started" >&2; }
  return 0
}
faults "$(date +%s)" &
load_pids+=($!)

# SIP UDP at the configured rate, a minute at a time.
for m in $(seq 1 "$minutes"); do
  out=$("$bin" bench sip --target "$sip_udp" --rate "$rate" --duration 60 2>/dev/null | tail -n 1)
  echo "minute $m: $out"
done

metrics=$(curl -s -H "Authorization: Bearer $(cat "$work/monitoring.token")" "http://$http/metrics")
health=$(curl -s "http://$http/healthz")
echo "healthz: $health"
echo "$metrics" | grep -E '^fanzha_decision_log_(lost|dropped)_total|^fanzha_decision_log_writing' || true
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
echo "rss (kB, every 10 s): $(awk '{print $3}' "$work/rss.log" | tr '\n' ' ')"
echo "decision log outages recorded: $(cat "$data"/decisions/seg-*.jsonl | grep -c decision_log_outage || true)"
echo "decisions verify: $(f decisions verify 2>&1 | tail -n 1)"
