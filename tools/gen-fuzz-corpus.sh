#!/usr/bin/env bash
# Rebuild fuzz/corpus from the TF.js fixtures: every model.json; every node-style model with its
# weights (layercake::fuzzing::tfjs_model's input: 4-byte JSON length, JSON, weights); and
# safetensors copies of a few fixtures written by layercake.
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus
mkdir -p "$out/model_json" "$out/tfjs_model" "$out/safetensors" "$out/regressions"
cargo build --release --quiet
for dir in tests/fixtures/*/; do
  name=$(basename "$dir")
  cp "$dir/model.json" "$out/model_json/$name.json"
  if [ -f "$dir/weights.bin" ]; then
    python3 - "$dir/model.json" "$dir/weights.bin" "$out/tfjs_model/$name.bin" <<'PY'
import struct, sys
j = open(sys.argv[1], 'rb').read()
w = open(sys.argv[2], 'rb').read()
open(sys.argv[3], 'wb').write(struct.pack('<I', len(j)) + j + w)
PY
  fi
done
for name in cnn mlp_adam quant_uint8 rnn; do
  ./target/release/layercake convert "tests/fixtures/$name" "$out/safetensors/$name.safetensors" --device cpu 2>/dev/null
done
