"""A convolution's matrix or operator handed to PyTorch, JAX or PyLops.

:func:`to_torch` (a ``torch`` sparse CSR tensor), :func:`to_jax` (a
``jax.experimental.sparse.BCOO`` matrix) and :func:`to_pylops` (a PyLops ``LinearOperator``).
Each library is imported when its function is called, never by ``import convmatrix``; a missing
one raises an ``ImportError`` naming the extra that installs it.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from . import _validate as V
from ._validate import MaxBytes

if TYPE_CHECKING:
    from jax.experimental.sparse import BCOO
    from pylops import LinearOperator as PyLopsOperator
    from scipy.sparse import sparray, spmatrix
    from torch import Tensor
    from typing_extensions import TypeIs

    from .operator import ConvOperator, ConvTransposeOperator
    from .operator._linear import _ConvLinearOperator

__all__ = ["to_jax", "to_pylops", "to_torch"]

#: what the exports take: an explicit matrix or a convmatrix operator (``.T``/``.H`` included)
MatrixLike: TypeAlias = "sparray | spmatrix | np.ndarray | ConvOperator | ConvTransposeOperator | LinearOperator"

#: the pip package and the convmatrix extra of each optional library
_EXTRAS = {"torch": ("torch", "torch"), "jax": ("jax", "jax"), "pylops": ("pylops", "pylops")}


def _optional(module: str, what: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming the extra that installs it."""
    package, extra = _EXTRAS[module.partition(".")[0]]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs the optional dependency {package}: pip install convmatrix[{extra}]") from exc


def _is_conv_operator(C: object) -> TypeIs[_ConvLinearOperator]:
    from .operator._linear import _ConvLinearOperator

    return isinstance(C, _ConvLinearOperator)


def _csr(C: MatrixLike, what: str, max_bytes: MaxBytes, least: Callable[[int, int], int] | None = None
         ) -> sp.csr_array:
    """``C`` (a ConvOperator-like, a scipy sparse matrix/array or a 2-D numpy array) as a canonical CSR array.

    No copy when ``C`` is already a canonical CSR matrix; an operator builds its matrix within ``max_bytes``.
    ``least(rows, nnz)``: a lower bound of the caller's need, refused before ``C`` is read (checking a CSR's
    canonical form walks its row pointers: seconds and MB for 10**8 empty rows).
    """
    if _is_conv_operator(C):
        built: sp.csr_array = C.to_sparse(format="csr", max_bytes=max_bytes)
        return built
    budget = V.budget(max_bytes)
    if isinstance(C, np.ndarray) and not isinstance(C, np.ma.MaskedArray):
        if C.ndim != 2:
            raise ValueError(f"C must be a 2-D matrix; got a numpy array of shape {C.shape}")
        _numeric_dtype(C.dtype)
        nnz = int(np.count_nonzero(C))
        V.check_bytes(f"{what} of a dense {C.shape[0]}x{C.shape[1]} matrix", _csr_bytes(nnz, C.shape[0], C.dtype),
                      budget, "pass a sparse matrix, or a larger max_bytes (or max_bytes=None)")
        return sp.csr_array(C)
    if not sp.issparse(C):
        raise TypeError(f"C must be a scipy sparse matrix or array, a 2-D numpy array, or a ConvOperator / "
                        f"ConvTransposeOperator; got {type(C).__name__}")
    S: Any = C
    if S.ndim != 2:
        raise ValueError(f"C must be a 2-D sparse matrix; got shape {S.shape}")
    _numeric_dtype(S.dtype)
    if least is not None:
        V.refuse_at_least(f"{what} of a {S.shape[0]}x{S.shape[1]} matrix with {S.nnz:,} entries",
                          least(int(S.shape[0]), int(S.nnz)), budget, "pass a larger max_bytes (or max_bytes=None)")
    if S.format != "csr":
        V.check_bytes(f"{what} of a {S.format} matrix with {S.nnz:,} stored entries (to CSR)",
                      _csr_bytes(S.nnz, S.shape[0], S.dtype), budget,
                      "pass it in CSR format, or a larger max_bytes (or max_bytes=None)")
    out = sp.csr_array(S)  # shares the arrays of a CSR input
    if not out.has_canonical_format:  # duplicates summed, columns sorted: on a copy, never on the caller's matrix
        out = out.copy()
        out.sum_duplicates()
    return out


