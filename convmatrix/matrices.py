"""Public sparse builders: validate -> Geometry -> engine.  No index arithmetic lives here."""

from __future__ import annotations

import numbers
from typing import Final, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, DTypeLike

from . import _validate as V
from ._build import build_csr, check_budget, convert
from .geometry import Geometry, conv_geometry, conv_transpose_geometry, scipy_geometry

__all__ = [
    "conv_matrix",
    "conv_nnz",
    "conv_output_shape",
    "conv_transpose_matrix",
    "conv_transpose_nnz",
    "conv_transpose_output_shape",
    "convolution_matrix",
    "correlation_matrix",
]

_AUTO: Final = "auto"


def _shape_arg(shape: object, name: str) -> tuple[int, ...]:
    return V.input_shape_tuple(shape, name)


def _finish(geom: Geometry, weight: np.ndarray, dtype: np.dtype, fmt: object, max_bytes: object, what: str
            ) -> sp.sparray:
    """Check the format and the budget (peak memory, before allocating), then build and convert."""
    fmt = V.sparse_format(fmt)
    budget = V.budget(max_bytes)
    rows, cols = geom.shape
    if max(rows, cols) > np.iinfo(np.int64).max:
        raise ValueError(f"{what} would have shape {rows:,} x {cols:,}; scipy.sparse indices are int64, so each "
                         f"dimension must stay below 2**63")
    check_budget(geom, dtype, budget, what, fmt, kernel_dtype=weight.dtype)
    try:
        return convert(build_csr(geom, weight, dtype), geom, fmt, budget, what)
    except MemoryError as exc:  # only without a budget (max_bytes=None) or if the machine has less than predicted
        if isinstance(exc, V.MatrixTooLargeError):
            raise
        raise V.MatrixTooLargeError(
            f"{what} could not be allocated: shape {rows:,} x {cols:,}, nnz {geom.nnz:,}, about "
            f"{V.nbytes_text(geom.predicted_bytes(dtype))} as CSR ({exc}); use convmatrix.ConvOperator (matrix-free, "
            f"same keywords) to apply it"
        ) from None


def matrix_from_geometry(geom: Geometry, kernel: ArrayLike, *, flip: bool = False, dtype: DTypeLike | None = None,
                         format: V.SparseFormat = "csr", max_bytes: V.MaxBytes = _AUTO) -> sp.sparray:
    """The matrix of a validated geometry and its kernel (what :func:`conv_matrix` and
    :func:`conv_transpose_matrix` build once they have made the geometry; pictures reuse theirs)."""
    k = V.kernel_array(kernel)
    if k.shape != geom.weight_shape:
        raise ValueError(f"kernel must have the shape of the geometry's kernel {geom.weight_shape}; got {k.shape}")
    what = "conv_matrix" if geom.kind == "conv" else "conv_transpose_matrix"
    return _finish(geom, geom.engine_weight(k, flip), V.result_dtype(k, dtype), format, max_bytes, what)


# ----------------------------------------------------------------------------- shapes
def conv_output_shape(
    input_shape: V.IntOrSequence,
    kernel_shape: V.IntOrSequence,
    *,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    dilation: V.IntOrSequence = 1,
) -> tuple[int, ...]:
    """Spatial output shape of ``torch.nn.functional.conv{d}d`` for this geometry.

    Parameters
    ----------
    input_shape : int or sequence of int
        Spatial input shape ``(n_0, ..., n_{d-1})``.
    kernel_shape : sequence of int
        Spatial kernel shape, or PyTorch's weight shape ``(C_out, C_in/groups, *k)``.
    stride, dilation : int or sequence of int
    padding : int, sequence, or ``"valid" | "same" | "same_lower" | "full"``

    Notes
    -----
    Per axis ``o = floor((n + p_before + p_after - d*(k-1) - 1) / s) + 1``.

    Examples
    --------
    >>> conv_output_shape((5, 5), (3, 3))
    (3, 3)
    >>> conv_output_shape((2, 2), (3, 3), padding="full")   # the seed's full convolution
    (4, 4)
    >>> conv_output_shape((7,), (3,), stride=2, padding="same")
    (4,)
    """
    ks = _shape_arg(kernel_shape, "kernel_shape")
    return conv_geometry(ks, input_shape, stride=stride, padding=padding, dilation=dilation).output_shape


