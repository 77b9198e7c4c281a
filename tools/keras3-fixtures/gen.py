"""Keras 3 fixtures from the real converter: builds models in Keras 3, saves `.keras`, converts them
with tensorflowjs_converter (--input_format=keras_keras --output_format=tfjs_layers_model) and
records Keras's own `predict` outputs.

    python3 tools/keras3-fixtures/gen.py [OUT_DIR [CASE...]]   # default tests/fixtures/keras3, all cases

Needs `pip install tensorflow-cpu` and `pip install --no-deps tensorflowjs==4.22.0 tf_keras`.
The converter's package imports modules the layers path never uses (TensorFlow Decision Forests,
TensorFlow Hub, JAX); stand-ins for them are installed in sys.modules before the import.

Each case directory gets model.json + group1-shard1of1.bin (as the converter wrote them), the
model.keras Keras saved (which layercake also loads directly), and
expected.json: {"generator", "inputs": [...], "outputs": [...]}, each tensor
{"name", "shape", "dtype", "data"} — the same bundle format as the TF.js fixtures.
"""
import json
import os
import shutil
import sys
import tempfile
import types
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

for name in ["tensorflow_decision_forests", "tensorflow_hub", "tensorflowjs.converters.jax_conversion"]:
    sys.modules[name] = types.ModuleType(name)
sys.modules["tensorflowjs.converters.jax_conversion"].convert_jax = None

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402
from tensorflowjs.converters import converter  # noqa: E402

RNG = np.random.default_rng(0)  # re-seeded per case (write_case), so cases regenerate alone

# Keras 3 activations TF.js 4.22 lacks (and the ones whose Keras 3 formula differs from TF.js's).
# `sparsemax` is left out: Keras 3.15's own output is wrong whenever the support holds more than one
# value (keras-team/keras#23425, fixed by #23469); layercake computes the corrected formula, unit-tested.
KERAS3_ACTIVATIONS = [
    "celu", "exponential", "hard_shrink", "hard_silu", "hard_sigmoid", "hard_tanh", "leaky_relu",
    "log_sigmoid", "silu", "soft_shrink", "sparse_plus", "sparse_sigmoid", "squareplus",
    "tanh_shrink", "gelu", "mish", "relu6", "log_softmax",
]


def randomize(model):
    """Replace every weight with seeded random values (moving variances positive), so that a
    swapped or misbound weight changes the outputs."""
    for layer in model.layers:
        for w in layer.weights:
            values = RNG.normal(0.0, 0.5, size=w.shape).astype(w.dtype)
            if "variance" in w.path:
                values = np.abs(values) + 0.5
            w.assign(values)


def dense():
    # Same-shaped layers named against their order: `layers/dense` is the one named "second".
    m = keras.Sequential([
        keras.Input((6,)),
        layers.Dense(6, activation="relu", name="second"),
        layers.Dense(6, activation="tanh", name="first"),
        layers.Dense(3, activation="softmax", name="dense"),
    ])
    return m, [RNG.normal(size=(3, 6))]


