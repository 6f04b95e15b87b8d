"""Benchmark of the Dask route (issue 6): a volume larger than one worker's memory limit.

Run:  python benchmarks/bench_dask.py [--n 768] [--chunk 192] [--memory-limit 1GiB] [--markdown]

A float32 ``(n, n, n)`` volume (default 768^3 = 1.7 GiB) is generated chunk by chunk on the
workers (``dask.array.random``) and convolved with a 3^3 kernel (padding 1, zeros) by
``ConvOperator.matvec``, then transposed back by ``rmatvec``; each result is reduced to a sum on
the workers, so no full volume ever exists in one process (times include generating the volume,
which is also timed alone).  A ``LocalCluster`` with 1 and then 2 worker processes (1 thread
each, ``memory_limit`` each) runs it; reported: voxels per second, the speed-up from the second
worker, each worker's peak resident memory (VmHWM) against its limit and against the volume, and,
as the in-process baseline, the in-memory operator's voxels per second on one chunk-sized volume
(ratio = the cost of distribution).  A corner of the result is checked against the in-memory
operator.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import convmatrix as cm


def _peak_rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover - not Linux


def _current_rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover


def _parse_bytes(text: str) -> int:
    from dask.utils import parse_bytes

    return int(parse_bytes(text))


def run(workers: int, n: int, chunk: int, memory_limit: str, w: np.ndarray) -> dict:
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        A = cm.ConvOperator(w, (n, n, n), padding=1)
        x = da.random.default_rng(0).random((n, n, n), dtype=np.float32, chunks=(chunk, chunk, chunk))
        y = A.matvec(x)
        z = A.rmatvec(y)
        base = client.run(_current_rss)
        t = time.perf_counter()
        client.compute(x.sum()).result()
        t_gen = time.perf_counter() - t
        t = time.perf_counter()
        s_fwd = float(client.compute(y.sum()).result())
        t_fwd = time.perf_counter() - t
        t = time.perf_counter()
        s_adj = float(client.compute(z.sum()).result())
        t_adj = time.perf_counter() - t
        peaks = client.run(_peak_rss)
        corner = client.compute(y[:8, :8, :8]).result()
        xs = client.compute(x[:9, :9, :9]).result()
        tasks = len(y.__dask_graph__())
    ref = cm.ConvOperator(w, (9, 9, 9), padding=((1, 0), (1, 0), (1, 0))) @ xs.ravel()
    ok = bool(np.allclose(corner.ravel(), ref, rtol=1e-5, atol=1e-5) and np.isfinite(s_fwd) and np.isfinite(s_adj))
    return {
        "workers": workers,
        "generate+sum s": round(t_gen, 2),
        "generate+forward+sum s": round(t_fwd, 2),
        "generate+forward+adjoint+sum s": round(t_adj, 2),
        "forward Mvoxel/s": round(n**3 / t_fwd / 1e6, 1),
        "forward+adjoint Mvoxel/s": round(n**3 / t_adj / 1e6, 1),
        "tasks (forward graph)": tasks,
        "worker RSS before MiB": [round(v / 2**20) for v in base.values()],
        "worker peak RSS MiB": [round(v / 2**20) for v in peaks.values()],
        "corner check": ok,
    }


def in_memory_rate(chunk: int, w: np.ndarray) -> float:
    A = cm.ConvOperator(w, (chunk, chunk, chunk), padding=1)
    x = np.random.default_rng(0).random(chunk**3, dtype=np.float32)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        A @ x
        best = min(best, time.perf_counter() - t)
    return chunk**3 / best / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=768)
    ap.add_argument("--chunk", type=int, default=192)
    ap.add_argument("--memory-limit", default="1GiB")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    w = np.random.default_rng(1).standard_normal((3, 3, 3)).astype(np.float32)
    volume = 4 * args.n**3
    limit = _parse_bytes(args.memory_limit)
    results = {
        "volume": f"({args.n}, {args.n}, {args.n}) float32, chunks {args.chunk}^3, 3^3 kernel, padding 1",
        "volume GiB": round(volume / 2**30, 2),
        "worker memory_limit GiB": round(limit / 2**30, 2),
        "volume / worker memory_limit": round(volume / limit, 2),
        "in-memory Mvoxel/s (one chunk, this process)": round(in_memory_rate(args.chunk, w), 1),
        "runs": [run(k, args.n, args.chunk, args.memory_limit, w) for k in (1, 2)],
    }
    one, two = results["runs"]
    results["speed-up 2 workers / 1 (forward)"] = round(
        one["generate+forward+sum s"] / two["generate+forward+sum s"], 2)
    results["2 workers / in-memory rate (forward)"] = round(
        two["forward Mvoxel/s"] / results["in-memory Mvoxel/s (one chunk, this process)"], 2)
    print(json.dumps(results, indent=1))
    if args.markdown:
        print(f"\nVolume {results['volume']}: {results['volume GiB']} GiB = "
              f"{results['volume / worker memory_limit']} x one worker's memory_limit "
              f"({results['worker memory_limit GiB']} GiB).\n")
        print("| workers | generate + sum (s) | generate + forward + sum (s) | Mvoxel/s | + adjoint (s) | Mvoxel/s "
              "| peak RSS per worker (MiB) | check |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results["runs"]:
            print(f"| {r['workers']} | {r['generate+sum s']} | {r['generate+forward+sum s']} | "
                  f"{r['forward Mvoxel/s']} | {r['generate+forward+adjoint+sum s']} | "
                  f"{r['forward+adjoint Mvoxel/s']} | {r['worker peak RSS MiB']} | {r['corner check']} |")
        print(f"\nIn-memory operator in this process: {results['in-memory Mvoxel/s (one chunk, this process)']} "
              f"Mvoxel/s; 2 workers reach {results['2 workers / in-memory rate (forward)']} of it; speed-up from the "
              f"second worker {results['speed-up 2 workers / 1 (forward)']}.")


if __name__ == "__main__":
    main()
