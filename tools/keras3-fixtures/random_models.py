"""Random Keras 3 models through the real converter, with Keras's own predictions: the Keras side
of the differential harness (tools/tfjs-fixtures/random-models.mjs is the TF.js side).

    python3 tools/keras3-fixtures/random_models.py OUT_DIR FIRST COUNT

Model `i` is drawn from seed `i` alone (reproducible one by one): a chain over a 1-D sequence,
an image or a volume, with side branches merged by Add / Subtract / Multiply / Average /
Maximum / Concatenate, drawing the classes TF.js lacks (EinsumDense, MultiHeadAttention,
GroupNormalization, UnitNormalization, grouped and 1-D depthwise/separable/transposed
convolutions, 3-D padding/cropping/upsampling/global pooling, arithmetic with numbers, Keras 3
activations, keepdims pooling, Identity and augmentation layers) among the common ones, with
random configurations and seeded weights. Each model directory holds model.json, its weights,
expected.json (the gen.py bundle) and description.txt (one line naming the layers). A model
Keras itself refuses to build is skipped (its directory holds skipped.txt with the reason).
"""
import os
import random
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import gen  # noqa: E402  (converter stand-ins, bundle)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

ACTIVATIONS = [
    "linear", "relu", "tanh", "sigmoid", "gelu", "silu", "elu", "selu", "softplus", "softsign",
    "hard_sigmoid", "hard_silu", "relu6", "leaky_relu", "mish", "celu", "log_sigmoid",
    "squareplus", "tanh_shrink", "soft_shrink", "hard_tanh", "softmax", "log_softmax",
]


