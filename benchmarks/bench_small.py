"""Benchmark of small builds: the fixed cost of a call (issue 14, goal 1).

Run:  python benchmarks/bench_small.py [--quick] [--markdown]   (about 3 s)

Every contender is timed in this one process, interleaved with its baseline (rounds of ``number``
calls each, minima over the rounds), so the ratios do not depend on the load of the machine:

1. the seed's 3x3 kernel on a 5x5 input, ``conv_matrix`` (and ``conv_transpose_matrix``) against
   wrapping the same (ready-made, int32) arrays in a ``scipy.sparse.csr_array`` -- target 4x;
2. 1-D kernel of 5 taps, n = 100: ``convolution_matrix`` (and ``correlation_matrix``, the
   ``numpy`` convention) against ``scipy.linalg.convolution_matrix`` -- target 1x.

The overhead per call against nnz (build time minus the time to copy the result's three arrays and
wrap them in a ``csr_array``) is measured by ``bench_scaling.py``, beside the build time.

"warm" repeats one call with the same arguments (new kernel values would cost the same: the
small-build memo keys on the arguments, not on the values; two untimed calls precede each round, as
a cold contender empties the memo); "cold" empties that memo before every call, as a sweep over
distinct geometries sees it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp
from _common import clear_memo, machine, ratio  # before convmatrix: puts this checkout first on sys.path

import convmatrix as cm


def _clock(fn, number: int) -> float:
    t = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t) / number


def _cold(fn):
    def call():
        clear_memo()
        return fn()
    return call


def race(contenders: dict, number: int, rounds: int) -> dict:
    """Seconds per call of each contender: minimum over interleaved rounds."""
    for fn in contenders.values():  # warm-up (and the memo's first two calls)
        for _ in range(3):
            fn()
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, fn in contenders.items():
            fn()  # two untimed calls first: a "cold" contender empties the memo, and a warm call
            fn()  # memoises the structure from its second call on
            best[name] = min(best[name], _clock(fn, number))
    return best


def _wrap_of(C):
    d, i, p = C.data.copy(), C.indices.copy(), C.indptr.copy()
    return lambda: sp.csr_array((d, i, p), shape=C.shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = ap.parse_args()
    print(machine())
    number, rounds = (50, 3) if args.quick else (200, 10)  # minima stable to ~2% from 6 rounds on
    rows = []

    w = np.arange(1.0, 10.0).reshape(3, 3)
    seed = cm.conv_matrix(w, (5, 5))
    tr = cm.conv_transpose_matrix(w, (5, 5))
    t = race({
        "csr_array(arrays)": _wrap_of(seed),
        "conv_matrix warm": lambda: cm.conv_matrix(w, (5, 5)),
        "conv_matrix cold": _cold(lambda: cm.conv_matrix(w, (5, 5))),
        "csr_array(arrays) T": _wrap_of(tr),
        "conv_transpose_matrix warm": lambda: cm.conv_transpose_matrix(w, (5, 5)),
        "conv_transpose_matrix cold": _cold(lambda: cm.conv_transpose_matrix(w, (5, 5))),
    }, number, rounds)
    for name, base, target in (("conv_matrix", "csr_array(arrays)", 4.0),
                               ("conv_transpose_matrix", "csr_array(arrays) T", 4.0)):
        for kind in ("warm", "cold"):
            us, ref = t[f"{name} {kind}"] * 1e6, t[base] * 1e6
            rows.append((f"{name} 3x3 on 5x5, {kind}", "csr_array of its arrays", us, ref, us / ref, target))

    h = np.arange(1.0, 6.0)
    ref_c = sl.convolution_matrix(h, 100)
    assert np.array_equal(cm.convolution_matrix(h, 100, convention="numpy").toarray(), ref_c)
    t = race({
        "scipy.linalg.convolution_matrix": lambda: sl.convolution_matrix(h, 100),
        "convolution_matrix warm": lambda: cm.convolution_matrix(h, 100),
        "convolution_matrix cold": _cold(lambda: cm.convolution_matrix(h, 100)),
        "correlation_matrix warm": lambda: cm.correlation_matrix(h, 100),
        "correlation_matrix cold": _cold(lambda: cm.correlation_matrix(h, 100)),
    }, number, rounds)
    ref = t["scipy.linalg.convolution_matrix"] * 1e6
    for name in ("convolution_matrix", "correlation_matrix"):
        for kind in ("warm", "cold"):
            us = t[f"{name} {kind}"] * 1e6
            rows.append((f"{name} k=5, n=100, {kind}", "scipy.linalg.convolution_matrix", us, ref, us / ref, 1.0))

    if args.markdown:
        print("| call | baseline | ours (us) | baseline (us) | ratio | target |\n|---|---|---|---|---|---|")
        for name, base, us, ref_us, r, target in rows:
            print(f"| {name} | {base} | {us:.1f} | {ref_us:.1f} | **{r:.2f}x** | <= {target:g}x |")
    else:
        for name, base, us, ref_us, r, _ in rows:
            print(f"{name:42s} {us:8.1f} us  vs {base} {ref_us:7.1f} us  ratio {r:5.2f}x")
    for name, base, _, _, r, target in rows:
        ratio(f"{name} / {base}", r, target)


if __name__ == "__main__":
    main()
