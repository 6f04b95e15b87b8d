"""Matrices given by the user (SymPy, scipy.sparse, numpy), validated without listing their entries.

numpy only: a SymPy matrix is recognised without importing SymPy (whoever made one imported it).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeAlias, TypeGuard, TypeVar, cast

import numpy as np

from . import _validate as V
from ._axis import IndexArray

if TYPE_CHECKING:
    import scipy.sparse as sps
    import sympy
    from numpy.typing import ArrayLike

    #: a matrix given by the user, as :func:`given_matrix` accepts it (an array, nested lists, ...)
    Matrix: TypeAlias = ArrayLike | sps.sparray | sps.spmatrix | sympy.MatrixBase

__all__ = ["Given", "given_entries", "given_matrix", "unmasked"]

_T = TypeVar("_T")


def _is_sympy_matrix(M: object) -> TypeGuard[sympy.MatrixBase]:
    sympy = sys.modules.get("sympy")
    return sympy is not None and isinstance(M, sympy.MatrixBase)

def unmasked(value: _T, name: str) -> _T | np.ndarray:
    """A masked array without masked entries as plain data; one with masked entries refused."""
    if isinstance(value, np.ma.MaskedArray):
        masked = int(np.count_nonzero(np.ma.getmaskarray(value)))
        if masked:
            raise ValueError(f"{name} is a masked array with {masked} masked entries, and a matrix has no mask: pass "
                             f"{name}.filled(0) (or the fill you mean) instead")
        return np.ma.getdata(value)
    return value


# ----------------------------------------------------------------------------- matrices given by the user
class Given(NamedTuple):
    """A matrix argument, validated: its kind, shape, a bound on its nonzeros, and the object itself."""

    kind: Literal["sympy", "sparse", "dense"]
    rows: int
    cols: int
    nnz_bound: int
    obj: np.ndarray | sps.sparray | sps.spmatrix | sympy.MatrixBase  # as ``kind`` says
    exact: bool = True  # nnz_bound counts the stored entries (else it is the number of cells)


def given_matrix(M: object, name: str, *, strings: bool = False) -> Given:
    """Validate a SymPy/scipy/numpy 2-D matrix without listing its entries (strings: str arrays allowed)."""
    if _is_sympy_matrix(M):
        rows, cols = M.shape
        exact = hasattr(M, "nnz")
        return Given("sympy", rows, cols, M.nnz() if exact else rows * cols, M, exact)
    import scipy.sparse as sps

    if sps.issparse(M):
        S = cast("sps.sparray | sps.spmatrix", M)
        if len(S.shape) != 2:
            raise ValueError(f"{name} must be a 2-D matrix; got a sparse array of shape {S.shape}")
        rows, cols = S.shape
        return Given("sparse", rows, cols, int(S.nnz), S)
    if isinstance(M, (str, bytes, bytearray)):
        raise TypeError(f"{name} must be a SymPy matrix, a scipy sparse matrix or a 2-D array; got {V._describe(M)}")
    M = unmasked(M, name)
    try:
        arr = np.asarray(M)
    except Exception as exc:  # ragged lists, a torch tensor that requires grad, ...
        raise TypeError(f"{name} must be a SymPy matrix, a scipy sparse matrix or a 2-D array; got "
                        f"{V._describe(M)} ({exc})") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix; got shape {arr.shape}")
    allowed = "biufcO" + ("US" if strings else "")
    if arr.dtype.kind not in allowed:
        raise TypeError(f"{name} must hold numbers{', strings' if strings else ''} or SymPy expressions; got dtype "
                        f"{arr.dtype}")
    if arr.dtype.kind in "biufc":
        return Given("dense", arr.shape[0], arr.shape[1], int(np.count_nonzero(arr)), arr)
    return Given("dense", arr.shape[0], arr.shape[1], arr.size, arr, False)  # entries compared with 0 later


def given_entries(g: Given, name: str) -> tuple[IndexArray, IndexArray, np.ndarray | list[object]]:
    """``(rows, cols, values)`` of the nonzero entries sorted by (row, col); values an array or a list."""
    if g.kind == "sympy":
        try:
            dok = cast("sympy.MatrixBase", g.obj).todok()
            items = sorted(((rc, v) for rc, v in dok.items() if v != 0), key=lambda item: item[0])
        except TypeError:
            raise TypeError(f"{name} must hold numbers or SymPy expressions") from None
        r = np.fromiter((rc[0] for rc, _ in items), dtype=np.int64, count=len(items))
        c = np.fromiter((rc[1] for rc, _ in items), dtype=np.int64, count=len(items))
        return r, c, [v for _, v in items]
    if g.kind == "sparse":
        import scipy.sparse as sps

        coo = sps.coo_array(g.obj, copy=True)
        coo.sum_duplicates()  # a COO input may repeat a position: its entry is the sum
        keep = coo.data != 0
        r, c, v = coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64), coo.data[keep]
        order = np.lexsort((c, r))
        return r[order], c[order], v[order]
    arr = g.obj
    if arr.dtype.kind in "biufc":
        r, c = np.nonzero(arr)
        return r.astype(np.int64), c.astype(np.int64), arr[r, c]
    try:
        mask = np.asarray(arr != ("" if arr.dtype.kind in "US" else 0), dtype=bool)
    except (ValueError, TypeError):
        raise TypeError(f"{name} must hold numbers or SymPy expressions; got entries that cannot be compared "
                        f"with 0") from None
    r, c = np.nonzero(mask)
    return r.astype(np.int64), c.astype(np.int64), arr[r, c].tolist()


