"""The adjoint ("dot") test: vdot(A u, v) == vdot(u, A^H v) for random u, v."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, Protocol

import numpy as np
import numpy.typing as npt

from .. import _validate as V
from .._validate import MaxBytes
from ._common import (
    MatrixLike,
    RngLike,
    _Apply,
    _base_rtol,
    _complex,
    _direct,
    _direct_bytes,
    _generator,
    _int_vector,
    _is_explicit,
    _is_int_dtype,
    _num,
    _numeric_dtype,
    _tolerances,
)

__all__ = ['DotTestResult', 'dot_test']


# ============================================================================ dot test
@dataclass(frozen=True)
class DotTestResult:
    """Outcome of :func:`dot_test`; true when the test passed.

    ``lhs = vdot(A u, v)``, ``rhs = vdot(u, Aᴴ v)``, ``error = |lhs - rhs|``.

    Attributes
    ----------
    lhs : complex or float
        ``vdot(A u, v)``.
    rhs : complex or float
        ``vdot(u, Aᴴ v)``.
    error : float
        ``|lhs - rhs|``.
    tolerance : float
        The bound ``error`` must not exceed.
    passed : bool
        ``error <= tolerance`` (also the truth value of the result).

    See Also
    --------
    dot_test : Returns it.
    """

    lhs: complex | float
    rhs: complex | float
    error: float
    tolerance: float
    passed: bool

    def __bool__(self) -> bool:
        return self.passed

    def message(self) -> str:
        """The outcome in one sentence, with the two numbers and the tolerance.

        Returns
        -------
        str
            ``"dot test passed: vdot(A u, v) = ... and vdot(u, A^H v) = ...; |difference| = ..."``.
        """
        verdict = "passed" if self.passed else "failed"
        rel = "<=" if self.passed else ">"
        text = (f"dot test {verdict}: vdot(A u, v) = {_num(self.lhs)} and vdot(u, A^H v) = {_num(self.rhs)}; "
                f"|difference| = {self.error:.3e} {rel} tolerance {self.tolerance:.3e}")
        if not (math.isfinite(self.error) and math.isfinite(self.tolerance)):
            text += " (A u or A^H v has NaN or inf entries: no tolerance can hold)"
        return text


def _plain_matrix(A: object, name: str) -> object:
    """``A`` as a 2-D numeric ndarray or sparse matrix (``np.matrix`` -> ndarray, masks refused); else ``A``."""
    if isinstance(A, np.ma.MaskedArray):
        if np.ma.getmask(A) is not np.ma.nomask and np.any(np.ma.getmaskarray(A)):
            raise ValueError(f"{name} is a masked array with masked entries, and a matrix has no mask: "
                             f"pass {name}.filled(0) (or the fill you mean) instead")
        A = np.ma.getdata(A)
    if isinstance(A, np.matrix):
        A = np.asarray(A)
    if _is_explicit(A):
        if A.ndim != 2:
            raise ValueError(f"{name} must be 2-D; got an array of shape {A.shape}")
        _numeric_dtype(A.dtype, name)
    return A


def _as_apply(A: object, name: str) -> tuple[_Apply, tuple[int, int] | None, np.dtype | None]:
    """(apply, shape or None, dtype or None) for a matrix, LinearOperator or callable."""
    A = _plain_matrix(A, name)
    if _is_explicit(A):
        return (lambda v: A @ v), (int(A.shape[0]), int(A.shape[1])), A.dtype
    if hasattr(A, "matvec") and hasattr(A, "shape"):
        shape = _operator_shape(A, name)
        dtype: np.dtype | None = getattr(A, "dtype", None)
        try:
            dtype = None if dtype is None else np.dtype(dtype)
        except TypeError:
            dtype = None
        _numeric_dtype(dtype, name)
        return A.matvec, shape, dtype
    if callable(A):
        return A, None, None
    raise TypeError(
        f"{name} must be a scipy sparse matrix/array, a 2-D ndarray, a LinearOperator or a callable; "
        f"got {type(A).__name__}"
    )


class _Shaped(Protocol):
    """Anything with a ``shape`` (a LinearOperator-like object, before its shape is checked)."""

    @property
    def shape(self) -> object: ...


def _operator_shape(A: _Shaped, name: str) -> tuple[int, int]:
    shape = A.shape
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"{name}.shape must be a pair (rows, columns); got {V._describe(shape)}")
    return (V.as_int(shape[0], f"{name}.shape[0]", minimum=0), V.as_int(shape[1], f"{name}.shape[1]", minimum=0))


def _check_adjoint(A: object) -> None:
    """A ``TypeError`` unless ``A`` has an adjoint of its own (a matrix, or an object with ``rmatvec``)."""
    if not (_is_explicit(A) or hasattr(A, "rmatvec")):
        _no_adjoint(A)


def _no_adjoint(A: object) -> NoReturn:
    raise TypeError("AT is required when A is a plain callable (it has no adjoint of its own); "
                    f"got A of type {type(A).__name__} and AT=None")


def _adjoint_of(A: object) -> _Apply:
    """``v -> Aᴴ v``: a matrix's through a view of its transpose, conjugating the vectors (``conj(Aᵀ conj(v))``,
    the same sums), so that the matrix is never copied; else ``A.rmatvec``."""
    A = _plain_matrix(A, "A")
    if _is_explicit(A):
        AT = _direct(A).T  # a view (a matrix in another sparse format is converted once, counted by the caller)
        if A.dtype.kind == "c":
            return lambda v: np.conj(AT @ np.conj(v))
        return lambda v: AT @ v
    if not hasattr(A, "rmatvec"):
        _no_adjoint(A)
    rmatvec: _Apply = A.rmatvec
    return rmatvec


def _applied(fn: _Apply, v: np.ndarray, name: str) -> np.ndarray:
    """``fn(v)`` as a flat numeric array; an operator without an adjoint is a ``TypeError`` naming ``name``."""
    try:
        out = fn(v)
    except NotImplementedError as exc:  # a LinearOperator made from a matvec alone
        raise TypeError(f"{name} cannot be applied ({exc}); pass AT, the adjoint, explicitly") from None
    out = V.as_array(out, f"what {name} returns")
    if out.dtype.kind not in "biufc":
        raise TypeError(f"{name} must return numbers; got an array of dtype {out.dtype}")
    return out.reshape(-1)


def _operator_bytes(A: object, acc_itemsize: int) -> int:
    """Bytes ``A @ v`` and ``Aᴴ @ v`` may allocate besides their results: a sparse format whose transpose is not
    a view converted to CSR once (:func:`~._common._direct`), and ``A``'s values (and ``v``) cast to a common
    dtype; for a convmatrix operator, the larger predicted peak of its two products."""
    if not _is_explicit(A):  # a convmatrix operator predicts its products; another LinearOperator's are its own
        product_bytes = getattr(A, "_product_bytes", None)
        if product_bytes is None:
            return 0
        x_dtype = np.complex128 if acc_itemsize == 16 else np.float64
        return max(int(product_bytes(adjoint, x_dtype)) for adjoint in (False, True))
    direct = _direct_bytes(A)
    if A.dtype.itemsize == acc_itemsize and A.dtype.kind == ("c" if acc_itemsize == 16 else "f"):
        return direct
    values = A.size if isinstance(A, np.ndarray) else A.nnz
    return direct + (int(values) + int(A.shape[1])) * acc_itemsize


def _dot_bytes(m: int, n: int, acc_itemsize: int) -> int:
    """Peak of dot_test's own vectors: u, v, A u, Aᴴ v, their float64/complex128 copies (and norms)."""
    return (m + n) * (32 if acc_itemsize <= 8 else 64)