def conv_transpose_output_shape(
    input_shape: V.IntOrSequence,
    kernel_shape: V.IntOrSequence,
    *,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    output_padding: V.IntOrSequence = 0,
    dilation: V.IntOrSequence = 1,
) -> tuple[int, ...]:
    """Spatial output shape of ``torch.nn.functional.conv_transpose{d}d``.

    Notes
    -----
    Per axis ``o = (n-1)*s - p_before - p_after + d*(k-1) + a + 1`` with output padding
    ``0 <= a < max(s, d)`` (PyTorch's rule).

    Examples
    --------
    >>> conv_transpose_output_shape((2, 2), (4, 4), stride=3)   # seed: (2-1)*3 + 4 = 7
    (7, 7)
    >>> conv_transpose_output_shape((3, 3), (3, 3), stride=2, padding=1)
    (5, 5)
    >>> conv_transpose_output_shape((3,), (3,), stride=2, padding=1, output_padding=1)
    (6,)
    """
    ks = _shape_arg(kernel_shape, "kernel_shape")
    return conv_transpose_geometry(ks, input_shape, stride=stride, padding=padding,
                                   output_padding=output_padding, dilation=dilation).output_shape


def conv_nnz(
    kernel_shape: V.IntOrSequence,
    input_shape: V.IntOrSequence,
    *,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    dilation: V.IntOrSequence = 1,
    groups: int = 1,
    padding_mode: V.PaddingMode = "zeros",
) -> int:
    """Exact number of stored entries of :func:`conv_matrix`, without building it.

    Parameters
    ----------
    kernel_shape : int or sequence of int
        Spatial kernel shape, or PyTorch's weight shape ``(C_out, C_in/groups, *k)``.
    input_shape : int or sequence of int
        Spatial input shape.
    stride, padding, dilation, groups, padding_mode
        As :func:`conv_matrix`.

    Returns
    -------
    int
        Every kernel tap counts as a stored entry; taps that a boundary mode folds onto the same
        input are one entry.  Computed in closed form (floor sums) for zeros, replicate and
        circular padding whatever the sizes; reflect and symmetric padding add their boundary rows
        one period at a time.

    See Also
    --------
    conv_transpose_nnz : the same for :func:`conv_transpose_matrix`.

    Examples
    --------
    >>> conv_nnz((3, 3), (5, 5))                 # 9 outputs x 9 taps
    81
    >>> conv_nnz((3, 3), (5, 5), padding=1)      # 25 rows, edges lose taps
    169
    >>> conv_nnz((3,), (5,), padding=10**8)      # closed form: nothing of the padding's size
    15
    """
    ks = _shape_arg(kernel_shape, "kernel_shape")
    return conv_geometry(ks, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode).nnz


def conv_transpose_nnz(
    kernel_shape: V.IntOrSequence,
    input_shape: V.IntOrSequence,
    *,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    output_padding: V.IntOrSequence = 0,
    dilation: V.IntOrSequence = 1,
    groups: int = 1,
    output_shape: V.IntOrSequence | None = None,
) -> int:
    """Exact number of stored entries of :func:`conv_transpose_matrix`, without building it.

    Parameters
    ----------
    kernel_shape : int or sequence of int
        Spatial kernel shape, or PyTorch's transposed weight shape ``(C_in, C_out/groups, *k)``.
    input_shape : int or sequence of int
        Spatial shape of the transposed convolution's input.
    stride, padding, output_padding, dilation, groups, output_shape
        As :func:`conv_transpose_matrix`.

    Returns
    -------
    int
        The entries of the convolution it transposes, in closed form.

    See Also
    --------
    conv_nnz : the same for :func:`conv_matrix`.

    Examples
    --------
    >>> conv_transpose_nnz((3,), (4,), stride=2)   # each of the 4 inputs spreads 3 taps
    12
    """
    ks = _shape_arg(kernel_shape, "kernel_shape")
    return conv_transpose_geometry(ks, input_shape, stride=stride, padding=padding, output_padding=output_padding,
                                   dilation=dilation, groups=groups, output_shape=output_shape).nnz


