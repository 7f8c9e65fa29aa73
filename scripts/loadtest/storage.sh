#!/usr/bin/env bash
# Storage and replicas (issue #15): POST /v1/answer with the repeated-question
# mix of scripts/loadtest/run.sh, driven by wrk (-t1, DURATION per run,
# --timeout 10s) at each of CONNECTIONS, against
#   1. one replica on SQLite (the default storage),
#   2. one replica on PostgreSQL,
#   3. one replica on PostgreSQL behind nginx (nginx's own cost),
#   4. two replicas on PostgreSQL behind nginx (deploy/nginx.conf, as
#      scripts/cluster.sh renders it, and like it giving each replica's model
#      half the cores unless XIAOER_EMBED__THREADS is set).
# Each configuration starts from a fresh data directory (seeded with
# data/vectors.bin when `make run` left one, so nothing is embedded again)
# and a fresh database, and every replica is sent each distinct question once
# before measuring (its query cache warm, as in a running shop).
#
# PostgreSQL is a throw-away cluster of Debian's package in $WORK/postgres on a
# free loopback port (run as the `postgres` user when root), removed at the
# end, with the package's defaults: fsync and synchronous_commit on, so every
# commit waits for the disk, as in production. SQLite runs as the server sets
# it (WAL, synchronous=NORMAL). Rate limits are lifted (RATE_PER_SECOND and
# RATE_BURST 1000000), and requests name CLIENTS shoppers (default 1000) in
# X-Forwarded-For, so PostgreSQL's shared rate-limit count sees many shoppers,
# as behind a real load balancer, not one hot row.
#
# Prints a Markdown table (docs/BENCHMARKS.md, "Storage and replicas"): wrk's
# answers/s and latency, the CPU time each answer cost the replicas,
# PostgreSQL's processes and nginx (from /proc, around each run), and the
# replicas' resident memory after it.
# Uses target/release/xiaoer as it is (builds it only when missing).
# Environment: DURATION (15s), CONNECTIONS ("1 8 32"), CLIENTS (1000), MIX
# (repeated; `unique`: run.sh's all-different questions, each one embedded,
# no warm-up).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-"1 8 32"}
CLIENTS=${CLIENTS:-1000}
MIX=${MIX:-repeated}
case $MIX in repeated | unique) ;; *) echo "bench-storage: MIX is repeated or unique" >&2; exit 2 ;; esac
BIN=$root/target/release/xiaoer
WORK=$root/target/loadtest/storage

say() { echo "bench-storage: $*" >&2; }
die() { say "$*"; exit 1; }

# as_pg, pg_bin, nginx_bin
. "$root/scripts/pg-nginx.sh"
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- what it needs ------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
pg_bin >/dev/null || missing+=(postgresql)
nginx_bin >/dev/null || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (Debian packages)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi
pgbin=$(pg_bin) || die "no PostgreSQL in /usr/lib/postgresql/*/bin"
nginx=$(nginx_bin) || die "no nginx"
bash scripts/fetch-model.sh >&2
if [ ! -x "$BIN" ]; then
  say "building $BIN"
  cargo build --release --quiet --bin xiaoer
fi

# What a killed run left running is stopped before its files go: the
# replicas and nginx from $WORK/pids (only a live process whose command line
# names the binary), then PostgreSQL.
if [ -f "$WORK/pids" ]; then
  while read -r p; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
    case $cmd in "$BIN"* | *nginx*"$WORK/nginx/"*) kill -TERM "$p" 2>/dev/null || true ;; esac
  done <"$WORK/pids"
  sleep 1
fi
if [ -f "$WORK/postgres/postmaster.pid" ]; then
  as_pg "$pgbin/pg_ctl" -D "$WORK/postgres" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
fi
rm -rf "$WORK"
mkdir -p "$WORK"
python3 scripts/loadtest/questions.py "$MIX" "$WORK/$MIX.jsonl"
sort -u "$WORK/$MIX.jsonl" >"$WORK/distinct.jsonl"

