"""Regenerate the pictures in docs/images/: ``python docs/make_images.py`` (needs the ``plot`` extra);
``python docs/make_images.py --scaling`` reruns the build-time benchmark and redraws its plot.

Every picture is drawn by :mod:`convmatrix.plotting` (the same code as ``convmatrix show``) from a
matrix that convmatrix builds; nothing is drawn by hand.  The figures:

=============================  =====================================================================
``conv2d-blocks.png``          3x3 kernel on a 5x5 image, zero padding 1: doubly block Toeplitz
``conv2d-circulant.png``       the same with circular padding: doubly block circulant
``conv2d-stride2.png``         the same with stride 2: every other row of every other block row
``conv2d-transposed.png``      the seed's figure 7: 3x3 -> 5x5 (stride 2, padding 1), C^T
``fusion-steps.png``           the seed's 2x2 input, 4x4 kernel, stride 3: the four placed kernel
                               copies (the columns of C^T) and their sum, the 7x7 output
``fusion-geometry.png``        the same transposed convolution as a sliding window
``build-scaling.png``          (only with ``--scaling``: a benchmark, a minute or two) build time
                               against nnz, log-log, with the time to write the same bytes
=============================  =====================================================================
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["FIGURES", "main"]

HERE = Path(__file__).resolve().parent
OUT = HERE / "images"
DPI = 100
KERNEL3 = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]

#: file name -> keywords of convmatrix.plotting.figure
FIGURES = {
    "conv2d-blocks.png": {"kernel": KERNEL3, "input_shape": (5, 5), "padding": 1},
    "conv2d-circulant.png": {"kernel": KERNEL3, "input_shape": (5, 5), "padding": 1, "padding_mode": "circular"},
    "conv2d-stride2.png": {"kernel": KERNEL3, "input_shape": (5, 5), "padding": 1, "stride": 2, "position": (1, 1)},
    "conv2d-transposed.png": {"kernel": KERNEL3, "input_shape": (3, 3), "stride": 2, "padding": 1, "kind": "conv_transpose"},
    "fusion-geometry.png": {"kernel": [list(range(r, r + 4)) for r in range(1, 17, 4)], "input_shape": (2, 2),
                                "stride": 3, "kind": "conv_transpose", "position": (3, 3)},
}


def _save(fig, path: Path) -> None:
    # no software/version metadata, so that rerunning with another matplotlib leaves the files alone
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})


def _fusion_steps(path: Path) -> None:
    """The seed's fusion: each input pixel's kernel copy placed at stride 3, then the sum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    import convmatrix as cm
    from convmatrix.plotting import plot_matrix

    y = np.array([[1, 2], [3, 4]])
    w = np.arange(1, 17).reshape(4, 4)
    T = cm.conv_transpose_matrix(w, y.shape, stride=3)
    fig, axes = plt.subplots(1, 5, figsize=(22, 5.2))
    for j, ax in enumerate(axes[:4]):
        placed = (T[:, [j]] * y.ravel()[j]).toarray().reshape(7, 7)
        r, c = divmod(j, 2)
        plot_matrix(placed, ax=ax, title=f"pixel y[{r},{c}] = {y[r, c]}: y[{r},{c}] * w\nplaced at ({3 * r}, {3 * c})")
    out = (T @ y.ravel()).reshape(7, 7)
    plot_matrix(out, ax=axes[4], title="fusion: the sum, 7x7\n= conv_transpose_matrix(w, (2, 2), stride=3) @ y")
    for ax in axes:
        ax.set_xlabel("")
        ax.set_ylabel("")
    fig.suptitle("Transposed convolution as the seed's fusion: 2x2 input, 4x4 kernel w = 1..16, stride 3 "
                 "-> (2-1)*3 + 4 = 7", fontsize=14)
    _save(fig, path)
    plt.close(fig)


def _min_time(fn, repeats: int) -> float:
    import time

    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _write_bytes(nnz: int, rows: int, dtype, itype) -> None:
    import numpy as np

    for n, dt in ((nnz, dtype), (nnz, itype), (rows + 1, itype)):
        np.empty(n, dt).fill(1)