# ----------------------------------------------------------------------------- PyTorch family
def conv_matrix(
    kernel: ArrayLike,
    input_shape: V.IntOrSequence,
    *,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    dilation: V.IntOrSequence = 1,
    groups: int = 1,
    padding_mode: V.PaddingMode = "zeros",
    flip: bool = False,
    dtype: DTypeLike | None = None,
    format: V.SparseFormat = "csr",
    max_bytes: V.MaxBytes = _AUTO,
) -> sp.sparray:
    """Sparse matrix ``C`` of ``torch.nn.functional.conv{d}d``: ``C @ x.ravel() == conv(x).ravel()``.

    Parameters
    ----------
    kernel : array_like
        Spatial kernel (one channel in, one out) or PyTorch weight ``(C_out, C_in/groups, *k)``.
    input_shape : int or sequence of int
        Spatial input shape; its length is the number of spatial dimensions (any).
    stride, dilation : int or sequence of int, keyword-only
    padding : int, sequence of int or ``(before, after)`` pairs, or str
        ``"valid"``, ``"same"`` (TF/JAX SAME, odd element after), ``"same_lower"``, ``"full"``;
        any case (``"SAME"``, ``"Valid"``).
    groups : int
    padding_mode : {"zeros", "circular", "reflect", "replicate", "symmetric"}
        As PyTorch (``F.pad`` in that mode, then a valid convolution); ``"symmetric"`` is numpy's.
    flip : bool
        ``True`` rotates the kernel 180 degrees: true convolution as in MATLAB and the seed.
    dtype : dtype, optional
        Defaults to the kernel's (integer kernels give exact integer matrices).
    format : str
        Any scipy sparse format (default ``"csr"``); the result is a sparse *array*.
    max_bytes : int or None
        Refuse (``MatrixTooLargeError``) a matrix predicted larger; default: half the RAM.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(C_out * prod(output_shape), C_in * prod(input_shape))``.

    Notes
    -----
    Entry formula (one channel, per axis ``a``)::

        C[j, i] = sum over taps t with fold(j_a*s_a + t_a*d_a - p_before_a) == i_a of w[t]

    where ``fold`` drops the tap for ``"zeros"`` and maps it into the input for the other modes.
    Shapes:

    ============  ===============================  =============================
    vector        shape (C order)                  length
    ============  ===============================  =============================
    ``x``         ``(C_in, *input_shape)``         ``C.shape[1]``
    ``C @ x``     ``(C_out, *output_shape)``       ``C.shape[0]``
    ============  ===============================  =============================

    A 1-D valid cross-correlation with ``w = [a, b, c]`` on 5 inputs is Toeplitz::

        [a b c . .]
        [. a b c .]
        [. . a b c]

    Examples
    --------
    >>> import numpy as np
    >>> C = conv_matrix([1, 2, 3], (5,))
    >>> C.toarray()
    array([[1, 2, 3, 0, 0],
           [0, 1, 2, 3, 0],
           [0, 0, 1, 2, 3]])
    >>> x = np.arange(5)
    >>> bool(np.array_equal(C @ x, np.correlate(x, [1, 2, 3], "valid")))
    True
    >>> bool(np.array_equal(conv_matrix([1, 2, 3], (5,), flip=True, padding="full") @ x,
    ...                     np.convolve(x, [1, 2, 3])))
    True
    """
    k = V.kernel_array(kernel)
    out_dtype = V.result_dtype(k, dtype)
    flip = V.as_bool(flip, "flip")
    geom = conv_geometry(k.shape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode)
    return _finish(geom, geom.engine_weight(k, flip), out_dtype, format, max_bytes, "conv_matrix")


def conv_transpose_matrix(
    kernel: ArrayLike,
    input_shape: V.IntOrSequence,
    *,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    output_padding: V.IntOrSequence = 0,
    dilation: V.IntOrSequence = 1,
    groups: int = 1,
    output_shape: V.IntOrSequence | None = None,
    padding_mode: Literal["zeros"] = "zeros",
    dtype: DTypeLike | None = None,
    format: V.SparseFormat = "csr",
    max_bytes: V.MaxBytes = _AUTO,
) -> sp.sparray:
    """Sparse matrix of ``torch.nn.functional.conv_transpose{d}d`` (the transposed convolution).

    ``conv_transpose_matrix(w, n, ...) == conv_matrix(w, N, ...).T`` where ``N`` is the transposed
    output shape: the transposed convolution *is* the transpose of the convolution.  This holds
    whenever ``output_padding < stride`` on every axis (then the convolution of ``N`` has exactly
    ``n`` outputs).  PyTorch also allows ``stride <= output_padding < dilation``; the convolution
    of ``N`` then has ``floor(output_padding / stride)`` more outputs along that axis, and this
    matrix is the transpose of its columns for the first ``n`` outputs per axis.

    Parameters
    ----------
    kernel : array_like
        Spatial kernel or PyTorch's transposed weight ``(C_in, C_out/groups, *k)``.
    input_shape : sequence of int
        Spatial shape of the transposed convolution's input.
    output_padding : int or sequence
        Extra size at the end of each axis, ``0 <= a < stride or < dilation`` (PyTorch).
    output_shape : sequence of int, optional
        Wanted spatial output shape; derives ``output_padding`` (PyTorch's ``output_size``).
    padding_mode : {"zeros"}
        Only zeros, as PyTorch.

    Notes
    -----
    Per axis ``o = (n-1)*s - p_before - p_after + d*(k-1) + a + 1``; entry
    ``C[i, j] = w[t]`` when ``i == j*s + t*d - p_before`` (one copy of the kernel per input pixel,
    placed at stride ``s``, overlaps added: the seed's "fusion").

    Examples
    --------
    >>> import numpy as np
    >>> T = conv_transpose_matrix(np.ones((4, 4)), (2, 2), stride=3)   # the seed: 2x2 -> 7x7
    >>> T.shape
    (49, 4)
    >>> (T @ np.ones(4)).reshape(7, 7)[3]     # column 4 of each row gets two kernel copies
    array([2., 2., 2., 4., 2., 2., 2.])
    >>> C = conv_matrix(np.ones((4, 4)), (7, 7), stride=3)
    >>> bool((C.T != T).nnz == 0)
    True
    """
    k = V.kernel_array(kernel)
    out_dtype = V.result_dtype(k, dtype)
    V.padding_mode_name(padding_mode, allowed=("zeros",))
    geom = conv_transpose_geometry(k.shape, input_shape, stride=stride, padding=padding, output_padding=output_padding,
                                   dilation=dilation, groups=groups, output_shape=output_shape)
    return _finish(geom, geom.engine_weight(k), out_dtype, format, max_bytes, "conv_transpose_matrix")


