"""CPU inference: layercake against TensorFlow's own CPU backend on the same model files, one run.

    python3 tools/bench-predict.py [--layercake PATH] [--cases a,b,...] [--batch 1,8]
                                   [--repeat N] [--work DIR] [--json]
    python3 tools/bench-predict.py --export-only --work DIR [--cases a,b,...]

Each case is built by Keras 3 (weights drawn by Keras's initializers, BatchNormalization moving
statistics re-drawn so that nothing folds to a no-op), saved as `.keras`, converted to a TF.js
layers model by tensorflowjs_converter, then timed:
- Keras: `tf.function(lambda x: model(x, training=False))`, traced and warmed per batch size,
  median of `--repeat` calls (TensorFlow's CPU backend with oneDNN; its default thread pools);
- layercake: `layercake bench --predict --model DIR --device cpu --batch ... --json` on the
  converted files, started after Keras finished (the two never share the cores).
Printed per case and batch: both medians and the ratio TF / layercake (> 1: layercake faster).

Cases: `mlp` (784-1024-1024-10, batch 32), `cnn` (three 3×3 convolutions on 64×64×3, batch 8),
`lstm` (LSTM(128) over 200 steps of 32 features, batch 8) — the shapes of
`layercake bench --predict` — and `mobilenet_v2` (alpha 1.0), `efficientnet_b0`, `resnet50` at
224×224 (batch from `--batch`). Needs tensorflow-cpu, keras 3 and tensorflowjs (--no-deps), as
tools/keras3-fixtures/ does.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "keras3-fixtures"))
import gen  # noqa: E402  (the converter's import stand-ins)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

A = keras.applications


def mlp():
    m = keras.Sequential([keras.Input((784,)), layers.Dense(1024, activation="relu"),
                          layers.Dense(1024, activation="relu"), layers.Dense(10, activation="softmax")])
    return m, [32]


def cnn():
    m = keras.Sequential([keras.Input((64, 64, 3))] + [
        layers.Conv2D(f, 3, strides=s, padding="same", activation="relu")
        for f, s in [(16, 1), (32, 2), (64, 2)]])
    return m, [8]


def lstm():
    m = keras.Sequential([keras.Input((200, 32)), layers.LSTM(128)])
    return m, [8]


def app(ctor, **kwargs):
    def build():
        return ctor(weights=None, input_shape=(224, 224, 3), **kwargs), None
    return build


CASES = {
    "mlp": mlp,
    "cnn": cnn,
    "lstm": lstm,
    "mobilenet_v2": app(A.MobileNetV2, alpha=1.0),
    "efficientnet_b0": app(A.EfficientNetB0),
    "resnet50": app(A.ResNet50),
}


def redraw_batchnorm(model, rng):
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            for w in layer.weights:
                if "moving_variance" in w.path:
                    w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
                elif "moving_mean" in w.path:
                    w.assign(rng.normal(0.0, 0.1, w.shape).astype("float32"))


def export(model, out):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        gen.converter.convert(["--input_format=keras_keras", "--output_format=tfjs_layers_model",
                               path, out])


def time_keras(model, batch, repeat, rng):
    shape = (batch,) + tuple(model.inputs[0].shape[1:])
    x = tf.constant(rng.uniform(-1.0, 1.0, shape).astype("float32"))
    f = tf.function(lambda v: model(v, training=False))
    for _ in range(3):
        f(x).numpy()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        f(x).numpy()
        samples.append(time.perf_counter() - t)
    return float(np.median(samples)) * 1e3


def time_layercake(exe, out, batches, repeat):
    cmd = [exe, "bench", "--predict", "--model", out, "--device", "cpu", "--json",
           "--repeat", str(repeat), "--batch", ",".join(map(str, batches))]
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    return {r["batch"]: (r["ms"]["median"], r["gflops"]) for r in rows}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layercake", default="target/release/layercake")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--batch", default="1,8", help="batch sizes of the applications")
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--work", help="keep the converted models here")
    p.add_argument("--json", action="store_true")
    p.add_argument("--export-only", action="store_true",
                   help="write the converted models under --work and time nothing "
                        "(tools/gpu-bench.sh takes them to a GPU machine)")
    a = p.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="bench-predict-")
    app_batches = [int(b) for b in a.batch.split(",")]
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{os.cpu_count()} cores", file=sys.stderr)
    results = []
    for name in a.cases.split(","):
        keras.utils.set_random_seed(1)
        rng = np.random.default_rng(1)
        model, batches = CASES[name]()
        batches = batches or app_batches
        redraw_batchnorm(model, rng)
        out = os.path.join(work, name)
        if not os.path.exists(os.path.join(out, "model.json")):
            export(model, out)
        if a.export_only:
            print(out)
            continue
        tf_ms = {b: time_keras(model, b, a.repeat, rng) for b in batches}
        lc = time_layercake(a.layercake, out, batches, a.repeat)
        for b in batches:
            row = {"case": name, "batch": b, "tensorflow_ms": tf_ms[b], "layercake_ms": lc[b][0],
                   "layercake_gflops": lc[b][1], "ratio": tf_ms[b] / lc[b][0]}
            results.append(row)
            if a.json:
                print(json.dumps(row))
            else:
                print(f"{name:<16} b{b:<3} TF CPU {tf_ms[b]:9.2f} ms   layercake {lc[b][0]:9.2f} ms "
                      f"({lc[b][1]:6.1f} GFLOP/s)   {row['ratio']:5.2f}x", flush=True)
    return results


if __name__ == "__main__":
    main()
