"""Loads `.keras` files layercake wrote with Keras 3's own `keras.saving.load_model` and checks
Keras predicts the recorded outputs: pairs of (model.keras, fixture dir holding expected.json).

    python3 tools/keras3-fixtures/check_load.py OUT.keras FIXTURE_DIR [OUT.keras FIXTURE_DIR ...]

Prints one line per model; exits 1 when any fails to load or is off by more than
atol 1e-4 + rtol 1e-4 (compare.py's rule: NaN, Inf, a missing output fail). With --optimizer N after a pair, that model must also carry N optimizer
variables (so the state a fitted model was saved with comes back).
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from compare import check_outputs  # noqa: E402


def check(path, fixture):
    model = keras.saving.load_model(path)
    with open(os.path.join(fixture, "expected.json")) as f:
        expected = json.load(f)
    xs = [np.array(t["data"], dtype=t["dtype"]).reshape(t["shape"]) for t in expected["inputs"]]
    ys = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    ys = ys if isinstance(ys, (list, tuple)) else [ys]
    worst = check_outputs(ys, expected["outputs"], 1e-4, 1e-4)
    optimizer = len(model.optimizer.variables) if getattr(model, "optimizer", None) else 0
    return worst, optimizer


def main():
    args = sys.argv[1:]
    failed = False
    while args:
        path, fixture, args = args[0], args[1], args[2:]
        want_opt = None
        if args[:1] == ["--optimizer"]:
            want_opt, args = int(args[1]), args[2:]
        try:
            worst, opt = check(path, fixture)
            ok = want_opt is None or opt == want_opt
            print(f"{'ok' if ok else 'FAIL'} {path}: off by {worst:.3g}, {opt} optimizer variables")
        except Exception as e:  # one line per model, whatever Keras raised
            ok = False
            print(f"FAIL {path}: {type(e).__name__}: {str(e)[:400]}")
        failed |= not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
