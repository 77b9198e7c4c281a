"""The comparison rule every checker uses (the same as tests/common's `check_outputs`): equal
output counts and shapes, and every element within |got - want| <= atol + rtol * |want|, which
NaN and +-Inf never are.

    python3 compare.py GOT.json WANT.json [--atol A] [--rtol R]

compares the `outputs` lists of two tensor bundles (values may be numbers or the strings "NaN",
"Infinity", "-Infinity") and exits 1 with the reason when they differ.
"""
import json
import sys

import numpy as np


def check_outputs(got, want, atol, rtol):
    """The largest absolute error of `got` (arrays) against `want` (bundle entries with `shape`
    and `data`), or raises ValueError saying what differs."""
    if len(got) != len(want):
        raise ValueError(f"{len(got)} outputs, expected {len(want)}")
    worst = 0.0
    for k, (g, w) in enumerate(zip(got, want)):
        g = np.asarray(g, dtype="float64")
        expected = np.array([float(v) for v in w["data"]], dtype="float64")
        if list(g.shape) != list(w["shape"]) or g.size != expected.size:
            raise ValueError(f"output {k}: shape {list(g.shape)}, expected {list(w['shape'])}")
        g, err = g.reshape(-1), np.abs(g.reshape(-1) - expected)
        bad = ~(err <= atol + rtol * np.abs(expected)) | ~np.isfinite(g) | ~np.isfinite(expected)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"output {k} element {i}: {g[i]} vs expected {expected[i]}")
        worst = max(worst, float(err.max(initial=0.0)))
    return worst


def main():
    args, atol, rtol = sys.argv[1:], 1e-5, 1e-4
    for flag in ("--atol", "--rtol"):
        if flag in args:
            i = args.index(flag)
            value, args = float(args[i + 1]), args[:i] + args[i + 2:]
            atol, rtol = (value, rtol) if flag == "--atol" else (atol, value)
    got_path, want_path = args
    with open(got_path) as f:
        got = json.load(f)["outputs"]
    with open(want_path) as f:
        want = json.load(f)["outputs"]
    arrays = [np.array([float(v) for v in t["data"]]).reshape(t["shape"]) for t in got]
    try:
        worst = check_outputs(arrays, want, atol, rtol)
    except ValueError as e:
        print(f"FAIL {e}")
        sys.exit(1)
    print(f"ok max abs error {worst:.3g}")


if __name__ == "__main__":
    main()
