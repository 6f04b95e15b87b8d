"""ConvOperator and ConvTransposeOperator: LinearOperators that apply conv_matrix / conv_transpose_matrix without the matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypedDict

import numpy.typing as npt

from .. import _validate as V
from .._validate import IntOrSequence, MaxBytes, Padding, PaddingMode, SparseFormat
from ..geometry import Geometry, conv_geometry, conv_transpose_geometry
from ._linear import _ConvLinearOperator as _ConvLinearOperator  # pickles of .T/.H made before the split
from ._plan import Method, _method_name, _operator_dtype, _Plan

if TYPE_CHECKING:
    from scipy.sparse import sparray

__all__ = ['ConvOperator', 'ConvTransposeOperator']


# ----------------------------------------------------------------------------- types of the arguments
class _ConvKeywords(TypedDict):
    """The keywords of :func:`convmatrix.conv_matrix` a ConvOperator was made with (for ``to_sparse``)."""

    stride: IntOrSequence
    padding: Padding
    dilation: IntOrSequence
    groups: int
    padding_mode: PaddingMode
    flip: bool
    dtype: npt.DTypeLike | None


class _ConvTransposeKeywords(TypedDict):
    """The keywords of :func:`convmatrix.conv_transpose_matrix` a ConvTransposeOperator was made with."""

    stride: IntOrSequence
    padding: Padding
    output_padding: IntOrSequence
    dilation: IntOrSequence
    groups: int
    output_shape: IntOrSequence | None
    padding_mode: Literal["zeros"]
    dtype: npt.DTypeLike | None


class ConvOperator(_ConvLinearOperator):
    """Matrix-free ``conv_matrix``: a :class:`~scipy.sparse.linalg.LinearOperator` for ``conv{d}d``.

    Takes exactly the keywords of :func:`convmatrix.conv_matrix` and applies the same matrix,
    to round-off, without building it: memory ``O(input + output)``.

    Parameters
    ----------
    kernel : array_like
        Spatial kernel (one channel in and out) or PyTorch weight ``(C_out, C_in/groups, *k)``.
    input_shape : int or sequence of int
        Spatial input shape (any number of dimensions).
    stride, padding, dilation, groups, padding_mode, flip, dtype
        As :func:`convmatrix.conv_matrix` (padding modes ``"zeros"``, ``"circular"``,
        ``"reflect"``, ``"replicate"``, ``"symmetric"``; ``flip=True`` is true convolution).
        The operator computes in ``dtype`` (default the kernel's); integer kernels compute in
        float64.
    method : {"auto", "direct", "fft"}
        ``"direct"``: strided views, im2col blocks of at most 8 MiB and BLAS GEMMs;
        ``"fft"``: ``scipy.fft`` (stride-1 correlation of the padded input, then the strided
        samples); ``"auto"``: FFT when its estimated cost is lower (large kernels) and the
        kernel spectrum is small enough to cache, among the routes that fit in ``max_bytes``.
    max_bytes : int, None or "auto"
        Peak bytes one product (``matvec``, ``rmatvec``, ``matmat``, ``rmatmat``, of this
        operator and of its ``.T``/``.H``) may allocate: ``"auto"`` (default) half the RAM,
        ``None`` no limit.  The peak of a product is predicted in closed form (padded copies,
        im2col blocks, FFT grids, the kernel spectrum it builds, the result) and a product
        predicted above it raises before allocating; the constructor already refuses an
        operator whose one-vector products cannot fit.

    Attributes
    ----------
    geometry : Geometry
        The validated geometry, the same object ``conv_matrix`` builds from.
    max_bytes : int or None
        The budget of one product, in bytes (shared with ``.T``, ``.H`` and the like).
    shape : tuple of int
        ``(C_out * prod(output_shape), C_in * prod(input_shape))``.
    input_vector_shape, output_vector_shape : tuple of int
        ``(C_in, *input_shape)`` and ``(C_out, *output_shape)`` (spatial only for a spatial kernel).

    Raises
    ------
    ValueError, TypeError
        Invalid keywords (as :func:`convmatrix.conv_matrix`; ``flip`` must be a bool, ``method``
        one of the three).  Products raise ``TypeError``/``ValueError`` naming the argument for
        anything but a numeric array of the right shape (the contents are never printed).
    MatrixTooLargeError
        One product of a single vector is predicted above ``max_bytes`` (e.g. ``method="fft"``
        forced with many channels, or a padding far wider than the input); products with more
        vectors or a wider dtype are checked when called.

    Notes
    -----
    ``matvec``, ``rmatvec`` (the adjoint ``C^H``: complex kernels conjugated), ``matmat`` and
    ``rmatmat`` (columns are vectors), ``.T`` (transpose, no conjugation) and ``.H`` are all
    available; ``to_sparse()`` builds ``conv_matrix`` with the same keywords.  The forward map is

    ``y[o, j] = sum_{c, t} w[o, c, t] * x_pad[g(o)*C_in/groups + c, j*s + t*d]``,

    ``x_pad[m] = x[fold(m - p_before)]``; the adjoint scatters ``conj(w)`` back along the same
    positions and adds each padded position onto the input it was folded from.

    ``A(x)`` (the same as :func:`convmatrix.apply`) also takes the volume ``(C_in, *input_shape)``
    and a batch ``(N, C_in, *input_shape)``, PyTorch's layout, and returns ``(C_out,
    *output_shape)`` / ``(N, C_out, *output_shape)``; numpy arrays give numpy arrays and CPU torch
    tensors torch tensors (differentiable: the gradient is ``A.H`` applied to the incoming one),
    here and in every product.  ``A @ x`` keeps to flat vectors and columns: an array with more
    axes is refused with one line pointing to ``A(x)``.

    A dask array (``pip install convmatrix[dask]``) may be passed to ``matvec``/``rmatvec``
    (a flat vector or the volume ``input_vector_shape``, lazily, with ``map_overlap``) or to
    ``matmat``/``rmatmat`` (``(N, K)``, one column chunk per task).

    See Also
    --------
    convmatrix.conv_matrix : The explicit matrix of the same map (``to_sparse()``).
    ConvTransposeOperator : The transposed convolution, matrix-free.
    convmatrix.apply : ``C @ X`` for numpy and dask arrays.
    scipy.sparse.linalg.LinearOperator : The interface (``lsqr``, ``cg``, ``svds`` take it).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> A = cm.ConvOperator([1.0, 2.0, 3.0], (5,))
    >>> A.shape
    (3, 5)
    >>> A @ np.arange(5.0)
    array([ 8., 14., 20.])
    >>> A.T @ np.ones(3)
    array([1., 3., 6., 5., 3.])
    >>> w = np.random.default_rng(0).standard_normal((4, 2, 3, 3))
    >>> B = cm.ConvOperator(w, (9, 8), stride=2, padding=1, padding_mode="reflect")
    >>> x = np.random.default_rng(1).standard_normal(B.shape[1])
    >>> bool(np.allclose(B @ x, B.to_sparse() @ x))
    True
    >>> X = np.random.default_rng(2).standard_normal((5, 2, 9, 8))     # (N, C, H, W)
    >>> B(X).shape
    (5, 4, 5, 4)
    """

    def __init__(
        self,
        kernel: npt.ArrayLike,
        input_shape: IntOrSequence,
        *,
        stride: IntOrSequence = 1,
        padding: Padding = 0,
        dilation: IntOrSequence = 1,
        groups: int = 1,
        padding_mode: PaddingMode = "zeros",
        flip: bool = False,
        dtype: npt.DTypeLike | None = None,
        method: Method = "auto",
        max_bytes: MaxBytes = "auto",
    ) -> None:
        k = V.kernel_array(kernel)
        mdtype = V.result_dtype(k, dtype)
        flip = V.as_bool(flip, "flip")
        method = _method_name(method)
        budget = V.budget(max_bytes)
        geom = conv_geometry(k.shape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                             padding_mode=padding_mode)
        odtype = _operator_dtype(mdtype)
        if odtype != mdtype:  # integers computed in float64: as an explicit dtype=float64 would, refuse inexact ones
            V.check_values_fit(k, odtype, "the kernel value", "the operator computes integer kernels in float64; "
                               "conv_matrix keeps them exact")
        plan = _Plan(geom, geom.engine_weight(k, flip).astype(odtype), method, budget)
        self.geometry: Geometry = geom
        self.kernel = k
        self.method = method
        self._keywords = _ConvKeywords(stride=stride, padding=padding, dilation=dilation, groups=groups,
                                       padding_mode=padding_mode, flip=flip, dtype=dtype)
        super().__init__(plan, "forward", False, odtype, geom.channel_axis)
        self._check_construction()

    def _build(self, *, format: SparseFormat = "csr", max_bytes: MaxBytes = "auto") -> sparray:
        from ..matrices import conv_matrix

        return conv_matrix(self.kernel, self.geometry.input_shape, format=format, max_bytes=max_bytes,
                           **self._keywords)

    def to_sparse(self, *, format: SparseFormat = "csr", max_bytes: MaxBytes = "auto") -> sparray:
        """``conv_matrix`` with this operator's keywords (exactly; refused above ``max_bytes``).

        Parameters
        ----------
        format : str, keyword-only
            Any scipy sparse format (default ``"csr"``).
        max_bytes : int, None or "auto", keyword-only
            Refuse a matrix whose build is predicted to need more memory at its peak; ``"auto"``
            (default): half the RAM; ``None``: no limit.

        Returns
        -------
        scipy.sparse.sparray
            The explicit matrix, entry for entry the one this operator applies.

        Raises
        ------
        MatrixTooLargeError
            The build is predicted to need more than ``max_bytes``.
        ValueError
            An unknown format.

        See Also
        --------
        convmatrix.conv_matrix : The builder, with the same keywords.

        Examples
        --------
        >>> import convmatrix as cm
        >>> cm.ConvOperator([[1, 2], [3, 4]], (3, 3)).to_sparse().toarray()
        array([[1, 2, 0, 3, 4, 0, 0, 0, 0],
               [0, 1, 2, 0, 3, 4, 0, 0, 0],
               [0, 0, 0, 1, 2, 0, 3, 4, 0],
               [0, 0, 0, 0, 1, 2, 0, 3, 4]])
        """
        return self._build(format=format, max_bytes=max_bytes)


class ConvTransposeOperator(_ConvLinearOperator):
    """Matrix-free ``conv_transpose_matrix``: ``conv_transpose{d}d`` as a LinearOperator.

    Takes exactly the keywords of :func:`convmatrix.conv_transpose_matrix`; it is the transpose
    (not conjugated) of the :class:`ConvOperator` of the same weight on the transposed output shape.

    Parameters
    ----------
    kernel : array_like
        Spatial kernel or PyTorch's transposed weight ``(C_in, C_out/groups, *k)``.
    input_shape : int or sequence of int
        Spatial shape of the transposed convolution's input.
    stride, padding, output_padding, dilation, groups, output_shape, padding_mode, dtype
        As :func:`convmatrix.conv_transpose_matrix` (``padding_mode`` only ``"zeros"``).
    method : {"auto", "direct", "fft"}
        As :class:`ConvOperator`.
    max_bytes : int, None or "auto"
        As :class:`ConvOperator`: the peak bytes one product may allocate.

    Attributes
    ----------
    geometry : Geometry
        The validated geometry, the same object ``conv_transpose_matrix`` builds from.
    max_bytes : int or None
        The budget of one product, in bytes (shared with ``.T``, ``.H`` and the like).
    shape : tuple of int
        ``(C_out * prod(output_shape), C_in * prod(input_shape))``.
    input_vector_shape, output_vector_shape : tuple of int
        ``(C_in, *input_shape)`` and ``(C_out, *output_shape)`` (spatial only for a spatial kernel).

    See Also
    --------
    convmatrix.conv_transpose_matrix : The explicit matrix of the same map (``to_sparse()``).
    ConvOperator : The convolution it transposes, matrix-free.

    Raises
    ------
    ValueError, TypeError, MatrixTooLargeError
        As :class:`ConvOperator`.

    Notes
    -----
    Per axis ``o = (n-1)*s - p_before - p_after + d*(k-1) + a + 1``; the forward map scatters
    one kernel copy per input position ``i`` at ``i*s + t*d - p_before`` (the "fusion" of kernel copies);
    ``rmatvec`` is the (conjugated) strided convolution.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> T = cm.ConvTransposeOperator(np.ones((4, 4)), (2, 2), stride=3)   # 2x2 -> (2-1)*3 + 4 = 7
    >>> T.shape
    (49, 4)
    >>> (T @ np.ones(4)).reshape(7, 7)[3]
    array([2., 2., 2., 4., 2., 2., 2.])
    >>> T(np.ones((1, 2, 2)))[0, 3]                  # A(x) keeps the layout: (C, H, W) in and out
    array([2., 2., 2., 4., 2., 2., 2.])
    """

    def __init__(
        self,
        kernel: npt.ArrayLike,
        input_shape: IntOrSequence,
        *,
        stride: IntOrSequence = 1,
        padding: Padding = 0,
        output_padding: IntOrSequence = 0,
        dilation: IntOrSequence = 1,
        groups: int = 1,
        output_shape: IntOrSequence | None = None,
        padding_mode: Literal["zeros"] = "zeros",
        dtype: npt.DTypeLike | None = None,
        method: Method = "auto",
        max_bytes: MaxBytes = "auto",
    ) -> None:
        k = V.kernel_array(kernel)
        mdtype = V.result_dtype(k, dtype)
        V.padding_mode_name(padding_mode, allowed=("zeros",))
        method = _method_name(method)
        budget = V.budget(max_bytes)
        geom = conv_transpose_geometry(k.shape, input_shape, stride=stride, padding=padding,
                                       output_padding=output_padding, dilation=dilation, groups=groups,
                                       output_shape=output_shape)
        odtype = _operator_dtype(mdtype)
        if odtype != mdtype:  # integers computed in float64: as an explicit dtype=float64 would, refuse inexact ones
            V.check_values_fit(k, odtype, "the kernel value", "the operator computes integer kernels in float64; "
                               "conv_matrix keeps them exact")
        # the weight (C_in, C_out/g, *k) is the conv weight of the convolution N-space -> n-space
        forward = geom.forward
        plan = _Plan(forward, forward.engine_weight(k).astype(odtype), method, budget)
        self.geometry: Geometry = geom
        self.kernel = k
        self.method = method
        self._keywords = _ConvTransposeKeywords(stride=stride, padding=padding, output_padding=output_padding,
                                                dilation=dilation, groups=groups, output_shape=output_shape,
                                                padding_mode=padding_mode, dtype=dtype)
        super().__init__(plan, "transpose", False, odtype, geom.channel_axis)
        self._check_construction()

    def _build(self, *, format: SparseFormat = "csr", max_bytes: MaxBytes = "auto") -> sparray:
        from ..matrices import conv_transpose_matrix

        return conv_transpose_matrix(self.kernel, self.geometry.input_shape, format=format, max_bytes=max_bytes,
                                     **self._keywords)

    def to_sparse(self, *, format: SparseFormat = "csr", max_bytes: MaxBytes = "auto") -> sparray:
        """``conv_transpose_matrix`` with this operator's keywords (exactly; refused above ``max_bytes``).

        Parameters
        ----------
        format : str, keyword-only
            Any scipy sparse format (default ``"csr"``).
        max_bytes : int, None or "auto", keyword-only
            Refuse a matrix whose build is predicted to need more memory at its peak; ``"auto"``
            (default): half the RAM; ``None``: no limit.

        Returns
        -------
        scipy.sparse.sparray
            The explicit matrix, entry for entry the one this operator applies.

        Raises
        ------
        MatrixTooLargeError
            The build is predicted to need more than ``max_bytes``.
        ValueError
            An unknown format.

        See Also
        --------
        convmatrix.conv_transpose_matrix : The builder, with the same keywords.
        """
        return self._build(format=format, max_bytes=max_bytes)