# ----------------------------------------------------------------------------- scipy / MATLAB family
def _scipy_family(kernel: ArrayLike, input_shape: V.IntOrSequence, mode: V.ScipyMode, boundary: V.Boundary,
                  convention: V.Convention, order: object, fillvalue: float, dtype: DTypeLike | None, format: object,
                  max_bytes: object, correlate: bool, what: str) -> sp.sparray:
    k = V.kernel_array(kernel)
    out_dtype = V.result_dtype(k, dtype)
    shape = V.input_shape_tuple(input_shape)
    if not isinstance(order, str) or order not in ("C", "F"):
        raise ValueError(f"order must be 'C' (row-major ravel) or 'F' (MATLAB's column-major X(:)); got "
                         f"{V._describe(order)}")
    if isinstance(fillvalue, (bool, np.bool_)) or not isinstance(fillvalue, numbers.Number):
        raise TypeError(f"fillvalue must be the number 0; got {V._describe(fillvalue)}")
    if fillvalue != 0:  # type: ignore[comparison-overlap]  # mypy does not see int as a numbers.Number
        raise ValueError(f"fillvalue must be 0 (a nonzero fill makes the map affine, not linear); got {fillvalue!r}")
    if k.ndim != len(shape):
        raise ValueError(f"kernel must have as many dims as input_shape ({len(shape)}); got kernel shape {k.shape}")
    if correlate:
        # scipy conjugates the kernel; correlate2d (convention="matlab") does not when 'valid' swaps the
        # operands (it conjugates the input instead, which for real input leaves the kernel as is)
        swapped = mode == "valid" and all(kk >= n for kk, n in zip(k.shape, shape)) and k.shape != shape
        if k.dtype.kind == "c" and not (convention == "matlab" and swapped):
            k = np.conj(k)
    if order == "F":  # column-major ravel == row-major ravel of the axis-reversed arrays
        shape, k = shape[::-1], k.transpose()
    geom = scipy_geometry(k.shape, shape, mode, boundary, convention, correlate=correlate)
    # a true convolution is the correlation with the kernel rotated 180 degrees
    return _finish(geom, geom.engine_weight(k, flip=not correlate), out_dtype, format, max_bytes, what)


