"""``apply``: ``C @ X`` for an explicit matrix or an operator, ``X`` a numpy or a dask array."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast, overload

import numpy as np
import numpy.typing as npt
from scipy.sparse.linalg import LinearOperator

from ._dask import _import_dask, _is_dask, _matmul_block
from .operators import _ConvLinearOperator, _vectors

if TYPE_CHECKING:
    from dask.array import Array as DaskArray
    from scipy.sparse import sparray, spmatrix

__all__ = ['apply']


@overload
def apply(C: np.ndarray | sparray | spmatrix | LinearOperator, X: DaskArray) -> DaskArray: ...
@overload
def apply(C: np.ndarray | sparray | spmatrix | LinearOperator, X: npt.ArrayLike) -> np.ndarray: ...


def apply(C: np.ndarray | sparray | spmatrix | LinearOperator, X: npt.ArrayLike | DaskArray) -> np.ndarray | DaskArray:
    """``C @ X`` for an explicit matrix or an operator, with ``X`` a numpy or a dask array.

    Parameters
    ----------
    C : scipy sparse matrix/array, numpy array, or LinearOperator
        The matrix, e.g. from :func:`conv_matrix`, or an operator such as :class:`ConvOperator`.
    X : array_like or dask.array.Array
        A vector ``(N,)`` or a batch of column vectors ``(N, K)``.  A ConvOperator also takes the
        input volume ``C.input_vector_shape`` as a dask array (convolved chunk by chunk).

    Returns
    -------
    ndarray or dask.array.Array
        ``C @ X``; lazy when ``X`` is a dask array.  For an explicit ``C`` and a dask ``(N, K)``
        batch, each column chunk of ``X`` is one task ``C @ X_chunk`` and ``C`` enters the task
        graph once (``dask.delayed``), so a distributed scheduler ships it to each worker once.

    Raises
    ------
    TypeError
        ``C`` is not a 2-D matrix or a LinearOperator, or ``X`` is not a numeric array.
    ValueError
        ``X`` does not have ``C.shape[1]`` rows (or the operator's input volume shape).

    See Also
    --------
    ConvOperator : A matrix-free operator, which ``apply`` also takes.
    dask.array.Array : The lazy, chunked arrays it takes.

    Notes
    -----
    Needs the optional extra for dask inputs: ``pip install convmatrix[dask]``.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> C = cm.conv_matrix([1.0, -1.0], (4,))
    >>> cm.apply(C, np.arange(4.0))
    array([-1., -1., -1.])
    """
    if isinstance(C, _ConvLinearOperator):
        if _is_dask(X):
            return cast("DaskArray", C.dot(X))
        X = _vectors(X, "X", C.shape[1], matrix=None)
        return C.matvec(X) if X.ndim == 1 else C.matmat(X)
    if not (hasattr(C, "shape") and len(getattr(C, "shape", ())) == 2):
        raise TypeError(f"C must be a 2-D matrix (sparse or dense) or a LinearOperator; got {type(C).__name__}")
    if not _is_dask(X):
        y: np.ndarray = C @ _vectors(X, "X", C.shape[1], matrix=None)
        return y
    da = _import_dask()
    from dask.delayed import delayed  # what dask.delayed names

    rows, cols = C.shape
    if X.shape[0] != cols:
        raise ValueError(f"X must have C.shape[1] = {cols} rows (vectors as columns); got shape {X.shape}")
    dt = np.result_type(X.dtype, getattr(C, "dtype", np.float64))
    if X.ndim == 1:
        vector: DaskArray = apply(C, X[:, None])[:, 0]
        return vector
    if X.ndim != 2:
        raise ValueError(f"X must be a vector (N,) or a batch of column vectors (N, K); got shape {X.shape}")
    batch = X.rechunk({0: -1})  # type: ignore[no-untyped-call]
    Cd = delayed(C, pure=True)
    result: DaskArray = da.map_blocks(_matmul_block, Cd, batch, dtype=dt, chunks=((rows,), batch.chunks[1]),
                                      meta=np.empty((0, 0), dt))
    return result
