"""The built-in example: ``python -m convmatrix.examples``.

Builds the seed article's two headline matrices, prints them, and checks them against
independent computations (``scipy.signal.convolve2d`` and a direct scatter-add of kernel
copies).  Exits with status 1 if a check fails.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["main"]


def main() -> int:
    """Print and check the seed's full convolution and its stride-3 transposed convolution."""
    from scipy import signal

    from .matrices import conv_transpose_matrix, convolution_matrix

    np.set_printoptions(linewidth=120)
    ok = True
    kernel = np.arange(1, 10).reshape(3, 3)
    x = np.array([[1, 2], [3, 4]])
    C = convolution_matrix(kernel, (2, 2), "full")
    print("Full 2-D convolution of a 2x2 input with a 3x3 kernel (the seed's figure 6): output 4x4")
    print("kernel =\n", kernel)
    print(f"C = convolution_matrix(kernel, (2, 2), 'full'): shape {C.shape}, nnz {C.nnz}")
    print(C.toarray())
    y = (C @ x.ravel()).reshape(4, 4)
    ref = signal.convolve2d(x, kernel, "full")
    same = np.array_equal(y, ref)
    ok &= same
    print("C @ x == scipy.signal.convolve2d(x, kernel, 'full'):", same)

    w = np.ones((4, 4))
    T = conv_transpose_matrix(w, (2, 2), stride=3)
    z = np.array([1.0, 2.0, 3.0, 4.0])
    out = (T @ z).reshape(7, 7)
    fused = np.zeros((7, 7))
    for i in range(2):  # the seed's "fusion": one 4x4 kernel copy per input pixel, at stride 3
        for j in range(2):
            fused[3 * i : 3 * i + 4, 3 * j : 3 * j + 4] += z[2 * i + j] * w
    same = np.array_equal(out, fused)
    ok &= same
    print("\nTransposed convolution: 2x2 input, 4x4 kernel, stride 3 -> (2-1)*3 + 4 = 7x7")
    print(out)
    print("C^T @ y == fusion of kernel copies at stride 3:", same)
    print("\nall checks passed" if ok else "\nA CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
