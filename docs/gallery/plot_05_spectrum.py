"""
The spectrum and spectral norm of a conv layer
==============================================

The singular values of a convolution layer bound how much it can amplify its input: the largest,
the **spectral norm**, is the layer's Lipschitz constant (used to regularise or normalise networks).
For a circular, stride-1 convolution the matrix is block circulant and its singular values are, per
frequency ``f`` of the input grid, those of the small ``C_out × C_in`` matrix ``A(f) = Σ_t w[:, :, t]
e^{2πi⟨f, t⟩/n}`` (Sedghi, Gupta & Long, *The singular values of convolutional layers*, ICLR 2019):
:func:`convmatrix.singular_values` computes all of them with one FFT.  For any other geometry
(zero padding, strides) :func:`convmatrix.spectral_norm` finds the largest one, with guaranteed
bounds.
"""

import matplotlib.pyplot as plt
import numpy as np

import convmatrix as cm

rng = np.random.default_rng(0)
weight = rng.standard_normal((8, 4, 3, 3)) / 6  # a conv layer: 4 channels in, 8 out, 3x3 kernels
n = 12

sv = cm.singular_values(weight, (n, n))  # circular padding, stride 1: 4 * 12 * 12 values
print(sv.shape, f"largest {sv[0]:.4f}")

# %%
# An independent check: the dense SVD of the explicit ``1152 × 576`` matrix gives the same values.
C = cm.conv_matrix(weight, (n, n), padding=1, padding_mode="circular")
dense = np.linalg.svd(C.toarray(), compute_uv=False)[: sv.size]
assert np.allclose(sv, dense)

# %%
# The largest singular value per frequency: the FFT of the kernel on the ``n × n`` grid gives one
# ``8 × 4`` matrix ``A(f)`` per frequency (``fft2`` uses ``e^{-2πi…}``, the conjugate frequency,
# which has the same singular values), and its largest singular value is the layer's gain at ``f``.
A = np.fft.fft2(weight, s=(n, n)).transpose(2, 3, 0, 1)  # (n, n, C_out, C_in)
gain = np.linalg.svd(A, compute_uv=False)[..., 0]
assert np.isclose(gain.max(), sv[0])

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
im = axes[0].imshow(np.fft.fftshift(gain), extent=(-n / 2 - 0.5, n / 2 - 0.5, n / 2 - 0.5, -n / 2 - 0.5),
                    cmap="viridis")
fig.colorbar(im, ax=axes[0], label="largest singular value of A(f)")
axes[0].set_title("gain per frequency (0 at the centre)")
axes[0].set_xlabel("f₂")
axes[0].set_ylabel("f₁")
axes[1].hist(sv, bins=40, color="C0")
axes[1].axvline(sv[0], color="C3", ls="--", label=f"spectral norm {sv[0]:.3f}")
axes[1].set_title(f"all {sv.size} singular values")
axes[1].legend()
fig.tight_layout()

# %%
# Zero padding and strides
# ------------------------
# With zero padding the matrix is no longer circulant; :func:`convmatrix.spectral_norm` picks a
# method (dense SVD for small matrices, else Lanczos on the matrix-free operator) and returns the
# norm with a lower bound (``‖C v‖`` of the vector it found) and an upper bound (the circular
# convolution on the padded grid).  As the input grows, the zero-padded norm approaches the
# circular one.
sizes = [4, 6, 8, 12, 16, 24]
zero = [cm.spectral_norm(weight, (m, m), padding=1) for m in sizes]
strided = [cm.spectral_norm(weight, (m, m), padding=1, stride=2) for m in sizes]
for m, z, s2 in zip(sizes, zero, strided):
    print(f"{m:3d}x{m:<3d} zero padding {float(z):.4f} ({z.method}), stride 2 {float(s2):.4f} ({s2.method})")
    assert z.lower_bound <= float(z) * (1 + 1e-6) and float(z) <= z.upper_bound * (1 + 1e-9)

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.axhline(sv[0], color="C3", ls="--", label="circular (any n)")
ax.plot(sizes, [float(z) for z in zero], "o-", label="zero padding 1")
ax.plot(sizes, [z.upper_bound for z in zero], "v:", color="C0", alpha=0.6, label="its upper bound")
ax.plot(sizes, [float(s) for s in strided], "s-", label="zero padding 1, stride 2")
ax.set_xlabel("input size n (n × n)")
ax.set_ylabel("spectral norm")
ax.legend()
fig.tight_layout()