def _scaling(path: Path) -> None:
    """Build time of conv_matrix against nnz (2-D 5x5 'same' float64, 3-D 3x3x3 float32), log-log.

    Each point is the minimum of a few builds; the baseline is the time to allocate and fill arrays of
    the same total bytes (data, indices, indptr), measured alternately in the same process.
    """
    import gc

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    import convmatrix as cm

    series = {
        "2-D, 5x5 kernel, padding='same', float64": [
            (np.ones((5, 5)), (n, n), {"padding": "same"}) for n in (16, 32, 64, 128, 256, 512, 1024, 2048)],
        "3-D, 3x3x3 kernel, padding=1, float32": [
            (np.ones((3, 3, 3), np.float32), (n, n, n), {"padding": 1}) for n in (4, 8, 16, 32, 64, 128)],
    }
    fig, ax = plt.subplots(figsize=(8, 6))
    rows, pts_all = [], []
    for (label, cases), marker in zip(series.items(), "os", strict=False):
        pts, base = [], []
        for kernel, shape, kw in cases:
            C = cm.conv_matrix(kernel, shape, **kw)  # warm-up, and the sizes
            nnz, nrows, dtype, itype = C.nnz, C.shape[0], C.dtype, C.indices.dtype
            del C
            gc.collect()
            repeats = 5 if nnz < 10**7 else 2
            t_build = t_write = float("inf")
            for _ in range(repeats):  # alternate the build and the baseline
                t_build = min(t_build, _min_time(lambda k=kernel, n=shape, o=kw: cm.conv_matrix(k, n, **o), 1))
                t_write = min(t_write, _min_time(lambda a=(nnz, nrows, dtype, itype): _write_bytes(*a), 1))
                gc.collect()
            pts.append((nnz, t_build))
            pts_all.append((nnz, t_build))
            base.append((nnz, t_write))
            rows.append((label, "x".join(map(str, shape)), nnz, t_build, t_write))
            print(f"{label:45} {'x'.join(map(str, shape)):>14} nnz {nnz:>11,}  build {t_build:9.4f} s  "
                  f"write same bytes {t_write:9.4f} s  ratio {t_build / t_write:5.2f}")
        x, y = np.array(pts, dtype=float).T
        ax.loglog(x, y, marker=marker, label=f"conv_matrix: {label}")
        xb, yb = np.array(base, dtype=float).T
        ax.loglog(xb, yb, marker=marker, linestyle=":", color="gray", alpha=0.8,
                  label=f"write the same bytes ({label.split(',')[0]})")
    nnz_big, t_big = max(pts_all)  # the largest build: a slope-1 line through it (constant nnz/s)
    xs = np.array([1e3, 2e8])
    ax.loglog(xs, xs * t_big / nnz_big, color="black", linewidth=0.8, alpha=0.5,
              label=f"slope 1 through the largest build ({nnz_big / t_big / 1e6:.0f}M nnz/s)")
    ax.set_xlabel("stored entries (nnz)")
    ax.set_ylabel("build time, seconds (minimum of repeats)")
    ax.set_title("conv_matrix build time against nnz (log-log)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
    print("\n| geometry | input | nnz | build | write the same bytes | ratio |\n|---|---|---|---|---|---|")
    for label, shape, nnz, t_build, t_write in rows:
        print(f"| {label} | {shape} | {nnz:,} | {t_build * 1e3:.1f} ms | {t_write * 1e3:.2f} ms "
              f"| {t_build / t_write:.2f} |")


def main() -> int:
    sys.path.insert(0, str(HERE.parent))
    if "--scaling" in sys.argv[1:]:
        OUT.mkdir(exist_ok=True)
        _scaling(OUT / "build-scaling.png")
        print(f"wrote {OUT / 'build-scaling.png'}")
        return 0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convmatrix.plotting import figure

    OUT.mkdir(exist_ok=True)
    for name, kwargs in FIGURES.items():
        kwargs = dict(kwargs)
        fig = figure(kwargs.pop("kernel"), kwargs.pop("input_shape"), **kwargs)
        _save(fig, OUT / name)
        plt.close(fig)
        print(f"wrote {OUT / name}")
    _fusion_steps(OUT / "fusion-steps.png")
    print(f"wrote {OUT / 'fusion-steps.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
