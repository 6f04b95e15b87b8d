"""
The article's three worked examples
===================================

The article *卷积神经网络CNN——图像卷积与反卷积(后卷积,转置卷积)* ("CNNs: image convolution and
deconvolution, also called transposed convolution"), which this project reproduces, works three
examples by hand: an image convolution that keeps the size (``same``, its figures 2-4), the full
convolution of a 2×2 image with a 3×3 kernel (figure 6), and a transposed convolution of a 2×2
input with a 4×4 kernel at stride 3 (by "fusion" of kernel copies).  Here each one is written as a
matrix, applied, and checked against an independent computation.  The step-by-step text is in
:doc:`../seed-examples`.
"""

import matplotlib.pyplot as plt
import numpy as np
from scipy import signal

import convmatrix as cm
from convmatrix.plotting import plot_matrix

# %%
# 1. ``same``: the output keeps the input's size
# ----------------------------------------------
# Rotate the kernel by 180°, centre it on each pixel, multiply and add (MATLAB's ``conv2(x, h,
# 'same')``).  With the input 1…9 and a Sobel kernel the top-left output is −13.
x = np.arange(1, 10).reshape(3, 3)
h = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
C_same = cm.convolution_matrix(h, x.shape, "same")
y_same = (C_same @ x.ravel()).reshape(3, 3)
print(y_same)
assert np.array_equal(y_same, signal.convolve2d(x, h, "same"))

# %%
# 2. ``full``: a 2×2 image and a 3×3 kernel give 4×4
# --------------------------------------------------
# The 1-D rule ``n1 + n2 - 1`` on each axis.  The matrix is 16 × 4: one column per input pixel,
# holding the kernel placed where that pixel sends it.
x2 = np.array([[1, 2], [3, 4]])
k = np.arange(1, 10).reshape(3, 3)
C_full = cm.convolution_matrix(k, x2.shape, "full")
y_full = (C_full @ x2.ravel()).reshape(4, 4)
print(y_full)
assert np.array_equal(y_full, signal.convolve2d(x2, k, "full"))

# %%
# 3. Transposed convolution: 2×2 input, 4×4 kernel, stride 3 → 7×7
# -----------------------------------------------------------------
# Every input pixel scales a copy of the kernel; the copies are placed 3 apart and added where
# they overlap ("fusion").  With a kernel of ones and pixels 1, 10, 100, 1000 every output digit
# says which pixels contributed; the output size is ``(2 - 1) * 3 + 4 = 7``.
x3 = np.array([[1, 10], [100, 1000]])
T = cm.conv_transpose_matrix(np.ones((4, 4), dtype=int), x3.shape, stride=3)
y_t = (T @ x3.ravel()).reshape(7, 7)
print(y_t)
fused = np.zeros((7, 7), dtype=int)
for (i, j), v in np.ndenumerate(x3):  # the article's construction, one kernel copy per pixel
    fused[3 * i:3 * i + 4, 3 * j:3 * j + 4] += v
assert np.array_equal(y_t, fused)
assert cm.conv_transpose_output_shape(x3.shape, (4, 4), stride=3) == (7, 7)

# %%
# The three matrices, with their block grids (one block per output row and input row), next to
# the results they compute.
fig, axes = plt.subplots(2, 3, figsize=(12, 7.5), gridspec_kw={"height_ratios": [3, 2]})
plot_matrix(C_same, levels=[(3, 3)], ax=axes[0, 0], title="same: 9 × 9")
plot_matrix(C_full, levels=[(4, 2)], ax=axes[0, 1], title="full: 16 × 4")
plot_matrix(T, levels=[(7, 2)], ax=axes[0, 2], title="transposed, stride 3: 49 × 4")
for ax, img, title in zip(axes[1], [y_same, y_full, y_t], ["C @ x (3 × 3)", "C @ x (4 × 4)", "T @ x (7 × 7)"]):
    ax.imshow(img, cmap="coolwarm" if img.min() < 0 else "viridis", alpha=0.45)  # light: the numbers stay legible
    for (i, j), v in np.ndenumerate(img):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7 if img.shape[0] > 4 else 9)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