def _numeric_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in "biufc":
        raise TypeError(f"C must have a numeric dtype (bool, integer, float or complex); got dtype {dtype}")
    if dtype == np.float16:
        raise TypeError("C dtype float16 is not supported by scipy.sparse; convert it to float32")


def _csr_bytes(nnz: int, rows: int, dtype: np.dtype, index: int = 8) -> int:
    return nnz * (np.dtype(dtype).itemsize + index) + (rows + 1) * index


def _jax_bytes(nnz: int, rows: int, itemsize: int, index: int) -> int:
    """Peak of :func:`to_jax`: the host arrays, then JAX's copies; the row numbers are made from an arange and the
    row lengths (one each per row)."""
    return 2 * nnz * (itemsize + 2 * index) + rows * (index + 8)


def _index_dtype(shape: tuple[int, ...], nnz: int) -> np.dtype:
    return np.dtype(np.int32 if max(*shape, nnz) < 2**31 else np.int64)


# ----------------------------------------------------------------------------- PyTorch
def to_torch(C: MatrixLike, *, max_bytes: MaxBytes = "auto") -> Tensor:
    """The matrix as a ``torch`` sparse CSR tensor: the same entries and dtype, on the CPU.

    Parameters
    ----------
    C : scipy sparse matrix or array, 2-D numpy array, ConvOperator or ConvTransposeOperator
        The matrix (an operator's is built with :meth:`~convmatrix.ConvOperator.to_sparse`).
    max_bytes : int, None or "auto"
        Peak bytes of the new arrays (the tensor's copy, and an operator's matrix or a
        conversion to CSR): ``"auto"`` is half the RAM, ``None`` no limit.

    Returns
    -------
    torch.Tensor
        ``layout=torch.sparse_csr``, ``shape == C.shape``, values of ``C``'s dtype (duplicates
        summed, columns sorted within rows), int32 indices when they fit (int64 otherwise).
        The tensor owns copies of the arrays: changing one does not change the other.

    Raises
    ------
    ImportError
        PyTorch is not installed (``pip install convmatrix[torch]``).
    TypeError
        ``C`` is not a matrix, or its dtype has no torch counterpart.
    MatrixTooLargeError
        The copy is predicted above ``max_bytes``.

    See Also
    --------
    to_jax, to_pylops, convmatrix.apply : ``C @ x`` for torch tensors without converting ``C``

    Examples
    --------
    >>> import numpy as np, torch
    >>> import convmatrix as cm
    >>> C = cm.conv_matrix(np.array([[1.0, 2.0], [3.0, 4.0]]), (3, 3))
    >>> S = cm.to_torch(C)
    >>> S.layout, S.dtype, tuple(S.shape)
    (torch.sparse_csr, torch.float64, (4, 9))
    >>> x = torch.arange(9.0, dtype=torch.float64)
    >>> bool(np.allclose((S @ x).numpy(), C @ x.numpy()))
    True
    """
    torch = _optional("torch", "to_torch")
    budget = V.budget(max_bytes)
    S = _csr(C, "to_torch", max_bytes, lambda rows, nnz: _csr_bytes(nnz, rows, np.dtype(C.dtype), 4))
    idx = np.dtype(np.int32) if S.indptr.dtype == S.indices.dtype == np.int32 else np.dtype(np.int64)
    V.check_bytes(f"to_torch of a {S.shape[0]}x{S.shape[1]} matrix with {S.nnz:,} entries",
                  _csr_bytes(S.nnz, S.shape[0], S.dtype, idx.itemsize), budget,
                  "pass a larger max_bytes (or max_bytes=None)")
    try:
        values = torch.from_numpy(np.array(S.data, copy=True))
    except TypeError:
        raise TypeError(f"C has dtype {S.dtype}, which torch has no dtype for: pass C.astype(np.float64) "
                        f"(or another float or complex dtype)") from None
    crow = torch.from_numpy(S.indptr.astype(idx, copy=True))
    col = torch.from_numpy(S.indices.astype(idx, copy=True))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta", category=UserWarning)
        out: Tensor = torch.sparse_csr_tensor(crow, col, values, size=S.shape, dtype=values.dtype,
                                              check_invariants=False)  # canonical by construction
    return out


