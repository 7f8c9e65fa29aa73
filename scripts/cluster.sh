#!/usr/bin/env bash
# Two xiaoer replicas on one PostgreSQL behind nginx, all on this machine
# (issue #15; `make cluster`):
#
#   PostgreSQL  127.0.0.1:<free port>   data/cluster/postgres (its own cluster, database `xiaoer`)
#   replica-1   127.0.0.1:8081          data/cluster/replica-1 (its index and vectors)
#   replica-2   127.0.0.1:8082          data/cluster/replica-2
#   nginx       127.0.0.1:8080          data/cluster/nginx (rendered deploy/nginx.conf, logs, pid)
#
# Installs Debian's `postgresql` and `nginx` packages when missing; the
# system services are not used. Runs in the foreground: Ctrl-C or SIGTERM
# stops nginx, then the replicas, then PostgreSQL. `scripts/cluster.sh stop`
# stops a cluster started elsewhere (or left behind) from its pid files.
#
# Environment: XIAOER_CLUSTER_PORT (nginx, default 8080), XIAOER_CLUSTER_HOST
# (nginx's address, default 127.0.0.1), XIAOER_CLUSTER_PG_PORT (default: a
# free port from 54320 up), XIAOER_CLUSTER_READY_SECS (how long a replica
# may take to become ready, default 900: the first start builds its index
# and embeds every phrasing), XIAOER_EMBED__THREADS (each replica's model
# threads, default: the cores divided between the replicas).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
dir=$root/data/cluster
pgdata=$dir/postgres
ngx=$dir/nginx
bin=$root/target/release/xiaoer
host=${XIAOER_CLUSTER_HOST:-127.0.0.1}
port=${XIAOER_CLUSTER_PORT:-8080}
replica_ports=(8081 8082)
ready_secs=${XIAOER_CLUSTER_READY_SECS:-900}

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

# as_pg, pg_bin, nginx_bin
. "$root/scripts/pg-nginx.sh"

# Whether something accepts connections on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Whether process $1 runs (a zombie left to a slow init does not).
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ]
}

