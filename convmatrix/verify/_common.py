"""Names, tolerances and option checks shared by the verification routes and reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, SupportsInt, TypeAlias, TypeGuard

import numpy as np
import numpy.typing as npt

from .. import _validate as V

if TYPE_CHECKING:
    from scipy.sparse import sparray, spmatrix
    from scipy.sparse.linalg import LinearOperator

__all__ = ['MAX_SWEEP']


# ============================================================================ types of the arguments
#: ``torch=``: use PyTorch when installed, require it, or skip its checks
TorchOption: TypeAlias = bool | Literal["auto"]

#: ``rng=``: what :func:`numpy.random.default_rng` accepts (a seed must be non-negative)
RngLike: TypeAlias = "int | np.random.Generator | np.random.BitGenerator | np.random.SeedSequence | None"

#: a matrix the checks accept: dense, sparse, or anything with ``shape``, ``matvec`` and ``rmatvec``
MatrixLike: TypeAlias = "np.ndarray | sparray | spmatrix | LinearOperator"

#: a matrix given explicitly: dense or scipy sparse
_Explicit: TypeAlias = "np.ndarray | sparray | spmatrix"

#: ``A @ v`` (or ``Aᴴ @ v``) of a matrix, LinearOperator or user callable: anything numpy can read as an array
_Apply: TypeAlias = Callable[[np.ndarray], object]

#: a verification case: the keyword dict of one geometry, JSON values (see :func:`run_case`)
Case: TypeAlias = "dict[str, Any]"

#: the status of one check
Status: TypeAlias = Literal["pass", "fail", "skip"]


_TORCH_EXTRA = "pip install convmatrix[torch]"


_complex = complex  # dot_test's keyword ``complex`` shadows the builtin inside it


_STATUSES: tuple[Status, ...] = ("pass", "fail", "skip")


#: np.pad's name of each boundary mode
_NUMPY_MODES: dict[str, Literal["constant", "wrap", "reflect", "edge", "symmetric"]] = {
    "zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge", "symmetric": "symmetric"}


_TORCH_MODES = {"circular": "circular", "reflect": "reflect", "replicate": "replicate"}


#: most geometries :func:`sweep` runs in one call: a sweep keeps one small report per geometry
#: (about 4 KiB) and spends ~10 ms on each, so 100,000 is ~400 MiB and hours of work
MAX_SWEEP = 100_000


#: most spatial axes the references handle (einsum has 13 letters each for positions and taps)
_MAX_AXES = 13


#: integer sums up to this size are exact in float64
_EXACT = 2**53


#: test vectors of integer operators: nonzero integers in [-_INT_SPAN, _INT_SPAN]
_INT_SPAN = 8


# names of the checks, in the order a report lists them
SHAPE = "shape vs symbolic formula"


DOT = "adjoint (dot test)"


FWD_NUMPY = "C x vs numpy sliding windows"


FWD_SCIPY = "C x vs scipy.signal"


TR_ZERO = "C^T y vs zero insertion"


TR_FUSION = "C^T y vs fusion (seed)"


def _fwd_torch(nd: int) -> str:
    return f"C x vs torch conv{nd}d"


def _tr_torch(nd: int) -> str:
    return f"C^T y vs torch conv_transpose{nd}d"


_TR_VJP = "C^T y vs torch autograd VJP"


# ============================================================================ option checks
def _torch_option(value: object) -> TorchOption:
    """``"auto"``, ``True`` or ``False``; anything else is refused naming ``torch``."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        if value == "auto":
            return "auto"
        raise ValueError(f"torch must be 'auto', True or False; got {value!r}")
    raise TypeError(f"torch must be 'auto', True or False; got {V._describe(value)} of type {type(value).__name__}")


