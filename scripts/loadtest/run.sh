#!/usr/bin/env bash
# Load test of POST /v1/answer: the release server on loopback, driven by wrk
# from a second process (both on this machine's cores), at 1, 8 and 64
# concurrent connections, with a repeated-question mix and with all-unique
# questions; then the server's memory with a 100k-phrasing knowledge base.
# Bounded: DURATION per run (default 15s), wrk's --timeout 10s.
# Prints a Markdown table (docs/BENCHMARKS.md has the numbers and the setup).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-"1 8 64"}
BIN=target/release/xiaoer
WORK=target/loadtest
mkdir -p "$WORK"

if ! command -v wrk >/dev/null; then
  echo "loadtest: installing wrk (Debian package)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >&2; else sudo apt-get install -y -qq wrk >&2; fi
fi
bash scripts/fetch-model.sh >&2
cargo build --release --quiet --bin xiaoer

python3 scripts/loadtest/questions.py repeated "$WORK/repeated.jsonl"
python3 scripts/loadtest/questions.py unique "$WORK/unique.jsonl"

pid=
stop() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  pid=
}
trap stop EXIT

# start KB: starts a server on an ephemeral port with the rate limit lifted,
# its database and vector cache under $WORK; sets $pid and $url.
start() {
  local kb=$1 log=$WORK/server.log
  rm -f "$WORK"/data/*.sqlite*
  XIAOER_DATA_DIR=$WORK/data XIAOER_SERVER__RATE_PER_SECOND=1000000 XIAOER_SERVER__RATE_BURST=1000000 \
    "$BIN" --kb "$kb" serve --addr 127.0.0.1:0 >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    url=$(sed -n 's/^xiaoer serving on \(http[^ ]*\).*/\1/p' "$log")
    [ -n "$url" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.5
  done
  echo "loadtest: server did not start" >&2; exit 1
}
# passes seconds queries: the server's embedding-pass counters (/metrics).
embed_counters() {
  curl -s "$url/metrics" | awk '
    $1 == "xiaoer_embedding_pass_seconds_count" { n = $2 }
    $1 == "xiaoer_embedding_pass_seconds_sum" { s = $2 }
    $1 == "xiaoer_embedding_pass_queries_sum" { q = $2 }
    END { print n + 0, s + 0, q + 0 }'
}
rss_mb() { awk -v k="$1:" '$1 == k { printf "%.0f", $2 / 1024 }' "/proc/$pid/status"; }

echo "| mix | connections | answers/s | p50 ms | p99 ms | errors | model pass ms (mean) | queries per pass | RSS MB (peak) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
start knowledge_base
offset=0
for mix in repeated unique; do
  for c in $CONNECTIONS; do
    read -r n0 s0 q0 < <(embed_counters)
    out=$(BODIES=$WORK/$mix.jsonl START=$offset WRK_THREADS=$c \
      wrk -t1 -c"$c" -d"$DURATION" --timeout 10s --latency -s scripts/loadtest/answer.lua "$url")
    total=$(awk '/requests in/ { print $1 }' <<<"$out")
    offset=$((offset + total))
    rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
    ms() { awk -v p="$1" '$1 == p { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } printf "%.1f", v }' <<<"$out"; }
    errors=$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { for (i = 4; i <= NF; i += 2) n += $i } END { print n + 0 }' <<<"$out")
    read -r n1 s1 q1 < <(embed_counters)
    pass=$(awk -v n0="$n0" -v n1="$n1" -v s0="$s0" -v s1="$s1" -v q0="$q0" -v q1="$q1" 'BEGIN {
      n = n1 - n0; if (n > 0) printf "%.1f | %.1f", 1000 * (s1 - s0) / n, (q1 - q0) / n; else printf "– | –" }')
    echo "| $mix | $c | $rps | $(ms 50%) | $(ms 99%) | $errors | $pass | $(rss_mb VmRSS) ($(rss_mb VmHWM)) |"
  done
done
stop

# Memory with 100k phrasings: the sample KB's entries cloned (new ids, same
# texts, so only the sample's distinct texts are embedded) to 100,646 phrasings.
if [ ! -f "$WORK/kb100k.jsonl" ]; then
  XIAOER_DATA_DIR=$WORK/data "$BIN" kb export --format jsonl --out "$WORK/kb.jsonl" >&2
  python3 - "$WORK/kb.jsonl" "$WORK/kb100k.jsonl" <<'PY'
import json, sys
faqs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
with open(sys.argv[2], "w", encoding="utf-8") as out:
    n = r = 0
    while n < 100_000:
        for f in faqs:
            out.write(json.dumps(dict(f, id=f"{f['id']}-{r}"), ensure_ascii=False) + "\n")
            n += 1 + len(f.get("similar", []))
        r += 1
PY
fi
start "$WORK/kb100k.jsonl"
idle=$(rss_mb VmRSS)
out=$(BODIES=$WORK/unique.jsonl START=$offset WRK_THREADS=8 \
  wrk -t1 -c8 -d"$DURATION" --timeout 10s --latency -s scripts/loadtest/answer.lua "$url")
rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
echo
echo "100k phrasings: RSS after start ${idle} MB; after ${DURATION} of unique questions at 8 connections ($rps answers/s): $(rss_mb VmRSS) MB, peak $(rss_mb VmHWM) MB"
