# Sourced by scripts/cluster.sh and scripts/loadtest/storage.sh: finding
# Debian's PostgreSQL and nginx programs, and running PostgreSQL's.

# PostgreSQL's programs refuse to run as root: as root they run as the
# `postgres` system user (the package creates it), otherwise as oneself.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

nginx_bin() {
  command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }
}
