"""
Deblurring with lsqr
====================

A blurred, noisy image ``b = C x + noise`` is restored by solving the least-squares problem
``min ‖C x - b‖² + damp² ‖x‖²`` with :func:`scipy.sparse.linalg.lsqr`, which needs only products with
``C`` and ``Cᵀ``.  The blur is a 9×9 Gaussian with ``padding="same"`` and a reflecting boundary (the
camera sees a mirrored scene past the border).  The problem is solved twice with the same settings:
on the explicit sparse matrix :func:`convmatrix.conv_matrix` and on the matrix-free
:class:`convmatrix.ConvOperator`; both give the same image.  The full-size run and the choice of
boundary are discussed in :doc:`../inverse-problem`.
"""

import matplotlib.pyplot as plt
import numpy as np
from scipy.sparse.linalg import lsqr

import convmatrix as cm

n = 96
yy, xx = np.mgrid[0:n, 0:n] / n
truth = 0.15 + 0.35 * xx  # a ramp, two disks, a bar and a grating: edges at every orientation
truth = np.where((xx - 0.3) ** 2 + (yy - 0.35) ** 2 < 0.04, 0.9, truth)
truth = np.where((xx - 0.72) ** 2 + (yy - 0.7) ** 2 < 0.02, 0.05, truth)
truth = np.where((abs(xx - 0.7) < 0.15) & (abs(yy - 0.22) < 0.04), 0.65, truth)
grating = (abs(xx - 0.25) < 0.12) & (abs(yy - 0.78) < 0.12)
truth = np.where(grating, 0.5 + 0.4 * np.sign(np.sin(2 * np.pi * 6 * (xx + yy))), truth)

t = np.arange(9) - 4
g = np.exp(-0.5 * (t / 2.0) ** 2)
kernel = np.outer(g, g) / np.outer(g, g).sum()
geometry = {"padding": "same", "padding_mode": "reflect"}

C = cm.conv_matrix(kernel, (n, n), **geometry)  # explicit CSR, 9216 x 9216
A = cm.ConvOperator(kernel, (n, n), **geometry)  # the same map, matrix-free
rng = np.random.default_rng(0)
observed = (C @ truth.ravel()).reshape(n, n) + 0.002 * rng.standard_normal((n, n))

settings = {"damp": 0.02, "atol": 0, "btol": 0, "iter_lim": 40}
x_matrix = lsqr(C, observed.ravel(), **settings)[0].reshape(n, n)
x_operator = lsqr(A, observed.ravel(), **settings)[0].reshape(n, n)


def psnr(estimate, reference):
    """Peak signal-to-noise ratio in dB of an image with peak 1."""
    return 10 * np.log10(1.0 / np.mean((estimate - reference) ** 2))


print(f"matrix: {C.shape[0]} x {C.shape[1]}, {C.nnz:,} nonzeros")
print(f"PSNR observed {psnr(observed, truth):.1f} dB, restored {psnr(x_matrix, truth):.1f} dB")
print(f"largest difference matrix vs operator: {np.abs(x_matrix - x_operator).max():.1e}")
assert psnr(x_matrix, truth) > psnr(observed, truth) + 1
assert np.allclose(x_matrix, x_operator, atol=1e-8)

# %%
# Truth, observation and the two restorations.
fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
images = [truth, observed, x_matrix, x_operator]
titles = ["truth", f"blurred + noise ({psnr(observed, truth):.1f} dB)",
          f"lsqr on conv_matrix ({psnr(x_matrix, truth):.1f} dB)",
          f"lsqr on ConvOperator ({psnr(x_operator, truth):.1f} dB)"]
for ax, img, title in zip(axes, images, titles):
    ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()