class Draw:
    """One model's random choices and a description of what was drawn."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        self.parts = []

    def pick(self, items):
        return self.r.choice(items)

    def int(self, lo, hi):
        return self.r.randint(lo, hi)

    def chance(self, p):
        return self.r.random() < p

    def note(self, text):
        self.parts.append(text)


def seq_op(d, x):
    """A layer over `[batch, steps, features]` (steps ≥ 3); returns the new tensor."""
    steps, feat = x.shape[1], x.shape[2]
    choice = d.pick(["dense", "einsum", "conv1d", "depthwise1d", "separable1d", "transpose1d",
                     "pad1d", "crop1d", "up1d", "mha", "layernorm", "unitnorm", "groupnorm",
                     "scalar", "activation", "batchnorm"])
    act = d.pick(ACTIVATIONS)
    if choice == "dense":
        layer = layers.Dense(d.int(2, 8), activation=act, use_bias=d.chance(0.7))
    elif choice == "einsum":
        n = d.int(2, 6)
        layer = d.pick([
            layers.EinsumDense("abc,cd->abd", output_shape=(steps, n), bias_axes=d.pick([None, "d"]), activation=act),
            layers.EinsumDense("...b,bc->...c", output_shape=n, bias_axes=d.pick([None, "c"])),
            layers.EinsumDense("abc,bd->acd", output_shape=(feat, n), bias_axes=d.pick([None, "d"])),
        ])
    elif choice == "conv1d":
        groups = d.pick([g for g in (1, 2, 3) if feat % g == 0])
        filters = groups * d.int(1, 3)
        k = d.int(1, min(3, steps))
        layer = layers.Conv1D(filters, k, strides=d.pick([1, 1, 2]), padding=d.pick(["valid", "same", "causal"]),
                              dilation_rate=1, groups=groups, activation=act, use_bias=d.chance(0.7))
    elif choice == "depthwise1d":
        layer = layers.DepthwiseConv1D(d.int(1, min(3, steps)), depth_multiplier=d.int(1, 2), padding=d.pick(["valid", "same"]),
                                       dilation_rate=d.pick([1, 1, 2]), activation=act)
        if layer.dilation_rate[0] > 1 and steps < 5:
            layer = layers.DepthwiseConv1D(1)
    elif choice == "separable1d":
        layer = layers.SeparableConv1D(d.int(2, 6), d.int(1, min(3, steps)), padding=d.pick(["valid", "same"]),
                                       depth_multiplier=d.int(1, 2), activation=act)
    elif choice == "transpose1d":
        layer = layers.Conv1DTranspose(d.int(2, 5), d.int(1, 3), strides=d.pick([1, 2]), padding=d.pick(["valid", "same"]),
                                       activation=act)
    elif choice == "pad1d":
        layer = layers.ZeroPadding1D((d.int(0, 2), d.int(0, 2)))
    elif choice == "crop1d":
        a = d.int(0, max(0, (steps - 3) // 2))
        layer = layers.Cropping1D((a, d.int(0, max(0, steps - 3 - a))))
    elif choice == "up1d":
        layer = layers.UpSampling1D(2) if steps <= 8 else layers.Identity()
    elif choice == "mha":
        # key_dim and value_dim ≥ 2: Keras 3.15's TensorFlow `ops.add` takes a [heads, 1] bias
        # for a `bias_add` along axis 1 when steps == heads (see ARCHITECTURE.md).
        layer = layers.MultiHeadAttention(d.int(1, 3), d.int(2, 4), value_dim=d.pick([None, 3]),
                                          use_bias=d.chance(0.7), output_shape=d.pick([None, 4]))
        causal = d.chance(0.4)
        d.note(f"MultiHeadAttention(heads={layer.num_heads}, key_dim={layer.key_dim}, causal={causal})")
        return layer(x, x, use_causal_mask=causal)
    elif choice == "layernorm":
        layer = layers.LayerNormalization(epsilon=d.pick([1e-3, 1e-6]), center=d.chance(0.8), scale=d.chance(0.8))
    elif choice == "unitnorm":
        layer = layers.UnitNormalization(axis=d.pick([-1, 1, [1, 2]]))
    elif choice == "groupnorm":
        groups = d.pick([g for g in (1, 2, 3, -1) if g == -1 or feat % g == 0])
        layer = layers.GroupNormalization(groups=groups)
    elif choice == "scalar":
        c = round(d.r.uniform(-2, 2), 3)
        op = d.pick(["add", "radd", "sub", "rsub", "mul"])
        d.note(f"arith({op} {c})")
        return {"add": lambda: x + c, "radd": lambda: c + x, "sub": lambda: x - c,
                "rsub": lambda: c - x, "mul": lambda: x * c}[op]()
    elif choice == "activation":
        layer = layers.Activation(act)
    else:
        layer = layers.BatchNormalization(axis=d.pick([-1, 1]))
    d.note(type(layer).__name__ + describe(layer))
    return layer(x)


def image_op(d, x):
    """A layer over `[batch, h, w, c]` (h, w ≥ 3)."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    choice = d.pick(["conv", "grouped", "depthwise", "separable", "pool", "groupnorm", "unitnorm",
                     "batchnorm", "scalar", "augment", "gap_keepdims", "pad", "crop", "activation"])
    act = d.pick(ACTIVATIONS[:21])
    k = d.int(1, min(3, h, w))
    if choice == "conv":
        layer = layers.Conv2D(d.int(2, 6), k, strides=d.pick([1, 2]), padding=d.pick(["valid", "same"]), activation=act)
    elif choice == "grouped":
        groups = d.pick([g for g in (1, 2, 3, c) if c % g == 0])
        layer = layers.Conv2D(groups * d.int(1, 2), k, groups=groups, padding=d.pick(["valid", "same"]),
                              dilation_rate=d.pick([1, 1, 2]) if min(h, w) >= 5 else 1, activation=act)
    elif choice == "depthwise":
        dil = d.pick([1, 2]) if min(h, w) >= 5 else 1
        layer = layers.DepthwiseConv2D(k, depth_multiplier=d.int(1, 2), padding=d.pick(["valid", "same"]),
                                       dilation_rate=dil, strides=1 if dil > 1 else d.pick([1, 2]), activation=act)
    elif choice == "separable":
        layer = layers.SeparableConv2D(d.int(2, 6), k, padding=d.pick(["valid", "same"]), depth_multiplier=d.int(1, 2),
                                       activation=act)
    elif choice == "pool":
        layer = d.pick([layers.MaxPooling2D, layers.AveragePooling2D])(2, padding=d.pick(["valid", "same"]))
    elif choice == "groupnorm":
        layer = layers.GroupNormalization(groups=d.pick([g for g in (1, 2, -1) if g == -1 or c % g == 0]))
    elif choice == "unitnorm":
        layer = layers.UnitNormalization(axis=d.pick([-1, [1, 2], [2, 3]]))
    elif choice == "batchnorm":
        layer = layers.BatchNormalization()
    elif choice == "scalar":
        cst = round(d.r.uniform(-2, 2), 3)
        d.note(f"arith(* {cst} + 1)")
        return x * cst + 1.0
    elif choice == "augment":
        layer = d.pick([layers.RandomFlip(), layers.RandomRotation(0.1), layers.RandomZoom(0.1),
                        layers.RandomContrast(0.2), layers.Identity()])
    elif choice == "gap_keepdims":
        se = layers.GlobalAveragePooling2D(keepdims=True)(x)
        se = layers.Conv2D(c, 1, activation="sigmoid")(se)
        d.note("squeeze-excite(GlobalAveragePooling2D keepdims)")
        return layers.Multiply()([x, se])
    elif choice == "pad":
        layer = layers.ZeroPadding2D(((d.int(0, 1), d.int(0, 2)), (d.int(0, 2), d.int(0, 1))))
    elif choice == "crop":
        layer = layers.Cropping2D(((d.int(0, max(0, (h - 3) // 2)), 0), (0, d.int(0, max(0, (w - 3) // 2)))))
    else:
        layer = layers.Activation(act)
    d.note(type(layer).__name__ + describe(layer))
    return layer(x)


def volume_op(d, x):
    """A layer over `[batch, d1, d2, d3, c]`."""
    shape = x.shape[1:4]
    choice = d.pick(["pad3d", "crop3d", "up3d", "conv3d", "groupnorm"])
    if choice == "pad3d":
        layer = layers.ZeroPadding3D(tuple((d.int(0, 1), d.int(0, 1)) for _ in range(3)))
    elif choice == "crop3d" and min(shape) >= 4:
        layer = layers.Cropping3D(tuple((d.int(0, 1), 0) for _ in range(3)))
    elif choice == "up3d" and max(shape) <= 4:
        layer = layers.UpSampling3D(tuple(d.int(1, 2) for _ in range(3)))
    elif choice == "conv3d":
        layer = layers.Conv3D(d.int(2, 4), d.int(1, 2), padding=d.pick(["valid", "same"]), activation=d.pick(ACTIVATIONS[:12]))
    else:
        layer = layers.GroupNormalization(groups=-1)
    d.note(type(layer).__name__ + describe(layer))
    return layer(x)


def describe(layer):
    cfg = layer.get_config()
    keys = ["units", "filters", "kernel_size", "strides", "padding", "groups", "dilation_rate",
            "depth_multiplier", "activation", "axis", "equation", "size", "cropping"]
    shown = [f"{k}={cfg[k]}" for k in keys if k in cfg and cfg[k] not in (None, 1, (1,), (1, 1))]
    return "(" + ", ".join(shown) + ")"


def branchy(d, x, op, depth):
    """A chain of `op`s with, sometimes, a parallel branch merged back."""
    for _ in range(depth):
        if d.chance(0.25):
            a = op(d, x)
            mid = len(d.parts)
            b = op(d, x)
            if a.shape[1:] == b.shape[1:]:
                merge = d.pick([layers.Add, layers.Subtract, layers.Multiply, layers.Average,
                                layers.Maximum, layers.Concatenate])
                d.note(f"merge {merge.__name__}")
                x = merge()([a, b])
                continue
            del d.parts[mid:]  # the second branch does not fit: dropped
            x = a
        else:
            x = op(d, x)
    return x


def draw(seed):
    d = Draw(seed)
    kind = d.pick(["seq", "seq", "image", "image", "volume"])
    if kind == "seq":
        inp = keras.Input((d.int(3, 8), d.int(2, 6)))
        y = branchy(d, inp, seq_op, d.int(1, 4))
    elif kind == "image":
        inp = keras.Input((d.int(5, 9), d.int(5, 9), d.int(2, 4)))
        y = branchy(d, inp, image_op, d.int(1, 4))
    else:
        inp = keras.Input((d.int(2, 4), d.int(2, 4), d.int(2, 4), d.int(1, 3)))
        y = branchy(d, inp, volume_op, d.int(1, 3))
        pool = d.pick([layers.GlobalAveragePooling3D, layers.GlobalMaxPooling3D])(keepdims=d.chance(0.3))
        d.note(f"{type(pool).__name__}(keepdims={pool.keepdims})")
        y = pool(y)
    model = keras.Model(inp, y)
    rng = np.random.default_rng(seed)
    gen.RNG = rng
    gen.randomize(model)
    x = rng.normal(size=(2,) + tuple(inp.shape[1:]))
    return model, [x], f"{kind}: " + " → ".join(d.parts)


def write(root, seed):
    out = os.path.join(root, f"{seed:05d}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    try:
        keras.utils.set_random_seed(seed)
        model, inputs, text = draw(seed)
        inputs = [np.asarray(i, dtype="float32") for i in inputs]
        outputs = model.predict(inputs[0], verbose=0)
    except Exception as e:  # Keras refuses the drawn configuration: nothing to compare
        with open(os.path.join(out, "skipped.txt"), "w") as f:
            f.write(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}\n")
        return False
    if not np.all(np.isfinite(outputs)):
        with open(os.path.join(out, "skipped.txt"), "w") as f:
            f.write("Keras's own outputs are not finite\n")
        return False
    # Keras's predict (a tf.function) and its eager call must agree with each other and with
    # the model's declared shape: where they do not (a padded Conv3D "same" computed as
    # "valid" under predict, seen in Keras 3.15 / TF 2.21), Keras has no one answer to match.
    eager = np.asarray(model(inputs[0], training=False))
    declared = tuple(model.output_shape[1:])
    if eager.shape != outputs.shape or outputs.shape[1:] != declared or \
            np.max(np.abs(eager - outputs)) > 1e-4 * (1 + np.max(np.abs(eager))):
        with open(os.path.join(out, "skipped.txt"), "w") as f:
            gap = np.max(np.abs(eager - outputs)) if eager.shape == outputs.shape else float("nan")
            f.write(f"Keras disagrees with itself: predict {outputs.shape}, eager {eager.shape}, declared {declared}, max difference {gap:.3e}\n")
        return False
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        gen.converter.convert(["--input_format=keras_keras", "--output_format=tfjs_layers_model", path, out])
    expected = {
        "generator": f"random_models.py seed {seed}; keras {keras.__version__} predict",
        "inputs": gen.bundle([t.name for t in model.inputs], inputs),
        "outputs": gen.bundle(["output_0"], [np.asarray(outputs)]),
    }
    import json
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)
    with open(os.path.join(out, "description.txt"), "w") as f:
        f.write(text + "\n")
    return True


def main():
    root, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.makedirs(root, exist_ok=True)
    made = sum(write(root, s) for s in range(first, first + count))
    print(f"{made} of {count} models written to {root}")


if __name__ == "__main__":
    main()
