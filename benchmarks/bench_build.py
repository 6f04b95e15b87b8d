"""Benchmark of the explicit sparse builds (issue 3).

Run:  python benchmarks/bench_build.py [--quick] [--skip-3d] [--skip-torch] [--repeats N] [--markdown]
      (about 17 s)

1. 2-D 2048x2048 input, 5x5 kernel, padding="same", float64 (~105M nnz): build time against the time
   to allocate and write arrays of the same total bytes, in the same process (alternated, warm-up
   first, minima taken; CPU seconds of all threads and median wall ratio beside); peak traced memory
   (tracemalloc) against the final CSR bytes; nnz/s.  Builds use every core (CONVMATRIX_NUM_THREADS=1: one).
2. 3-D 256^3 input, 3x3x3 kernel, float32 (~450M nnz): builds on a 24 GiB machine; time against the write
   of the same bytes (three of each, alternated, minima), peak traced memory against the CSR bytes.
3. 8->8 channels, 32x32, 3x3: against the usual baseline that applies torch.conv2d to every basis
   vector (one call per basis vector, the Jacobian column by column into a dense matrix: timed on the
   first 512 of the 8,192 basis vectors and scaled), and against a generous batched variant (basis
   vectors in batches of 1024: timed on the first two batches and scaled); both then convert the
   dense matrix to CSR (timed once, added to both).  Our build is checked against the columns they
   computed.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc

import numpy as np
from _common import machine, ratio, section  # before convmatrix: puts this checkout first on sys.path

import convmatrix as cm
from convmatrix import _build
from convmatrix.geometry import conv_geometry


def _csr_bytes(C) -> int:
    return C.data.nbytes + C.indices.nbytes + C.indptr.nbytes


def _write_same_bytes(nnz: int, rows: int, dtype, itype) -> tuple[float, float]:
    """(wall, CPU) seconds to allocate and write, in this thread, arrays of a CSR's bytes."""
    cpu = time.process_time()
    t = time.perf_counter()
    a = np.empty(nnz, dtype)
    a.fill(1)
    b = np.empty(nnz, itype)
    b.fill(1)
    c = np.empty(rows + 1, itype)
    c.fill(1)
    dt, dc = time.perf_counter() - t, time.process_time() - cpu
    del a, b, c
    return dt, dc


