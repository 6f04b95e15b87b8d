"""Benchmark of the Dask route (issue 6): a volume larger than one worker's memory limit.

Run:  python benchmarks/bench_dask.py [--quick] [--n 512] [--chunk 32,256,256] [--memory-limit 384MiB]
      [--timeout S] [--markdown]   (about 17 s; --quick: 256^3, a smoke run: that volume fits in a worker)

A float32 ``(n, n, n)`` volume (default 512^3 = 0.5 GiB, 1.33x a worker's memory limit) is generated
chunk by chunk on the workers (``dask.array.random``) and convolved with a 3^3 kernel (padding 1, zeros) by
``ConvOperator.matvec``, then (one worker only) transposed back by ``rmatvec``; each result is
reduced to a sum on the workers, so no full volume ever exists in one process (times include generating the volume,
which is also timed alone).  A ``LocalCluster`` with 1 and then 2 worker processes (1 task thread
each, ``memory_limit`` each; within a task the single-channel operator already uses up to two
threads, as it does in any process, so a second worker on 2 cores adds little) runs it; reported: voxels per second, the speed-up from the second
worker, each worker's peak resident memory (VmHWM) against its limit and against the volume, what
the workers spilled to disk to stay under their limits (the graph keeps neighbouring chunks for the
halos; thin chunks, 32 x 256 x 256, keep that small), and, as the in-process baseline, the in-memory operator's voxels per second on one chunk-sized volume
(ratio = the cost of distribution).  A corner of the result is checked against the in-memory
operator.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from _common import machine, ratio  # before convmatrix: puts this checkout first on sys.path (and PYTHONPATH)

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


def _spilled(dask_worker) -> int:
    """Bytes this worker wrote to disk (its memory monitor's and its tasks' spilling)."""
    return int(sum(v for k, v in dask_worker.digests_total.items()
                   if isinstance(k, tuple) and k[-2:] == ("disk-write", "bytes")))


def _parse_bytes(text: str) -> int:
    from dask.utils import parse_bytes

    return int(parse_bytes(text))


def _load_libraries() -> None:
    import scipy.sparse  # noqa: F401

    import convmatrix  # noqa: F401


def run(workers: int, n: int, chunk: tuple[int, int, int], memory_limit: str, w: np.ndarray, timeout: float,
        adjoint: bool) -> dict:
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        A = cm.ConvOperator(w, (n, n, n), padding=1)
        x = da.random.default_rng(0).random((n, n, n), dtype=np.float32, chunks=chunk)
        y = A.matvec(x)
        z = A.rmatvec(y)
        client.run(_load_libraries)
        base = client.run(_current_rss)
        t = time.perf_counter()
        client.compute(x.sum()).result(timeout=timeout)
        t_gen = time.perf_counter() - t
        t = time.perf_counter()
        s_fwd = float(client.compute(y.sum()).result(timeout=timeout))
        t_fwd = time.perf_counter() - t
        s_adj, t_adj = 0.0, None
        if adjoint:
            t = time.perf_counter()
            s_adj = float(client.compute(z.sum()).result(timeout=timeout))
            t_adj = time.perf_counter() - t
        peaks = client.run(_peak_rss)
        spilled = client.run(_spilled)
        corner = client.compute(y[:8, :8, :8]).result(timeout=timeout)
        xs = client.compute(x[:9, :9, :9]).result(timeout=timeout)
        tasks = len(y.__dask_graph__())
    ref = cm.ConvOperator(w, (9, 9, 9), padding=((1, 0), (1, 0), (1, 0))) @ xs.ravel()
    ok = bool(np.allclose(corner.ravel(), ref, rtol=1e-5, atol=1e-5) and np.isfinite(s_fwd) and np.isfinite(s_adj))
    return {
        "workers": workers,
        "generate+sum s": round(t_gen, 2),
        "generate+forward+sum s": round(t_fwd, 2),
        "generate+forward+adjoint+sum s": None if t_adj is None else round(t_adj, 2),
        "forward Mvoxel/s": round(n**3 / t_fwd / 1e6, 1),
        "forward+adjoint Mvoxel/s": None if t_adj is None else round(n**3 / t_adj / 1e6, 1),
        "tasks (forward graph)": tasks,
        "worker RSS with the libraries loaded, before MiB": [round(v / 2**20) for v in base.values()],
        "worker peak RSS MiB": [round(v / 2**20) for v in peaks.values()],
        "worker spilled to disk MiB": [round(v / 2**20) for v in spilled.values()],
        "corner check": ok,
    }


def in_memory_rate(chunk: tuple[int, int, int], w: np.ndarray) -> float:
    A = cm.ConvOperator(w, chunk, padding=1)
    x = np.random.default_rng(0).random(A.shape[1], dtype=np.float32)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        A @ x
        best = min(best, time.perf_counter() - t)
    return x.size / best / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 256^3 in 32x128x128 chunks (fits in a worker)")
    ap.add_argument("--n", type=int, default=None, help="edge of the volume (default 512; --quick 256)")
    ap.add_argument("--chunk", default=None, help="a chunk's shape, e.g. 128 or 32,256,256 (default 32,256,256)")
    ap.add_argument("--memory-limit", default="384MiB", help="per worker (default 384MiB)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for each computation (default 300)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    args.n = args.n or (256 if args.quick else 512)
    chunk = args.chunk or ("32,128,128" if args.quick else "32,256,256")
    args.chunk = tuple(int(c) for c in chunk.split(",")) * (1 if "," in chunk else 3)
    if len(args.chunk) != 3:
        ap.error(f"--chunk must be one edge or three; got {chunk!r}")
    print(machine())
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    w = np.random.default_rng(1).standard_normal((3, 3, 3)).astype(np.float32)
    volume = 4 * args.n**3
    limit = _parse_bytes(args.memory_limit)
    results = {
        "volume": f"({args.n}, {args.n}, {args.n}) float32, chunks {'x'.join(map(str, args.chunk))}, 3^3 kernel, "
                  "padding 1",
        "volume GiB": round(volume / 2**30, 2),
        "worker memory_limit GiB": round(limit / 2**30, 2),
        "volume / worker memory_limit": round(volume / limit, 2),
        "in-memory Mvoxel/s (one chunk, this process)": round(in_memory_rate(args.chunk, w), 1),
        # the adjoint only on one worker: the second worker's run measures the speed-up of the forward
        "runs": [run(k, args.n, args.chunk, args.memory_limit, w, args.timeout, k == 1) for k in (1, 2)],
    }
    one, two = results["runs"]
    results["speed-up 2 workers / 1 (forward)"] = round(
        one["generate+forward+sum s"] / two["generate+forward+sum s"], 2)
    results["2 workers / in-memory rate (forward)"] = round(
        two["forward Mvoxel/s"] / results["in-memory Mvoxel/s (one chunk, this process)"], 2)
    print(json.dumps(results, indent=1))
    worst = max(max(r["worker peak RSS MiB"]) for r in results["runs"]) * 2**20 / limit
    ratio(f"Dask {args.n}^3 ({results['volume / worker memory_limit']}x a worker's memory_limit): "
          "worker peak RSS / memory_limit", worst, 1.0, issue=6)
    ratio("Dask: spilled to disk (all runs, all workers)",
          sum(sum(r["worker spilled to disk MiB"]) for r in results["runs"]), unit=" MiB", issue=6, digits=0)
    if args.markdown:
        print(f"\nVolume {results['volume']}: {results['volume GiB']} GiB = "
              f"{results['volume / worker memory_limit']} x one worker's memory_limit "
              f"({results['worker memory_limit GiB']} GiB).\n")
        print("| workers | generate + sum (s) | generate + forward + sum (s) | Mvoxel/s | + adjoint (s) | Mvoxel/s "
              "| RSS per worker, libraries loaded (MiB) | peak RSS per worker (MiB) | spilled (MiB) | check |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in results["runs"]:
            print(f"| {r['workers']} | {r['generate+sum s']} | {r['generate+forward+sum s']} | "
                  f"{r['forward Mvoxel/s']} | {r['generate+forward+adjoint+sum s'] or '-'} | "
                  f"{r['forward+adjoint Mvoxel/s'] or '-'} | "
                  f"{r['worker RSS with the libraries loaded, before MiB']} | {r['worker peak RSS MiB']} | "
                  f"{r['worker spilled to disk MiB']} | {r['corner check']} |")
        print(f"\nIn-memory operator in this process: {results['in-memory Mvoxel/s (one chunk, this process)']} "
              f"Mvoxel/s; 2 workers reach {results['2 workers / in-memory rate (forward)']} of it; speed-up from the "
              f"second worker {results['speed-up 2 workers / 1 (forward)']}.")


if __name__ == "__main__":
    main()
