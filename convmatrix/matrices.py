"""Public sparse builders: validate -> Geometry -> engine.  No index arithmetic lives here."""

from __future__ import annotations

import numbers
from typing import Final, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, DTypeLike

from . import _tiny
from . import _validate as V
from ._build import build_csr, check_budget, no_memory_error
from ._formats import convert
from ._memo import from_memo, memo_key, recall, remember
from .geometry import Geometry, conv_geometry, conv_transpose_geometry, scipy_geometry
from .shapes import conv_nnz, conv_output_shape, conv_transpose_nnz, conv_transpose_output_shape

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
_INT64_MAX: Final = int(np.iinfo(np.int64).max)


def _finish(geom: Geometry, weight: np.ndarray, dtype: np.dtype, fmt: object, max_bytes: object, what: str,
            key: tuple[object, ...] | None = None, extra: tuple[bool, ...] = ()) -> sp.sparray:
    """Check the format and the budget (peak memory, before allocating), then build and convert.

    A tiny fold-free geometry with a budget of at least :data:`convmatrix._tiny.FLOOR` is built in one table
    (:mod:`convmatrix._tiny`: the engine's check would pass it); anything else is predicted and built by the
    engine.  With ``key`` (the call's arguments, see :func:`convmatrix._memo.memo_key`) a small build is
    remembered for the next call."""
    fmt = V.sparse_format(fmt)
    budget = V.budget(max_bytes)
    rows, cols = geom.shape
    if max(rows, cols) > _INT64_MAX:
        raise ValueError(f"{what} would have shape {rows:,} x {cols:,}; scipy.sparse indices are int64, so each "
                         f"dimension must stay below 2**63")
    tiny = _tiny.eligible(geom, dtype) and (budget is None or budget >= _tiny.FLOOR)
    floor = (None if budget is None else _tiny.FLOOR) if tiny else \
        check_budget(geom, dtype, budget, what, fmt, kernel_dtype=weight.dtype)
    try:
        csr = (_tiny.build if tiny else build_csr)(geom, weight, dtype)
        out = convert(csr, geom, fmt, budget, what)
    except MemoryError as exc:  # only without a budget (max_bytes=None) or if the machine has less than predicted
        if isinstance(exc, V.MatrixTooLargeError):
            raise
        raise no_memory_error(geom, dtype, what, exc) from None
    remember(key, geom, floor, csr.nnz, extra)
    return out