def conv_bn():
    m = keras.Sequential([
        keras.Input((10, 10, 3)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(2),
        layers.Conv2D(5, 3, strides=2, padding="valid"),
        layers.BatchNormalization(center=False),
        layers.Flatten(),
        layers.Dense(4),
    ])
    return m, [RNG.normal(size=(2, 10, 10, 3))]


def embed_lstm():
    m = keras.Sequential([
        keras.Input((7,), dtype="int32"),
        layers.Embedding(20, 5, mask_zero=True),
        layers.LSTM(6, return_sequences=True),
        layers.LSTM(4),
        layers.Dense(2),
    ])
    ids = RNG.integers(1, 20, size=(3, 7))
    ids[0, 5:] = 0  # padding at the end
    ids[1, :2] = 0  # and at the start
    return m, [ids]


def gru():
    # Keras 3's default GRU: reset_after=True (bias [2, 3u]), sigmoid recurrent activation.
    m = keras.Sequential([
        keras.Input((9, 4)),
        layers.GRU(5, return_sequences=True),
        layers.GRU(3, go_backwards=True),
        layers.Dense(2, activation="leaky_relu"),
    ])
    return m, [RNG.normal(size=(2, 9, 4))]


def bidirectional():
    m = keras.Sequential([
        keras.Input((6, 3)),
        layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
        layers.Bidirectional(layers.GRU(3), merge_mode="sum"),
        layers.Dense(2),
    ])
    return m, [RNG.normal(size=(2, 6, 3))]


def time_distributed():
    m = keras.Sequential([
        keras.Input((3, 8, 8, 2)),
        layers.TimeDistributed(layers.Conv2D(3, 3, activation="relu")),
        layers.TimeDistributed(layers.MaxPooling2D(2)),
        layers.TimeDistributed(layers.Flatten()),
        layers.SimpleRNN(4),
    ])
    return m, [RNG.normal(size=(2, 3, 8, 8, 2))]


def shared_two_io():
    a = keras.Input((5,), name="a")
    b = keras.Input((5,), name="b")
    shared = layers.Dense(4, activation="silu", name="shared")
    ha, hb = shared(a), shared(b)
    joined = layers.Concatenate()([ha, hb])
    out1 = layers.Dense(3, name="head_one")(joined)
    out2 = layers.Add()([ha, layers.Dense(4, activation="gelu")(hb)])
    m = keras.Model([a, b], [out1, out2])
    return m, [RNG.normal(size=(2, 5)), RNG.normal(size=(2, 5))]


def nested():
    inner = keras.Sequential([
        keras.Input((4,)),
        layers.Dense(5, activation="relu"),
        layers.LayerNormalization(),
        layers.Dense(4),
    ], name="inner")
    x = keras.Input((4,))
    y = inner(x)
    y = layers.Dense(3, activation="hard_sigmoid")(layers.Add()([x, y]))
    m = keras.Model(x, y)
    return m, [RNG.normal(size=(3, 4))]


def activations():
    x = keras.Input((6,))
    outs = [layers.Dense(4, activation=a, name=f"act_{a}")(x) for a in KERAS3_ACTIVATIONS]
    outs.append(layers.LeakyReLU()(x))  # negative_slope 0.2 by default in Keras 3
    outs.append(layers.LeakyReLU(negative_slope=0.05)(x))
    m = keras.Model(x, layers.Concatenate()(outs))
    return m, [RNG.normal(0.0, 2.0, size=(3, 6))]


def long_sequence():
    # A few hundred steps at batch 1: the GPU time loop runs 300 dispatches per layer.
    m = keras.Sequential([
        keras.Input((300, 4)),
        layers.LSTM(8, return_sequences=True),
        layers.GRU(6, go_backwards=True, return_sequences=True),
        layers.SimpleRNN(5),
    ])
    return m, [RNG.normal(size=(1, 300, 4))]


def fitted():
    m = keras.Sequential([
        keras.Input((4,)),
        layers.Dense(8, activation="relu"),
        layers.Dropout(0.1),
        layers.Dense(2),
    ])
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x = RNG.normal(size=(32, 4)).astype("float32")
    m.fit(x, x[:, :2] * 2.0, epochs=3, batch_size=8, verbose=0)
    return m, [RNG.normal(size=(2, 4))]


def merges():
    # Every element-wise merge with three inputs (two for Subtract, whose operands do not commute).
    a, b, c = (keras.Input((4, 3), name=n) for n in "abc")
    h = [layers.Dense(3, name=f"proj_{n}")(t) for n, t in zip("abc", (a, b, c))]
    outs = [
        layers.Subtract()([h[0], h[1]]),
        layers.Subtract()([h[2], a]),
        layers.Add()(h),
        layers.Multiply()(h),
        layers.Average()(h),
        layers.Maximum()(h),
        layers.Minimum()(h),
    ]
    m = keras.Model([a, b, c], layers.Concatenate()(outs))
    return m, [RNG.normal(size=(2, 4, 3)) for _ in range(3)]


def augment_head():
    # Augmentation layers (identities at inference, as Keras runs them), Identity, and global
    # pooling with keepdims=True as MobileNet's head and MobileNetV3's squeeze-excite use it.
    x = keras.Input((12, 12, 3))
    y = x
    for aug in [
        layers.RandomFlip(), layers.RandomRotation(0.2), layers.RandomZoom(0.1),
        layers.RandomTranslation(0.1, 0.1), layers.RandomContrast(0.3),
        layers.RandomBrightness(0.2), layers.Identity(),
    ]:
        y = aug(y)
    y = layers.Conv2D(6, 3, activation="relu")(y)
    se = layers.GlobalAveragePooling2D(keepdims=True)(y)
    se = layers.Conv2D(6, 1, activation="sigmoid")(se)
    y = layers.Multiply()([y, se])
    y = layers.GlobalMaxPooling2D(keepdims=True)(y)
    y = layers.Conv2D(4, 1)(y)
    head = layers.Flatten()(y)
    z = keras.Input((3, 5, 6), name="cf")
    zp = layers.GlobalAveragePooling2D(data_format="channels_first", keepdims=True)(z)
    zm = layers.GlobalMaxPooling1D(keepdims=True)(layers.Reshape((5, 18))(layers.Permute((2, 1, 3))(z)))
    tail = layers.Concatenate()([layers.Flatten()(zp), layers.Flatten()(zm)])
    m = keras.Model([x, z], [head, layers.Dense(2)(tail)])
    return m, [RNG.normal(size=(2, 12, 12, 3)), RNG.normal(size=(2, 3, 5, 6))]


def normalization():
    # Keras 3's Normalization (EfficientNet and ConvNeXt start with it): adapted statistics
    # (variables mean, variance, count), statistics in the config, invert, a channel axis.
    x = keras.Input((5, 4, 3))
    adapted = layers.Normalization(axis=-1, name="adapted")
    adapted.adapt(RNG.normal(2.0, 3.0, size=(64, 5, 4, 3)).astype("float32"))
    y = adapted(x)
    y = layers.Conv2D(4, 3, padding="same")(y)
    y = layers.Normalization(axis=1, mean=[0.5, -1.0, 2.0, 0.0, 1.0], variance=[1.0, 4.0, 0.25, 2.0, 9.0], name="by_config")(y)
    y = layers.Normalization(mean=0.5, variance=2.0, invert=True, name="inverted")(y)
    y = layers.GlobalAveragePooling2D()(y)
    m = keras.Model(x, layers.Dense(2)(y))
    return m, [RNG.normal(2.0, 3.0, size=(2, 5, 4, 3))]


def steps_1d():
    # ZeroPadding1D, Cropping1D and UpSampling1D (TF.js lacks them), around a Conv1D.
    m = keras.Sequential([
        keras.Input((7, 3)),
        layers.ZeroPadding1D((2, 1)),
        layers.Conv1D(4, 3, activation="relu"),
        layers.Cropping1D((1, 2)),
        layers.UpSampling1D(3),
        layers.ZeroPadding1D(1),
        layers.Cropping1D(2),
        layers.LSTM(3),
    ])
    return m, [RNG.normal(size=(2, 7, 3))]


def grouped_ops():
    # Grouped convolutions (ConvNeXt's groups == channels, ResNeXt-style groups < channels, 1-D),
    # a dilated DepthwiseConv2D (Keras 3 applies the dilation; TF.js does not) and arithmetic on
    # symbolic tensors (`x + 3.0`, `2.0 - x`, `x * c`: MobileNetV3's hard-sigmoid), which Keras 3
    # serializes as Add/Subtract/Multiply called on a tensor and a number.
    x = keras.Input((9, 9, 4))
    y = layers.Conv2D(8, 3, groups=4, padding="same")(x)
    y = layers.Conv2D(6, 3, groups=2, dilation_rate=2, activation="relu")(y)
    y = layers.DepthwiseConv2D(3, dilation_rate=2, depth_multiplier=2, padding="same")(y)
    y = layers.ReLU(6.0)(y + 3.0) * (1.0 / 6.0)
    y = 2.0 - y
    y = layers.Reshape((25, 12))(y)
    y = layers.Conv1D(6, 3, groups=3, strides=2)(y - 0.5)
    m = keras.Model(x, layers.GlobalAveragePooling1D()(y))
    return m, [RNG.normal(size=(2, 9, 9, 4))]


def transformer():
    # A Transformer encoder classifier: token + position embeddings, self-attention, residual
    # LayerNormalization, a feed-forward block, mean pooling, softmax head.
    ids = keras.Input((12,), dtype="int32")
    pos = keras.Input((12,), dtype="int32", name="positions")
    x = layers.Embedding(40, 16)(ids) + layers.Embedding(12, 16)(pos)
    a = layers.MultiHeadAttention(num_heads=4, key_dim=8, dropout=0.1)(x, x)
    x = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([x, a]))
    f = layers.Dense(32, activation="gelu")(x)
    f = layers.Dense(16)(layers.Dropout(0.1)(f))
    x = layers.LayerNormalization(epsilon=1e-6)(x + f)
    y = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling1D()(x))
    m = keras.Model([ids, pos], y)
    positions = np.tile(np.arange(12), (3, 1))
    return m, [RNG.integers(0, 40, size=(3, 12)), positions]


