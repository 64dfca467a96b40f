#!/usr/bin/env bash
# Seeds the decode_any corpus with the C implementation's vectors (shared/vectors).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
shared="${1:-${TENSORPOOL_SHARED_DIR:-$here/../../shared}}"
corpus="$here/corpus/decode_any"
mkdir -p "$corpus"
if [ -d "$shared/vectors/tensor_pool_c" ]; then
    cp "$shared"/vectors/tensor_pool_c/*.bin "$corpus"/
    echo "seeded $(ls "$corpus" | wc -l) files from $shared/vectors/tensor_pool_c"
else
    echo "no vectors at $shared/vectors/tensor_pool_c; the fuzzer starts from an empty corpus" >&2
fi
