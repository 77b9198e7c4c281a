"""keras.applications architectures through the real converter, with Keras's own predictions.

    python3 tools/keras3-fixtures/apps.py OUT_DIR [NAME...]     # default: every architecture

Each architecture is built by Keras 3 with `weights=None` at a small input size and a 10-class
head, its weights re-drawn from a seed so that nothing is trivial (BatchNormalization moving
statistics, biases and LayerScale gammas included, scaled so that a 100-layer net neither
explodes nor vanishes), saved as `.keras`, converted by `tensorflowjs_converter` and written with
an expected.json bundle (same format as gen.py). The test `tests/applications.rs` runs this
script where Python + TensorFlow are installed and compares layercake's CPU and GPU outputs.
"""
import os
import sys
import zlib

sys.path.insert(0, os.path.dirname(__file__))
import gen  # noqa: E402  (stand-ins for the converter's unused imports, write_case, bundle)

import keras  # noqa: E402
import numpy as np  # noqa: E402

A = keras.applications

# name -> (constructor, keyword arguments, input size). Sizes are the smallest each accepts.
APPS = {
    "mobilenet": (A.MobileNet, {"alpha": 0.25}, 32),
    "mobilenet_v2": (A.MobileNetV2, {"alpha": 0.35}, 32),
    "mobilenet_v3_small": (A.MobileNetV3Small, {"alpha": 0.75}, 32),
    "mobilenet_v3_large": (A.MobileNetV3Large, {}, 32),
    "efficientnet_b0": (A.EfficientNetB0, {}, 32),
    "resnet50": (A.ResNet50, {}, 32),
    "resnet50_v2": (A.ResNet50V2, {}, 32),
    "densenet121": (A.DenseNet121, {}, 32),
    "xception": (A.Xception, {}, 71),
    "nasnet_mobile": (A.NASNetMobile, {}, 32),
    "inception_v3": (A.InceptionV3, {}, 75),
    "convnext_tiny": (A.ConvNeXtTiny, {}, 32),
}


def redraw(model, rng):
    """Seeded weights of the same scale as Keras's initializers, with non-trivial statistics."""
    for w in model.weights:
        shape, path = tuple(w.shape), w.path
        leaf = path.rsplit("/", 1)[-1]
        if leaf in ("moving_mean", "mean"):
            v = rng.normal(0.0, 0.1, shape)
        elif leaf in ("moving_variance", "variance"):
            v = rng.uniform(0.5, 1.5, shape)
        elif leaf == "gamma":
            v = rng.uniform(0.8, 1.2, shape)
        elif leaf in ("beta", "bias"):
            v = rng.normal(0.0, 0.05, shape)
        elif leaf == "count":
            continue
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            if "depthwise" in path and len(shape) == 4:
                fan_in = shape[0] * shape[1]
            v = rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        w.assign(v.astype(w.dtype))


def calibrate_head(model, x):
    """Scale the classifier's kernel so its logits have a standard deviation of 2 on `x`: deep
    residual nets with drawn weights otherwise saturate the softmax, where any two models agree."""
    head = [l for l in model.layers if hasattr(l, "kernel")][-1]  # Dense, or MobileNet's 1×1 Conv2D
    features = np.asarray(keras.Model(model.inputs, head.input)(x))
    kernel = np.asarray(head.kernel)
    logits = features.reshape(-1, kernel.shape[-2]) @ kernel.reshape(-1, kernel.shape[-1])
    spread = float(np.std(logits)) or 1.0
    head.kernel.assign(kernel * (2.0 / spread))


def build(name):
    ctor, kwargs, size = APPS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    keras.utils.set_random_seed(zlib.crc32(name.encode()) % (1 << 31))
    model = ctor(weights=None, input_shape=(size, size, 3), classes=10, **kwargs)
    redraw(model, rng)
    x = rng.uniform(-1.0, 1.0, (2, size, size, 3))
    if name in ("efficientnet_b0", "convnext_tiny"):
        x = (x + 1.0) * 127.5  # these include their own input scaling
    calibrate_head(model, x.astype("float32"))
    return model, [x]


def main():
    root = sys.argv[1]
    os.makedirs(root, exist_ok=True)
    for name in sys.argv[2:] or list(APPS):
        gen.write_case(root, name, lambda n=name: build(n), False)


if __name__ == "__main__":
    main()