def bench_2d(n: int, k: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((k, k))
    C = cm.conv_matrix(w, (n, n), padding="same")  # warm-up
    nnz, rows, itype, nbytes = C.nnz, C.shape[0], C.indices.dtype, _csr_bytes(C)
    del C
    gc.collect()
    builds, writes = [], []
    for _ in range(repeats):
        writes.append(_write_same_bytes(nnz, rows, np.float64, itype))
        gc.collect()
        cpu = time.process_time()
        t = time.perf_counter()
        C = cm.conv_matrix(w, (n, n), padding="same")
        builds.append((time.perf_counter() - t, time.process_time() - cpu))
        del C
        gc.collect()
    tracemalloc.start()
    C = cm.conv_matrix(w, (n, n), padding="same")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del C
    b, wr = min(builds)[0], min(writes)[0]
    threads = _build._num_threads(conv_geometry(w.shape, (n, n), padding="same"))
    return {"n": n, "k": k, "nnz": nnz, "bytes": nbytes, "threads": threads, "build_s": b, "write_s": wr, "ratio": b / wr, "peak": peak,
            "peak_ratio": peak / nbytes, "nnz_per_s": nnz / b, "cpu_ratio": min(x[1] for x in builds) / min(
                x[1] for x in writes), "median_ratio": float(np.median([x[0] for x in builds]) / np.median(
                    [x[0] for x in writes]))}


def bench_3d(n: int, k: int) -> dict:
    """Three builds, each after a write of the same bytes (the first pays the fresh memory): minima; the last traced
    (with two, the minimum rested on one untraced build: 0.96-1.39x the write in three runs)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((k, k, k)).astype(np.float32)
    predicted = cm.conv_nnz((k, k, k), (n, n, n), padding="same")
    rows, cols = n**3, n**3
    itype = np.int32 if max(predicted, cols) < 2**31 else np.int64
    builds, writes = [], []
    for traced in (False, False, True):
        gc.collect()
        writes.append(_write_same_bytes(predicted, rows, np.float32, itype)[0])
        gc.collect()
        if traced:
            tracemalloc.start()
        t = time.perf_counter()
        C = cm.conv_matrix(w, (n, n, n), padding="same")
        builds.append(time.perf_counter() - t)
        if traced:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        nnz, nbytes = C.nnz, _csr_bytes(C)
        assert C.indices.dtype == itype
        del C
    b, wr = min(builds), min(writes)
    threads = _build._num_threads(conv_geometry(w.shape, (n, n, n), padding="same"))
    return {"n": n, "k": k, "nnz": nnz, "threads": threads, "predicted": predicted, "bytes": nbytes, "build_s": b, "write_s": wr,
            "ratio": b / wr, "peak": peak, "nnz_per_s": nnz / b}


def bench_torch(n: int, c: int, k: int) -> dict | None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    import scipy.sparse as sp

    torch.set_num_threads(max(1, torch.get_num_threads()))
    rng = np.random.default_rng(0)
    w = rng.standard_normal((c, c, k, k))
    wt = torch.tensor(w)
    cols = c * n * n

    def ours():
        return cm.conv_matrix(w, (n, n), padding=k // 2)

    sample = min(cols, 512)  # the per-vector loop: timed on the first basis vectors, scaled to all of them
    batches = min(cols, 2048)  # the batched baseline: timed on the first two batches, scaled to all of them

    def per_vector(out):  # column j = conv(e_j), one call per basis vector
        e = torch.zeros(1, c, n, n, dtype=torch.float64)
        flat = e.view(-1)
        with torch.no_grad():
            for j in range(sample):
                flat[j] = 1.0
                out[:, j] = F.conv2d(e, wt, padding=k // 2).reshape(-1).numpy()
                flat[j] = 0.0

    def batched(out):  # 1024 basis vectors per call
        with torch.no_grad():
            for j0 in range(0, batches, 1024):
                j1 = min(cols, j0 + 1024)
                e = torch.zeros(j1 - j0, cols, dtype=torch.float64)
                e[torch.arange(j1 - j0), torch.arange(j0, j1)] = 1.0
                out[:, j0:j1] = F.conv2d(e.view(-1, c, n, n), wt, padding=k // 2).reshape(j1 - j0, -1).numpy().T

    with torch.no_grad():  # warm-up of torch's first call
        F.conv2d(torch.zeros(1, c, n, n, dtype=torch.float64), wt, padding=k // 2)
    C = ours()
    t_ours = min(_timeit(ours) for _ in range(5))
    # the dense Jacobians are written into fresh arrays: the timed columns fault in their share of the pages
    dense = np.zeros((cols, cols))
    t_vec = _timeit(lambda a=dense: per_vector(a)) * cols / sample
    assert np.abs(dense[:, :sample] - C[:, :sample].toarray()).max() < 1e-12
    dense = np.empty((cols, cols))
    t_bat = _timeit(lambda a=dense: batched(a)) * cols / batches
    assert np.abs(dense[:, :batches] - C[:, :batches].toarray()).max() < 1e-12
    dense = C.toarray()  # both baselines end with the conversion of the whole dense matrix to CSR: timed once
    t_convert = _timeit(lambda a=dense: sp.csr_array(a))
    del dense
    t_vec, t_bat = t_vec + t_convert, t_bat + t_convert
    return {"n": n, "c": c, "k": k, "nnz": C.nnz, "ours_s": t_ours, "per_vector_s": t_vec, "batched_s": t_bat,
                "speedup_per_vector": t_vec / t_ours, "speedup_batched": t_bat / t_ours}


def _timeit(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--skip-3d", action="store_true")
    ap.add_argument("--skip-torch", action="store_true", help="skip the basis-vector baseline")
    ap.add_argument("--repeats", type=int, default=5, help="2-D builds (each after a write of the same bytes)")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table for docs/performance.md")
    args = ap.parse_args()
    n2, n3 = (512, 64) if args.quick else (2048, 256)
    print(machine())
    table = []  # (measurement, value, target) for --markdown
    with section(f"2-D {n2}^2"):
        r = bench_2d(n2, 5, args.repeats)
    print(f"2-D {r['n']}x{r['n']}, {r['k']}x{r['k']}, same, float64: nnz {r['nnz']:,}, CSR {r['bytes'] / 2**30:.2f} GiB")
    print(f"  threads {r['threads']} (of {os.cpu_count()} cores); CPU seconds (all threads): "
          f"build / write {r['cpu_ratio']:.2f}x; wall, median of the runs: {r['median_ratio']:.2f}x")
    print(f"  build {r['build_s']:.3f} s, write same bytes {r['write_s']:.3f} s -> ratio {r['ratio']:.2f}x; "
          f"{r['nnz_per_s'] / 1e6:.0f} M nnz/s; peak traced {r['peak'] / 2**30:.2f} GiB = {r['peak_ratio']:.2f}x CSR bytes")
    case2 = f"2-D {r['n']}^2, 5x5, 'same', float64"
    table += [(f"{case2}: nnz", f"{r['nnz']:,}", ""),
              ("build / write-same-bytes (one thread), wall, minima",
               f"**{r['ratio']:.2f}x** ({r['build_s']:.3f} s / {r['write_s']:.3f} s)", "<= 1.0x"),
              (f"the same, median of {args.repeats} wall ratios; CPU seconds of all threads",
               f"{r['median_ratio']:.2f}x; {r['cpu_ratio']:.2f}x", ""),
              ("peak traced memory / final CSR bytes", f"{r['peak_ratio']:.2f}x", "<= 1.1x")]
    ratios = [(f"{case2}: build / write of the same bytes", r["ratio"], 1.0),
              (f"{case2}: peak traced memory / result", r["peak_ratio"], 1.1)]
    if not args.skip_3d:
        with section(f"3-D {n3}^3"):
            r = bench_3d(n3, 3)
        print(f"3-D {r['n']}^3, 3^3, same, float32, threads {r['threads']}: nnz {r['nnz']:,} (predicted {r['predicted']:,}), "
              f"CSR {r['bytes'] / 2**30:.2f} GiB, build {r['build_s']:.2f} s ({r['nnz_per_s'] / 1e6:.0f} M nnz/s), "
              f"write same bytes {r['write_s']:.2f} s -> ratio {r['ratio']:.2f}x, "
              f"peak traced {r['peak'] / 2**30:.2f} GiB = {r['peak'] / r['bytes']:.2f}x CSR bytes")
        case3 = f"3-D {r['n']}^3, 3x3x3, 'same', float32"
        table += [(f"{case3}: nnz (= `conv_nnz`)", f"{r['nnz']:,}", ""),
                  ("3-D build / write-same-bytes, wall, minima",
                   f"**{r['ratio']:.2f}x** ({r['build_s']:.2f} s / {r['write_s']:.2f} s)", "<= 1.0x"),
                  ("3-D CSR size, peak / CSR", f"{r['bytes'] / 2**30:.2f} GiB, {r['peak'] / r['bytes']:.2f}x", "<= 1.1x")]
        ratios += [(f"{case3}: build / write of the same bytes", r["ratio"], 1.0),
                   (f"{case3}: peak traced memory / result", r["peak"] / r["bytes"], 1.1)]
    with section("against torch.conv2d on basis vectors"):
        r = None if args.skip_torch else bench_torch(32, 8, 3)
    if r is None:
        print("basis-vector baseline skipped" + ("" if args.skip_torch else " (torch not installed)"))
    else:
        print(f"8->8 channels, 32x32, 3x3: ours {r['ours_s'] * 1e3:.2f} ms; torch.conv2d per basis vector "
              f"{r['per_vector_s']:.2f} s -> {r['speedup_per_vector']:.0f}x; batched basis vectors "
              f"{r['batched_s']:.2f} s -> {r['speedup_batched']:.0f}x")
        table += [("8->8 channels, 32x32, 3x3: our build", f"{r['ours_s'] * 1e3:.2f} ms", ""),
                  ("speed-up vs `torch.conv2d` on every basis vector (512 of 8,192 timed, scaled)",
                   f"{r['speedup_per_vector']:,.0f}x", ">= 1000x"),
                  ("speed-up vs the same, basis vectors batched 1024 at a time (2 of 8 batches timed, scaled)",
                   f"{r['speedup_batched']:,.0f}x", "")]
    if args.markdown:
        print("\n| measurement | value | target |\n|---|---|---|")
        for row in table:
            print("| " + " | ".join(row) + " |")
    for name, value, target in ratios:
        ratio(name, value, target)
    if r is not None:
        ratio("8->8, 32x32, 3x3 build: speed-up over torch.conv2d per basis vector", r["speedup_per_vector"], 1000,
              op=">=", issue=3, digits=0)

if __name__ == "__main__":
    main()