# ----------------------------------------------------------------------------- JAX
def to_jax(C: MatrixLike, *, dtype: npt.DTypeLike | None = None, max_bytes: MaxBytes = "auto") -> BCOO:
    """The matrix as a ``jax.experimental.sparse.BCOO`` array: the same entries, sorted and unique.

    Parameters
    ----------
    C : scipy sparse matrix or array, 2-D numpy array, ConvOperator or ConvTransposeOperator
        The matrix (an operator's is built with :meth:`~convmatrix.ConvOperator.to_sparse`).
    dtype : data-type, optional
        The values' dtype; default ``C``'s, or, when JAX's 64-bit types are off (JAX's default;
        ``jax.config.update("jax_enable_x64", True)`` turns them on), its 32-bit counterpart
        with a ``UserWarning`` (float64 entries rounded to float32, as ``jax.numpy.asarray``
        does).  A 64-bit ``dtype`` asked for without 64-bit types is refused.
    max_bytes : int, None or "auto"
        Peak bytes of the new arrays (host copies, and an operator's matrix or a conversion to
        CSR): ``"auto"`` is half the RAM, ``None`` no limit.

    Returns
    -------
    jax.experimental.sparse.BCOO
        ``shape == C.shape``, ``n_batch == n_dense == 0``, indices ``(nnz, 2)`` (row, column) in
        row-major order (``indices_sorted=True``, ``unique_indices=True``); ``M @ x`` and
        ``M.T @ y`` are JAX operations (``jit``, ``grad`` and ``vmap`` apply).

    Raises
    ------
    ImportError
        JAX is not installed (``pip install convmatrix[jax]``).
    TypeError
        ``C`` is not a matrix, or ``dtype`` is not a numeric dtype.
    ValueError
        ``dtype`` (or int64 indices, for a matrix with 2**31 rows or more) needs JAX's 64-bit
        mode; an entry does not fit in the dtype (an int64 beyond int32, say).

    Warns
    -----
    UserWarning
        ``C`` is 64-bit and JAX's 64-bit types are off: the matrix is made in 32 bits.
    MatrixTooLargeError
        The copies are predicted above ``max_bytes``.

    See Also
    --------
    to_torch, to_pylops

    Examples
    --------
    >>> import numpy as np, jax
    >>> import convmatrix as cm
    >>> C = cm.conv_matrix(np.array([1.0, 2.0, 3.0]), (5,))
    >>> M = cm.to_jax(C, dtype=np.float32)
    >>> M.shape, M.nse, M.dtype
    ((3, 5), 9, dtype('float32'))
    >>> np.asarray(M @ np.arange(5.0, dtype=np.float32))
    array([ 8., 14., 20.], dtype=float32)
    """
    _optional("jax", "to_jax")
    jax = importlib.import_module("jax")
    jnp = importlib.import_module("jax.numpy")
    jsparse = importlib.import_module("jax.experimental.sparse")
    if dtype is not None:
        try:
            want = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be a numpy data type (or None for C's); got {dtype!r}") from None
        if want.kind not in "iufc":
            raise TypeError(f"dtype must be a numeric dtype (integer, float or complex; not bool); got {want}")
    budget = V.budget(max_bytes)
    if dtype is not None and hasattr(C, "dtype"):
        have = np.dtype(C.dtype)
        integers = have.kind in "iub" and want.kind in "iu"  # any integer dtype, if the values fit (checked below)
        if not integers and not np.can_cast(have, want, casting="same_kind"):
            raise TypeError(f"dtype {want} cannot hold C's dtype {have} (e.g. float -> integer, complex -> real)")
    S = _csr(C, "to_jax", max_bytes, lambda rows, nnz: _jax_bytes(nnz, rows, 1, 4))  # the least item sizes
    dt = S.dtype if dtype is None else want
    if dt.kind in "fc" and dt.itemsize > (16 if dt.kind == "c" else 8):  # JAX has no extended precision
        raise TypeError(f"{'dtype' if dtype is not None else 'C'} is {dt}, which JAX has no type for: pass "
                        f"{'dtype=np.float64 or np.complex128' if dtype is not None else 'C.astype(np.float64)'}")
    held = np.dtype(jax.dtypes.canonicalize_dtype(dt))
    x64 = "jax.config.update('jax_enable_x64', True)"
    if held != dt:
        if dtype is not None:
            raise ValueError(f"dtype is {dt}, which JAX holds only with 64-bit types enabled: call {x64} first, "
                             f"or pass dtype='{held}'")
        warnings.warn(f"to_jax: C has dtype {dt} and JAX's 64-bit types are off, so the matrix is {held} (values "
                      f"rounded, as jax.numpy.asarray does); call {x64} first to keep {dt}", UserWarning,
                      stacklevel=2)
        dt = held
    V.check_values_fit(S.data, dt, "the entry", f"call {x64} first" if held != S.dtype else
                       "pass a wider dtype or none (C's own)")
    idx = _index_dtype(S.shape, S.nnz)
    if np.dtype(jax.dtypes.canonicalize_dtype(idx)) != idx:
        raise ValueError(f"C has {S.shape[0]:,} rows and {S.shape[1]:,} columns: its indices need int64, which JAX "
                         f"holds only with jax.config.update('jax_enable_x64', True)")
    need = _jax_bytes(S.nnz, S.shape[0], dt.itemsize, idx.itemsize)
    V.check_bytes(f"to_jax of a {S.shape[0]}x{S.shape[1]} matrix with {S.nnz:,} entries", need, budget,
                  "pass a larger max_bytes (or max_bytes=None)")
    indices = np.empty((S.nnz, 2), idx)
    indices[:, 0] = np.repeat(np.arange(S.shape[0], dtype=idx), np.diff(S.indptr))
    indices[:, 1] = S.indices
    data = jnp.asarray(S.data.astype(dt))
    out: BCOO = jsparse.BCOO((data, jnp.asarray(indices)), shape=tuple(S.shape), indices_sorted=True,
                             unique_indices=True)
    return out


# ----------------------------------------------------------------------------- PyLops
def to_pylops(C: MatrixLike) -> PyLopsOperator:
    """A PyLops ``LinearOperator`` applying ``C`` (matrix-free for an operator, no copy for a matrix).

    Parameters
    ----------
    C : ConvOperator, ConvTransposeOperator (or their ``.T``/``.H``), scipy sparse matrix or array,
        2-D numpy array, or any scipy ``LinearOperator``

    Returns
    -------
    pylops.LinearOperator
        Same shape, ``dtype`` the operator's (float64 for an integer or boolean matrix), ``.H``
        the adjoint; it passes ``pylops.utils.dottest``.  For a convmatrix operator ``dims`` /
        ``dimsd`` are its ``input_vector_shape`` / ``output_vector_shape``, so ``Op @ x`` takes
        the volume as PyLops operators do; for a matrix ``pylops.MatrixMult`` wraps it.

    Raises
    ------
    ImportError
        PyLops is not installed (``pip install convmatrix[pylops]``).
    TypeError
        ``C`` is none of the above.

    See Also
    --------
    to_torch, to_jax

    Examples
    --------
    >>> import numpy as np, pylops
    >>> import convmatrix as cm
    >>> Op = cm.to_pylops(cm.ConvOperator(np.ones((2, 1, 3, 3)), (6, 5), padding=1))
    >>> Op.shape, Op.dims, Op.dimsd
    ((60, 30), (1, 6, 5), (2, 6, 5))
    >>> bool(pylops.utils.dottest(Op, *Op.shape, rtol=1e-10))
    True
    """
    pylops = _optional("pylops", "to_pylops")
    if isinstance(C, pylops.LinearOperator):
        return C
    if _is_conv_operator(C):
        return pylops.LinearOperator(Op=C, dims=C.input_vector_shape, dimsd=C.output_vector_shape)
    if sp.issparse(C) or (isinstance(C, np.ndarray) and not isinstance(C, np.ma.MaskedArray)):
        if C.ndim != 2:
            raise ValueError(f"C must be a 2-D matrix; got shape {C.shape}")
        _numeric_dtype(C.dtype)
        dt = C.dtype if C.dtype.kind in "fc" else np.dtype(np.float64)
        return pylops.MatrixMult(C, dtype=dt)
    if isinstance(C, LinearOperator):
        return pylops.LinearOperator(Op=C)
    raise TypeError(f"C must be a ConvOperator / ConvTransposeOperator, a scipy sparse matrix or array, a 2-D numpy "
                    f"array or a scipy LinearOperator; got {type(C).__name__}")