def attention_variants():
    # MultiHeadAttention as decoders and cross-attention use it: causal self-attention, an
    # explicit attention_mask and a separate key, a sliding window, value_dim and output_shape,
    # no biases; and self-attention under a Keras mask (mask_zero), which masks queries and keys.
    q = keras.Input((5, 6), name="q")
    kv = keras.Input((7, 4), name="kv")
    k = keras.Input((7, 3), name="k")
    keep = keras.Input((5, 7), name="keep")
    causal = layers.MultiHeadAttention(2, 3, name="causal")(q, q, use_causal_mask=True)
    cross = layers.MultiHeadAttention(3, 2, value_dim=4, output_shape=5, use_bias=False, name="cross")(
        causal, kv, key=k, attention_mask=keep)
    window = layers.MultiHeadAttention(2, 4, sliding_window=2, name="window")(cross, cross, use_causal_mask=True)
    ids = keras.Input((6,), dtype="int32", name="ids")
    e = layers.Embedding(10, 6, mask_zero=True)(ids)
    masked = layers.MultiHeadAttention(2, 3, name="masked")(e, e)
    m = keras.Model([q, kv, k, keep, ids], [window, masked])
    mask = (RNG.uniform(size=(2, 5, 7)) > 0.4).astype("float32")
    mask[0, 1] = 0.0  # a query that sees nothing: uniform weights, as Keras
    tokens = RNG.integers(1, 10, size=(2, 6))
    tokens[0, 4:] = 0
    tokens[1, 0] = 0
    return m, [RNG.normal(size=(2, 5, 6)), RNG.normal(size=(2, 7, 4)), RNG.normal(size=(2, 7, 3)), mask, tokens]


