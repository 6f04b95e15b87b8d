"""Spectra of convolution matrices: every singular value of a circular convolution, the spectral norm of any.

A multi-channel *circular* stride-1 convolution is block-circulant: the discrete Fourier
transform on the input grid block-diagonalises it, so its singular values are those of the
``C_out x C_in`` matrices

    A(f) = sum_t w[:, :, t] * exp(2*pi*i * sum_a f_a * t_a * d_a / n_a),   f in the grid,

one small SVD per frequency (Sedghi, Gupta & Long, "The singular values of convolutional
layers", ICLR 2019).  Any other geometry (zero or mirror padding, stride, dilation) is a
restriction of such a circulant, which gives a cheap upper bound on the spectral norm; the norm
itself comes from Lanczos (``scipy.sparse.linalg.svds``) or power iteration on the matrix-free
:class:`~convmatrix.ConvOperator`."""

from __future__ import annotations

from .norm import SpectralNorm, spectral_norm
from .singular import singular_values

__all__ = ['SpectralNorm', 'singular_values', 'spectral_norm']