# The pid in file $1 if that process is alive and its command line contains
# $2 (so a recycled pid is never signalled).
live_pid() {
  local pid cmd
  [ -f "$1" ] || return 1
  pid=$(head -n 1 "$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  running "$pid" || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ "$cmd" == *"$2"* ]] || return 1
  echo "$pid"
}

# Sends SIGTERM to the process in pid file $1 (matching $2), called $3, and
# waits up to $4 seconds before SIGKILL.
stop_pid() {
  local pid i
  pid=$(live_pid "$1" "$2") || { rm -f "$1"; return 0; }
  say "stopping $3 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < $4 * 10; i++)); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    say "$3 (pid $pid) did not stop in $4 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

stop_postgres() {
  local bin
  [ -f "$pgdata/postmaster.pid" ] || return 0
  bin=$(pg_bin) || return 0
  say "stopping PostgreSQL"
  as_pg "$bin/pg_ctl" -D "$pgdata" -m fast -w -t 60 stop >/dev/null || true
}

# nginx first (no new requests), then the replicas (they finish what is in
# flight, up to server.shutdown_grace_secs), then the database they write to.
stop_all() {
  stop_pid "$ngx/nginx.pid" nginx nginx 10
  local i
  for i in 1 2; do stop_pid "$dir/replica-$i.pid" xiaoer "replica-$i" 30; done
  stop_postgres
}

if [ "${1:-start}" = stop ]; then
  # A running script stops everything itself on SIGTERM; otherwise (it was
  # killed, or never got that far) what is left is stopped here.
  if pid=$(live_pid "$dir/cluster.pid" cluster.sh); then
    say "stopping the cluster script (pid $pid)"
    kill -TERM "$pid"
    for ((i = 0; i < 900; i++)); do running "$pid" || break; sleep 0.1; done
  fi
  stop_all
  rm -f "$dir/cluster.pid"
  exit 0
elif [ "${1:-start}" != start ]; then
  die "usage: $0 [start|stop]"
fi

if pid=$(live_pid "$dir/cluster.pid" cluster.sh); then
  die "already running (pid $pid); stop it with: $0 stop"
fi
[ -x "$bin" ] || die "$bin is missing; build it first (make build)"

# --- packages ---------------------------------------------------------------
missing=()
pg_bin >/dev/null || missing+=(postgresql)
nginx_bin >/dev/null || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
pgbin=$(pg_bin) || die "no PostgreSQL in /usr/lib/postgresql/*/bin"
nginx=$(nginx_bin) || die "no nginx"

# --- leftovers of a run that was killed -------------------------------------
stop_all
mkdir -p "$dir" "$ngx/logs" "$ngx/tmp"
echo $$ >"$dir/cluster.pid"

cleanup() {
  trap - INT TERM EXIT
  echo >&2
  stop_all
  rm -f "$dir/cluster.pid"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for p in "$port" "${replica_ports[@]}"; do
  ! listening "$p" || die "port $p is in use"
done

# --- nginx configuration (checked before anything starts) -------------------
sed -e "s|@PREFIX@|$ngx|g" -e "s|@LISTEN@|$host:$port|g" \
  -e "s|@REPLICA_1@|127.0.0.1:${replica_ports[0]}|g" -e "s|@REPLICA_2@|127.0.0.1:${replica_ports[1]}|g" \
  deploy/nginx.conf >"$ngx/nginx.conf"
"$nginx" -t -q -p "$ngx/" -e "$ngx/logs/error.log" -c "$ngx/nginx.conf" ||
  die "nginx refused $ngx/nginx.conf"

# --- PostgreSQL -------------------------------------------------------------
if [ -n "${XIAOER_CLUSTER_PG_PORT:-}" ]; then
  pg_port=$XIAOER_CLUSTER_PG_PORT
  ! listening "$pg_port" || die "port $pg_port (XIAOER_CLUSTER_PG_PORT) is in use"
else
  pg_port=54320
  while listening "$pg_port"; do pg_port=$((pg_port + 1)); done
fi

if [ ! -f "$pgdata/PG_VERSION" ]; then
  say "creating a PostgreSQL cluster in $pgdata ($pgbin)"
  rm -rf "$pgdata"
  mkdir -p "$pgdata"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$pgdata"; fi
  chmod 700 "$pgdata"
  as_pg test -w "$pgdata" ||
    die "the postgres user cannot write $pgdata (is a parent directory closed to it?)"
  # Superuser `postgres`, trust for local connections (only 127.0.0.1 is
  # listened on), UTF-8 with C collation: text sorts by code point, as in SQLite.
  as_pg "$pgbin/initdb" -D "$pgdata" -U postgres -E UTF8 --locale=C \
    --auth-local=trust --auth-host=trust >"$dir/initdb.log" ||
    die "initdb failed; see $dir/initdb.log"
  cat >>"$pgdata/postgresql.conf" <<'EOF'

# scripts/cluster.sh: TCP on the loopback only (the port is given at start),
# no Unix socket (the system's socket directory may not exist).
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
EOF
fi

say "starting PostgreSQL on 127.0.0.1:$pg_port"
touch "$dir/postgres.log"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir/postgres.log"; fi
# setsid: Ctrl-C reaches this script only, which stops things in order.
as_pg setsid "$pgbin/pg_ctl" -D "$pgdata" -l "$dir/postgres.log" -o "-p $pg_port" -w -t 60 start >/dev/null ||
  die "PostgreSQL did not start; see $dir/postgres.log"
echo "$pg_port" >"$dir/postgres.port"
if [ -z "$("$pgbin/psql" -X -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname = 'xiaoer'")" ]; then
  "$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres xiaoer
fi
db_url="postgres://postgres@127.0.0.1:$pg_port/xiaoer"

# --- replicas ---------------------------------------------------------------
# One API key for both replicas, generated at the first start and kept.
if [ ! -s "$dir/api_key" ]; then
  (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/api_key")
fi
api_key=$(cat "$dir/api_key")

# The cores shared out: each replica's model runs on its own threads, which
# wait for one another by spinning, and two replicas each using every core
# on one machine fight for them (unique questions on 2 cores: 29 answers/s
# instead of ~140-170; docs/BENCHMARKS.md). XIAOER_EMBED__THREADS, when set,
# wins.
embed_threads=${XIAOER_EMBED__THREADS:-$(($(nproc) / ${#replica_ports[@]}))}
((embed_threads >= 1)) || embed_threads=1

for i in 1 2; do
  rdir=$dir/replica-$i
  if [ ! -d "$rdir" ]; then
    mkdir -p "$rdir"
    # Stored phrasing vectors are keyed by model and text: a copy spares the
    # new replica embedding them again.
    for f in vectors.bin answers.bin; do
      if [ -f "$root/data/$f" ]; then cp "$root/data/$f" "$rdir/"; fi
    done
  fi
  say "starting replica-$i on 127.0.0.1:${replica_ports[i - 1]}, $embed_threads model thread(s) (log: $dir/replica-$i.log)"
  # Trusted proxy 127.0.0.1: nginx, whose X-Forwarded-For names the shopper.
  setsid env \
    XIAOER_SERVER__ADDR="127.0.0.1:${replica_ports[i - 1]}" \
    XIAOER_DATA_DIR="$rdir" \
    XIAOER_STORAGE__URL="$db_url" \
    XIAOER_SERVER__API_KEY="$api_key" \
    XIAOER_SERVER__TRUSTED_PROXIES='["127.0.0.1"]' \
    XIAOER_EMBED__THREADS="$embed_threads" \
    "$bin" serve >"$dir/replica-$i.log" 2>&1 &
  echo $! >"$dir/replica-$i.pid"
done

# --- wait until ready ---------------------------------------------------------
for i in 1 2; do
  url=http://127.0.0.1:${replica_ports[i - 1]}
  deadline=$((SECONDS + ready_secs))
  until curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; do
    if ! live_pid "$dir/replica-$i.pid" xiaoer >/dev/null; then
      tail -n 20 "$dir/replica-$i.log" >&2 || true
      die "replica-$i exited; see $dir/replica-$i.log"
    fi
    ((SECONDS < deadline)) || die "replica-$i not ready after $ready_secs s; see $dir/replica-$i.log"
    sleep 1
  done
  say "replica-$i ready"
done

say "starting nginx on $host:$port (logs: $ngx/logs)"
setsid "$nginx" -p "$ngx/" -e "$ngx/logs/error.log" -c "$ngx/nginx.conf" &
nginx_pid=$!
deadline=$((SECONDS + 10))
until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; do
  running "$nginx_pid" || die "nginx exited; see $ngx/logs/error.log"
  ((SECONDS < deadline)) || die "nginx not answering on port $port; see $ngx/logs/error.log"
  sleep 0.2
done

cat <<EOF

  store page      http://$host:$port/
  agent console   http://$host:$port/agent
  API docs        http://$host:$port/openapi.json
  API key         $api_key   (Authorization: Bearer <key>; kept in $dir/api_key)
  replicas        http://127.0.0.1:${replica_ports[0]}  http://127.0.0.1:${replica_ports[1]}
  PostgreSQL      $db_url

  Ctrl-C (or: scripts/cluster.sh stop) stops it all.

EOF

# Until told to stop; a replica or nginx that exits is reported once (the
# other replica keeps serving).
declare -A gone=()
while true; do
  for i in 1 2; do
    if [ -z "${gone[replica-$i]:-}" ] && ! live_pid "$dir/replica-$i.pid" xiaoer >/dev/null; then
      gone[replica-$i]=1
      say "replica-$i exited; see $dir/replica-$i.log"
    fi
  done
  if [ -z "${gone[nginx]:-}" ] && ! running "$nginx_pid"; then
    gone[nginx]=1
    say "nginx exited; see $ngx/logs/error.log"
  fi
  sleep 1 &
  wait $! || true
done
