"""The affine map of a network, ``x -> M @ x + b``, and its composition by sparse products.

:class:`AffineMap` is what :func:`~convmatrix.from_torch` and :func:`~convmatrix.from_onnx`
return.  While a network is walked, each layer gives a :class:`Step` (its matrix, offset and
output shape; no matrix for a pure reshape) and a :class:`Value` (the map from the network's
input to one tensor) takes it on with one sparse product, whose peak memory is predicted and
checked against the budget before it is computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NoReturn, cast

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .. import _validate as V
from .._given import unmasked

__all__ = ["AffineMap", "Step", "Value", "check_nnz", "product_bytes"]

_INT32_MAX = int(np.iinfo(np.int32).max)


def _index_bytes(*sizes: int) -> int:
    """Bytes of one index of scipy's CSR arrays for these sizes (int32 when every one fits)."""
    return 4 if max(sizes) <= _INT32_MAX else 8


def _csr_bytes(nnz: int, rows: int, cols: int, dtype: np.dtype) -> int:
    it = _index_bytes(nnz, rows, cols)
    return nnz * (dtype.itemsize + it) + (rows + 1) * it


def _matrix_bytes(m: sp.csr_array | None) -> int:
    if m is None:
        return 0
    return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)


def check_nnz(what: str, nnz: int, rows: int, dtype: np.dtype, budget: int | None, cols: int = 0) -> None:
    """Refuse (before building) a matrix of ``nnz`` entries and ``rows`` rows larger than the budget."""
    V.check_bytes(what, _csr_bytes(nnz, rows, cols, dtype), budget, "pass a larger max_bytes (None: no limit)")


def product_bytes(left: sp.csr_array, right: sp.csr_array) -> int:
    """Upper bound of the peak bytes of ``left @ right`` on top of its operands (closed form, O(n)).

    The product has at most ``sum_k nnz(left[:, k]) * nnz(right[k, :])`` entries (and at most
    one per position); scipy counts them first, then fills the result with two work arrays of
    one entry per column.
    """
    per_k = np.bincount(left.indices, minlength=left.shape[1]).astype(np.int64) * np.diff(right.indptr)
    rows, cols = left.shape[0], right.shape[1]
    nnz = min(int(per_k.sum(dtype=np.int64)), rows * cols)
    dtype = np.dtype(np.result_type(left.dtype, right.dtype))
    return int(_csr_bytes(nnz, rows, cols, dtype) + 3 * 8 * cols)


@dataclass(frozen=True)
class Step:
    """One layer: ``y = matrix @ x + offset`` with output shape ``shape`` (``matrix=None``: ``y = x``, reshaped)."""

    matrix: sp.csr_array | None
    offset: npt.NDArray[Any] | None
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Value:
    """A tensor of the network as an affine function of the network's input.

    ``matrix=None`` is the identity (the input itself, maybe reshaped); ``offset=None`` is zero.
    """

    matrix: sp.csr_array | None
    offset: npt.NDArray[Any] | None
    shape: tuple[int, ...]
    in_size: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def then(self, step: Step, budget: int | None, where: str) -> Value:
        """This value followed by ``step`` (one sparse product, checked against ``budget`` first)."""
        if math.prod(step.shape) != (self.size if step.matrix is None else step.matrix.shape[0]):
            raise AssertionError(f"internal error: {where} gives shape {step.shape} for {step.matrix!r}")
        if step.matrix is None:
            if step.offset is None:
                return Value(self.matrix, self.offset, step.shape, self.in_size)
            return Value(self.matrix, step.offset if self.offset is None else self.offset + step.offset, step.shape,
                         self.in_size)
        if step.matrix.shape[1] != self.size:
            raise AssertionError(f"internal error: {where} expects {step.matrix.shape[1]} inputs, gets {self.size}")
        if self.matrix is None:
            matrix = step.matrix
        else:
            need = _matrix_bytes(self.matrix) + _matrix_bytes(step.matrix) + product_bytes(step.matrix, self.matrix)
            V.check_bytes(f"the product with {where} ({step.matrix.shape[0]:,} x {self.matrix.shape[1]:,})", need,
                          budget, "pass a larger max_bytes (None: no limit)")
            matrix = sp.csr_array(step.matrix @ self.matrix)
        offset = step.offset
        if self.offset is not None:
            moved = step.matrix @ self.offset
            offset = moved if offset is None else moved + offset
        return Value(matrix, offset, step.shape, self.in_size)

    def plus(self, other: Value, sign: int, dtype: np.dtype, budget: int | None, where: str) -> Value:
        """``self + sign * other`` (two values of the same shape, maps of the same input)."""
        eye = sp.eye_array(self.in_size, format="csr", dtype=dtype)
        a = eye if self.matrix is None else self.matrix
        b = eye if other.matrix is None else other.matrix
        need = _matrix_bytes(a) + _matrix_bytes(b) + _csr_bytes(a.nnz + b.nnz, a.shape[0], a.shape[1], dtype)
        V.check_bytes(f"the sum at {where}", need, budget, "pass a larger max_bytes (None: no limit)")
        matrix = sp.csr_array(a + b if sign > 0 else a - b)
        if self.offset is None and other.offset is None:
            offset = None
        else:
            zero = np.zeros(self.size, dtype)
            x = zero if self.offset is None else self.offset
            y = zero if other.offset is None else other.offset
            offset = x + y if sign > 0 else x - y
        return Value(matrix, offset, self.shape, self.in_size)

    def finish(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...], dtype: np.dtype) -> AffineMap:
        matrix = sp.eye_array(self.in_size, format="csr", dtype=dtype) if self.matrix is None else self.matrix
        matrix = sp.csr_array(matrix, dtype=dtype)
        matrix.sum_duplicates()
        offset = np.zeros(self.size, dtype) if self.offset is None else np.asarray(self.offset, dtype=dtype)
        return AffineMap(matrix, offset, input_shape=input_shape, output_shape=output_shape)