def convolution_matrix(
    kernel: ArrayLike,
    input_shape: V.IntOrSequence,
    mode: V.ScipyMode = "full",
    *,
    boundary: V.Boundary = "fill",
    convention: V.Convention = "scipy",
    order: Literal["C", "F"] = "C",
    fillvalue: float = 0,
    dtype: DTypeLike | None = None,
    format: V.SparseFormat = "csr",
    max_bytes: V.MaxBytes = _AUTO,
) -> sp.sparray:
    """Sparse matrix of ``scipy.signal.convolve`` / MATLAB ``conv2``/``convn``, any number of dims.

    ``C @ x.ravel(order)`` equals ``scipy.signal.convolve(x, kernel, mode).ravel(order)``; in 2-D it
    also equals ``scipy.signal.convolve2d(x, kernel, mode, boundary)``.

    Parameters
    ----------
    kernel : array_like
        N-D kernel, same number of dims as ``input_shape`` (may be larger than the input).
    input_shape : sequence of int
    mode : {"full", "same", "valid"}
    boundary : {"fill", "wrap", "symm"}
        Zero fill, periodic, or mirror-with-edge extension (scipy's ``convolve2d``), in any dims.
    convention : {"scipy", "matlab", "numpy"}
        ``"matlab"``: ``"same"`` keeps the central part as ``conv2`` does (start ``k//2`` of the
        full result instead of scipy's ``(k-1)//2``; they differ for even kernels).  ``"valid"``
        with a kernel larger than the input follows scipy (operands swapped, ``|n-k|+1``) in both
        conventions, where MATLAB would return an empty array.
        ``"numpy"``: ``np.convolve(x, kernel, mode)`` and ``scipy.linalg.convolution_matrix(kernel,
        n, mode)``, whose ``"same"`` keeps ``max(n, k)`` values (scipy.signal keeps ``n``) starting
        at ``(min(n, k)-1)//2`` of the full result.  In N-D the rule applies axis by axis (so
        ``"valid"`` may have the kernel longer on some axes only); zero fill only
        (``boundary="fill"``).
    order : {"C", "F"}
        Ravel order of ``x`` and ``y``; ``"F"`` is MATLAB's ``X(:)``, so
        ``convolution_matrix(H, (m, n), order="F")`` is ``convmtx2(H, m, n)``.

    Notes
    -----
    ``y[i] = sum_j x[j] * h[i - j + start]`` with ``start`` = 0 (full), the centring offset (same)
    or ``min(n,k)-1`` (valid), per axis; out-of-range ``x`` read through ``boundary``.
    Output lengths: full ``n+k-1``, same ``n`` (``max(n, k)`` with ``convention="numpy"``),
    valid ``|n-k|+1``.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.array([-1, 2, 3, -2, 0, 1, 2]); v = np.array([2, 4, -1, 1])
    >>> convolution_matrix(v, (7,), "same", convention="matlab") @ u    # MATLAB's doc example
    array([15,  5, -9,  7,  6,  7, -1])
    >>> bool(np.array_equal(convolution_matrix(v, (7,)) @ u, np.convolve(u, v)))
    True

    A kernel longer than the input: numpy's ``"same"`` keeps ``max(n, k)`` values, scipy.signal's ``n``:

    >>> h = np.array([1, 2, 3, 4]); x = np.array([5, -1])
    >>> convolution_matrix(h, (2,), "same", convention="numpy") @ x    # np.convolve(x, h, "same")
    array([ 5,  9, 13, 17])
    >>> convolution_matrix(h, (2,), "same") @ x                        # scipy.signal.convolve(x, h, "same")
    array([ 9, 13])
    """
    return _scipy_family(kernel, input_shape, mode, boundary, convention, order, fillvalue, dtype, format, max_bytes,
                         correlate=False, what="convolution_matrix")


def correlation_matrix(
    kernel: ArrayLike,
    input_shape: V.IntOrSequence,
    mode: V.ScipyMode = "full",
    *,
    boundary: V.Boundary = "fill",
    convention: V.Convention = "scipy",
    order: Literal["C", "F"] = "C",
    fillvalue: float = 0,
    dtype: DTypeLike | None = None,
    format: V.SparseFormat = "csr",
    max_bytes: V.MaxBytes = _AUTO,
) -> sp.sparray:
    """Sparse matrix of ``scipy.signal.correlate`` (``convention="matlab"``: ``correlate2d``/``filter2``).

    Complex kernels are conjugated, as scipy does.  For even kernels scipy's ``correlate`` and
    ``correlate2d`` centre ``"same"`` differently (scipy#1968): ``"scipy"`` follows ``correlate``,
    ``"matlab"`` follows ``correlate2d`` (MATLAB's ``filter2``), ``"numpy"`` follows
    ``np.correlate(x, kernel, mode)`` (``"same"`` keeps ``max(n, k)`` values; with the kernel
    the longer, numpy swaps the operands and reverses the result, which moves the window by one
    when ``n`` is even).  Parameters as :func:`convolution_matrix`.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import signal
    >>> x = np.arange(6.0); h = np.array([1.0, -1.0])
    >>> bool(np.allclose(correlation_matrix(h, (6,), "same") @ x, signal.correlate(x, h, "same")))
    True
    >>> correlation_matrix([1, 2, 3, 4], (2,), "same", convention="numpy") @ np.array([5, -1])
    array([11,  7,  3, -1])
    """
    return _scipy_family(kernel, input_shape, mode, boundary, convention, order, fillvalue, dtype, format, max_bytes,
                         correlate=True, what="correlation_matrix")