# --- processes, all stopped at exit -------------------------------------------
replica_pids=()
nginx_pid=
pgdata=$WORK/postgres
stop_replicas() {
  local p
  for p in "${replica_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${replica_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  replica_pids=()
}
stop_nginx() {
  if [ -n "$nginx_pid" ]; then kill -TERM "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
  nginx_pid=
}
stop_postgres() {
  if [ -f "$pgdata/postmaster.pid" ]; then as_pg "$pgbin/pg_ctl" -D "$pgdata" -m fast -w -t 60 stop >/dev/null || true; fi
  rm -rf "$pgdata"
}
cleanup() {
  trap - EXIT INT TERM
  stop_nginx
  stop_replicas
  stop_postgres
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- PostgreSQL -----------------------------------------------------------------
pg_port=$(free_port)
mkdir -p "$pgdata"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$pgdata"; fi
chmod 700 "$pgdata"
as_pg test -w "$pgdata" || die "the postgres user cannot write $pgdata (is a parent directory closed to it?)"
as_pg "$pgbin/initdb" -D "$pgdata" -U postgres -E UTF8 --locale=C \
  --auth-local=trust --auth-host=trust >"$WORK/initdb.log" || die "initdb failed; see $WORK/initdb.log"
cat >>"$pgdata/postgresql.conf" <<'EOF'
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
EOF
touch "$WORK/postgres.log"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$WORK/postgres.log"; fi
as_pg setsid "$pgbin/pg_ctl" -D "$pgdata" -l "$WORK/postgres.log" -o "-p $pg_port" -w -t 60 start >/dev/null ||
  die "PostgreSQL did not start; see $WORK/postgres.log"
psql() { "$pgbin/psql" -X -h 127.0.0.1 -p "$pg_port" -U postgres "$@"; }
pg_version=$(psql -d postgres -tAc 'SHOW server_version')
pg_settings=$(psql -d postgres -tAc "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings
  WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers')")

# --- replicas and nginx -----------------------------------------------------------
# start_replica NAME STORAGE_URL [MODEL_THREADS]: a fresh data directory
# $WORK/NAME, an ephemeral port; appends its pid to replica_pids and its URL
# to urls.
urls=()
start_replica() {
  local name=$1 storage=$2 dir=$WORK/$1 log=$WORK/$1.log url= pid threads=()
  if [ -n "${3:-}" ]; then threads=(XIAOER_EMBED__THREADS="$3"); fi
  rm -rf "$dir"
  mkdir -p "$dir"
  if [ -f data/vectors.bin ]; then cp data/vectors.bin "$dir/"; fi
  # 127.0.0.1 trusted as a proxy: nginx, and wrk naming its shoppers.
  XIAOER_DATA_DIR=$dir XIAOER_STORAGE__URL=$storage \
    XIAOER_SERVER__RATE_PER_SECOND=1000000 XIAOER_SERVER__RATE_BURST=1000000 \
    XIAOER_SERVER__TRUSTED_PROXIES='["127.0.0.1"]' \
    env "${threads[@]}" "$BIN" --kb knowledge_base serve --addr 127.0.0.1:0 >"$log" 2>&1 &
  pid=$!
  replica_pids+=("$pid")
  echo "$pid" >>"$WORK/pids"
  for _ in $(seq 1 1200); do
    [ -n "$url" ] || url=$(sed -n 's/^xiaoer serving on \(http[^ ]*\).*/\1/p' "$log")
    if [ -n "$url" ] && curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; then
      urls+=("$url")
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "$name exited; see $log"; }
    sleep 0.5
  done
  die "$name not ready after 600 s; see $log"
}

# start_nginx REPLICA_1 REPLICA_2 (address:port, may be the same): renders
# deploy/nginx.conf as scripts/cluster.sh does, on a free port; sets url.
start_nginx() {
  local ngx=$WORK/nginx port
  port=$(free_port)
  rm -rf "$ngx"
  mkdir -p "$ngx/logs" "$ngx/tmp"
  sed -e "s|@PREFIX@|$ngx|g" -e "s|@LISTEN@|127.0.0.1:$port|g" \
    -e "s|@REPLICA_1@|$1|g" -e "s|@REPLICA_2@|$2|g" deploy/nginx.conf >"$ngx/nginx.conf"
  "$nginx" -t -q -p "$ngx/" -e "$ngx/logs/error.log" -c "$ngx/nginx.conf" || die "nginx refused $ngx/nginx.conf"
  "$nginx" -p "$ngx/" -e "$ngx/logs/error.log" -c "$ngx/nginx.conf" &
  nginx_pid=$!
  echo "$nginx_pid" >>"$WORK/pids"
  url=http://127.0.0.1:$port
  for _ in $(seq 1 50); do
    curl -fsS -o /dev/null "$url/readyz" 2>/dev/null && return 0
    kill -0 "$nginx_pid" 2>/dev/null || die "nginx exited; see $ngx/logs/error.log"
    sleep 0.2
  done
  die "nginx not answering; see $ngx/logs/error.log"
}

# Every distinct question once to every replica: their query caches warm
# (nothing to warm for unique questions).
warm() {
  local u
  [ "$MIX" = repeated ] || return 0
  for u in "${urls[@]}"; do
    python3 - "$u" "$WORK/distinct.jsonl" <<'PY'
import sys, urllib.request
url, path = sys.argv[1], sys.argv[2]
for line in open(path, encoding="utf-8"):
    req = urllib.request.Request(url + "/v1/answer", data=line.strip().encode(), method="POST",
                                 headers={"Content-Type": "application/json", "X-Forwarded-For": "10.255.255.255"})
    urllib.request.urlopen(req, timeout=60).read()
PY
  done
}

# CPU seconds (user + system) used so far by the processes with these pids
# and, for the pids followed by a `+`, their descendants (live and reaped).
cpu_secs() {
  python3 - "$@" <<'PY'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
def stat(pid):
    try:
        s = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()
    return int(f[1]), [int(x) for x in f[11:15]]  # ppid; utime stime cutime cstime
procs = {int(p): stat(p) for p in os.listdir("/proc") if p.isdigit()}
procs = {p: v for p, v in procs.items() if v}
def tree(pid):
    own = procs.get(pid)
    if not own:
        return 0
    total = sum(own[1])  # its own time and its reaped children's
    for p, (ppid, _) in procs.items():
        if ppid == pid:
            total += tree(p)
    return total
total = 0
for a in sys.argv[1:]:
    if a.endswith("+"):
        total += tree(int(a[:-1]))
    elif int(a) in procs:
        total += sum(procs[int(a)][1][:2])
print(total / hz)
PY
}
pg_pid() { head -n 1 "$pgdata/postmaster.pid"; }
# The replicas' resident memory together, MB.
rss_mb() {
  local p kb=0
  for p in "${replica_pids[@]}"; do kb=$((kb + $(awk '$1 == "VmRSS:" { print $2 }' "/proc/$p/status"))); done
  echo $((kb / 1024))
}

ms() {
  awk -v p="$1" '$1 == p { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } printf "%.1f", v }'
}

# measure LABEL URL: one table row per connection count ($storage: the
# replicas' storage URL, empty for SQLite).
offset=0
measure() {
  local label=$1 target=$2 c cpu out total rps errors x0 p0 n0 x1 p1 n1 ngx_pids=""
  [ -n "$nginx_pid" ] && ngx_pids="$nginx_pid+"
  for c in $CONNECTIONS; do
    x0=$(cpu_secs "${replica_pids[@]}"); p0=$(cpu_secs "$(pg_pid)+")
    n0=$([ -n "$ngx_pids" ] && cpu_secs "$ngx_pids" || echo 0)
    out=$(BODIES=$WORK/$MIX.jsonl START=$offset WRK_THREADS=1 CLIENTS=$CLIENTS \
      wrk -t1 -c"$c" -d"$DURATION" --timeout 10s --latency -s scripts/loadtest/answer.lua "$target")
    x1=$(cpu_secs "${replica_pids[@]}"); p1=$(cpu_secs "$(pg_pid)+")
    n1=$([ -n "$ngx_pids" ] && cpu_secs "$ngx_pids" || echo 0)
    total=$(awk '/requests in/ { print $1 }' <<<"$out")
    offset=$((offset + total))
    rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
    errors=$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { for (i = 4; i <= NF; i += 2) n += $i } END { print n + 0 }' <<<"$out")
    # CPU per answer in microseconds: the replicas, PostgreSQL (all its
    # processes), nginx.
    cpu=$(awk -v n="$total" -v x="$x1 - $x0" -v p="$p1 - $p0" -v g="$n1 - $n0" -v ngx="$ngx_pids" \
      -v pg="$storage" 'function d(s,  a) { split(s, a, " - "); return a[1] - a[2] }
      BEGIN {
        if (n == 0) { print "– | – | –"; exit }
        printf "%.0f | %s | %s", 1e6 * d(x) / n, (pg != "" ? sprintf("%.0f", 1e6 * d(p) / n) : "–"),
          (ngx != "" ? sprintf("%.0f", 1e6 * d(g) / n) : "–") }')
    echo "| $label | $c | $rps | $(ms 50% <<<"$out") | $(ms 99% <<<"$out") | $errors | $cpu | $(rss_mb) |"
  done
}

say "PostgreSQL $pg_version ($pg_settings) on 127.0.0.1:$pg_port; $("$nginx" -v 2>&1); $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
say "$(nproc) cores; MIX=$MIX, DURATION=$DURATION, CONNECTIONS=$CONNECTIONS, CLIENTS=$CLIENTS"
echo "| configuration | connections | answers/s | p50 ms | p99 ms | errors | CPU µs/answer: xiaoer | PostgreSQL | nginx | replicas' RSS MB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"

db() { psql -d postgres -qc "CREATE DATABASE $1" >/dev/null; echo "postgres://postgres@127.0.0.1:$pg_port/$1"; }
addr() { echo "${1#http://}"; }

# 1. SQLite, one replica (its file in its data directory).
urls=() storage=""
start_replica sqlite "$storage"
warm
measure "SQLite, 1 replica" "${urls[0]}"
stop_replicas

# 2. PostgreSQL, one replica.
urls=() storage=$(db bench_one)
start_replica pg-one "$storage"
warm
measure "PostgreSQL, 1 replica" "${urls[0]}"
stop_replicas

# 3. The same behind nginx (both upstream entries the one replica).
urls=() storage=$(db bench_nginx)
start_replica pg-nginx "$storage"
warm
start_nginx "$(addr "${urls[0]}")" "$(addr "${urls[0]}")"
measure "PostgreSQL, 1 replica behind nginx" "$url"
stop_nginx
stop_replicas

# 4. PostgreSQL, two replicas behind nginx (round robin), the cores shared
# out between their models as scripts/cluster.sh does.
model_threads=${XIAOER_EMBED__THREADS:-$(($(nproc) / 2))}
((model_threads >= 1)) || model_threads=1
urls=() storage=$(db bench_two)
start_replica pg-two-a "$storage" "$model_threads"
start_replica pg-two-b "$storage" "$model_threads"
warm
start_nginx "$(addr "${urls[0]}")" "$(addr "${urls[1]}")"
measure "PostgreSQL, 2 replicas behind nginx, $model_threads model thread(s) each" "$url"
