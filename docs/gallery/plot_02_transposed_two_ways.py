"""
Transposed convolution, two ways
================================

The transposed convolution ``conv_transpose2d`` is the map whose matrix is ``Cᵀ``, the transpose of
the convolution's matrix ``C``.  Two constructions compute it without any matrix:

* **zero insertion**: put ``s - 1`` zeros between the input pixels, pad by ``d(k - 1) - p``, and
  run a stride-1 convolution (the kernel rotated by 180° relative to the forward correlation);
* **fusion**: every input pixel scales one copy of the kernel, placed ``s`` apart; the copies are
  added where they overlap and the border ``p`` is cropped.

Both are checked here against ``conv_transpose_matrix`` and against ``C.T`` of the forward
convolution (3×3 kernel, stride 2, padding 1: a 5×5 image goes to 3×3 and back to 5×5).
See :doc:`../theory` (section 6) for the derivation.
"""

import matplotlib.pyplot as plt
import numpy as np
from scipy import signal

import convmatrix as cm
from convmatrix import plotting

w = np.array([[1, 0, 2], [0, 1, 0], [3, 0, 1]])  # not symmetric, on purpose
y = np.arange(1, 10).reshape(3, 3)  # the 3x3 input of the transposed convolution
s, p, k = 2, 1, 3

T = cm.conv_transpose_matrix(w, y.shape, stride=s, padding=p)
C = cm.conv_matrix(w, (5, 5), stride=s, padding=p)  # the forward convolution: 5x5 -> 3x3
assert (T != C.T).nnz == 0  # T is exactly C transposed
out = (T @ y.ravel()).reshape(5, 5)

# %%
# Zero insertion
# --------------
# ``3 + 2·(s - 1) = 5`` samples per axis, padded by ``k - 1 - p = 1`` on each side: 7×7.  A valid
# convolution (``scipy.signal.convolve2d`` flips the kernel) at stride 1 then gives 5×5.
up = np.zeros((7, 7), dtype=int)
up[1:6:2, 1:6:2] = y
by_insertion = signal.convolve2d(up, w, "valid")
assert np.array_equal(by_insertion, out)
print(by_insertion)

# %%
# Fusion
# ------
# One 3×3 copy of ``w`` per input pixel, at ``(s·i, s·j)`` on an uncropped
# ``(3 - 1)·2 + 3 = 7``-pixel canvas, summed; then ``p = 1`` is cropped on each side.
canvas = np.zeros((7, 7), dtype=int)
copies = []
for (i, j), v in np.ndenumerate(y):
    copy = np.zeros((7, 7), dtype=int)
    copy[s * i:s * i + k, s * j:s * j + k] = v * w
    copies.append(copy)
    canvas += copy
by_fusion = canvas[p:-p, p:-p]
assert np.array_equal(by_fusion, out)

# %%
# With PyTorch installed, ``torch.nn.functional.conv_transpose2d`` agrees too.
try:
    import torch
except ImportError:
    print("PyTorch is not installed: that check is skipped")
else:
    t = torch.nn.functional.conv_transpose2d(torch.tensor(y)[None, None], torch.tensor(w)[None, None], stride=s, padding=p)
    assert np.array_equal(t[0, 0].numpy(), out)
    print("torch conv_transpose2d agrees")

# %%
# The pictures: the zero-inserted, padded input (left), four of the nine placed kernel copies
# (middle) and the sum, cropped to the 5×5 output (right, dashed frame).
fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
axes[0].imshow(up, cmap="Blues")
axes[0].set_title("zero insertion: 3×3 → 7×7, then valid conv")
for c, colour in zip([copies[0], copies[2], copies[6], copies[8]], ["Reds", "Greens", "Purples", "Oranges"]):
    axes[1].imshow(np.ma.masked_equal(c, 0), cmap=colour, alpha=0.6, vmin=0, vmax=c.max() * 1.3)
axes[1].set_title("fusion: scaled kernel copies, s = 2 apart")
axes[2].imshow(canvas, cmap="viridis")
axes[2].add_patch(plt.Rectangle((p - 0.5, p - 0.5), 5, 5, fill=False, ls="--", lw=2, color="w"))
axes[2].set_title("sum; the crop p = 1 is the 5×5 output")
for ax, img in zip(axes, [up, None, canvas]):
    ax.set_xticks(range(7))
    ax.set_yticks(range(7))
    if img is not None:
        for (i, j), v in np.ndenumerate(img):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="k" if ax is axes[0] else "w")
fig.tight_layout()

# %%
# The same geometry drawn by :func:`convmatrix.plotting.figure`: the matrix ``Cᵀ`` with its block
# grid, next to the zero-inserted input with the rotated kernel sliding over it.
fig = plotting.figure(w, y.shape, kind="conv_transpose", stride=s, padding=p, size=(12, 5))
