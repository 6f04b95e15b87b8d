"""Benchmark of the matrix-free operator and the spectra (issue 6).

Run:  python benchmarks/bench_operator.py [--quick] [--skip-3d] [--markdown]   (about 33 s; --quick 20 s)

1. ``ConvOperator.matvec`` on float32, 64->64 channels, 56x56, 3x3, padding 1, batch 1, against
   ``torch.nn.functional.conv2d``, also ``rmatvec`` against ``conv_transpose2d`` and a batch of 16.  Each
   library is timed in its own child process on all cores (``torch.set_num_threads`` = one per core;
   in one process OpenBLAS's spinning threads would steal the cores from torch); the children
   alternate (ours, torch, ours, torch), each times 100 calls of batch 1 and 20 of batch 16 (runs of
   10 and 2 calls alternating between the three calls) and keeps the minimum and median.
1b. Single channel (the inverse-problem case), "same" padding, 3x3 to 9x9 on 512^2 and 2048^2, float32 and
   float64: ``matvec`` and ``rmatvec`` against the CSR matvec of the same map (``C @ x``; ``C.T @ y`` with
   ``C.T`` in CSR: built as the "same" matrix of the flipped kernel, which is ``C.T``, checked).
2. All 65,536 singular values of a 64->64-channel 32x32 circular conv (``singular_values``), against the
   same number of singular values from one batched ``numpy.linalg.svd`` of random 64x64 complex blocks.
3. ``ConvOperator`` on a 512^3 float32 volume with a 3^3 kernel (padding 1): forward and adjoint in a
   child process, its peak RSS against the bytes of the input and output vectors; the explicit matrix's
   ``conv_nnz`` and predicted CSR bytes; time against copying the input once (memory bandwidth).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

import numpy as np
from _common import machine, peak_rss, ratio, section  # before convmatrix: puts this checkout first on sys.path

import convmatrix as cm

THREADS = int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count() or 1))


def _alternate(fns: dict, rounds: int, run: int | dict = 10, warmup: bool = True) -> dict:
    """Call the functions in turn, ``run`` calls each time (an int, or one per function), ``rounds // run``
    times; minimum and median seconds of each.  Runs (not single calls) alternate so that one library's
    spinning worker threads (OpenMP, OpenBLAS) do not sit on the cores during every call of the other."""
    runs = run if isinstance(run, dict) else dict.fromkeys(fns, run)
    times = {k: [] for k in fns}
    for f in fns.values() if warmup else ():  # warm-up (caches, thread pools, allocations)
        f()
    for _ in range(max(1, rounds // max(runs.values()))):
        for k, f in fns.items():
            for _ in range(runs[k]):
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
    return {k: (min(v), float(np.median(v))) for k, v in times.items()}


#: calls per run of each call of the PyTorch case: a batch of 16 costs 16 single calls
_RUNS = {"matvec": 10, "rmatvec": 10, "matmat (16)": 2}


def _child_matvec(lib: str, rounds: int) -> None:
    """Runs in a fresh process: times one library's three calls, prints JSON {call: [min, median] s}."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    x = rng.standard_normal(64 * 56 * 56).astype(np.float32)
    images = rng.standard_normal((16, 64, 56, 56)).astype(np.float32)
    if lib == "torch":
        import torch

        torch.set_num_threads(THREADS)
        F = torch.nn.functional
        tw, tx, tX16 = torch.from_numpy(w), torch.from_numpy(x.reshape(1, 64, 56, 56)), torch.from_numpy(images)
        with torch.no_grad():
            r = _alternate({"matvec": lambda: F.conv2d(tx, tw, padding=1),
                            "rmatvec": lambda: F.conv_transpose2d(tx, tw, padding=1),
                            "matmat (16)": lambda: F.conv2d(tX16, tw, padding=1)}, rounds, _RUNS)
    else:
        A = cm.ConvOperator(w, (56, 56), padding=1)
        X16 = images.reshape(16, -1).T  # a batch as LinearOperator columns: a view, no copy
        r = _alternate({"matvec": lambda: A.matvec(x), "rmatvec": lambda: A.rmatvec(x),
                        "matmat (16)": lambda: A.matmat(X16)}, rounds, _RUNS)
    print(json.dumps(r))