def _generator(rng: object, name: str = "rng") -> np.random.Generator:
    """A numpy Generator from ``None``, a non-negative int seed, a Generator, BitGenerator or SeedSequence."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (np.random.BitGenerator, np.random.SeedSequence)):
        return np.random.default_rng(rng)
    seed = V.as_int(rng, name, minimum=0, maximum=None,
                    rule="None, a non-negative integer seed or a numpy Generator")
    return np.random.default_rng(seed)


def _tolerances(rtol: object, atol: object) -> tuple[float | None, float | None]:
    return V.tolerance(rtol, "rtol"), V.tolerance(atol, "atol")


def _int_vector(gen: np.random.Generator, shape: int | tuple[int, ...]) -> npt.NDArray[np.float64]:
    """Nonzero integers in ``[-8, 8]`` as float64: exact products, and no entry that hides an error."""
    k = gen.integers(0, 2 * _INT_SPAN, size=shape)
    return np.where(k < _INT_SPAN, k - _INT_SPAN, k - _INT_SPAN + 1).astype(np.float64)


def _is_int_dtype(dtype: npt.DTypeLike | None) -> bool:
    return dtype is not None and np.dtype(dtype).kind in "iub"


def _is_explicit(A: object) -> TypeGuard[_Explicit]:
    """Whether ``A`` is a matrix given explicitly: a dense ndarray or a scipy sparse matrix/array."""
    import scipy.sparse as sp

    return bool(sp.issparse(A)) or isinstance(A, np.ndarray)


#: scipy sparse formats whose transpose is a view of the same arrays and whose products convert nothing
_VIEW_FORMATS = frozenset({"csr", "csc", "coo"})
#: traced bytes per stored entry of a "dok" matrix's conversion to CSR beyond the CSR itself (its dict is walked
#: into COO arrays first: 68-72 measured with tracemalloc)
_DOK_ENTRY_BYTES = 96


def _direct(A: _Explicit) -> _Explicit:
    """``A`` in a form whose transpose is a view: an ndarray or a csr/csc/coo matrix as it is, any other sparse
    format converted to CSR once (bsr, dia, lil and dok copy themselves on every transpose, lil converts on
    every product: :func:`_direct_bytes` is what this costs)."""
    if isinstance(A, np.ndarray) or A.format in _VIEW_FORMATS:
        return A
    return A.tocsr()


def _direct_bytes(A: object) -> int:
    """Peak bytes of :func:`_direct` (measured bounds: the CSR with int64 indices; dia's conversion allocates for
    every stored entry, then copies the nonzero ones again when they are fewer than half: 1.5x; dok walks its
    dict too)."""
    if not _is_explicit(A) or isinstance(A, np.ndarray) or A.format in _VIEW_FORMATS:
        return 0
    nnz = int(A.nnz)
    entries = nnz * (int(A.dtype.itemsize) + 8)
    csr = (entries * 3 // 2 if A.format == "dia" else entries) + (int(A.shape[0]) + 1) * 8
    return csr + (nnz * _DOK_ENTRY_BYTES if A.format == "dok" else 0)


# ============================================================================ tolerances
def _base_rtol(dtype: npt.DTypeLike) -> float:
    dtype = np.dtype(dtype)
    if dtype.kind in "iub":
        return 0.0
    return 1e-5 if dtype.itemsize <= (8 if dtype.kind == "c" else 4) else 1e-12


def _eps(dtype: npt.DTypeLike) -> float:
    dtype = np.dtype(dtype)
    return 0.0 if dtype.kind in "iub" else float(np.finfo(dtype).eps)


def _rtol_for(dtype: npt.DTypeLike, terms: int) -> float:
    return max(_base_rtol(dtype), 2.0 * terms * _eps(dtype))


def _num(z: complex | float) -> str:
    if isinstance(z, complex) or np.iscomplexobj(z):
        z = complex(z)
        return f"{z.real:.17g}{z.imag:+.17g}j"
    return f"{float(z):.17g}"


def _short(z: complex | float) -> str:
    if isinstance(z, complex):
        return f"{z.real:.10g}{z.imag:+.10g}j"
    return f"{z:.10g}"


def _numeric_dtype(dtype: npt.DTypeLike | None, name: str) -> None:
    if dtype is not None and np.dtype(dtype).kind not in "biufc":
        raise TypeError(f"{name} must have a numeric dtype (bool, integer, float or complex); got dtype {np.dtype(dtype)}")


def _dims(v: int | np.integer | Iterable[SupportsInt]) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return "x".join(str(int(x)) for x in v)
