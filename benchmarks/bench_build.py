"""Benchmark of the explicit sparse builds (issue 3).

Run:  python benchmarks/bench_build.py [--quick] [--skip-3d] [--markdown]

1. 2-D 2048x2048 input, 5x5 kernel, padding="same", float64 (~105M nnz): build time against the time
   to allocate and write arrays of the same total bytes, in the same process (alternated, warm-up
   first, minima taken); peak traced memory (tracemalloc) against the final CSR bytes; nnz/s.
2. 3-D 256^3 input, 3x3x3 kernel, float32 (~450M nnz): builds on a 24 GiB machine; time, bytes.
3. 8->8 channels, 32x32, 3x3: against the usual baseline that applies torch.conv2d to every basis
   vector (one call per basis vector, the Jacobian column by column), and against a generous batched
   variant (all basis vectors in batches of 1024), both followed by conversion to CSR.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import time
import tracemalloc

import numpy as np

import convmatrix as cm


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
    return {"n": n, "k": k, "nnz": nnz, "bytes": nbytes, "build_s": b, "write_s": wr, "ratio": b / wr, "peak": peak,
            "peak_ratio": peak / nbytes, "nnz_per_s": nnz / b, "cpu_ratio": min(x[1] for x in builds) / min(
                x[1] for x in writes), "median_ratio": float(np.median([x[0] for x in builds]) / np.median(
                    [x[0] for x in writes]))}


def bench_3d(n: int, k: int) -> dict:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((k, k, k)).astype(np.float32)
    predicted = cm.conv_nnz((k, k, k), (n, n, n), padding="same")
    gc.collect()
    tracemalloc.start()
    t = time.perf_counter()
    C = cm.conv_matrix(w, (n, n, n), padding="same")
    dt = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = {"n": n, "k": k, "nnz": C.nnz, "predicted": predicted, "bytes": _csr_bytes(C), "build_s": dt, "peak": peak,
               "nnz_per_s": C.nnz / dt}
    del C
    return out


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

    def per_vector():
        out = np.empty((cols, cols))  # column j = conv(e_j)
        e = torch.zeros(1, c, n, n, dtype=torch.float64)
        flat = e.view(-1)
        with torch.no_grad():
            for j in range(cols):
                flat[j] = 1.0
                out[:, j] = F.conv2d(e, wt, padding=k // 2).reshape(-1).numpy()
                flat[j] = 0.0
        return sp.csr_array(out)

    def batched():
        out = np.empty((cols, cols))
        with torch.no_grad():
            for j0 in range(0, cols, 1024):
                j1 = min(cols, j0 + 1024)
                e = torch.zeros(j1 - j0, cols, dtype=torch.float64)
                e[torch.arange(j1 - j0), torch.arange(j0, j1)] = 1.0
                out[:, j0:j1] = F.conv2d(e.view(-1, c, n, n), wt, padding=k // 2).reshape(j1 - j0, -1).numpy().T
        return sp.csr_array(out)

    ref = batched()
    C = ours()
    assert abs(C - ref).max() < 1e-12
    t_ours = min(_timeit(ours) for _ in range(7))
    t_vec = _timeit(per_vector)
    t_bat = min(_timeit(batched) for _ in range(2))
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
    ap.add_argument("--skip-torch", action="store_true", help="skip the basis-vector baseline (about 40 s)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n2, n3 = (512, 64) if args.quick else (2048, 256)
    print(f"# machine: {platform.machine()}, numpy {np.__version__}, convmatrix {cm.__version__}")
    r = bench_2d(n2, 5, args.repeats)
    print(f"2-D {r['n']}x{r['n']}, {r['k']}x{r['k']}, same, float64: nnz {r['nnz']:,}, CSR {r['bytes'] / 2**30:.2f} GiB")
    print(f"  threads {os.environ.get('CONVMATRIX_NUM_THREADS') or os.cpu_count()}; CPU seconds (all threads): "
          f"build / write {r['cpu_ratio']:.2f}x; wall, median of the runs: {r['median_ratio']:.2f}x")
    print(f"  build {r['build_s']:.3f} s, write same bytes {r['write_s']:.3f} s -> ratio {r['ratio']:.2f}x; "
          f"{r['nnz_per_s'] / 1e6:.0f} M nnz/s; peak traced {r['peak'] / 2**30:.2f} GiB = {r['peak_ratio']:.2f}x CSR bytes")
    if not args.skip_3d:
        r = bench_3d(n3, 3)
        print(f"3-D {r['n']}^3, 3^3, same, float32: nnz {r['nnz']:,} (predicted {r['predicted']:,}), "
              f"CSR {r['bytes'] / 2**30:.2f} GiB, build {r['build_s']:.2f} s ({r['nnz_per_s'] / 1e6:.0f} M nnz/s), "
              f"peak traced {r['peak'] / 2**30:.2f} GiB = {r['peak'] / r['bytes']:.2f}x CSR bytes")
    r = None if args.skip_torch else bench_torch(32, 8, 3)
    if r is None:
        print("torch not installed: basis-vector baseline skipped")
    else:
        print(f"8->8 channels, 32x32, 3x3: ours {r['ours_s'] * 1e3:.2f} ms; torch.conv2d per basis vector "
              f"{r['per_vector_s']:.2f} s -> {r['speedup_per_vector']:.0f}x; batched basis vectors "
              f"{r['batched_s']:.2f} s -> {r['speedup_batched']:.0f}x")


if __name__ == "__main__":
    main()
