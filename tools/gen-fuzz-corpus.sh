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
# serve_upload: what tf.io.http sends (multipart model.json + model.weights.bin, boundary
# layercake-fuzz) for a few fixtures, and a few broken uploads.
mkdir -p "$out/serve_upload"
for name in cnn mlp_adam quant_uint8 rnn; do
  tmp=$(mktemp -d)
  ./target/release/layercake convert "tests/fixtures/$name" "$tmp/m" --style downloads --device cpu 2>/dev/null
  python3 - "$tmp/m" "$out/serve_upload" "$name" <<'PY'
import os, sys
src, out, name = sys.argv[1:]
def part(field, data, filename=None):
    filename = filename or field
    return (b'--layercake-fuzz\r\nContent-Disposition: form-data; name="' + field.encode() +
            b'"; filename="' + filename.encode() + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + data + b'\r\n')
j = open(os.path.join(src, 'model.json'), 'rb').read()
w = open(os.path.join(src, 'model.weights.bin'), 'rb').read()
end = b'--layercake-fuzz--\r\n'
open(os.path.join(out, name + '.bin'), 'wb').write(part('model.json', j) + part('model.weights.bin', w) + end)
if name == 'cnn':
    open(os.path.join(out, 'cut_off.bin'), 'wb').write(part('model.json', j) + part('model.weights.bin', w)[:-300])
    open(os.path.join(out, 'no_weights.bin'), 'wb').write(part('model.json', j) + end)
    open(os.path.join(out, 'twice.bin'), 'wb').write(part('model.json', j) + part('model.json', j) + end)
    open(os.path.join(out, 'evil_filename.bin'), 'wb').write(part('model.json', j, '../../x.json') + part('model.weights.bin', w, '/etc/passwd') + end)
PY
  rm -rf "$tmp"
done
