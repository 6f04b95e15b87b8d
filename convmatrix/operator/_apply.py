"""``apply``: ``C @ X`` for an explicit matrix or an operator, ``X`` a numpy array, a torch tensor or a dask array."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast, overload

import numpy as np
import numpy.typing as npt
from scipy.sparse.linalg import LinearOperator

from ._dask import _import_dask, _is_dask, _matmul_block
from ._linear import _ConvLinearOperator
from ._tensors import _through_torch, _vectors

if TYPE_CHECKING:
    from dask.array import Array as DaskArray
    from scipy.sparse import sparray, spmatrix
    from torch import Tensor

__all__ = ['apply']

_NO_GEOMETRY = ("an explicit matrix has no spatial shape: for (C, *spatial) or (N, C, *spatial) arrays use the "
                "operator (cm.ConvOperator or cm.ConvTransposeOperator with the matrix's arguments), or pass "
                "X.reshape(N, -1).T")


@overload
def apply(C: np.ndarray | sparray | spmatrix | LinearOperator, X: DaskArray) -> DaskArray: ...
@overload
def apply(C: np.ndarray | sparray | spmatrix | LinearOperator, X: Tensor) -> Tensor: ...
@overload
def apply(C: np.ndarray | sparray | spmatrix | LinearOperator, X: npt.ArrayLike) -> np.ndarray: ...


def apply(C: np.ndarray | sparray | spmatrix | LinearOperator,
          X: npt.ArrayLike | DaskArray | Tensor) -> np.ndarray | DaskArray | Tensor:
    """``C @ X`` for an explicit matrix or an operator, ``X`` a numpy array, a CPU torch tensor or a dask array.

    Parameters
    ----------
    C : scipy sparse matrix/array, numpy array, or LinearOperator
        The matrix, e.g. from :func:`conv_matrix`, or an operator such as :class:`ConvOperator`.
    X : array_like, torch.Tensor or dask.array.Array
        For every ``C``: a vector ``(n,)`` or a batch of column vectors ``(n, K)``.  For a
        :class:`ConvOperator` / :class:`ConvTransposeOperator` (and their ``.T``, ``.H``) also
        the volume ``(C, *spatial)`` (for a spatial kernel ``(1, *spatial)`` or ``spatial``) and
        a batch ``(N, C, *spatial)``, PyTorch's layout; a dask volume is convolved chunk by chunk.

    Returns
    -------
    ndarray, torch.Tensor or dask.array.Array
        ``C @ X`` in the layout of ``X``: ``(m,)``, ``(m, K)``, ``(C_out, *out)`` (``output_vector_shape``
        for the spatial form) or ``(N, C_out, *out)``; a torch tensor for a torch tensor (on the CPU,
        in the dtype numpy's promotion gives, differentiable when ``X`` requires grad: the gradient
        is ``C^H g``); lazy when ``X`` is a dask array.  For an explicit ``C`` and a dask ``(n, K)``
        batch, each column chunk of ``X`` is one task ``C @ X_chunk`` and ``C`` enters the task
        graph once (``dask.delayed``), so a distributed scheduler ships it to each worker once.

    Raises
    ------
    TypeError
        ``C`` is not a 2-D matrix or operator; ``X`` is not numeric, is sparse, or is a tensor numpy
        cannot hold.
    ValueError
        ``X`` has none of the shapes above (the message lists them), masked entries, or is a
        tensor off the CPU.

    See Also
    --------
    ConvOperator : A matrix-free operator, which ``apply`` also takes.
    dask.array.Array : The lazy, chunked arrays it takes.

    Notes
    -----
    A shape that is both a volume and a batch of columns (``(C, 1)`` with one spatial position)
    is read as the volume; the numbers are the same either way.  Needs the optional extra for
    dask inputs: ``pip install convmatrix[dask]``; torch tensors need no extra (having one means
    torch is installed).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> C = cm.conv_matrix([1.0, -1.0], (4,))
    >>> cm.apply(C, np.arange(4.0))
    array([-1., -1., -1.])
    >>> A = cm.ConvOperator(np.ones((3, 2, 3, 3)), (5, 5), padding=1)     # 2 -> 3 channels
    >>> cm.apply(A, np.ones((8, 2, 5, 5))).shape                         # (N, C, H, W), as PyTorch
    (8, 3, 5, 5)
    >>> A(np.ones((2, 5, 5)))[0, 0]                                      # A(x) is the same call
    array([ 8., 12., 12., 12.,  8.])
    """
    if isinstance(C, _ConvLinearOperator):
        out: Any = C.dot(X) if _is_dask(X) else C._shaped(X, "X")
        return cast("np.ndarray | DaskArray | Tensor", out)
    if not (hasattr(C, "shape") and len(getattr(C, "shape", ())) == 2):
        raise TypeError(f"C must be a 2-D matrix (sparse or dense) or a LinearOperator; got {type(C).__name__}")
    if not _is_dask(X):
        def forward(x: np.ndarray) -> np.ndarray:
            y: np.ndarray = C @ _vectors(x, "X", C.shape[1], matrix=None, hint=lambda: _NO_GEOMETRY)
            return y

        def adjoint(g: np.ndarray) -> np.ndarray:
            H = C.H if isinstance(C, LinearOperator) else C.conj().T
            y: np.ndarray = H @ _vectors(g, "Y", C.shape[0], matrix=None)
            return y

        product: np.ndarray | Tensor = _through_torch(X, "X", forward, adjoint)
        return product
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
