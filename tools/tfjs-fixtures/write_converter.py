"""Rewrites a TF.js model's weights with the Python tensorflowjs converter's own writer.

    python3 write_converter.py STAGING_DIR OUT_DIR '{"shard_size": 1000, "groups": [...], "quantize": {...}}'

STAGING_DIR holds model.json + weights.bin (one group, as TF.js saved it). OUT_DIR receives model.json and
group{g}-shard{i}of{N}.bin files written by tensorflowjs.write_weights (tensorflowjs 4.22.0, installed with
`pip install --no-deps tensorflowjs==4.22.0` next to numpy). write_weights only needs TensorFlow for
tf.io.gfile.GFile, so a stub that maps it to open() stands in for the real package here.
"""
import json
import os
import re
import sys
import types

import numpy as np


def import_writer():
    tf = types.ModuleType("tensorflow")
    tf.io = types.SimpleNamespace(gfile=types.SimpleNamespace(GFile=open))
    sys.modules.setdefault("tensorflow", tf)
    import importlib.util

    spec = importlib.util.find_spec("tensorflowjs")
    pkg = types.ModuleType("tensorflowjs")  # skip tensorflowjs/__init__.py, which imports the converters
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["tensorflowjs"] = pkg
    from tensorflowjs import write_weights

    return write_weights


def read_entries(staging):
    with open(os.path.join(staging, "model.json")) as f:
        model = json.load(f)
    data = open(os.path.join(staging, "weights.bin"), "rb").read()
    entries, offset = [], 0
    sizes = {"float32": 4, "int32": 4, "bool": 1}
    for spec in model["weightsManifest"][0]["weights"]:
        n = int(np.prod(spec["shape"], dtype=np.int64))
        nbytes = n * sizes[spec["dtype"]]
        arr = np.frombuffer(data[offset:offset + nbytes], dtype=spec["dtype"]).reshape(spec["shape"])
        offset += nbytes
        entry = {"name": spec["name"], "data": arr.copy()}
        if "group" in spec:
            entry["group"] = spec["group"]
        entries.append(entry)
    assert offset == len(data), "weights.bin size does not match its manifest"
    return model, entries


def split_groups(entries, patterns):
    groups = [[] for _ in patterns]
    for e in entries:
        k = next(i for i, p in enumerate(patterns) if any(re.search(x, e["name"]) for x in p))
        groups[k].append(e)
    return [g for g in groups if g]


def main():
    staging, out_dir, conf = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    write_weights = import_writer()
    model, entries = read_entries(staging)
    groups = split_groups(entries, conf["groups"]) if "groups" in conf else [entries]
    manifest = write_weights.write_weights(
        groups, out_dir, shard_size_bytes=conf.get("shard_size", 4 * 1024 * 1024),
        write_manifest=False, quantization_dtype_map=conf.get("quantize"))
    model["weightsManifest"] = manifest
    with open(os.path.join(out_dir, "model.json"), "w") as f:
        json.dump(model, f)


if __name__ == "__main__":
    main()