def _numbers(value: object, name: str) -> npt.NDArray[Any]:
    """``value`` as a numeric array (a masked array only without masked entries); errors name ``name``."""
    arr = V.as_array(unmasked(value, name), name)
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"{name} must hold numbers (bool, integer, float or complex); got dtype {arr.dtype}")
    return arr


def _sparse_matrix(matrix: object) -> sp.csr_array:
    """An :class:`AffineMap`'s matrix as a CSR array: a 2-D numeric array or sparse matrix (a 1-D array is one
    row)."""
    if sp.issparse(matrix):
        S = cast("sp.sparray", matrix)
        if len(S.shape) != 2:
            raise ValueError(f"matrix must be 2-D; got a sparse array of shape {S.shape}")
        if S.dtype.kind not in "biufc":
            raise TypeError(f"matrix must hold numbers; got dtype {S.dtype}")
        return sp.csr_array(S)
    arr = np.atleast_2d(_numbers(matrix, "matrix"))
    if arr.ndim != 2:
        raise ValueError(f"matrix must be 2-D; got an array of shape {arr.shape}")
    if arr.dtype == np.float16:
        raise TypeError("matrix dtype float16 is not supported by scipy.sparse; convert it to float32")
    return sp.csr_array(arr)


class AffineMap:
    """An affine map ``x -> matrix @ x + offset`` between two array shapes: the exact map of a network.

    Parameters
    ----------
    matrix : sparse array or matrix, or array_like
        Shape ``(prod(output_shape), prod(input_shape))``; stored as a ``scipy.sparse.csr_array``.
    offset : array_like, optional
        Length ``prod(output_shape)`` (the biases, constants, ...); default zeros.
    input_shape, output_shape : tuple of int
        One sample, no batch dimension.  Vectors are C-order ravels of arrays of these shapes.

    Attributes
    ----------
    matrix : scipy.sparse.csr_array
    offset : numpy.ndarray
    input_shape, output_shape : tuple of int

    Raises
    ------
    TypeError
        A matrix, offset (or, when called, ``x``) that does not hold numbers (bool, integer, float
        or complex; float16 has no sparse matrix), or a torch tensor that requires grad; ``A @ x``
        (the map is applied by calling it, ``A(x)``).
    ValueError
        A matrix that is not 2-D or not of shape ``(prod(output_shape), prod(input_shape))``, an
        offset of the wrong length, a masked array with masked entries, an ``x`` of neither shape.

    See Also
    --------
    convmatrix.from_torch, convmatrix.from_onnx : the map of a PyTorch module or an ONNX graph.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> A = cm.AffineMap(np.array([[1.0, 2.0]]), [3.0], input_shape=(2,), output_shape=(1,))
    >>> A(np.array([1.0, 1.0]))
    array([6.])
    >>> A(np.ones((4, 2))).shape          # a batch: (N, *input_shape) -> (N, *output_shape)
    (4, 1)
    >>> B = A.then(cm.AffineMap([[2.0]], [-1.0], input_shape=(1,), output_shape=(1,)))
    >>> B(np.array([1.0, 1.0]))           # 2 * 6 - 1
    array([11.])
    """

    __slots__ = ("input_shape", "matrix", "offset", "output_shape")

    matrix: sp.csr_array
    offset: npt.NDArray[Any]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    def __init__(self, matrix: npt.ArrayLike | sp.sparray | sp.spmatrix, offset: npt.ArrayLike | None = None, *,
                 input_shape: V.IntOrSequence, output_shape: V.IntOrSequence) -> None:
        ins = V.input_shape_tuple(input_shape)
        outs = V.input_shape_tuple(output_shape, "output_shape")
        m = _sparse_matrix(matrix)
        want = (math.prod(outs), math.prod(ins))
        if m.shape != want:
            raise ValueError(f"matrix must have shape (prod(output_shape), prod(input_shape)) = {want}; got {m.shape}")
        if offset is None:
            b = np.zeros(want[0], m.dtype)
        else:
            b = _numbers(offset, "offset")
            if b.shape != (want[0],):
                raise ValueError(f"offset must be a 1-D array of length prod(output_shape) = {want[0]}; got shape "
                                 f"{b.shape}")
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "offset", b)
        object.__setattr__(self, "input_shape", ins)
        object.__setattr__(self, "output_shape", outs)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AffineMap is immutable; cannot set {name!r}")

    __array_ufunc__ = None  # numpy defers to __rmatmul__ below instead of making an object array of the map

    def __matmul__(self, other: object) -> NoReturn:
        raise TypeError("an AffineMap is applied by calling it, A(x) (x of shape input_shape or (N, *input_shape)), "
                        "and composed with A.then(B); A.matrix is its sparse matrix")

    __rmatmul__ = __matmul__

    @property
    def dtype(self) -> np.dtype:
        """The matrix's dtype."""
        return cast(np.dtype, np.dtype(self.matrix.dtype))

    def __repr__(self) -> str:
        return (f"AffineMap(input_shape={self.input_shape}, output_shape={self.output_shape}, "
                f"nnz={self.matrix.nnz}, dtype={self.matrix.dtype})")

    def __call__(self, x: npt.ArrayLike) -> npt.NDArray[Any]:
        """``matrix @ x + offset`` for ``x`` of shape ``input_shape`` or ``(N, *input_shape)``, reshaped."""
        arr = _numbers(x, "x")
        if arr.shape == self.input_shape:
            return np.asarray(self.matrix @ arr.ravel() + self.offset).reshape(self.output_shape)
        if arr.ndim == len(self.input_shape) + 1 and arr.shape[1:] == self.input_shape:
            flat = arr.reshape(arr.shape[0], -1)
            out = (self.matrix @ flat.T).T + self.offset
            return np.asarray(out).reshape((arr.shape[0], *self.output_shape))
        raise ValueError(f"x must have shape input_shape {self.input_shape} or (N, *input_shape); got {arr.shape}")

    def then(self, other: AffineMap, *, max_bytes: V.MaxBytes = "auto") -> AffineMap:
        """``other`` applied after this map: ``x -> other(self(x))``, one sparse product.

        Parameters
        ----------
        other : AffineMap
            Its ``input_shape`` must be this map's ``output_shape`` (the same number of entries
            is enough: vectors are C-order ravels).
        max_bytes : int, None or "auto", keyword-only
            Refuse (``MatrixTooLargeError``) a product predicted to need more at its peak.
        """
        if not isinstance(other, AffineMap):
            raise TypeError(f"other must be an AffineMap; got {type(other).__name__}")
        if math.prod(other.input_shape) != math.prod(self.output_shape):
            raise ValueError(f"other.input_shape {other.input_shape} does not match this map's output_shape "
                             f"{self.output_shape}")
        budget = V.budget(max_bytes)
        dtype = np.result_type(self.matrix.dtype, other.matrix.dtype)
        here = Value(self.matrix, self.offset, self.output_shape, math.prod(self.input_shape))
        out = here.then(Step(other.matrix, other.offset, other.output_shape), budget, "other")
        return out.finish(self.input_shape, other.output_shape, np.dtype(dtype))