def matrix_from_geometry(geom: Geometry, kernel: ArrayLike, *, flip: bool = False, dtype: DTypeLike | None = None,
                         format: V.SparseFormat = "csr", max_bytes: V.MaxBytes = _AUTO) -> sp.sparray:
    """The matrix of a validated geometry and its kernel (what :func:`conv_matrix` and
    :func:`conv_transpose_matrix` build once they have made the geometry; pictures reuse theirs)."""
    k = V.kernel_array(kernel)
    if k.shape != geom.weight_shape:
        raise ValueError(f"kernel must have the shape of the geometry's kernel {geom.weight_shape}; got {k.shape}")
    what = "conv_matrix" if geom.kind == "conv" else "conv_transpose_matrix"
    return _finish(geom, geom.engine_weight(k, flip), V.result_dtype(k, dtype), format, max_bytes, what)


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
    stride : int or sequence of int, keyword-only
        Step of the sliding window per spatial axis (default 1).
    padding : int, sequence of int or of ``(before, after)`` pairs, or str, keyword-only
        Implicit padding per axis (default 0), or ``"valid"`` (none), ``"same"`` (output size
        ``ceil(n / s)``, the odd element after, as TensorFlow/JAX), ``"same_lower"`` (odd element
        before) or ``"full"`` (``d*(k-1)`` on each side); any case (``"SAME"``, ``"Valid"``).
    dilation : int or sequence of int, keyword-only
        Spacing between kernel taps per axis (default 1).
    groups : int, keyword-only
        Number of channel groups (default 1), as PyTorch: ``C_in`` and ``C_out`` are divisible by
        it, and output channel ``o`` reads only the input channels of its group.
    padding_mode : {"zeros", "circular", "reflect", "replicate", "symmetric"}, keyword-only
        As PyTorch (``F.pad`` in that mode, then a valid convolution); ``"symmetric"`` is numpy's.
    flip : bool, keyword-only
        ``True`` rotates the kernel 180 degrees: true convolution, as MATLAB's ``conv2`` and the
        textbook definition; ``False`` (default) is PyTorch's cross-correlation.
    dtype : dtype, optional, keyword-only
        Defaults to the kernel's (integer kernels give exact integer matrices).
    format : str, keyword-only
        Any scipy sparse format (default ``"csr"``); the result is a sparse *array*.
    max_bytes : int, None or "auto", keyword-only
        Refuse (:class:`MatrixTooLargeError`, before allocating) a matrix whose build is predicted
        to need more memory at its peak; ``"auto"`` (default): half the RAM; ``None``: no limit.

    Returns
    -------
    scipy.sparse.sparray
        A ``csr_array`` (or the ``format`` asked for) of shape
        ``(C_out * prod(output_shape), C_in * prod(input_shape))``.

    Raises
    ------
    ValueError
        An invalid geometry (sizes, strides or dilations that are not positive, negative
        padding, lengths that do not match the number of spatial axes, a kernel larger than the
        padded input, channels not divisible by ``groups``), an unknown padding mode or format,
        a kernel with NaN or inf, or a ``dtype`` that cannot hold the kernel's values.
    TypeError
        An argument of the wrong type (e.g. a non-numeric kernel, a float stride, a non-bool
        ``flip``).
    MatrixTooLargeError
        The matrix is predicted to need more than ``max_bytes`` to build.

    See Also
    --------
    conv_transpose_matrix : The transposed convolution's matrix (``C.T``).
    ConvOperator : The same map, matrix-free.
    convolution_matrix : scipy.signal / MATLAB semantics (``mode``, ``boundary``).
    conv_output_shape : The output shape, without building anything.
    conv_nnz : The number of stored entries, without building anything.

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

    ``C @ x`` is :func:`torch.nn.functional.conv2d` (and its 1-D and 3-D siblings, for any
    number of dimensions) [1]_; the sizes follow Dumoulin & Visin [2]_.

    References
    ----------
    .. [1] PyTorch documentation, ``torch.nn.functional.conv2d`` and ``torch.nn.Conv2d``.
    .. [2] V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
       arXiv:1603.07285, 2016.

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
    key = memo_key(input_shape, stride, padding, dilation, groups, padding_mode, format)
    if key is not None:
        key = ("conv_matrix", k.shape, k.dtype, out_dtype, flip, *key)
        recalled = recall(key, max_bytes)
        if recalled is not None:
            geom = recalled[0].geom
            return from_memo(recalled, k, lambda a: geom.engine_weight(a, flip), out_dtype, format, max_bytes,
                             "conv_matrix", _finish)
    try:
        geom = conv_geometry(k.shape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                             padding_mode=padding_mode)
    except (TypeError, ValueError) as exc:
        raise V.with_swap_hint(exc, kernel, input_shape, lambda ks, n: conv_geometry(
            ks, n, stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode)) from None
    return _finish(geom, geom.engine_weight(k, flip), out_dtype, format, max_bytes, "conv_matrix", key)


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
    input_shape : int or sequence of int
        Spatial shape of the transposed convolution's input.
    stride : int or sequence of int, keyword-only
        Stride of the convolution that this one transposes (default 1): the spacing of the
        kernel copies in the output.
    padding : int, sequence of int or of ``(before, after)`` pairs, or str, keyword-only
        Padding of the convolution that this one transposes (default 0; the words of
        :func:`conv_matrix` too), cropped from the output; a negative padding adds zero rows
        (outputs) instead, as ONNX's SAME needs when the stride exceeds the kernel's extent.
    output_padding : int or sequence of int, keyword-only
        Extra size at the end of each axis, ``0 <= a < stride or < dilation`` (PyTorch).
    dilation : int or sequence of int, keyword-only
        Spacing between kernel taps per axis (default 1).
    groups : int, keyword-only
        Number of channel groups (default 1), as PyTorch.
    output_shape : int or sequence of int, optional, keyword-only
        Wanted spatial output shape; derives ``output_padding`` (PyTorch's ``output_size``).
    padding_mode : {"zeros"}, keyword-only
        Only zeros, as PyTorch.
    dtype : dtype, optional, keyword-only
        Defaults to the kernel's (integer kernels give exact integer matrices).
    format : str, keyword-only
        Any scipy sparse format (default ``"csr"``); the result is a sparse *array*.
    max_bytes : int, None or "auto", keyword-only
        Refuse (:class:`MatrixTooLargeError`, before allocating) a matrix whose build is predicted
        to need more memory at its peak; ``"auto"`` (default): half the RAM; ``None``: no limit.

    Returns
    -------
    scipy.sparse.sparray
        A ``csr_array`` (or the ``format`` asked for) of shape
        ``(C_out * prod(output_shape), C_in * prod(input_shape))``, where ``C_in`` is the
        transposed convolution's input channels (the weight's first axis).

    Raises
    ------
    ValueError
        An invalid geometry (as :func:`conv_transpose_output_shape`; also an ``output_shape``
        that no output padding reaches, or given together with ``output_padding``), a padding
        mode other than ``"zeros"``, an unknown format, a kernel with NaN or inf.
    TypeError
        An argument of the wrong type.
    MatrixTooLargeError
        The matrix is predicted to need more than ``max_bytes`` to build.

    See Also
    --------
    conv_matrix : The convolution it transposes.
    ConvTransposeOperator : The same map, matrix-free.
    conv_transpose_output_shape : The output shape, without building anything.
    convmatrix.check_transpose : Compare it with independent constructions.

    Notes
    -----
    Per axis ``o = (n-1)*s - p_before - p_after + d*(k-1) + a + 1``; entry
    ``C[i, j] = w[t]`` when ``i == j*s + t*d - p_before`` (one copy of the kernel per input pixel,
    placed at stride ``s``, overlaps added: the "fusion" of the article
    "卷积神经网络CNN——图像卷积与反卷积(后卷积,转置卷积)" [2]_).  ``T @ y`` is
    :func:`torch.nn.functional.conv_transpose2d` (any number of dimensions) [1]_; Dumoulin &
    Visin [3]_ derive it as the transpose of the convolution's matrix.

    References
    ----------
    .. [1] PyTorch documentation, ``torch.nn.functional.conv_transpose2d`` and
       ``torch.nn.ConvTranspose2d``.
    .. [2] "卷积神经网络CNN——图像卷积与反卷积(后卷积,转置卷积)" (Convolutional neural networks:
       image convolution and deconvolution, also called transposed convolution).
    .. [3] V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
       arXiv:1603.07285, 2016, chapter 4.

    Examples
    --------
    >>> import numpy as np
    >>> T = conv_transpose_matrix(np.ones((4, 4)), (2, 2), stride=3)   # 2x2 -> (2-1)*3 + 4 = 7
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
    key = memo_key(input_shape, stride, padding, output_padding, dilation, groups, output_shape, format)
    if key is not None:
        key = ("conv_transpose_matrix", k.shape, k.dtype, out_dtype, *key)
        recalled = recall(key, max_bytes)
        if recalled is not None:
            geom = recalled[0].geom
            return from_memo(recalled, k, geom.engine_weight, out_dtype, format, max_bytes, "conv_transpose_matrix", _finish)
    def transposed(ks: tuple[int, ...], n: V.IntOrSequence) -> Geometry:
        return conv_transpose_geometry(ks, n, stride=stride, padding=padding, output_padding=output_padding,
                                       dilation=dilation, groups=groups, output_shape=output_shape)

    try:
        geom = transposed(k.shape, input_shape)
    except (TypeError, ValueError) as exc:
        raise V.with_swap_hint(exc, kernel, input_shape, transposed) from None
    return _finish(geom, geom.engine_weight(k), out_dtype, format, max_bytes, "conv_transpose_matrix", key)


