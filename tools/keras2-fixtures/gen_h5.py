"""Legacy Keras 2 `.h5` fixtures from tf_keras (the Keras 2 line TensorFlow still ships): builds
models, draws seeded weights, saves `model.h5` with `model.save(..., save_format="h5")`, converts
it with the real tensorflowjs_converter (--input_format=keras) and records tf_keras's own predictions.

    python3 tools/keras2-fixtures/gen_h5.py [OUT_DIR [CASE...]]   # default tests/fixtures/keras2_h5

`renamed_scopes` goes beside OUT_DIR, in keras2_h5_renamed/ (no converter output).

Needs `pip install tensorflow-cpu` and `pip install --no-deps tensorflowjs==4.22.0 tf_keras`.
Each case directory gets model.h5, the converter's model.json + group1-shard1of1.bin, and
expected.json ({"generator", "inputs", "outputs"}: the bundle format of the other fixtures).
"""
import os
import shutil
import sys
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TF_USE_LEGACY_KERAS"] = "1"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "keras3-fixtures"))
import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402
from gen import predict, write_expected  # noqa: E402  (also installs the converter's import stand-ins)
from tf_keras import layers  # noqa: E402
from tensorflowjs.converters import converter  # noqa: E402

RNG = np.random.default_rng(0)


def dense():
    m = keras.Sequential([
        keras.Input((6,)),
        layers.Dense(8, activation="relu", name="hidden"),
        layers.Dropout(0.5),
        layers.Dense(3, activation="softmax", name="probs"),
    ])
    return m, [RNG.normal(size=(3, 6))]


def conv_bn():
    i = keras.Input((12, 12, 3), name="image")
    x = layers.Conv2D(6, 3, padding="same", use_bias=False)(i)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    y = layers.Conv2D(6, 1)(x)
    x = layers.Add()([x, y])
    x = layers.GlobalAveragePooling2D()(x)
    o = layers.Dense(4, activation="softmax")(x)
    return keras.Model(i, o), [RNG.normal(size=(2, 12, 12, 3))]


def recurrent():
    i = keras.Input((7,), dtype="int32", name="tokens")
    x = layers.Embedding(20, 5, mask_zero=True)(i)
    x = layers.Bidirectional(layers.LSTM(4, return_sequences=True))(x)
    x = layers.GRU(3)(x)
    o = layers.Dense(2)(x)
    tokens = RNG.integers(1, 20, size=(3, 7))
    tokens[1, 4:] = 0
    return keras.Model(i, o), [tokens]


def nested_two_io():
    inner = keras.Sequential([keras.Input((4,)), layers.Dense(4, activation="tanh"), layers.LayerNormalization()], name="inner")
    a = keras.Input((4,), name="a")
    b = keras.Input((4,), name="b")
    shared = layers.Dense(4, name="shared")
    x = layers.Concatenate()([inner(shared(a)), shared(b)])
    return keras.Model([a, b], [layers.Dense(2, name="out1")(x), layers.Dense(1, name="out2")(x)]), [
        RNG.normal(size=(2, 4)), RNG.normal(size=(2, 4))]


def fitted():
    m = keras.Sequential([keras.Input((4,)), layers.Dense(5, activation="relu"), layers.Dense(2)])
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x = RNG.normal(size=(16, 4))
    m.fit(x, RNG.normal(size=(16, 2)), epochs=2, batch_size=8, verbose=0)
    return m, [x[:3]]


def renamed_scopes():
    # Layers whose variables Keras 2.0.x saved under a second, suffixed scope: in the group
    # `conv2d_1`, weight_names `conv2d_1_1/kernel:0` (the dataset path
    # `conv2d_1/conv2d_1_1/kernel:0`); `write_renamed` rewrites the saved file that way. Keras
    # binds legacy weights by group and `weight_names` order, not by name.
    i = keras.Input((10, 10, 3), name="image")
    x = layers.Conv2D(4, 3, padding="same")(i)
    x = layers.BatchNormalization()(x)
    y = layers.SeparableConv2D(4, 3, padding="same")(x)
    x = layers.Add()([x, y])
    x = layers.GlobalAveragePooling2D()(x)
    o = layers.Dense(3, activation="softmax")(x)
    return keras.Model(i, o), [RNG.normal(size=(2, 10, 10, 3))]


def write_renamed(root):
    """renamed_scopes: model.h5 with every variable renamed `<layer>_1/<weight>`, and
    tf_keras's predictions from loading that rewritten file (no converter: it keeps the names)."""
    import h5py
    global RNG
    RNG = np.random.default_rng(zlib.crc32(b"renamed_scopes"))
    keras.utils.set_random_seed(7)
    model, inputs = renamed_scopes()
    randomize(model)
    out = os.path.join(root, "renamed_scopes")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    path = os.path.join(out, "model.h5")
    model.save(path, save_format="h5")
    with h5py.File(path, "r+") as f:
        weights = f["model_weights"]
        text = lambda n: n.decode() if isinstance(n, bytes) else str(n)  # noqa: E731
        for layer in [text(n) for n in weights.attrs["layer_names"]]:
            g = weights[layer]
            renamed = []
            for w in [text(n) for n in g.attrs["weight_names"]]:
                short = w.split("/", 1)[1] if w.startswith(layer + "/") else w
                new = f"{layer}_1/{short}"  # the dataset path is <group>/<layer>_1/<short>
                data = g[w][()]
                del g[w]
                g.create_dataset(new, data=data)
                renamed.append(new.encode())
            g.attrs["weight_names"] = np.array(renamed)
    loaded = keras.models.load_model(path, compile=False)
    inputs, outputs = predict(loaded, inputs)
    _, original = predict(model, inputs)
    assert all(np.array_equal(a, b) for a, b in zip(outputs, original)), "tf_keras rebound them"
    generator = f"tf_keras {keras.__version__} load_model of the rewritten file, predict"
    write_expected(out, generator, [t.name.split(":")[0] for t in model.inputs], inputs, outputs)
    print(f"renamed_scopes: {[o.shape for o in outputs]}")


CASES = {"dense": (dense, True), "conv_bn": (conv_bn, True), "recurrent": (recurrent, True),
         "nested_two_io": (nested_two_io, True), "fitted": (fitted, False)}


def randomize(model):
    for w in model.weights:
        values = RNG.normal(0.0, 0.5, size=w.shape).astype(w.dtype.as_numpy_dtype)
        if "variance" in w.name:
            values = np.abs(values) + 0.5
        w.assign(values)


def write_case(root, name):
    global RNG
    RNG = np.random.default_rng(zlib.crc32(name.encode()))
    keras.utils.set_random_seed(zlib.crc32(name.encode()) % (1 << 31))
    build, randomized = CASES[name]
    model, inputs = build()
    if randomized:
        randomize(model)
    inputs, outputs = predict(model, inputs)
    out = os.path.join(root, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    path = os.path.join(out, "model.h5")
    model.save(path, save_format="h5")
    converter.convert(["--input_format=keras", "--output_format=tfjs_layers_model", path, out])
    generator = f"tf_keras {keras.__version__} predict; tensorflowjs_converter 4.22.0"
    write_expected(out, generator, [t.name.split(":")[0] for t in model.inputs], inputs, outputs)
    print(f"{name}: {[o.shape for o in outputs]}")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "tests", "fixtures", "keras2_h5")
    for name in sys.argv[2:] or list(CASES) + ["renamed_scopes"]:
        if name == "renamed_scopes":
            write_renamed(os.path.join(root, "..", "keras2_h5_renamed"))
        else:
            write_case(root, name)


if __name__ == "__main__":
    main()
