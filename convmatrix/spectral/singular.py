"""Every singular value of a multi-channel circular stride-1 convolution, exactly, via the FFT."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from .. import _validate as V
from .._validate import IntOrSequence, MaxBytes
from ..geometry import Geometry, conv_geometry
from ._circulant import _circulant_bytes, _circulant_svals, _compute_dtype, _scaled

__all__ = ['singular_values']


# ----------------------------------------------------------------------------- public API
def singular_values(
    kernel: npt.ArrayLike,
    input_shape: IntOrSequence,
    *,
    padding_mode: Literal["circular"] = "circular",
    dilation: IntOrSequence = 1,
    groups: int = 1,
    max_bytes: MaxBytes = "auto",
) -> npt.NDArray[np.float32 | np.float64]:
    """All singular values of a multi-channel circular stride-1 convolution, exactly, via the FFT.

    The matrix is ``conv_matrix(kernel, input_shape, padding_mode="circular", padding=p)`` with
    any padding ``p`` whose total per axis is ``d*(k-1)`` (output shape = input shape; the split
    only permutes rows and does not change the singular values).  Kernels larger than the
    input are allowed: taps wrap modulo the input size, as in the circulant matrix.

    Parameters
    ----------
    kernel : array_like
        Spatial kernel, or PyTorch weight ``(C_out, C_in/groups, *k)``; finite entries.
    input_shape : int or sequence of int
        Spatial input shape, any number of dimensions.
    padding_mode : {"circular"}
        Only circular convolutions have this closed form; use :func:`spectral_norm` otherwise.
    dilation : int or sequence of int
        Spacing between kernel taps per axis (default 1); taps wrap modulo the input size.
    groups : int
        Number of channel groups (default 1), as PyTorch: the matrix is block diagonal over them.
    max_bytes : int, None or "auto"
        Refuse (:class:`~convmatrix.MatrixTooLargeError`, before allocating) a computation whose
        predicted peak memory exceeds this many bytes; ``"auto"`` (default): half the RAM;
        ``None``: no limit.

    Returns
    -------
    ndarray
        ``min(C_out, C_in) * prod(input_shape)`` singular values in descending order: float32
        for a float32 or complex64 kernel, float64 for every other kernel (integers of any
        width, bools, float64, complex128).

    Raises
    ------
    ValueError
        A non-circular ``padding_mode``, a kernel with NaN or inf, an invalid geometry, or
        singular values beyond the range of the result dtype.
    TypeError
        A non-numeric kernel or a wrongly typed argument.
    MatrixTooLargeError
        The predicted peak (kernel spectrum on the grid plus the singular values) exceeds
        ``max_bytes``.

    See Also
    --------
    spectral_norm : The largest singular value, for any geometry.
    conv_matrix : The matrix whose singular values these are.
    numpy.linalg.svd : The dense route, for small matrices.

    Notes
    -----
    With ``n`` the input grid, ``A(f) = sum_t w[:, :, t] exp(2 pi i <f, t*d / n>)`` is the
    ``C_out x C_in`` block of frequency ``f`` (block-diagonal over groups); the singular values
    of the convolution are the union over ``f`` of those of ``A(f)`` (Sedghi, Gupta & Long [1]_).
    Cost: one FFT of the kernel on the grid and ``prod(n)`` small batched SVDs (half of them
    for a real kernel, whose spectrum is conjugate-symmetric).  The kernel is first scaled by a
    power of two (exactly) so that its largest entry is near 1.

    References
    ----------
    .. [1] H. Sedghi, V. Gupta and P. M. Long, "The singular values of convolutional layers",
       International Conference on Learning Representations (ICLR), 2019.

    Examples
    --------
    >>> import numpy as np
    >>> singular_values([1.0, 1.0], (4,))          # |1 + e^{2 pi i f/4}| for f = 0..3
    array([2.        , 1.41421356, 1.41421356, 0.        ])
    >>> w = np.random.default_rng(0).standard_normal((3, 2, 3, 3))
    >>> s = singular_values(w, (5, 6))
    >>> s.shape
    (60,)
    >>> import convmatrix as cm
    >>> C = cm.conv_matrix(w, (5, 6), padding=1, padding_mode="circular").toarray()
    >>> bool(np.allclose(s, np.linalg.svd(C, compute_uv=False)))
    True
    """
    k = V.kernel_array(kernel)
    mode = V.padding_mode_name(padding_mode)
    if mode != "circular":
        raise ValueError(
            f"padding_mode must be 'circular' for singular_values (only circular stride-1 convolutions are "
            f"block-circulant); got {mode!r}: use spectral_norm for other geometries"
        )
    # the geometry validates kernel layout, dilation and groups ('full' padding fits any kernel)
    geom = conv_geometry(k.shape, input_shape, padding="full", dilation=dilation, groups=groups)
    budget = V.budget(max_bytes)
    dt = _compute_dtype(k.dtype, single=True)
    rdt = np.dtype(np.float32) if dt in (np.float32, np.complex64) else np.dtype(np.float64)
    need = _singular_values_bytes(geom, k, dt)
    P = math.prod(geom.input_shape)
    V.check_bytes(f"singular_values of the {geom.out_channels * P}x{geom.in_channels * P} circulant", need, budget,
                  "use spectral_norm (the largest singular value alone, matrix-free) or pass a larger max_bytes")
    ks, e = _scaled(k, dt)
    s = _circulant_svals(geom.engine_weight(ks), geom.input_shape, geom.dilation, geom.groups)
    if e and s.size and s[0] > 0:
        top = math.frexp(float(s[0]))[1] + e
        if top > np.finfo(rdt).maxexp:
            raise ValueError(f"the singular values of this kernel reach about 2**{top}, beyond {rdt}"
                             + ("; pass the kernel as float64" if rdt == np.float32 else ""))
        np.ldexp(s, e, out=s)
    return s


def _singular_values_bytes(geom: Geometry, k: np.ndarray, dt: np.dtype) -> int:
    """Predicted peak of :func:`singular_values` (closed form): kernel copies, then the spectrum and the
    per-frequency singular values, then those values repeated for the conjugate half and sorted."""
    c = geom.out_channels * geom.in_per_group
    mm = geom.groups * min(geom.out_per_group, geom.in_per_group)
    r = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize
    n = geom.input_shape
    F = math.prod(n) if dt.kind == "c" else math.prod(n) // n[-1] * (n[-1] // 2 + 1)
    values = mm * math.prod(n) * r
    return (3 * k.size * dt.itemsize + max(_circulant_bytes(c, mm, n, dt), F * mm * r + values)
            + 8 * sum(n) + 2**16)