# ----------------------------------------------------------------------------- scipy / MATLAB family
def _scipy_family(kernel: ArrayLike, input_shape: V.IntOrSequence, mode: V.ScipyMode, boundary: V.Boundary,
                  convention: V.Convention, order: object, fillvalue: float, dtype: DTypeLike | None, format: object,
                  max_bytes: object, correlate: bool, what: str) -> sp.sparray:
    k = V.kernel_array(kernel)
    out_dtype = V.result_dtype(k, dtype)
    key = memo_key(input_shape, mode, boundary, convention, order, fillvalue, format)
    if key is not None:
        key = (what, k.shape, k.dtype, out_dtype, *key)
        recalled = recall(key, max_bytes)
        if recalled is not None:
            geom = recalled[0].geom
            conj, transpose = recalled[0].extra

            def place(a: np.ndarray) -> np.ndarray:
                return geom.engine_weight(a.transpose() if transpose else a, flip=not correlate)

            return from_memo(recalled, np.conj(k) if conj else k, place, out_dtype, format, max_bytes, what, _finish)
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
    conj = False
    if correlate:
        # scipy conjugates the kernel; correlate2d (convention="matlab") does not when 'valid' swaps the
        # operands (it conjugates the input instead, which for real input leaves the kernel as is)
        # (isinstance first: an array or a sparse matrix compared with a string is not a bool; scipy_geometry
        # refuses such a mode or convention just below)
        swapped = isinstance(mode, str) and mode == "valid" and all(kk >= n for kk, n in zip(k.shape, shape)) \
            and k.shape != shape
        if k.dtype.kind == "c" and not (isinstance(convention, str) and convention == "matlab" and swapped):
            k = np.conj(k)
            conj = True
    if order == "F":  # column-major ravel == row-major ravel of the axis-reversed arrays
        shape, k = shape[::-1], k.transpose()
    geom = scipy_geometry(k.shape, shape, mode, boundary, convention, correlate=correlate)
    # a true convolution is the correlation with the kernel rotated 180 degrees
    return _finish(geom, geom.engine_weight(k, flip=not correlate), out_dtype, format, max_bytes, what, key,
                   (conj, order == "F"))


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
    input_shape : int or sequence of int
        Shape of the input array ``x`` (one channel, any number of dimensions).
    mode : {"full", "same", "valid"}
        Output size per axis: ``n+k-1``, ``n`` or ``|n-k|+1``, as ``scipy.signal.convolve``.
    boundary : {"fill", "wrap", "symm"}, keyword-only
        Zero fill, periodic, or mirror-with-edge extension (scipy's ``convolve2d``), in any dims.
    convention : {"scipy", "matlab", "numpy"}, keyword-only
        ``"matlab"``: ``"same"`` keeps the central part as ``conv2`` does (start ``k//2`` of the
        full result instead of scipy's ``(k-1)//2``; they differ for even kernels).  ``"valid"``
        with a kernel larger than the input follows scipy (operands swapped, ``|n-k|+1``) in both
        conventions, where MATLAB would return an empty array.
        ``"numpy"``: ``np.convolve(x, kernel, mode)`` and ``scipy.linalg.convolution_matrix(kernel,
        n, mode)``, whose ``"same"`` keeps ``max(n, k)`` values (scipy.signal keeps ``n``) starting
        at ``(min(n, k)-1)//2`` of the full result.  In N-D the rule applies axis by axis (so
        ``"valid"`` may have the kernel longer on some axes only); zero fill only
        (``boundary="fill"``).
    order : {"C", "F"}, keyword-only
        Ravel order of ``x`` and ``y``; ``"F"`` is MATLAB's ``X(:)``, so
        ``convolution_matrix(H, (m, n), order="F")`` is ``convmtx2(H, m, n)``.
    fillvalue : float, keyword-only
        Only 0 (default), as scipy's ``fillvalue`` with ``boundary="fill"``: a nonzero fill makes
        the map affine, not linear.
    dtype : dtype, optional, keyword-only
        Defaults to the kernel's (integer kernels give exact integer matrices).
    format : str, keyword-only
        Any scipy sparse format (default ``"csr"``); the result is a sparse *array*.
    max_bytes : int, None or "auto", keyword-only
        Refuse (:class:`MatrixTooLargeError`, before allocating) a matrix whose build is predicted
        to need more memory at its peak; ``"auto"`` (default): half the RAM; ``None``: no limit.

    Returns
    -------
    scipy.sparse.sparray
        A ``csr_array`` (or the ``format`` asked for) of shape
        ``(prod(output_shape), prod(input_shape))``.

    Raises
    ------
    ValueError
        A kernel whose number of dims is not ``len(input_shape)``, an unknown ``mode``,
        ``boundary``, ``convention``, ``order`` or format, a nonzero ``fillvalue``, a kernel
        with NaN or inf.
    TypeError
        An argument of the wrong type.
    MatrixTooLargeError
        The matrix is predicted to need more than ``max_bytes`` to build.

    See Also
    --------
    correlation_matrix : The same for ``scipy.signal.correlate``.
    conv_matrix : PyTorch semantics (stride, dilation, channels, padding modes).
    scipy.signal.convolve, scipy.signal.convolve2d : What ``C @ x`` computes.

    Notes
    -----
    ``y[i] = sum_j x[j] * h[i - j + start]`` with ``start`` = 0 (full), the centring offset (same)
    or ``min(n,k)-1`` (valid), per axis; out-of-range ``x`` read through ``boundary``.
    Output lengths: full ``n+k-1``, same ``n`` (``max(n, k)`` with ``convention="numpy"``), valid ``|n-k|+1``.  The semantics are those of
    :func:`scipy.signal.convolve` and ``convolve2d`` [1]_ and of MATLAB's ``conv2``, ``convn`` and
    ``convmtx2`` [2]_.

    References
    ----------
    .. [1] SciPy documentation, ``scipy.signal.convolve`` and ``scipy.signal.convolve2d``.
    .. [2] MATLAB documentation, ``conv2``, ``convn`` and ``convmtx2``.

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
    ``correlate2d`` centre ``"same"`` differently (scipy#1968) [1]_: ``"scipy"`` follows ``correlate``,
    ``"matlab"`` follows ``correlate2d`` (MATLAB's ``filter2``) [2]_, ``"numpy"`` follows
    ``np.correlate(x, kernel, mode)`` (``"same"`` keeps ``max(n, k)`` values; with the kernel
    the longer, numpy swaps the operands and reverses the result, which moves the window by one
    when ``n`` is even).

    Parameters
    ----------
    kernel : array_like
        N-D kernel, same number of dims as ``input_shape`` (may be larger than the input).
    input_shape : int or sequence of int
        Shape of the input array ``x`` (one channel, any number of dimensions).
    mode : {"full", "same", "valid"}
        Output size per axis: ``n+k-1``, ``n`` or ``|n-k|+1``, as ``scipy.signal.correlate``.
    boundary : {"fill", "wrap", "symm"}, keyword-only
        Zero fill, periodic, or mirror-with-edge extension (scipy's ``correlate2d``), in any dims.
    convention : {"scipy", "matlab", "numpy"}, keyword-only
        Which centring of ``"same"`` (see above); ``"numpy"`` also keeps ``max(n, k)`` values
        and, in N-D, applies numpy's rule axis by axis (zero fill only).
    order : {"C", "F"}, keyword-only
        Ravel order of ``x`` and ``y``; ``"F"`` is MATLAB's ``X(:)``.
    fillvalue : float, keyword-only
        Only 0 (default), as scipy's ``fillvalue`` with ``boundary="fill"``: a nonzero fill makes
        the map affine, not linear.
    dtype : dtype, optional, keyword-only
        Defaults to the kernel's (integer kernels give exact integer matrices).
    format : str, keyword-only
        Any scipy sparse format (default ``"csr"``); the result is a sparse *array*.
    max_bytes : int, None or "auto", keyword-only
        Refuse (:class:`MatrixTooLargeError`, before allocating) a matrix whose build is predicted
        to need more memory at its peak; ``"auto"`` (default): half the RAM; ``None``: no limit.

    Returns
    -------
    scipy.sparse.sparray
        A ``csr_array`` (or the ``format`` asked for) of shape
        ``(prod(output_shape), prod(input_shape))``.

    Raises
    ------
    ValueError
        A kernel whose number of dims is not ``len(input_shape)``, an unknown ``mode``,
        ``boundary``, ``convention``, ``order`` or format, a nonzero ``fillvalue``, a kernel
        with NaN or inf.
    TypeError
        An argument of the wrong type.
    MatrixTooLargeError
        The matrix is predicted to need more than ``max_bytes`` to build.

    See Also
    --------
    convolution_matrix : The same for ``scipy.signal.convolve``.
    conv_matrix : PyTorch semantics (a cross-correlation too).
    scipy.signal.correlate, scipy.signal.correlate2d : What ``C @ x`` computes.

    References
    ----------
    .. [1] SciPy documentation, ``scipy.signal.correlate`` and ``scipy.signal.correlate2d``;
       scipy issue #1968 (the centring of ``"same"``).
    .. [2] MATLAB documentation, ``filter2`` and ``xcorr2``.

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