def initial_state():
    # Recurrent layers given their initial state by keyword (Keras 3 serializes it in kwargs).
    x = keras.Input((5, 3))
    h, c = keras.Input((4,), name="h"), keras.Input((4,), name="c")
    y = layers.LSTM(4, return_sequences=True)(x, initial_state=[h, c])
    z = layers.GRU(4)(y, initial_state=h)
    m = keras.Model([x, h, c], z)
    return m, [RNG.normal(size=(2, 5, 3)), RNG.normal(size=(2, 4)), RNG.normal(size=(2, 4))]


def spatial_3d_1d():
    # Keras 3 classes TF.js lacks: 1-D transposed / depthwise / separable convolutions, and the
    # 3-D padding, cropping, upsampling and global pooling, both data formats.
    x = keras.Input((9, 3))
    y = layers.Conv1DTranspose(4, 3, strides=2, padding="same", activation="relu")(x)
    y = layers.DepthwiseConv1D(3, depth_multiplier=2, dilation_rate=2, padding="same")(y)
    y = layers.SeparableConv1D(5, 3, strides=2, depth_multiplier=2, activation="tanh")(y)
    y = layers.DepthwiseConv1D(2, padding="valid", use_bias=False)(y)
    seq = layers.GlobalAveragePooling1D()(y)
    v = keras.Input((3, 4, 5, 2))
    w = layers.ZeroPadding3D(((1, 0), (0, 2), (1, 1)))(v)
    w = layers.Conv3D(3, 2, activation="relu")(w)
    w = layers.Cropping3D(((0, 1), (1, 0), 1))(w)
    w = layers.UpSampling3D((2, 1, 2))(w)
    a = layers.GlobalMaxPooling3D()(w)
    cf = layers.Permute((4, 1, 2, 3))(v)
    c = layers.ZeroPadding3D(1, data_format="channels_first")(cf)
    c = layers.UpSampling3D(2, data_format="channels_first")(c)
    c = layers.Cropping3D(((1, 2), 0, (2, 1)), data_format="channels_first")(c)
    b = layers.GlobalAveragePooling3D(data_format="channels_first")(c)
    m = keras.Model([x, v], layers.Concatenate()([seq, a, b]))
    return m, [RNG.normal(size=(2, 9, 3)), RNG.normal(size=(2, 3, 4, 5, 2))]