def dot_test(
    A: MatrixLike | Callable[[np.ndarray], npt.ArrayLike],
    AT: MatrixLike | Callable[[np.ndarray], npt.ArrayLike] | None = None,
    *,
    rng: RngLike = None,
    rtol: float | None = None,
    atol: float | None = None,
    complex: bool = False,
    shape: tuple[int, int] | None = None,
    raise_error: bool = True,
    max_bytes: MaxBytes = "auto",
) -> DotTestResult:
    """Adjoint ("dot") test: ``vdot(A u, v) == vdot(u, Aᴴ v)`` for random ``u``, ``v``.

    Parameters
    ----------
    A : sparse matrix/array, ndarray, LinearOperator or callable
        The operator (a 2-D numeric array; ``np.matrix`` is accepted, a masked array only without
        masked entries).  A callable needs ``shape``.
    AT : same kinds, optional
        Its adjoint ``Aᴴ`` (the conjugate transpose; the transpose for real ``A``).  Defaults to
        ``A.conj().T`` for matrices (applied as ``conj(A.T @ conj(v))`` on a view of the transpose,
        so that the matrix is not copied) and ``A.rmatvec`` for LinearOperators.
    rng : None, int seed, numpy Generator, BitGenerator or SeedSequence, optional
        Source of ``u`` and ``v``: standard normal, or, when ``A`` has an integer or bool dtype,
        nonzero integers in ``[-8, 8]`` (so that every product and sum is exact in float64 while it
        stays below ``2**53``: the test is then exact and ``rtol=0`` holds for a right adjoint).
    rtol, atol : float, optional
        Pass when ``|lhs - rhs| <= atol + rtol * (‖A u‖‖v‖ + ‖u‖‖Aᴴ v‖)``.  ``None`` means the
        default: ``rtol`` 1e-5 when the common dtype of ``A`` and of its outputs is
        float32/complex64, else 1e-12 (integers included); ``atol`` 0.  Given values, ``0``
        included, are used as they are.  Each must be a finite non-negative number.
    complex : bool
        Use complex ``u`` and ``v`` (needed to test the conjugation of a complex operator).
    shape : (int, int), optional
        ``A``'s shape when it cannot be read from ``A`` (a plain callable); must agree with it
        otherwise.
    raise_error : bool
        Raise ``AssertionError`` (showing both numbers) when the test fails.
    max_bytes : int, None or "auto"
        Budget for the test's own vectors (``u``, ``v``, ``A u``, ``Aᴴ v`` and their float64 or
        complex128 copies), for the cast copy of a matrix's values that ``A @ u`` may make, for
        the CSR copy of a sparse matrix in a format whose transpose is not a view (bsr, dia, lil,
        dok: converted once) and for the predicted products of a convmatrix operator; what another
        LinearOperator or a callable allocates inside is not counted.  ``"auto"``: half the RAM;
        ``None``: no limit.

    Returns
    -------
    DotTestResult
        ``lhs``, ``rhs``, ``error``, ``tolerance`` (the bound used), ``passed``; truthy when passed.

    Raises
    ------
    TypeError
        ``A``/``AT`` of an unsupported kind or non-numeric, a callable without ``shape`` or
        ``AT``, a LinearOperator without an adjoint, a bool option or tolerance of the wrong type.
    ValueError
        Shapes that do not agree, an operator that returns the wrong number of values, a negative
        or non-finite tolerance, a masked matrix with masked entries.
    MatrixTooLargeError
        The vectors would exceed ``max_bytes``.
    AssertionError
        The test failed and ``raise_error`` is true.

    See Also
    --------
    check_conv, check_transpose : Run it, among other checks, on a convolution's matrix.

    Notes
    -----
    The inner products are accumulated in float64/complex128 whatever the operator's dtype, so
    the tolerance only has to cover the rounding of ``A u`` and ``Aᴴ v``.  Cauchy-Schwarz bounds
    ``|vdot(A u, v)|`` by ``‖A u‖‖v‖``, which makes the scale immune to cancellation.  The test is
    the one of Claerbout's *Earth Soundings Analysis: Processing versus Inversion* (1992), also
    PyLops' ``dottest`` [1]_.

    References
    ----------
    .. [1] J. F. Claerbout, "Earth Soundings Analysis: Processing versus Inversion", Blackwell,
       1992 (the "dot product test"); PyLops documentation, ``pylops.utils.dottest``.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> bool(dot_test(A, rng=0))
    True
    >>> dot_test(A, A, rng=0)              # a 3x2 matrix cannot be the adjoint of a 3x2 matrix
    Traceback (most recent call last):
    ...
    ValueError: AT must have shape (2, 3) (A's columns x A's rows); got (3, 2)
    >>> wrong = np.array([[1.0, 3.0, 5.0], [2.0, 4.0, 6.5]])
    >>> dot_test(A, wrong, rng=0)          # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: dot test failed: vdot(A u, v) = ... and vdot(u, A^H v) = ...; |difference| = ... > tolerance ...
    >>> dot_test(np.array([[1, 2], [3, 4]]), rng=0, rtol=0).error      # integers: exact
    0.0
    """
    rtol, atol = _tolerances(rtol, atol)
    complex = V.as_bool(complex, "complex")
    raise_error = V.as_bool(raise_error, "raise_error")
    budget = V.budget(max_bytes)
    A = _plain_matrix(A, "A")
    apply, a_shape, a_dtype = _as_apply(A, "A")
    given: object = shape  # checked here: a pair of positive ints (a list or an array too)
    size = a_shape
    if given is not None:
        if isinstance(given, np.ndarray):
            given = given.tolist()
        if not isinstance(given, (tuple, list)) or len(given) != 2:
            raise ValueError(f"shape must be a pair of positive ints (rows, columns); got {V._describe(given)}")
        rows, cols = (V.as_int(s, f"shape[{i}]", minimum=1, rule="a positive integer (shape is (rows, columns))")
                      for i, s in enumerate(given))
        if a_shape is not None and a_shape != (rows, cols):
            raise ValueError(f"shape {(rows, cols)} does not match A.shape {a_shape}")
        size = (rows, cols)
    if size is None:
        raise TypeError("shape=(rows, columns) is required when A is a plain callable")
    if AT is None:
        _check_adjoint(A)
    else:
        AT = _plain_matrix(AT, "AT")
        at_shape = _as_apply(AT, "AT")[1]
        if at_shape is not None and at_shape != (size[1], size[0]):
            raise ValueError(f"AT must have shape {(size[1], size[0])} (A's columns x A's rows); got {at_shape}")
    m, n = size
    cplx_a = a_dtype is not None and np.dtype(a_dtype).kind == "c"
    acc_size = 16 if (complex or cplx_a) else 8
    need = _dot_bytes(m, n, acc_size) + _operator_bytes(A, acc_size) + (0 if AT is None else _operator_bytes(AT, acc_size))
    V.check_bytes(f"dot_test of a {m:,} x {n:,} operator", need, budget,
                  "test a smaller operator, or pass a larger max_bytes (or None for no limit)")
    if _is_explicit(A):  # a format whose transpose copies it: converted once, here, after the guard
        A = _direct(A)
        apply = _as_apply(A, "A")[0]
    adjoint = _adjoint_of(A) if AT is None else _as_apply(_direct(AT) if _is_explicit(AT) else AT, "AT")[0]
    gen = _generator(rng)
    integer = _is_int_dtype(a_dtype)

    def draw(count: int) -> npt.NDArray[np.float64]:
        return _int_vector(gen, count) if integer else gen.standard_normal(count)

    u: np.ndarray
    v: np.ndarray
    if complex:
        u = draw(n) + 1j * draw(n)
        v = draw(m) + 1j * draw(m)
    else:
        u = draw(n)
        v = draw(m)
    Au = _applied(apply, u, "A")
    AHv = _applied(adjoint, v, "A's adjoint" if AT is None else "AT")
    if Au.size != m:
        raise ValueError(f"A maps {n} values to {m}; got an output of {Au.size} values")
    if AHv.size != n:
        raise ValueError(
            f"AT maps {m} values to {n}, but A^H must map {m} values (A's rows) to {n} values (A's columns); "
            f"got an output of {AHv.size} values"
        )
    dtype = np.result_type(*(d for d in (a_dtype, Au.dtype, AHv.dtype) if d is not None))
    acc = np.complex128 if (np.iscomplexobj(Au) or np.iscomplexobj(AHv) or complex) else np.float64
    Au, AHv = Au.astype(acc), AHv.astype(acc)
    lhs = np.vdot(v, Au)   # vdot conjugates its first argument: v^H (A u)
    rhs = np.vdot(AHv, u)  # (A^H v)^H u
    if acc is np.float64:
        lhs, rhs = float(lhs), float(rhs)
    else:
        lhs, rhs = _complex(lhs), _complex(rhs)
    if rtol is None:
        rtol = _base_rtol(dtype) or 1e-12  # the default for integers: products are rounded beyond 2**53
    scale = float(np.linalg.norm(Au) * np.linalg.norm(v) + np.linalg.norm(u) * np.linalg.norm(AHv))
    tol = (0.0 if atol is None else atol) + rtol * scale
    err = float(abs(lhs - rhs))
    result = DotTestResult(lhs, rhs, err, tol, bool(err <= tol))
    if raise_error and not result.passed:
        raise AssertionError(result.message())
    return result
