"""
Stride, padding and dilation, pictured
======================================

:func:`convmatrix.plotting.figure` draws a convolution's matrix next to its sliding window at one
output pixel (in the style of Dumoulin & Visin's *A guide to convolution arithmetic for deep
learning*): the outlined matrix row is that output pixel, and its nonzeros are the input pixels
under the kernel.  The output sizes follow the formula that :mod:`convmatrix.symbolic` derives,
``o = ⌊(n + p_b + p_a - d(k - 1) - 1) / s⌋ + 1``.
"""

import numpy as np

import convmatrix as cm
from convmatrix import plotting, symbolic

w = np.arange(1, 10).reshape(3, 3)
formula = symbolic.output_size_formula()
print("o =", formula.expr)

# %%
# Stride 2, padding 1: a 5×5 input gives 3×3.
print(cm.conv_output_shape((5, 5), (3, 3), stride=2, padding=1))
fig = plotting.figure(w, (5, 5), stride=2, padding=1, size=(12, 5))

# %%
# Dilation 2: the kernel's taps are spread two apart, covering 5×5 (``d(k - 1) + 1 = 5``).
print(cm.conv_output_shape((7, 7), (3, 3), dilation=2))
fig = plotting.figure(w, (7, 7), dilation=2, position=(1, 1), size=(12, 5))

# %%
# A 1-D convolution with ``padding="same"`` and a reflecting boundary: the padded samples are
# mirrored copies of the input, so the matrix has extra entries near its corners.
fig = plotting.figure([1, 2, 3, 4], 8, padding="same", padding_mode="reflect", size=(12, 4))