def keras3_misc():
    # EinsumDense in its common equations (and a permuting one, CPU-only forms included),
    # GroupNormalization (groups, instance norm, channels_first axis), UnitNormalization (one
    # axis, two axes), Discretization (adapted boundaries), RandomCrop at its own size.
    x = keras.Input((6, 8, 4))
    g = layers.GroupNormalization(groups=2, epsilon=1e-3)(x)
    g = layers.RandomCrop(6, 8)(g)
    g = layers.Conv2D(6, 3, padding="same")(g)
    g = layers.GroupNormalization(groups=-1, center=False)(g)
    g = layers.Permute((3, 1, 2))(g)
    g = layers.GroupNormalization(groups=3, axis=1)(g)
    g = layers.UnitNormalization(axis=[2, 3])(g)
    pooled = layers.GlobalAveragePooling2D(data_format="channels_first")(g)
    s = keras.Input((5, 7))
    e = layers.EinsumDense("abc,cd->abd", output_shape=(5, 6), bias_axes="d", activation="relu")(s)
    e = layers.EinsumDense("abc,cde->abde", output_shape=(5, 2, 3), bias_axes="de")(e)
    e = layers.Reshape((5, 6))(e)
    e = layers.EinsumDense("...b,bc->...c", output_shape=4, bias_axes="c")(e)
    e = layers.EinsumDense("abc,bd->acd", output_shape=(4, 3), bias_axes="d")(e)
    e = layers.UnitNormalization()(e)
    flat = layers.Flatten()(e)
    v = keras.Input((4,))
    disc = layers.Discretization(num_bins=5)
    disc.adapt(RNG.normal(size=(200, 4)).astype("float32"))
    d = layers.Embedding(5, 3)(disc(v))
    m = keras.Model([x, s, v], layers.Concatenate()([pooled, flat, layers.Flatten()(d)]))
    return m, [RNG.normal(size=(2, 6, 8, 4)), RNG.normal(size=(2, 5, 7)), RNG.normal(size=(3, 4))[:2]]


def masked_text():
    # A masked (mask_zero) text model as Keras 3 runs it: masks through Dense, the Add and
    # Concatenate merge layers (OR of the masks), self-attention (query and key masks), a
    # residual Add, GlobalAveragePooling1D over the unmasked steps only; and `x + y` on symbolic
    # tensors, an operation that drops the mask (the GRU after it sees every step).
    ids = keras.Input((7,), dtype="int32")
    e = layers.Embedding(12, 6, mask_zero=True)(ids)
    a = layers.Dense(6, activation="tanh")(e)
    b = layers.Dense(6)(e)
    x = layers.Add()([a, b])
    x = layers.LSTM(6, return_sequences=True)(x)
    att = layers.MultiHeadAttention(2, 3)(x, x)
    x = layers.LayerNormalization()(layers.Add()([x, att]))
    pooled = layers.GlobalAveragePooling1D()(x)
    c = layers.Concatenate()([a, b])
    c = layers.GRU(4)(c)
    unmasked = layers.GRU(3)(a + b)
    m = keras.Model(ids, layers.Concatenate()([pooled, c, unmasked]))
    tokens = RNG.integers(1, 12, size=(3, 7))
    tokens[0, 4:] = 0
    tokens[1, :2] = 0
    tokens[2, 1] = 0
    return m, [tokens]