def bench_matvec(rounds: int, processes: int = 2) -> dict:
    """Each library in its own processes (alternating), the best of each call's minima and medians."""
    import torch

    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    A = cm.ConvOperator(w, (56, 56), padding=1)
    x = rng.standard_normal(A.shape[1]).astype(np.float32)
    F = torch.nn.functional
    tw, tx = torch.from_numpy(w), torch.from_numpy(x.reshape(1, 64, 56, 56))
    np.testing.assert_allclose(A @ x, F.conv2d(tx, tw, padding=1).numpy().ravel(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(A.rmatvec(x), F.conv_transpose2d(tx, tw, padding=1).numpy().ravel(), rtol=1e-4,
                               atol=1e-3)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    best: dict = {"ours": {}, "torch": {}}
    for _ in range(processes):
        for lib in ("ours", "torch"):
            out = subprocess.run([sys.executable, __file__, "--child-matvec", lib, str(rounds)], check=True,
                                 capture_output=True, text=True, env=env).stdout
            for call, (lo, med) in json.loads(out).items():
                old = best[lib].get(call, (math.inf, math.inf))
                best[lib][call] = (min(old[0], lo), min(old[1], med))
    ours, theirs = best["ours"], best["torch"]
    names = {"matvec": "torch conv2d", "rmatvec": "torch conv_transpose2d", "matmat (16)": "torch conv2d (16)"}
    r = {**ours, **{names[k]: v for k, v in theirs.items()}}
    return {
        "threads": THREADS,
        "processes per library": processes,
        "times_ms": {k: (round(a * 1e3, 3), round(m * 1e3, 3)) for k, (a, m) in r.items()},
        "ratio matvec / conv2d": (round(ours["matvec"][0] / theirs["matvec"][0], 2),
                                  round(ours["matvec"][1] / theirs["matvec"][1], 2)),
        "ratio rmatvec / conv_transpose2d": (round(ours["rmatvec"][0] / theirs["rmatvec"][0], 2),
                                             round(ours["rmatvec"][1] / theirs["rmatvec"][1], 2)),
        "ratio matmat(16) / conv2d(16)": (round(ours["matmat (16)"][0] / theirs["matmat (16)"][0], 2),
                                          round(ours["matmat (16)"][1] / theirs["matmat (16)"][1], 2)),
    }


def bench_single_channel(quick: bool) -> dict:
    """Single channel, "same" padding: the operator's matvec and rmatvec against the CSR matvec of the same map."""
    rng = np.random.default_rng(5)
    cases = [(n, k, dt) for n in (512, 2048) for k in (3, 5, 9) for dt in (np.float32, np.float64)]
    if quick:
        cases = [(n, k, dt) for n, k, dt in cases if n == 512 or (k == 3 and dt == np.float32)]
    else:
        cases = [(n, k, dt) for n, k, dt in cases if n == 512 or k < 9]  # 2048^2 9x9: a 4 GiB CSR matrix
    return {f"{n}^2 {k}x{k} {np.dtype(dt).name}": _single_channel(rng, n, k, dt) for n, k, dt in cases}


def _single_channel(rng: np.random.Generator, n: int, k: int, dt: type) -> dict:
    w = rng.standard_normal((k, k)).astype(dt)
    A = cm.ConvOperator(w, (n, n), padding="same")
    C = cm.conv_matrix(w, (n, n), padding="same")
    # C.T in CSR: for stride 1 and odd k, "same" is symmetric, so C.T is the matrix of the flipped kernel
    # (built on every core; C.T.tocsr() takes several times longer); checked against C.T below
    CT = cm.conv_matrix(w[::-1, ::-1], (n, n), padding="same")
    x = rng.standard_normal(n * n).astype(dt)
    adjoint = C.T @ x
    np.testing.assert_allclose(CT @ x, adjoint, rtol=1e-4, atol=1e-3 * k)
    np.testing.assert_allclose(A.matvec(x), C @ x, rtol=1e-4, atol=1e-3 * k)
    np.testing.assert_allclose(A.rmatvec(x), adjoint, rtol=1e-4, atol=1e-3 * k)
    # 3 to 30 calls of each, in at least 3 runs alternating the four (the checks above were the warm-up)
    calls = max(3, min(30, int(3e8 / (n * n * k * k))))
    r = _alternate({"matvec": lambda: A.matvec(x), "csr": lambda: C @ x, "rmatvec": lambda: A.rmatvec(x),
                    "csr T": lambda: CT @ x}, calls, max(1, calls // 3), warmup=False)
    return {
        "ms (matvec, csr, rmatvec, csr T)": [round(r[c][0] * 1e3, 2) for c in ("matvec", "csr", "rmatvec", "csr T")],
        "matvec / csr": round(r["matvec"][0] / r["csr"][0], 2),
        "rmatvec / csr T": round(r["rmatvec"][0] / r["csr T"][0], 2),
    }


def bench_singular_values(repeats: int) -> dict:
    rng = np.random.default_rng(1)
    out = {}
    for dtype in (np.float32, np.float64):
        w = rng.standard_normal((64, 64, 3, 3)).astype(dtype)
        blocks = (rng.standard_normal((544, 64, 64)) + 1j * rng.standard_normal((544, 64, 64))).astype(
            np.complex64 if dtype == np.float32 else np.complex128)
        size = cm.singular_values(w, (32, 32)).size  # also the warm-up
        np.linalg.svd(blocks[:16], compute_uv=False)  # the baseline's warm-up
        r = _alternate({"singular_values": lambda w=w: cm.singular_values(w, (32, 32)),
                        "batched svd of 544 blocks": lambda b=blocks: np.linalg.svd(b, compute_uv=False)}, repeats, 1,
                       warmup=False)
        out[np.dtype(dtype).name] = {
            "count": int(size),
            "seconds (min, median)": (round(r["singular_values"][0], 3), round(r["singular_values"][1], 3)),
            "ratio to one batched svd of the 544 half-spectrum blocks": round(
                r["singular_values"][0] / r["batched svd of 544 blocks"][0], 2),
        }
    return out


def _child_3d(n: int) -> None:
    """Runs in a fresh process: forward and adjoint of the n^3 operator, prints JSON."""
    base = peak_rss()  # interpreter + numpy + scipy
    w = np.random.default_rng(2).standard_normal((3, 3, 3)).astype(np.float32)
    x = np.empty(n**3, np.float32)
    np.random.default_rng(3).random(dtype=np.float32, out=x)
    A = cm.ConvOperator(w, (n, n, n), padding=1)
    t = time.perf_counter()
    copy = x.copy()
    t_copy = time.perf_counter() - t
    del copy
    t = time.perf_counter()
    y = A @ x
    t_fwd = time.perf_counter() - t
    peak_fwd = peak_rss()
    t = time.perf_counter()
    z = A.rmatvec(y)
    t_adj = time.perf_counter() - t
    peak = peak_rss()
    # spot check against a direct sum at a few voxels (interior and faces)
    xv, yv = x.reshape(n, n, n), y.reshape(n, n, n)
    pad = np.pad(xv[:5, :5, -5:], ((1, 0), (1, 0), (0, 1)))
    want = float((pad[0:3, 0:3, -3:] * w).sum())
    print(json.dumps({
        "n": n, "fwd_s": t_fwd, "adj_s": t_adj, "copy_s": t_copy, "rss_before": base, "peak_fwd": peak_fwd,
        "peak": peak, "vector_bytes": x.nbytes, "check": abs(float(yv[0, 0, -1]) - want) < 1e-4,
        "finite": bool(np.isfinite(z[:: 9973]).all()),
    }))


def bench_3d(n: int) -> dict:
    res = json.loads(subprocess.run([sys.executable, __file__, "--child-3d", str(n)], check=True, capture_output=True,
                                    text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout)
    geom = cm.ConvOperator(np.ones((3, 3, 3), np.float32), (n, n, n), padding=1).geometry
    nnz = cm.conv_nnz((3, 3, 3), (n, n, n), padding=1)
    predicted = geom.predicted_bytes(np.float32)
    return {
        "volume": f"{n}^3 float32, 3^3 kernel, padding 1",
        "conv_nnz": nnz,
        "explicit CSR predicted GiB": round(predicted / 2**30, 1),
        "forward s": round(res["fwd_s"], 2),
        "adjoint s": round(res["adj_s"], 2),
        "forward / one copy of the input": round(res["fwd_s"] / res["copy_s"], 1),
        "peak RSS GiB": round(res["peak"] / 2**30, 2),
        "forward: peak RSS above the bare interpreter GiB": round((res["peak_fwd"] - res["rss_before"]) / 2**30, 2),
        "forward + adjoint: peak RSS above the bare interpreter GiB": round((res["peak"] - res["rss_before"]) / 2**30,
                                                                           2),
        "one vector GiB (x, y = A x and z = A.T y are all kept)": round(res["vector_bytes"] / 2**30, 2),
        "peak RSS / explicit matrix": round(res["peak"] / predicted, 3),
        "spot check": res["check"] and res["finite"],
    }


def _markdown(results: dict) -> str:
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; numpy {np.__version__}."]
    if "matvec" in results:
        m = results["matvec"]
        lines += ["", f"Operator vs PyTorch ({m['threads']} threads each), milliseconds (min, median):", "",
                  "| call | convmatrix | torch | ratio (min) | ratio (median) |", "|---|---|---|---|---|"]
        t = m["times_ms"]
        for ours, theirs, key in [("matvec", "torch conv2d", "ratio matvec / conv2d"),
                                  ("rmatvec", "torch conv_transpose2d", "ratio rmatvec / conv_transpose2d"),
                                  ("matmat (16)", "torch conv2d (16)", "ratio matmat(16) / conv2d(16)")]:
            lines.append(f"| {ours} | {t[ours][0]} | {t[theirs][0]} | {m[key][0]} | {m[key][1]} |")
    if "single channel" in results:
        lines += ["", "| single channel, \"same\" | ms: matvec, CSR, rmatvec, CSR of C.T | matvec / CSR | "
                      "rmatvec / CSR |", "|---|---|---|---|"]
        for case, r in results["single channel"].items():
            lines.append(f"| {case} | {r['ms (matvec, csr, rmatvec, csr T)']} | {r['matvec / csr']} | "
                         f"{r['rmatvec / csr T']} |")
    if "singular_values" in results:
        lines += ["", "| singular_values, 64->64, 32x32 | count | seconds (min, median) | ratio to one batched svd |",
                  "|---|---|---|---|"]
        for dt, r in results["singular_values"].items():
            lines.append(f"| {dt} | {r['count']:,} | {r['seconds (min, median)']} | "
                         f"{r['ratio to one batched svd of the 544 half-spectrum blocks']} |")
    if "3d" in results:
        lines += ["", "| 3-D operator | value |", "|---|---|"]
        lines += [f"| {k} | {v:,} |" if isinstance(v, int) and not isinstance(v, bool) else f"| {k} | {v} |"
                  for k, v in results["3d"].items()]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child-3d":
        _child_3d(int(sys.argv[2]))
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--child-matvec":
        _child_matvec(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, 256^3 instead of 512^3")
    ap.add_argument("--skip-3d", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown summary")
    args = ap.parse_args()
    print(machine())
    results = {}
    try:
        with section("operator vs PyTorch, 4 child processes"):
            results["matvec"] = bench_matvec(40 if args.quick else 100)
    except ImportError:
        print("torch not installed: skipping the PyTorch comparison")
    print(json.dumps(results.get("matvec"), indent=1))
    with section("single channel vs CSR"):
        results["single channel"] = bench_single_channel(args.quick)
    print(json.dumps(results["single channel"], indent=1))
    with section("singular values"):
        results["singular_values"] = bench_singular_values(2 if args.quick else 3)
    print(json.dumps(results["singular_values"], indent=1))
    if not args.skip_3d:
        with section("3-D volume, child process"):
            results["3d"] = bench_3d(256 if args.quick else 512)
        print(json.dumps(results["3d"], indent=1))
    if args.markdown:
        print(_markdown(results))
    _ratios(results)


def _ratios(results: dict) -> None:
    """The summary lines for run_all.py."""
    if "matvec" in results:
        m = results["matvec"]
        case = "operator 64->64, 3x3, pad 1, 56x56, float32"
        ratio(f"{case}: matvec / torch conv2d", m["ratio matvec / conv2d"][0], 1.0)
        ratio(f"{case}: rmatvec / torch conv_transpose2d", m["ratio rmatvec / conv_transpose2d"][0], 1.2)
        ratio(f"{case}: matmat (16) / torch conv2d (16)", m["ratio matmat(16) / conv2d(16)"][0], 1.0)
    for case, r in results.get("single channel", {}).items():
        ratio(f"single channel {case}: matvec / CSR matvec", r["matvec / csr"], 1.0)
        ratio(f"single channel {case}: rmatvec / CSR matvec of C.T", r["rmatvec / csr T"], 1.0)
    for dt, r in results.get("singular_values", {}).items():
        ratio(f"singular_values, all {r['count']:,} of 64->64 3x3 on 32x32, {dt}", r["seconds (min, median)"][0], 1.0,
              unit=" s", issue=6)


if __name__ == "__main__":
    main()
