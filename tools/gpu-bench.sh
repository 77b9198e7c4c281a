#!/usr/bin/env bash
# layercake on a real GPU, in one run of a few minutes:
#   - the adapter;
#   - host → device upload GB/s of a synthetic model beside a plain `queue.write_buffer` of the
#     same bytes into fresh buffers, and readback GB/s beside a plain copy-back + map
#     (`layercake bench`, whose table also holds the file read/write limits);
#   - an N×N by N×N matrix product on the GPU, GFLOP/s (N = 4096), beside the built-in MLP,
#     CNN and LSTM on the CPU and the GPU (`layercake bench --predict`);
#   - MobileNetV2 (alpha 1.0) and ResNet50 at 224×224, batch 1 and 32, on the GPU and on the CPU
#     backend (`layercake bench --predict --model`).
#
#   tools/gpu-bench.sh [--quick] [MODELS_DIR]
#
# MODELS_DIR holds `mobilenet_v2/` and `resnet50/` (TF.js layers models). Where they are
# missing and Python has TensorFlow + Keras 3 + tensorflowjs, they are exported there first
# (`tools/bench-predict.py --export-only`); a GPU machine without Python takes a directory
# exported elsewhere. Without them the model rows are skipped with the reason printed.
# `--quick` shrinks every size (a 64 MiB model, a 512³ product, batch 1 only) so the script
# itself can be tried on a software adapter (lavapipe) in a minute.
# LAYERCAKE (the binary; default: built here with `cargo build --release`), LAYERCAKE_ADAPTER
# and LAYERCAKE_BACKEND choose what runs. The GPU is required: no adapter is an error.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
if [[ "${1:-}" == "--quick" ]]; then quick=1; shift; fi
models="${1:-target/gpu-bench-models}"
if (( quick )); then size=64MiB; n=512; batch=1; repeat=3
else size=1GiB; n=4096; batch=1,32; repeat=5; fi

if [[ -z "${LAYERCAKE:-}" ]]; then
  cargo build --release --quiet
  LAYERCAKE=target/release/layercake
fi
lc() { "$LAYERCAKE" "$@"; }

echo "== adapter"
lc device

echo
echo "== upload and readback: a ${size} synthetic model (64 tensors), repeat ${repeat}"
lc bench --device gpu --size "$size" --repeat "$repeat"

echo
echo "== matrix product ${n}³ on the GPU, and the built-in cases on the CPU and the GPU"
lc bench --predict --device gpu --matmul "$n" --repeat "$repeat"

echo
echo "== MobileNetV2 and ResNet50, 224×224, batch ${batch}: GPU, then the CPU backend"
missing=()
for m in mobilenet_v2 resnet50; do
  [[ -f "$models/$m/model.json" ]] || missing+=("$m")
done
if (( ${#missing[@]} )); then
  # gen.py brings the converter's import stand-ins, as the fixture tools use it.
  if (cd tools/keras3-fixtures && python3 -c "import gen") >/dev/null 2>&1; then
    cases=$(IFS=,; echo "${missing[*]}")
    python3 tools/bench-predict.py --export-only --work "$models" --cases "$cases" >/dev/null
  else
    echo "skipped: ${missing[*]} not under $models and Python cannot import keras," \
         "tensorflow and tensorflowjs to export them (export on another machine with" \
         "\`python3 tools/bench-predict.py --export-only --work DIR --cases mobilenet_v2,resnet50\`)"
    exit 0
  fi
fi
for m in mobilenet_v2 resnet50; do
  for dev in gpu cpu; do
    lc bench --predict --model "$models/$m" --device "$dev" --batch "$batch" --repeat "$repeat"
  done
done