def masked_transformer(blocks=2, pool="avg", attention_dropout=0.0):
    # Keras's "Text classification with Transformer" example built functionally with
    # mask_zero=True: the padding mask reaches each block's self-attention (queries and keys),
    # the residual Adds, LayerNormalization and the Dense layers on every step, then the pooling.
    # GlobalMaxPooling1D ignores the mask (padded steps count); with attention dropout Keras
    # 3.15 takes its masked-Softmax path, which zeroes a padded query's attention.
    ids = keras.Input((16,), dtype="int32")
    x = layers.Embedding(200, 32, mask_zero=True)(ids)
    for _ in range(blocks):
        a = layers.MultiHeadAttention(num_heads=4, key_dim=8, dropout=attention_dropout)(x, x)
        x = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([x, layers.Dropout(0.1)(a)]))
        f = layers.Dense(32)(layers.Dense(64, activation="gelu")(x))
        x = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([x, layers.Dropout(0.1)(f)]))
    pooling = layers.GlobalAveragePooling1D if pool == "avg" else layers.GlobalMaxPooling1D
    x = layers.Dropout(0.1)(pooling()(x))
    y = layers.Dense(5, activation="softmax")(layers.Dense(20, activation="relu")(x))
    tokens = RNG.integers(1, 200, size=(4, 16))
    tokens[0, 11:] = 0  # 11 real tokens
    tokens[1, 5:] = 0  # 5
    tokens[3, 1:] = 0  # 1 (row 2 has all 16)
    return keras.Model(ids, y), [tokens]


CASES = {
    "dense": (dense, True),
    "conv_bn": (conv_bn, True),
    "embed_lstm": (embed_lstm, True),
    "gru": (gru, True),
    "bidirectional": (bidirectional, True),
    "time_distributed": (time_distributed, True),
    "shared_two_io": (shared_two_io, True),
    "nested": (nested, True),
    "activations": (activations, True),
    "long_sequence": (long_sequence, True),
    "merges": (merges, True),
    "augment_head": (augment_head, True),
    "normalization": (normalization, False),
    "steps_1d": (steps_1d, True),
    "grouped_ops": (grouped_ops, True),
    "transformer": (transformer, True),
    "attention_variants": (attention_variants, True),
    "initial_state": (initial_state, True),
    "spatial_3d_1d": (spatial_3d_1d, True),
    "keras3_misc": (keras3_misc, True),
    "masked_text": (masked_text, True),  # keeps the adapted statistics
    "masked_transformer": (masked_transformer, True),
    "masked_transformer_1_max": (lambda: masked_transformer(1, "max"), True),
    "masked_transformer_2_max_dropout": (lambda: masked_transformer(2, "max", 0.1), True),
    "masked_transformer_3": (lambda: masked_transformer(3), True),
    "fitted": (fitted, False),  # keeps the weights and optimizer state training wrote
}


def bundle(names, arrays):
    return [
        {"name": n, "shape": list(a.shape), "dtype": "int32" if a.dtype.kind in "iu" else "float32",
         "data": [float(v) for v in a.reshape(-1)]}
        for n, a in zip(names, arrays)
    ]


def predict(model, inputs):
    """`inputs` as int32 / float32 arrays and the model's outputs for them, as a list."""
    inputs = [np.asarray(i, dtype="int32" if np.asarray(i).dtype.kind in "iu" else "float32") for i in inputs]
    outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    return inputs, [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def write_expected(out, generator, input_names, inputs, outputs):
    """expected.json: the inputs and the outputs the generating framework predicted."""
    expected = {
        "generator": generator,
        "inputs": bundle(input_names, inputs),
        "outputs": bundle([f"output_{i}" for i in range(len(outputs))], outputs),
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


def write_case(out_root, name, build, randomized):
    global RNG
    RNG = np.random.default_rng(zlib.crc32(name.encode()))
    keras.utils.set_random_seed(zlib.crc32(name.encode()) % (1 << 31))
    model, inputs = build()
    if randomized:
        randomize(model)
    inputs, outputs = predict(model, inputs)
    out = os.path.join(out_root, name)
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        converter.convert(["--input_format=keras_keras", "--output_format=tfjs_layers_model", path, out])
        shutil.copy(path, os.path.join(out, "model.keras"))  # layercake reads it directly too
    generator = f"keras {keras.__version__} (tensorflow backend) predict; tensorflowjs_converter 4.22.0"
    write_expected(out, generator, [t.name for t in model.inputs], inputs, outputs)
    print(f"{name}: {[o.shape for o in outputs]}")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "tests", "fixtures", "keras3")
    os.makedirs(root, exist_ok=True)
    chosen = sys.argv[2:] or list(CASES)
    for name in chosen:
        build, randomized = CASES[name]
        write_case(root, name, build, randomized)


if __name__ == "__main__":
    main()
