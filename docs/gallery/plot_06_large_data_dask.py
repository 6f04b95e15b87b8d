"""
Large data: ``ConvOperator`` and Dask
=====================================

An explicit convolution matrix stores one entry per kernel tap and output pixel: for a 5×5 blur of
a 4096×4096 image that is 419 million entries (about 5 GB as CSR), and an image that does not fit
in memory cannot even be read into one array.  :class:`convmatrix.ConvOperator` applies the same
map matrix-free (memory proportional to input plus output), and takes a `Dask
<https://www.dask.org>`_ array: the image is convolved chunk by chunk (each chunk with the halo its
outputs read), lazily, on as many cores or machines as the scheduler has.  Needs the ``dask``
extra (``pip install "convmatrix[dask]"``).  This example stays small (1024×1024, 16 chunks) so
that it runs in a second; the same code runs on images that only fit on disk.
"""

import dask
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from scipy import signal

import convmatrix as cm

kernel = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0  # 5x5 binomial blur
print(f"4096x4096: {cm.conv_nnz(kernel.shape, (4096, 4096), padding=2):,} nonzeros in the explicit matrix")

n = 1024
A = cm.ConvOperator(kernel, (n, n), padding=2)  # "same" size output, zero padding
rng = np.random.default_rng(0)
image = da.from_array(rng.standard_normal((n, n)).cumsum(axis=0).cumsum(axis=1) / n, chunks=(256, 256))
blurred = A @ image  # lazy: a dask array with the image's chunks, nothing computed yet
print(type(blurred).__name__, blurred.shape, "in", blurred.numblocks, "chunks")

# %%
# Compute it (here with threads), and check it against scipy on the whole array.
with dask.config.set(scheduler="threads"):
    result = blurred.compute()
reference = signal.correlate2d(image.compute(), kernel, mode="same")
print(f"largest difference to scipy.signal.correlate2d: {np.abs(result - reference).max():.1e}")
assert np.allclose(result, reference)

# %%
# The adjoint (``A.T``, the transposed convolution) is lazy too, and passes the dot test
# ``⟨A x, y⟩ = ⟨x, Aᵀ y⟩`` on the dask arrays.
y = da.from_array(rng.standard_normal((n, n)), chunks=(256, 256))
lhs = float((blurred * y).sum().compute())
rhs = float((image * (A.T @ y)).sum().compute())
print(f"<A x, y> = {lhs:.10g}, <x, A^T y> = {rhs:.10g}")
assert np.isclose(lhs, rhs)

# %%
# A batch of flat vectors as the columns of an ``(N, K)`` dask array works too, one task per
# column chunk (:func:`convmatrix.apply` does the same for an explicit matrix).
batch = da.from_array(rng.standard_normal((n * n, 6)), chunks=(n * n, 2))
out = cm.apply(A, batch)
assert np.allclose(out[:, 0].compute(), A @ batch[:, 0].compute())

# %%
# The image, its chunks, and the blurred result.
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
axes[0].imshow(image.compute(), cmap="gray")
for edge in range(256, n, 256):
    axes[0].axhline(edge - 0.5, color="C1", lw=1)
    axes[0].axvline(edge - 0.5, color="C1", lw=1)
axes[0].set_title("input: 1024 × 1024 in 16 dask chunks")
axes[1].imshow(result, cmap="gray")
axes[1].set_title("ConvOperator @ dask array (computed chunk by chunk)")
fig.tight_layout()
