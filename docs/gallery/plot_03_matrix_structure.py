"""
The structure of a convolution matrix: Toeplitz, BTTB, BCCB
===========================================================

A stride-1 convolution has the same weights on every diagonal of its matrix: in 1-D the matrix is
**Toeplitz**; in 2-D it is **block Toeplitz with Toeplitz blocks** (BTTB: one block row per image
row); with circular padding the wrapped diagonals are constant too, and the matrix is **block
circulant with circulant blocks** (BCCB), which the 2-D discrete Fourier transform diagonalises.
:func:`convmatrix.symbolic.matrix_structure` names the structure from the geometry alone and
:func:`convmatrix.symbolic.check_structure` checks the name against a built matrix's entries.
See :doc:`../theory` (sections 1-3).
"""

import matplotlib.pyplot as plt
import numpy as np

import convmatrix as cm
from convmatrix.geometry import conv_geometry
from convmatrix.plotting import block_levels, plot_matrix
from convmatrix.symbolic import check_structure, matrix_structure

w1 = np.array([1.0, 2.0, 3.0])
w2 = np.arange(1.0, 10.0).reshape(3, 3)
cases = [
    ("1-D, zero padding 1", w1, (8,), {"padding": 1}),
    ("2-D, zero padding 1", w2, (4, 4), {"padding": 1}),
    ("2-D, circular padding 1", w2, (4, 4), {"padding": 1, "padding_mode": "circular"}),
]

fig, axes = plt.subplots(1, 3, figsize=(13, 4.8))
for ax, (label, w, shape, kw) in zip(axes, cases):
    C = cm.conv_matrix(w, shape, **kw)
    name = matrix_structure(w.shape, shape, **kw)
    assert check_structure(C, name)  # the name, checked entry by entry
    print(f"{label}: {name}")
    plot_matrix(C, levels=block_levels(conv_geometry(w.shape, shape, **kw)), ax=ax,
                title=f"{label}\n{name}", annotate=False)
fig.tight_layout()

# %%
# The name is a claim about the entries: a BTTB matrix is not BCCB (the wrapped diagonals of the
# zero-padded matrix are not constant), and a strided convolution is not Toeplitz at all.
C_zero = cm.conv_matrix(w2, (4, 4), padding=1)
print(check_structure(C_zero, "block circulant with circulant blocks (4x4 grid of 4x4 blocks)"))
print(matrix_structure((3, 3), (8, 8), padding=1, stride=2))

# %%
# BCCB matrices are diagonalised by the 2-D DFT
# ---------------------------------------------
# ``C = F⁻¹ diag(λ) F`` with ``λ`` the DFT of the kernel placed on the 4×4 grid (wrapped), so the
# singular values of the circular convolution are ``|λ|``: exactly what
# :func:`convmatrix.singular_values` computes, and what a dense SVD of the matrix gives.
C_circ = cm.conv_matrix(w2, (4, 4), padding=1, padding_mode="circular").toarray()
F = np.kron(np.fft.fft(np.eye(4)), np.fft.fft(np.eye(4)))  # the 2-D DFT as a 16x16 matrix
D = F @ C_circ @ np.linalg.inv(F)
off_diagonal = np.abs(D - np.diag(np.diag(D))).max()
print(f"largest off-diagonal entry of F C F^-1: {off_diagonal:.1e}")
sv_dense = np.linalg.svd(C_circ, compute_uv=False)
sv_fft = cm.singular_values(w2, (4, 4))
assert np.allclose(np.sort(np.abs(np.diag(D)))[::-1], sv_dense)
assert np.allclose(sv_fft, sv_dense)

fig, axes = plt.subplots(1, 2, figsize=(9, 4))
axes[0].imshow(np.abs(D), cmap="magma")
axes[0].set_title("|F C F⁻¹|: diagonal")
axes[1].plot(sv_dense, "o", label="dense SVD of C")
axes[1].plot(sv_fft, "x", ms=9, label="cm.singular_values (FFT)")
axes[1].set_xlabel("index")
axes[1].set_ylabel("singular value")
axes[1].legend()
fig.tight_layout()
