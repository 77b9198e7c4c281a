"""Parameter counts as Keras computes them, for `layercake inspect`'s summary to be checked against.

    python3 tools/keras3-fixtures/param_counts.py DIR [DIR ...]

Each DIR holds a model.json converted from Keras 3; its `modelTopology.model_config` is rebuilt
by Keras itself (`keras.models.model_from_json`, weights unbuilt but shaped) and counted. Prints one
JSON object: {DIR: {"total": N, "trainable": N, "non_trainable": N}} or {DIR: {"error": "..."}}
where Keras cannot rebuild the config.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
import numpy as np  # noqa: E402


def counts(d):
    with open(os.path.join(d, "model.json")) as f:
        topology = json.load(f)["modelTopology"]
    config = topology.get("model_config", topology)
    known = {"Functional": keras.Model, "Sequential": keras.Sequential}
    model = keras.models.model_from_json(json.dumps(config), custom_objects=known)
    size = lambda ws: int(sum(int(np.prod(w.shape)) for w in ws))
    t, n = size(model.trainable_weights), size(model.non_trainable_weights)
    return {"total": t + n, "trainable": t, "non_trainable": n}


out = {}
for d in sys.argv[1:]:
    try:
        out[d] = counts(d)
    except Exception as e:  # noqa: BLE001 — reported per model, the caller decides
        out[d] = {"error": f"{type(e).__name__}: {e}"[:300]}
print(json.dumps(out))
