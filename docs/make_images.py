"""Regenerate the pictures in docs/images/: ``python docs/make_images.py`` (needs the ``plot`` extra);
``python docs/make_images.py --scaling`` runs ``benchmarks/bench_scaling.py``, which redraws its plot.

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
``build-scaling.png``          (only with ``--scaling``: ``benchmarks/bench_scaling.py``, about 8 s)
                               build time against nnz, log-log, with the time to write the same
                               bytes, and the overhead per call against nnz
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


def main() -> int:
    sys.path.insert(0, str(HERE.parent))
    if "--scaling" in sys.argv[1:]:  # the benchmark lives with the others; it draws the plot
        import subprocess

        bench = HERE.parent / "benchmarks" / "bench_scaling.py"
        return subprocess.run([sys.executable, str(bench), "--out", str(OUT / "build-scaling.png")]).returncode
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
