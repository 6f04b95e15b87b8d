"""Verification: is ``C`` really the convolution, and ``Cᵀ`` really the transposed convolution?

Every check compares the matrix against a route that shares no code with the builders: the
routes read only the validated numbers of the geometry (sizes, stride, dilation, padding pairs,
output padding, channels), never :mod:`convmatrix.matrices` or the index maps of
:mod:`convmatrix.geometry`.  ``matrix=`` verifies a matrix (or LinearOperator) of your own.

=====================================  ========================================================
check                                  independent route
=====================================  ========================================================
``shape vs symbolic formula``          :func:`convmatrix.symbolic.output_shape_from_formula`
                                       (the SymPy-derived size) and the references' own sizes
``adjoint (dot test)``                 ``vdot(A u, v) == vdot(u, Aᴴ v)`` with ``Aᴴ`` computed by
                                       a reference (not by transposing the matrix)
``C x vs numpy sliding windows``       ``np.pad`` in the boundary mode, then strided, dilated
                                       windows (``sliding_window_view``) contracted with the kernel
``C x vs scipy.signal``                ``scipy.signal.correlate`` (``convolve`` when flipped) per
                                       channel pair, then subsampled by the stride (a dilated
                                       axis is split into its ``d`` phases by a reshape)
``C^T y vs zero insertion``            insert ``s-1`` zeros between the inputs, pad by
                                       ``d(k-1)-p``, correlate with the 180°-rotated kernel
``C^T y vs fusion (seed)``             the seed article's construction: one kernel copy per input
                                       pixel, placed at stride ``s``, overlaps added (scatter-add)
``C x vs torch convNd``                ``torch.nn.functional.conv{1,2,3}d`` (``F.pad`` for modes)
``C^T y vs torch conv_transposeNd``    ``torch.nn.functional.conv_transpose{1,2,3}d``
``C^T y vs torch autograd VJP``        the vector-Jacobian product of ``torch convNd`` (the
                                       gradient with respect to its input)
=====================================  ========================================================

The torch checks are reported as *skipped* when torch is not installed (or for more than
three spatial dimensions).  For boundary modes other than zeros, ``Cᵀ`` also folds the padding
back onto the input; the transposed routes then apply the adjoint of ``np.pad``.

Tolerances come from the dtype: ``max|error| <= atol + rtol * scale`` where ``scale`` is the
largest sum of absolute terms ``(|C| |x|)_i`` (computed by the reference with ``|w|`` and
``|x|``), ``rtol`` is 1e-12 for float64/complex128 and 1e-5 for float32/complex64 (raised to
``2 K eps`` for ``K`` terms per output), ``atol`` is 0, and integer matrices are compared exactly
(their test vectors are small nonzero integers, so every sum is exact in float64; ``rtol`` becomes
``2 K eps`` only for kernels so large that it would not be).  ``rtol=``/``atol=`` replace the
defaults in every check but the shape (which is always exact), ``0`` included; each
:class:`Check` records the ``rtol``, ``atol`` and the resulting ``tolerance`` it used, and that is
what the table and the JSON print.

Memory: :func:`check_conv` and :func:`check_transpose` take ``max_bytes`` (default ``"auto"``,
half the RAM).  The peak of the matrix plus the reference routes (padded copies, the fusion's
kernel copies, scipy's un-strided correlation, PyTorch's column buffers, ...) is predicted in
closed form from the geometry and a request over budget raises
:class:`~convmatrix.MatrixTooLargeError` before anything is allocated.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _validate as V

__all__ = [
    "Check",
    "DotTestResult",
    "Report",
    "dot_test",
    "check_conv",
    "check_transpose",
    "sweep",
    "run_case",
    "random_kernel",
    "case_kernel",
    "case_command",
    "seed_cases",
    "seed_report",
    "MAX_SWEEP",
]

_TORCH_EXTRA = "pip install convmatrix[torch]"
_complex = complex  # dot_test's keyword ``complex`` shadows the builtin inside it
_STATUSES = ("pass", "fail", "skip")
_NUMPY_MODES = {"zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge",
                "symmetric": "symmetric"}
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
def _torch_option(value: Any) -> bool | str:
    """``"auto"``, ``True`` or ``False``; anything else is refused naming ``torch``."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        if value == "auto":
            return "auto"
        raise ValueError(f"torch must be 'auto', True or False; got {value!r}")
    raise TypeError(f"torch must be 'auto', True or False; got {V._describe(value)} of type {type(value).__name__}")


def _generator(rng: Any, name: str = "rng") -> np.random.Generator:
    """A numpy Generator from ``None``, a non-negative int seed, a Generator, BitGenerator or SeedSequence."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (np.random.BitGenerator, np.random.SeedSequence)):
        return np.random.default_rng(rng)
    seed = V.as_int(rng, name, minimum=0, maximum=None,
                    rule="None, a non-negative integer seed or a numpy Generator")
    return np.random.default_rng(seed)


def _tolerances(rtol: Any, atol: Any) -> tuple[float | None, float | None]:
    return V.tolerance(rtol, "rtol"), V.tolerance(atol, "atol")


def _int_vector(gen: np.random.Generator, shape: Any) -> np.ndarray:
    """Nonzero integers in ``[-8, 8]`` as float64: exact products, and no entry that hides an error."""
    k = gen.integers(0, 2 * _INT_SPAN, size=shape)
    return np.where(k < _INT_SPAN, k - _INT_SPAN, k - _INT_SPAN + 1).astype(np.float64)


def _is_int_dtype(dtype: Any) -> bool:
    return dtype is not None and np.dtype(dtype).kind in "iub"


# ============================================================================ tolerances
def _base_rtol(dtype: np.dtype) -> float:
    dtype = np.dtype(dtype)
    if dtype.kind in "iub":
        return 0.0
    return 1e-5 if dtype.itemsize <= (8 if dtype.kind == "c" else 4) else 1e-12


def _eps(dtype: np.dtype) -> float:
    dtype = np.dtype(dtype)
    return 0.0 if dtype.kind in "iub" else float(np.finfo(dtype).eps)


def _rtol_for(dtype: np.dtype, terms: int) -> float:
    return max(_base_rtol(dtype), 2.0 * terms * _eps(dtype))


# ============================================================================ dot test
@dataclass(frozen=True)
class DotTestResult:
    """Outcome of :func:`dot_test`; true when the test passed.

    ``lhs = vdot(A u, v)``, ``rhs = vdot(u, Aᴴ v)``, ``error = |lhs - rhs|``.
    """

    lhs: complex | float
    rhs: complex | float
    error: float
    tolerance: float
    passed: bool

    def __bool__(self) -> bool:
        return self.passed

    def message(self) -> str:
        verdict = "passed" if self.passed else "failed"
        rel = "<=" if self.passed else ">"
        return (f"dot test {verdict}: vdot(A u, v) = {_num(self.lhs)} and vdot(u, A^H v) = {_num(self.rhs)}; "
                f"|difference| = {self.error:.3e} {rel} tolerance {self.tolerance:.3e}")


def _num(z: complex | float) -> str:
    if isinstance(z, complex) or np.iscomplexobj(z):
        z = complex(z)
        return f"{z.real:.17g}{z.imag:+.17g}j"
    return f"{float(z):.17g}"


def _short(z: complex | float) -> str:
    if isinstance(z, complex):
        return f"{z.real:.10g}{z.imag:+.10g}j"
    return f"{z:.10g}"


def _numeric_dtype(dtype: Any, name: str) -> None:
    if dtype is not None and np.dtype(dtype).kind not in "biufc":
        raise TypeError(f"{name} must have a numeric dtype (bool, integer, float or complex); got dtype {np.dtype(dtype)}")


def _plain_matrix(A: Any, name: str) -> Any:
    """``A`` as a 2-D numeric ndarray or sparse matrix (``np.matrix`` -> ndarray, masks refused); else ``A``."""
    import scipy.sparse as sp

    if isinstance(A, np.ma.MaskedArray):
        if np.ma.getmask(A) is not np.ma.nomask and np.any(np.ma.getmaskarray(A)):
            raise ValueError(f"{name} is a masked array with masked entries, and a matrix has no mask: "
                             f"pass {name}.filled(0) (or the fill you mean) instead")
        A = np.ma.getdata(A)
    if isinstance(A, np.matrix):
        A = np.asarray(A)
    if sp.issparse(A) or isinstance(A, np.ndarray):
        if A.ndim != 2:
            raise ValueError(f"{name} must be 2-D; got an array of shape {A.shape}")
        _numeric_dtype(A.dtype, name)
    return A


def _as_apply(A: Any, name: str) -> tuple[Callable[[np.ndarray], np.ndarray], tuple[int, int] | None, Any]:
    """(apply, shape or None, dtype or None) for a matrix, LinearOperator or callable."""
    import scipy.sparse as sp

    A = _plain_matrix(A, name)
    if sp.issparse(A) or isinstance(A, np.ndarray):
        return (lambda v: A @ v), tuple(A.shape), A.dtype
    if hasattr(A, "matvec") and hasattr(A, "shape"):
        shape = _operator_shape(A, name)
        dtype = getattr(A, "dtype", None)
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


def _operator_shape(A: Any, name: str) -> tuple[int, int]:
    shape = A.shape
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"{name}.shape must be a pair (rows, columns); got {V._describe(shape)}")
    return (V.as_int(shape[0], f"{name}.shape[0]", minimum=0), V.as_int(shape[1], f"{name}.shape[1]", minimum=0))


def _adjoint_of(A: Any) -> Callable[[np.ndarray], np.ndarray]:
    import scipy.sparse as sp

    A = _plain_matrix(A, "A")
    if sp.issparse(A) or isinstance(A, np.ndarray):
        AH = A.conj().T
        return lambda v: AH @ v
    if hasattr(A, "rmatvec"):
        return A.rmatvec
    raise TypeError("AT is required when A is a plain callable (it has no adjoint of its own); "
                    f"got A of type {type(A).__name__} and AT=None")


def _applied(fn: Callable[[np.ndarray], np.ndarray], v: np.ndarray, name: str) -> np.ndarray:
    """``fn(v)`` as a flat numeric array; an operator without an adjoint is a ``TypeError`` naming ``name``."""
    try:
        out = fn(v)
    except NotImplementedError as exc:  # a LinearOperator made from a matvec alone
        raise TypeError(f"{name} cannot be applied ({exc}); pass AT, the adjoint, explicitly") from None
    out = np.asarray(out)
    if out.dtype.kind not in "biufc":
        raise TypeError(f"{name} must return numbers; got an array of dtype {out.dtype}")
    return out.reshape(-1)


def _operator_bytes(A: Any, acc_itemsize: int) -> int:
    """Bytes ``A @ v`` may allocate besides its result: ``A``'s values (and ``v``) cast to a common dtype."""
    import scipy.sparse as sp

    if not (sp.issparse(A) or isinstance(A, np.ndarray)):
        return 0
    if A.dtype.itemsize == acc_itemsize and A.dtype.kind == ("c" if acc_itemsize == 16 else "f"):
        return 0
    values = A.size if isinstance(A, np.ndarray) else A.nnz
    return (int(values) + int(A.shape[1])) * acc_itemsize


def _dot_bytes(m: int, n: int, acc_itemsize: int) -> int:
    """Peak of dot_test's own vectors: u, v, A u, Aᴴ v, their float64/complex128 copies (and norms)."""
    return (m + n) * (32 if acc_itemsize <= 8 else 64)


def dot_test(
    A: Any,
    AT: Any = None,
    *,
    rng: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    complex: bool = False,
    shape: tuple[int, int] | None = None,
    raise_error: bool = True,
    max_bytes: Any = "auto",
) -> DotTestResult:
    """Adjoint ("dot") test: ``vdot(A u, v) == vdot(u, Aᴴ v)`` for random ``u``, ``v``.

    Parameters
    ----------
    A : sparse matrix/array, ndarray, LinearOperator or callable
        The operator (a 2-D numeric array; ``np.matrix`` is accepted, a masked array only without
        masked entries).  A callable needs ``shape``.
    AT : same kinds, optional
        Its adjoint ``Aᴴ`` (the conjugate transpose; the transpose for real ``A``).  Defaults to
        ``A.conj().T`` for matrices and ``A.rmatvec`` for LinearOperators.
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
        complex128 copies) and for the cast copy of a matrix's values that ``A @ u`` may make;
        what a LinearOperator or callable allocates inside is not counted.  ``"auto"``: half the
        RAM; ``None``: no limit.

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

    Notes
    -----
    The inner products are accumulated in float64/complex128 whatever the operator's dtype, so
    the tolerance only has to cover the rounding of ``A u`` and ``Aᴴ v``.  Cauchy-Schwarz bounds
    ``|vdot(A u, v)|`` by ``‖A u‖‖v‖``, which makes the scale immune to cancellation.

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
    if shape is not None:
        if isinstance(shape, np.ndarray):
            shape = shape.tolist()
        if not isinstance(shape, (tuple, list)) or len(shape) != 2:
            raise ValueError(f"shape must be a pair of positive ints (rows, columns); got {V._describe(shape)}")
        shape = tuple(V.as_int(s, f"shape[{i}]", minimum=1, rule="a positive integer (shape is (rows, columns))")
                      for i, s in enumerate(shape))
        if a_shape is not None and a_shape != shape:
            raise ValueError(f"shape {shape} does not match A.shape {a_shape}")
    shape = shape or a_shape
    if shape is None:
        raise TypeError("shape=(rows, columns) is required when A is a plain callable")
    if AT is None:
        adjoint = _adjoint_of(A)
    else:
        AT = _plain_matrix(AT, "AT")
        adjoint, at_shape, _ = _as_apply(AT, "AT")
        if at_shape is not None and at_shape != (shape[1], shape[0]):
            raise ValueError(f"AT must have shape {(shape[1], shape[0])} (A's columns x A's rows); got {at_shape}")
    m, n = shape
    cplx_a = a_dtype is not None and np.dtype(a_dtype).kind == "c"
    acc_size = 16 if (complex or cplx_a) else 8
    need = _dot_bytes(m, n, acc_size) + _operator_bytes(A, acc_size) + (0 if AT is None else _operator_bytes(AT, acc_size))
    V.check_bytes(f"dot_test of a {m:,} x {n:,} operator", need, budget,
                  "test a smaller operator, or pass a larger max_bytes (or None for no limit)")
    gen = _generator(rng)
    if _is_int_dtype(a_dtype):
        draw = lambda size: _int_vector(gen, size)
    else:
        draw = gen.standard_normal
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


# ============================================================================ reports
@dataclass
class Check:
    """One named check: ``status`` is ``"pass"``, ``"fail"`` or ``"skip"``.

    ``error`` is the maximum absolute error and ``tolerance`` the bound it must not exceed,
    ``atol + rtol * scale`` with the ``rtol`` and ``atol`` recorded here (``None`` when the check
    did not run or has no number; the shape check is exact: tolerance 0, ``rtol``/``atol`` None).
    """

    name: str
    status: str
    error: float | None = None
    tolerance: float | None = None
    detail: str = ""
    rtol: float | None = None
    atol: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "error": self.error, "tolerance": self.tolerance,
                "rtol": self.rtol, "atol": self.atol, "detail": self.detail}


@dataclass
class Report:
    """Result of :func:`check_conv`, :func:`check_transpose` or :func:`sweep`.

    ``str(report)`` is a plain-text table, :meth:`to_json` the same as JSON, :attr:`ok` /
    :attr:`exit_code` the verdict (0 when every check passed or was skipped, 1 otherwise).
    For a sweep, :attr:`checks` aggregates each check over all geometries and :attr:`cases`
    holds one report per geometry; :attr:`case` is the keyword dict that re-runs a report with
    :func:`run_case` (``None`` when the kernel was given as an array).
    """

    title: str
    checks: list[Check]
    case: dict[str, Any] | None = None
    cases: list["Report"] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def failures(self) -> list[Check]:
        """The failed checks."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def failing_cases(self) -> list["Report"]:
        """For a sweep: the geometries with at least one failed check."""
        return [r for r in self.cases if not r.ok]

    @property
    def command(self) -> str | None:
        """The ``convmatrix verify`` command line that re-runs this report, if it has one."""
        return None if self.case is None else case_command(self.case)

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in _STATUSES}

    def verdict(self) -> str:
        n = self.counts()
        if not self.ok:
            names = ", ".join(repr(c.name) for c in self.failures)
            return f"FAILED: {n['fail']} of {len(self.checks)} checks ({names})"
        skipped = f" ({n['skip']} skipped)" if n["skip"] else ""
        return f"passed: {n['pass']} of {len(self.checks)} checks{skipped}"

    def __str__(self) -> str:
        rows = [(c.name, _fmt(c.error), _fmt(c.tolerance), c.status.upper() if c.status == "fail" else c.status,
                 c.detail) for c in self.checks]
        head = ("check", "max abs error", "tolerance", "result", "detail")
        w = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
        lines = [self.title, ""]
        fmt = f"{{:<{w[0]}}}  {{:>{w[1]}}}  {{:>{w[2]}}}  {{:<{w[3]}}}  {{}}"
        lines.append(fmt.format(*head).rstrip())
        lines.append("  ".join("-" * x for x in w) + "  " + "-" * 6)
        lines += [fmt.format(*r).rstrip() for r in rows]
        lines.append("")
        lines += self.notes
        if self.case is not None and not self.ok:
            lines.append(f"re-run: {self.command}")
        lines.append(self.verdict())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "title": self.title,
            "ok": self.ok,
            "counts": self.counts(),
            "checks": [c.to_dict() for c in self.checks],
        }
        if self.case is not None:
            out["case"] = self.case
            out["command"] = self.command
        if self.cases:
            out["failing_cases"] = [{"case": r.case, "command": r.command,
                                     "failed": [c.name for c in r.failures]} for r in self.failing_cases]
            out["cases"] = [r.to_dict() for r in self.cases]
        if self.notes:
            out["notes"] = self.notes
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON (``NaN`` errors become ``null``)."""
        return json.dumps(_json_safe(self.to_dict()), indent=indent)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    return f"{x:.2e}"


# ============================================================================ the problem
@dataclass
class _Conv:
    """A forward convolution in PyTorch's orientation, as the independent references see it.

    ``C`` maps ``x`` of shape ``(c_in, *in_shape)`` to ``(c_out, *out_shape)``:
    ``np.pad`` by ``pads`` in ``mode``, then a valid cross-correlation with ``weight``
    ``(c_out, c_in/groups, *k)`` at ``stride`` and ``dilation``, keeping the first ``out_shape``
    positions.  ``scipy_kernel`` is the kernel scipy.signal.convolve should use when the user
    asked for a flipped kernel (true convolution), else ``None`` (use correlate).
    """

    weight: np.ndarray
    groups: int
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    mode: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    scipy_kernel: np.ndarray | None = None

    @property
    def nd(self) -> int:
        return len(self.in_shape)

    @property
    def c_out(self) -> int:
        return self.weight.shape[0]

    @property
    def c_in(self) -> int:
        return self.weight.shape[1] * self.groups

    @property
    def k(self) -> tuple[int, ...]:
        return self.weight.shape[2:]

    @property
    def padded(self) -> tuple[int, ...]:
        return tuple(n + b + a for n, (b, a) in zip(self.in_shape, self.pads))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.c_out * math.prod(self.out_shape), self.c_in * math.prod(self.in_shape))

    def natural_out(self) -> tuple[int, ...]:
        """Sizes of the un-cropped valid correlation of the padded input."""
        return tuple((P - d * (k - 1) - 1) // s + 1 for P, k, s, d in zip(self.padded, self.k, self.stride, self.dilation))

    def absolute(self) -> "_Conv":
        return _Conv(np.abs(self.weight), self.groups, self.stride, self.dilation, self.pads, self.mode,
                     self.in_shape, self.out_shape, None if self.scipy_kernel is None else np.abs(self.scipy_kernel))

    def terms(self) -> int:
        """Upper bound on the number of products summed into one entry of ``C x`` or ``Cᵀ y``."""
        fold = 1 if self.mode == "zeros" else 3 ** self.nd
        per = self.weight.shape[1] * math.prod(self.k)
        back = self.weight.shape[0] // self.groups * math.prod(
            -(-(d * (k - 1) + 1) // s) for k, s, d in zip(self.k, self.stride, self.dilation))
        return max(per, back) * fold


_LETTERS = string.ascii_uppercase  # spatial/tap subscripts; lowercase g, i, o are channels


def _einsum_correlate(windows: np.ndarray, w: np.ndarray, groups: int, nd: int) -> np.ndarray:
    """``windows`` (c_in, *out, *k), ``w`` (c_out, c_in/g, *k) -> (c_out, *out)."""
    c_in = windows.shape[0]
    cpi = c_in // groups
    cpo = w.shape[0] // groups
    win = windows.reshape((groups, cpi) + windows.shape[1:])
    wt = w.reshape((groups, cpo, cpi) + w.shape[2:])
    pos, taps = _LETTERS[:nd], _LETTERS[13:13 + nd]
    out = np.einsum(f"gi{pos}{taps},goi{taps}->go{pos}", win, wt)
    return out.reshape((groups * cpo,) + out.shape[2:])


def _correlate(xp: np.ndarray, w: np.ndarray, stride: Sequence[int], dilation: Sequence[int], groups: int,
               out_shape: Sequence[int]) -> np.ndarray:
    """Valid, strided, dilated, grouped cross-correlation of the padded ``xp`` (c_in, *P)."""
    from numpy.lib.stride_tricks import sliding_window_view

    nd = xp.ndim - 1
    extent = tuple(d * (k - 1) + 1 for k, d in zip(w.shape[2:], dilation))
    win = sliding_window_view(xp, extent, axis=tuple(range(1, nd + 1)))
    sl = ((slice(None),) + tuple(slice(0, o * s, s) for o, s in zip(out_shape, stride))
          + tuple(slice(None, None, d) for d in dilation))
    return _einsum_correlate(win[sl], w, groups, nd)


def _pad_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index of each padded position (``np.pad`` of ``arange(n)`` in ``mode``); -1 = zero."""
    if mode == "zeros":
        return np.pad(np.arange(n), (before, after), mode="constant", constant_values=-1)
    return np.pad(np.arange(n), (before, after), mode=_NUMPY_MODES[mode])


def _ref_forward(p: _Conv, x: np.ndarray) -> np.ndarray:
    """``C x``: ``np.pad`` in the boundary mode, then sliding windows."""
    widths = ((0, 0),) + tuple(p.pads)
    xp = np.pad(x, widths, mode="constant") if p.mode == "zeros" else np.pad(x, widths, mode=_NUMPY_MODES[p.mode])
    return _correlate(xp, p.weight, p.stride, p.dilation, p.groups, p.out_shape)


def _phase_split(p: _Conv) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Shapes that turn a dilated correlation into a plain one, axis by axis.

    An axis of dilation ``d > 1`` is zero-extended to ``L d`` (``L = ceil(P / d)``) and split into
    ``(L, d)``: position ``q d + r`` is row ``q`` of phase column ``r``, the kernel becomes
    ``(k, 1)``, and the valid correlation ``(L - k + 1, d)`` read row-major is the dilated one at
    positions ``0 .. (L - k + 1) d - 1``.  Returns (extended shape, split shape, kernel shape,
    merged valid shape); an axis with ``d = 1`` stays as it is.
    """
    ext, split, kshape, valid = [], [], [], []
    for P, k, d in zip(p.padded, p.k, p.dilation):
        if d == 1:
            ext.append(P), split.append(P), kshape.append(k), valid.append(P - k + 1)
        else:
            L = -(-P // d)
            ext.append(L * d), split.extend((L, d)), kshape.extend((k, 1)), valid.append((L - k + 1) * d)
    return tuple(ext), tuple(split), tuple(kshape), tuple(valid)


def _ref_scipy(p: _Conv, x: np.ndarray) -> np.ndarray:
    """``C x`` with ``scipy.signal.correlate`` (or ``convolve`` for a flipped kernel), one channel pair at a time.

    The dilation is a reshape (:func:`_phase_split`), so the direct method costs ``O(P K)`` per
    channel pair, not ``O(P d^ndim K)`` as with a zero-stuffed kernel.
    """
    from scipy import signal

    widths = ((0, 0),) + tuple(p.pads)
    xp = np.pad(x, widths, mode="constant") if p.mode == "zeros" else np.pad(x, widths, mode=_NUMPY_MODES[p.mode])
    kernels = p.weight if p.scipy_kernel is None else p.scipy_kernel
    ext, split, kshape, valid = _phase_split(p)
    sub = tuple(slice(0, o * s, s) for o, s in zip(p.out_shape, p.stride))
    dtype = np.result_type(xp, kernels)
    out = np.zeros((p.c_out,) + tuple(p.out_shape), dtype=dtype)
    xe = np.zeros(ext, dtype=xp.dtype)
    inside = tuple(slice(0, P) for P in p.padded)
    cpi, cpo = p.weight.shape[1], p.c_out // p.groups
    for co in range(p.c_out):  # loop over kernel slices (channel pairs), not pixels
        for i in range(cpi):
            ci = (co // cpo) * cpi + i
            xe[inside] = xp[ci]
            kern = kernels[co, i].reshape(kshape)
            if p.scipy_kernel is None:  # correlate conjugates its second argument
                r = signal.correlate(xe.reshape(split), np.conj(kern), mode="valid", method="direct")
            else:
                r = signal.convolve(xe.reshape(split), kern, mode="valid", method="direct")
            out[co] += r.reshape(valid)[sub]
    return out


def _fold(p: _Conv, z: np.ndarray) -> np.ndarray:
    """Adjoint of the padding: (c, *padded) -> (c, *in_shape), adding what the mode copied.

    Zero padding folds to a crop; the other modes scatter-add each padded position onto its
    source (``np.add.at`` along one axis at a time: memory linear in the array, whatever the
    padding).
    """
    if p.mode == "zeros":
        return z[(slice(None),) + tuple(slice(b, b + n) for n, (b, _) in zip(p.in_shape, p.pads))]
    for a, (n, (b, e)) in enumerate(zip(p.in_shape, p.pads)):
        idx = _pad_index(n, b, e, p.mode)
        zt = np.moveaxis(z, 1 + a, 0)
        out = np.zeros((n,) + zt.shape[1:], dtype=z.dtype)
        np.add.at(out, idx, zt)
        z = np.moveaxis(out, 0, 1 + a)
    return z


def _ref_fusion(p: _Conv, y: np.ndarray) -> np.ndarray:
    """``Cᵀ y`` as the seed builds it: one kernel copy per pixel of ``y``, placed at stride ``s``, summed."""
    nd, g = p.nd, p.groups
    cpo, cpi = p.c_out // g, p.weight.shape[1]
    pos, taps = _LETTERS[:nd], _LETTERS[13:13 + nd]
    yg = y.reshape((g, cpo) + tuple(p.out_shape))
    wg = p.weight.reshape((g, cpo, cpi) + p.k)
    # copies[g, i, pixel, tap]: the pixel's "full convolution" with the kernel (pixel value x kernel)
    copies = np.einsum(f"go{pos},goi{taps}->gi{pos}{taps}", yg, wg)
    copies = copies.reshape((g * cpi,) + copies.shape[2:])
    padded = p.padded
    # target[c, pixel, tap]: flat index in the padded input, built in place (one int64 per copy)
    target = np.empty(copies.shape, dtype=np.int64)
    target[...] = np.arange(p.c_in).reshape((-1,) + (1,) * (2 * nd)) * math.prod(padded)
    stride_in = [math.prod(padded[a + 1:]) for a in range(nd)]
    for a in range(nd):  # position of (pixel, tap) along axis a: pixel*s + tap*d
        j = np.arange(p.out_shape[a]) * p.stride[a]
        t = np.arange(p.k[a]) * p.dilation[a]
        shape_j = [1] * (1 + 2 * nd)
        shape_j[1 + a] = -1
        shape_t = [1] * (1 + 2 * nd)
        shape_t[1 + nd + a] = -1
        target += j.reshape(shape_j) * stride_in[a]
        target += t.reshape(shape_t) * stride_in[a]
    out = np.zeros(p.c_in * math.prod(padded), dtype=copies.dtype)
    np.add.at(out, target.reshape(-1), copies.reshape(-1))
    del copies, target
    return _fold(p, out.reshape((p.c_in,) + padded))


def _ref_zero_insertion(p: _Conv, y: np.ndarray) -> np.ndarray:
    """``Cᵀ y``: insert ``s-1`` zeros, pad by ``d(k-1)-p`` (negative: crop), correlate with the rotated kernel."""
    nd, g = p.nd, p.groups
    cpo, cpi = p.c_out // g, p.weight.shape[1]
    # for a boundary mode, work on the padded grid and fold afterwards
    before = [b if p.mode == "zeros" else 0 for b, _ in p.pads]
    target = list(p.in_shape) if p.mode == "zeros" else list(p.padded)
    up = np.zeros((p.c_out,) + tuple((o - 1) * s + 1 for o, s in zip(p.out_shape, p.stride)), dtype=y.dtype)
    up[(slice(None),) + tuple(slice(None, None, s) for s in p.stride)] = y
    for a in range(nd):
        span = p.dilation[a] * (p.k[a] - 1)
        lo = span - before[a]
        hi = target[a] + span - up.shape[1 + a] - lo
        widths = [(0, 0)] * (nd + 1)
        widths[1 + a] = (max(lo, 0), max(hi, 0))
        up = np.pad(up, widths)
        crop = [slice(None)] * (nd + 1)
        crop[1 + a] = slice(max(-lo, 0), up.shape[1 + a] - max(-hi, 0))
        up = up[tuple(crop)]
    # rotated kernel with its channel roles swapped: (c_in, c_out/g, *k)
    w = p.weight.reshape((g, cpo, cpi) + p.k).swapaxes(1, 2).reshape((g * cpi, cpo) + p.k)
    w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
    out = _correlate(up, w, (1,) * nd, p.dilation, g, target)
    return out if p.mode == "zeros" else _fold(p, out)


# ---------------------------------------------------------------------------- torch routes
def _import_torch(torch_opt: Any) -> Any:
    if torch_opt is False:
        return None
    try:
        import torch
    except ImportError:
        if torch_opt is True:
            raise ImportError(f"torch=True needs PyTorch: {_TORCH_EXTRA}") from None
        return None
    return torch


def _torch_installed(torch_opt: Any) -> bool:
    """Whether the torch checks would run, without importing torch (``torch=True`` without it: ImportError)."""
    import importlib.util

    if torch_opt is False:
        return False
    found = importlib.util.find_spec("torch") is not None
    if not found and torch_opt is True:
        raise ImportError(f"torch=True needs PyTorch: {_TORCH_EXTRA}")
    return found


def _torch_pad(torch: Any, p: _Conv, x: Any) -> Any:
    """Differentiable padding of ``x`` (1, c, *n): ``F.pad`` for PyTorch's modes, index_select for symmetric."""
    F = torch.nn.functional
    if all(b == 0 and a == 0 for b, a in p.pads):
        return x
    if p.mode in ("zeros", "symmetric") or x.is_complex():
        if p.mode == "zeros":
            flat = [v for b, a in reversed(p.pads) for v in (b, a)]
            return F.pad(x, flat)
        if p.mode != "symmetric":  # complex: pad real and imaginary parts (F.pad is linear)
            return torch.complex(_torch_pad(torch, p, x.real), _torch_pad(torch, p, x.imag))
        for a, (n, (b, e)) in enumerate(zip(p.in_shape, p.pads)):
            x = x.index_select(2 + a, torch.from_numpy(_pad_index(n, b, e, p.mode)))
        return x
    flat = [v for b, a in reversed(p.pads) for v in (b, a)]
    return F.pad(x, flat, mode=_TORCH_MODES[p.mode])


def _torch_conv(torch: Any, p: _Conv, x: Any) -> Any:
    F = torch.nn.functional
    conv = getattr(F, f"conv{p.nd}d")
    w = torch.from_numpy(p.weight)
    if p.mode == "zeros" and all(b == a for b, a in p.pads):  # PyTorch's own padding argument
        out = conv(x, w, stride=p.stride, padding=tuple(b for b, _ in p.pads), dilation=p.dilation, groups=p.groups)
    else:
        out = conv(_torch_pad(torch, p, x), w, stride=p.stride, dilation=p.dilation, groups=p.groups)
    return out[(slice(None), slice(None)) + tuple(slice(0, o) for o in p.out_shape)]


def _torch_forward(torch: Any, p: _Conv, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return _torch_conv(torch, p, torch.from_numpy(x[None])).resolve_conj().numpy()[0]


def _torch_vjp(torch: Any, p: _Conv, y: np.ndarray) -> np.ndarray:
    """``Cᵀ y`` as the gradient of ``torch convNd`` with respect to its input (``Cᴴ`` for complex, conjugated back)."""
    cplx = np.iscomplexobj(y) or np.iscomplexobj(p.weight)
    dt = torch.complex128 if cplx else torch.float64
    x = torch.zeros((1, p.c_in) + tuple(p.in_shape), dtype=dt, requires_grad=True)
    out = _torch_conv(torch, p, x)
    g = torch.from_numpy(np.conj(y)[None].astype(np.complex128 if cplx else np.float64))
    (grad,) = torch.autograd.grad(out, x, grad_outputs=g)
    return np.conj(grad.resolve_conj().numpy()[0])


def _torch_transpose(torch: Any, p: _Conv, y: np.ndarray) -> tuple[np.ndarray, str]:
    """``Cᵀ y`` with ``torch conv_transposeNd`` (its own padding when it can express it)."""
    F = torch.nn.functional
    convt = getattr(F, f"conv_transpose{p.nd}d")
    w = torch.from_numpy(p.weight)
    yt = torch.from_numpy(y[None])
    base = [(o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(p.out_shape, p.stride, p.dilation, p.k)]
    note = ""
    with torch.no_grad():
        if p.mode == "zeros" and all(b == a for b, a in p.pads):
            pad = [b for b, _ in p.pads]
            op = [n - (L - 2 * q) for n, L, q in zip(p.in_shape, base, pad)]
            if all(0 <= a < max(s, d) for a, s, d in zip(op, p.stride, p.dilation)):
                out = convt(yt, w, stride=p.stride, padding=pad, output_padding=op, groups=p.groups,
                            dilation=p.dilation)
                return out.resolve_conj().numpy()[0], note
        # asymmetric padding or a boundary mode: un-padded transposed convolution, then crop / fold
        full = convt(yt, w, stride=p.stride, groups=p.groups, dilation=p.dilation).resolve_conj().numpy()[0]
    z = np.zeros((p.c_in,) + p.padded, dtype=full.dtype)
    z[(slice(None),) + tuple(slice(0, min(L, P)) for L, P in zip(base, p.padded))] = \
        full[(slice(None),) + tuple(slice(0, min(L, P)) for L, P in zip(base, p.padded))]
    if p.mode == "zeros":
        note = "torch has symmetric padding only: run unpadded, then cropped"
        return z[(slice(None),) + tuple(slice(b, b + n) for n, (b, _) in zip(p.in_shape, p.pads))], note
    note = f"unpadded torch result folded by the adjoint of {p.mode!r} padding"
    return _fold(p, z), note


# ============================================================================ running the checks
def _kernel_and_dtype(kernel: Any, dtype: Any) -> tuple[np.ndarray, np.dtype]:
    """The validated kernel and matrix dtype (``result_dtype`` refuses values the dtype cannot hold); non-finite
    kernels are refused."""
    k = V.kernel_array(kernel)
    out = V.result_dtype(k, dtype)
    bad = int(k.size - np.count_nonzero(np.isfinite(k)))
    if bad:
        raise ValueError(f"kernel must be finite to be verified (NaN or inf makes every comparison fail); "
                         f"got {bad} non-finite entries")
    return k, out


def _work_dtype(*dtypes: Any) -> type:
    return np.complex128 if any(np.dtype(d).kind == "c" for d in dtypes if d is not None) else np.float64


def _random_vector(gen: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, cplx: bool) -> np.ndarray:
    """Test vector: nonzero integers in [-8, 8] for integer matrices (exact sums), else standard normal."""
    if np.dtype(dtype).kind in "iub" and not cplx:
        return _int_vector(gen, shape)
    v = gen.standard_normal(shape)
    if cplx:
        v = v + 1j * gen.standard_normal(shape)
    return v


def _matrix_ops(M: Any) -> tuple[Callable, Callable, tuple[int, int], Any]:
    """(M @ v, M.T @ v, shape, dtype) for a sparse matrix, ndarray or LinearOperator."""
    import scipy.sparse as sp

    M = _plain_matrix(M, "matrix")
    if sp.issparse(M) or isinstance(M, np.ndarray):
        MT = M.T
        return (lambda v: M @ v), (lambda v: MT @ v), tuple(M.shape), M.dtype
    if hasattr(M, "matvec") and hasattr(M, "rmatvec") and hasattr(M, "shape"):
        shape = _operator_shape(M, "matrix")
        dtype = getattr(M, "dtype", None)
        try:
            dtype = None if dtype is None else np.dtype(dtype)
        except TypeError:
            dtype = None
        _numeric_dtype(dtype, "matrix")
        # transpose from the adjoint: M^T v = conj(M^H conj(v))
        return (lambda v: _applied(M.matvec, v, "matrix")), \
            (lambda v: np.conj(_applied(M.rmatvec, np.conj(v), "matrix's rmatvec"))), shape, dtype
    raise TypeError(f"matrix must be a scipy sparse matrix/array, a 2-D ndarray or a LinearOperator; "
                    f"got {type(M).__name__}")


def _apply_or_error(apply: Callable[[np.ndarray], np.ndarray], v: np.ndarray) -> np.ndarray | Exception:
    """``apply(v)``, or the exception a user's operator raised (the checks that need it then fail)."""
    try:
        return np.asarray(apply(v.reshape(-1)))
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the failed checks' detail
        return exc


def _compare(name: str, got: np.ndarray | Exception, want: np.ndarray, scale: float, rtol: float, atol: float,
             detail: str = "") -> Check:
    if isinstance(got, Exception):
        return Check(name, "fail", None, None, f"not run: the matrix raised {type(got).__name__}: {got}", rtol, atol)
    got = np.asarray(got).reshape(-1)
    want = np.asarray(want).reshape(-1)
    if got.shape != want.shape:
        return Check(name, "fail", None, None, f"sizes differ: {got.size} vs {want.size}", rtol, atol)
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    tol = atol + rtol * scale
    ok = bool(err <= tol)  # False for NaN
    return Check(name, "pass" if ok else "fail", err, tol, detail, rtol, atol)


# ---------------------------------------------------------------------------- memory
def _reference_bytes(p: _Conv, cplx: bool, torch_on: bool, cast: int = 0) -> int:
    """Closed-form peak of everything :func:`_run` allocates besides the matrix (O(ndim) work).

    ``persistent`` (kept through the run: the test vectors, the matrix's products, kernel copies)
    plus the largest single step: a scale, a product with the matrix (``cast``: the copy of its
    values cast to the vectors' dtype), the dot test, or one reference with its comparison.  The
    steps count their padded copies (``np.pad``), the fusion's kernel copies and their int64
    targets, scipy's un-strided correlation of the phase-split input, the zero-insertion grid, the fold
    (adjoint of the padding), and -- with torch -- PyTorch's padded input and im2col buffers.
    """
    b = 16 if cplx else 8
    nd = p.nd
    c_in, c_out = p.c_in, p.c_out
    cpi = p.weight.shape[1]
    N, O, P = math.prod(p.in_shape), math.prod(p.out_shape), math.prod(p.padded)
    K = math.prod(p.k)
    NO = math.prod(p.natural_out())
    X, Y, W = c_in * N, c_out * O, c_out * cpi * K
    boundary = p.mode != "zeros"

    # zero insertion: the upsampled grid, padded axis by axis (old and new alive), then cropped
    target = p.padded if boundary else p.in_shape
    before = [0 if boundary else bb for bb, _ in p.pads]
    grid = fin = 1
    for a in range(nd):
        span = p.dilation[a] * (p.k[a] - 1)
        up0 = (p.out_shape[a] - 1) * p.stride[a] + 1
        lo = span - before[a]
        hi = target[a] + span - up0 - lo
        grid *= up0 + max(lo, 0) + max(hi, 0)
        fin *= target[a] + span
    T = math.prod(target)
    zero_ins = max(2 * c_out * grid * b, c_out * fin * b + c_in * T * b * (3 if boundary else 1))

    fwd = c_in * P * b + Y * b                                   # np.pad + the einsum's output
    fusion = c_in * O * K * (b + 8) + c_in * P * b               # kernel copies + int64 targets + padded sum
    if boundary:
        fusion = max(fusion, 3 * c_in * P * b)                   # the fold: input, output, one axis at a time
    ext = _phase_split(p)[0]
    scipy_ = c_in * P * b + 2 * math.prod(ext) * b + Y * b + 2 * W * b  # pad, phase-split copy, result
    compare = max(X, Y) * (b + 8)                                # got - want, and its abs
    dot = _dot_bytes(X, Y, b) + cast + (X + Y) * b + max(fusion, fwd)
    steps = [X * 8 + fwd, Y * 8 + fusion, cast + max(X, Y) * b, dot, fwd + compare, scipy_ + compare,
             zero_ins + compare, fusion + compare]
    if torch_on:
        f = 2 if cplx else 1                                     # complex convolutions run as real ones
        conv = f * (2 * c_in * P * b + c_in * K * NO * b + c_out * NO * b)
        vjp = f * (3 * c_in * P * b + 2 * c_in * K * NO * b + 2 * c_out * NO * b) + 2 * X * 16 + 2 * Y * 16
        base = math.prod((o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(p.out_shape, p.stride, p.dilation, p.k))
        convt = f * (c_in * K * O * b + c_in * base * b) + 3 * c_in * P * b
        steps += [conv + compare, vjp + compare, convt + compare]
    persistent = 6 * W * 16 + 2 * (X + Y) * b
    return (persistent + max(steps)) * 11 // 10  # 10% margin: measured peaks are 0.5 to 0.97 of the sum


def _guard(p: _Conv, what: str, shape: tuple[int, int], budget: int | None, matrix_bytes: int, cast: int,
           cplx: bool, torch_on: bool) -> None:
    """Refuse, before allocating, a check whose predicted peak exceeds ``budget``."""
    if budget is None:
        return
    need = matrix_bytes + _reference_bytes(p, cplx, torch_on, cast)
    hint = ("verify a smaller geometry (every check is local: a few kernel extents per axis exercise every "
            "boundary and stride)")
    if torch_on and matrix_bytes + _reference_bytes(p, cplx, False, cast) <= budget:
        hint += ", pass torch=False to skip PyTorch's buffers"
    V.check_bytes(f"{what} of a {shape[0]:,} x {shape[1]:,} matrix with its reference routes", need, budget,
                  hint + ", or pass a larger max_bytes (or None for no limit)")


def _formula_output(geom: Any) -> tuple[int, ...]:
    """The spatial output shape from the SymPy-derived formula (:mod:`convmatrix.symbolic`)."""
    from .symbolic import output_shape_from_formula

    return tuple(int(v) for v in output_shape_from_formula(geom))


def _shape_check(p: _Conv, geom: Any, shape: tuple[int, int], transposed: bool) -> tuple[Check, bool]:
    """Matrix shape vs the SymPy-derived output size and the references' own sizes."""
    ref_shape = (p.shape[1], p.shape[0]) if transposed else p.shape
    ref_spatial = p.in_shape if transposed else p.out_shape  # the result's spatial shape
    formula = _formula_output(geom)
    err = max(abs(a - b) for a, b in zip(shape, ref_shape))
    detail = f"matrix {shape[0]} x {shape[1]}"
    if tuple(shape) != tuple(ref_shape):
        detail += f", references need {ref_shape[0]} x {ref_shape[1]}"
    want = (geom.out_channels * math.prod(formula), geom.in_channels * math.prod(geom.input_shape))
    err = max(err, max(abs(a - b) for a, b in zip(formula, ref_spatial)), max(abs(a - b) for a, b in zip(shape, want)))
    detail += f"; formula output {'x'.join(map(str, formula))}"
    if formula != tuple(ref_spatial):
        detail += f", references {'x'.join(map(str, ref_spatial))}"
    return Check(SHAPE, "pass" if err == 0 else "fail", float(err), 0.0, detail), tuple(shape) == tuple(ref_shape)


def _tolerance_rules(M: Any, mdtype: np.dtype, cplx: bool, p: _Conv, shape: tuple[int, int],
                     rtol: float | None) -> tuple[float, float]:
    """(rtol of the element-wise checks, rtol of the dot test): the given ``rtol``, else the defaults.

    Defaults: the dtype's rule (:func:`_rtol_for`; a LinearOperator with an integer dtype gets
    float64's, since its arithmetic is unknown).  An integer matrix is compared exactly (0) when
    every sum of products of its entries with the test vectors stays below ``2**53``; otherwise
    float64 rounding enters, and the rtol is ``2 K eps`` (dot test: 1e-12).
    """
    import scipy.sparse as sp

    if rtol is not None:
        return rtol, rtol
    terms = p.terms()
    if (sp.issparse(M) or isinstance(M, np.ndarray)) and _is_int_dtype(mdtype) and not cplx:
        wmax = float(np.max(np.abs(p.weight))) if p.weight.size else 0.0
        rt = 0.0 if wmax * _INT_SPAN * terms <= _EXACT else 2.0 * terms * _eps(np.float64)
        dot_rt = 0.0 if wmax * _INT_SPAN ** 2 * terms * max(shape) <= _EXACT else 1e-12
        return rt, dot_rt
    rule = mdtype if mdtype.kind in "fc" else np.dtype(np.float64)
    rt = _rtol_for(rule, terms)
    return rt, rt


def _run(p: _Conv, geom: Any, M: Any, transposed: bool, *, gen: np.random.Generator, rtol: float | None,
         atol: float | None, torch: Any, torch_opt: Any) -> list[Check]:
    """All checks for the pair (C, Cᵀ) where ``M`` is C (``transposed=False``) or Cᵀ.

    ``rtol``/``atol`` are validated tolerances (``None``: the defaults); ``torch`` is the torch
    module or ``None`` (its checks are then skipped).
    """
    mv, mtv, shape, mdtype = _matrix_ops(M)
    wdt = _work_dtype(p.weight.dtype, mdtype)
    cplx = wdt is np.complex128
    mdtype = np.dtype(mdtype) if mdtype is not None else np.dtype(wdt)
    at = 0.0 if atol is None else atol
    if transposed:  # M = Cᵀ: C x = Mᵀ x, Cᵀ y = M y
        c_apply, ct_apply = mtv, mv
    else:
        c_apply, ct_apply = mv, mtv
    nd = p.nd
    fwd_names = [FWD_NUMPY, FWD_SCIPY, _fwd_torch(nd)]
    tr_names = [TR_ZERO, TR_FUSION, _tr_torch(nd), _TR_VJP]
    names = [SHAPE, DOT] + (tr_names + fwd_names if transposed else fwd_names + tr_names)

    checks: dict[str, Check] = {}
    checks[SHAPE], shape_ok = _shape_check(p, geom, shape, transposed)
    if not shape_ok:
        for name in names[1:]:
            checks[name] = Check(name, "fail", None, None, "not run: matrix shape does not match the references")
        return [checks[n] for n in names]

    rt, dot_rt = _tolerance_rules(M, mdtype, cplx, p, shape, rtol)
    x = _random_vector(gen, (p.c_in,) + tuple(p.in_shape), mdtype, cplx)
    y = _random_vector(gen, (p.c_out,) + tuple(p.out_shape), mdtype, cplx)
    absp = p.absolute()
    with np.errstate(over="ignore"):  # an overflow is refused just below
        fwd_scale = float(np.max(_ref_forward(absp, np.abs(x)), initial=0.0))
        tr_scale = float(np.max(_ref_fusion(absp, np.abs(y)), initial=0.0))
    del absp
    if not (math.isfinite(fwd_scale) and math.isfinite(tr_scale)):
        raise ValueError("kernel values are too large to verify: sums of |kernel| x |test vector| overflow "
                         f"float64 (largest |kernel| entry {float(np.max(np.abs(p.weight))):.3e})")
    Cx, CTy = _apply_or_error(c_apply, x), _apply_or_error(ct_apply, y)

    # adjoint test of the matrix against a reference adjoint (not the matrix's own transpose)
    if transposed:
        ref_adj = lambda v: np.conj(_ref_forward(p, np.conj(v).reshape((p.c_in,) + tuple(p.in_shape)))).reshape(-1)
    else:
        ref_adj = lambda v: np.conj(_ref_fusion(p, np.conj(v).reshape((p.c_out,) + tuple(p.out_shape)))).reshape(-1)
    try:
        res = dot_test(M, ref_adj, rng=gen, rtol=dot_rt, atol=at, complex=cplx, raise_error=False, max_bytes=None)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the operator failed or returned the wrong number of values
        checks[DOT] = Check(DOT, "fail", None, None, f"not run: {type(exc).__name__}: {exc}", dot_rt, at)
    else:
        checks[DOT] = Check(DOT, "pass" if res.passed else "fail", res.error, res.tolerance,
                            f"vdot(A u, v) = {_short(res.lhs)}, vdot(u, A^H v) = {_short(res.rhs)}", dot_rt, at)

    checks[FWD_NUMPY] = _compare(FWD_NUMPY, Cx, _ref_forward(p, x), fwd_scale, rt, at)
    checks[FWD_SCIPY] = _compare(FWD_SCIPY, Cx, _ref_scipy(p, x), fwd_scale, rt, at,
                                 "convolve (flipped kernel)" if p.scipy_kernel is not None else "correlate")
    fold_note = "" if p.mode == "zeros" else f"+ adjoint of {p.mode!r} padding"
    checks[TR_ZERO] = _compare(TR_ZERO, CTy, _ref_zero_insertion(p, y), tr_scale, rt, at, fold_note)
    checks[TR_FUSION] = _compare(TR_FUSION, CTy, _ref_fusion(p, y), tr_scale, rt, at, fold_note)

    torch_names = [_fwd_torch(nd), _tr_torch(nd), _TR_VJP]
    if torch is None:
        why = "torch not installed (" + _TORCH_EXTRA + ")" if torch_opt is not False else "torch checks disabled"
        for name in torch_names:
            checks[name] = Check(name, "skip", detail=why)
    elif nd > 3:
        for name in torch_names:
            checks[name] = Check(name, "skip", detail=f"torch has no {nd}-D convolution")
    else:
        sym = "symmetric padding done by index_select (torch has no 'symmetric' mode)" if p.mode == "symmetric" else ""
        # one thread: these tensors are tiny, and an idle-spinning pool costs ~1000x on a busy machine
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            fwd = _torch_forward(torch, p, x)
            checks[_fwd_torch(nd)] = _compare(_fwd_torch(nd), Cx, fwd, fwd_scale, rt, at, sym)
            del fwd
            got, note = _torch_transpose(torch, p, y)
            checks[_tr_torch(nd)] = _compare(_tr_torch(nd), CTy, got, tr_scale, rt, at, note)
            del got
            vjp = _torch_vjp(torch, p, y)
            checks[_TR_VJP] = _compare(_TR_VJP, CTy, vjp, tr_scale, rt, at, sym)
        finally:
            torch.set_num_threads(threads)
    return [checks[n] for n in names]


def _title(direction: str, geom: Any, shape: tuple[int, int], dtype: Any, flip: bool, given: bool) -> str:
    def dims(t: Sequence[int]) -> str:
        return "x".join(map(str, t))

    ch = (f", channels {geom.in_channels}->{geom.out_channels}" if geom.channel_axis else "")
    grp = f", groups {geom.groups}" if geom.groups > 1 else ""
    pads = ",".join(f"({b},{a})" for b, a in geom.padding)
    extra = ""
    if direction == "conv_transpose" and any(geom.output_padding):
        extra += f", output_padding {dims(geom.output_padding)}"
    if direction == "conv" and geom.padding_mode != "zeros":
        extra += f", padding_mode {geom.padding_mode}"
    if flip:
        extra += ", flipped kernel"
    what = "C^T" if direction == "conv_transpose" else "C"
    src = "given matrix" if given else f"{what} = {'conv_transpose_matrix' if what == 'C^T' else 'conv_matrix'}(...)"
    return (f"{direction} {geom.ndim}-D: input {dims(geom.input_shape)}, kernel {dims(geom.kernel_shape)}{ch}, "
            f"stride {dims(geom.stride)}, padding {pads}, dilation {dims(geom.dilation)}{grp}{extra} -> output "
            f"{dims(geom.output_shape)}\n{src}: {shape[0]} x {shape[1]}, {np.dtype(dtype).name}")


def check_conv(
    kernel: Any,
    input_shape: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    padding_mode: str = "zeros",
    flip: bool = False,
    dtype: Any = None,
    matrix: Any = None,
    rng: Any = 0,
    rtol: float | None = None,
    atol: float | None = None,
    torch: Any = "auto",
    max_bytes: Any = "auto",
) -> Report:
    """Verify the convolution matrix ``C`` of :func:`convmatrix.conv_matrix` (or a given ``matrix``).

    Parameters
    ----------
    kernel, input_shape, stride, padding, dilation, groups, padding_mode, flip, dtype
        As :func:`convmatrix.conv_matrix` (``flip`` must be a bool).
    matrix : sparse matrix/array, ndarray or LinearOperator, optional
        Verify this matrix instead of building one (e.g. your own implementation): a 2-D numeric
        array (``np.matrix`` accepted, a masked array only without masked entries) or an object
        with ``shape``, ``matvec`` and ``rmatvec``.  A matrix of the wrong shape is not an error:
        the report's shape check fails and the other checks are reported as failed, not run; an
        exception raised by a LinearOperator's ``matvec``/``rmatvec`` (other than MemoryError)
        fails the checks that needed it, with the exception in their detail.
    rng : None, int seed, numpy Generator, BitGenerator or SeedSequence
        Source of the random test vectors (nonzero integers in ``[-8, 8]`` for integer matrices).
    rtol, atol : float, optional
        Replace the dtype-derived tolerances (see the module docstring) in every check but the
        shape check; ``0`` is honoured.  Finite and non-negative.
    torch : {"auto", True, False}
        Use PyTorch when installed (``True``: require it; ``False``: skip its checks).
    max_bytes : int, None or "auto"
        Budget for the call's peak memory: the matrix (the builder is given the same budget)
        plus the reference routes, predicted in closed form (see the module docstring);
        ``"auto"`` is half the RAM, ``None`` no limit.  A given ``matrix`` is not counted (it
        exists already), the cast copy ``matrix @ x`` may make of its values is.

    Returns
    -------
    Report
        One row per check (see the module docstring); ``report.ok`` is the verdict.

    Raises
    ------
    TypeError, ValueError
        An invalid argument (the message names it), as :func:`convmatrix.conv_matrix` would, or
        an invalid ``flip``, ``matrix``, ``rng``, ``rtol``, ``atol``, ``torch`` or ``max_bytes``;
        more than 13 spatial axes.
    MatrixTooLargeError
        The predicted peak exceeds ``max_bytes``; raised before anything is allocated.
    ImportError
        ``torch=True`` without PyTorch installed.

    Examples
    --------
    >>> import numpy as np
    >>> r = check_conv(np.arange(9.0).reshape(3, 3), (5, 5), stride=2, padding=1, torch=False)
    >>> r.ok, r.counts()
    (True, {'pass': 6, 'fail': 0, 'skip': 3})
    >>> import convmatrix as cm
    >>> C = cm.conv_matrix(np.arange(9.0).reshape(3, 3), (5, 5)).tolil()
    >>> C[4, 7] += 1e-3                        # one wrong entry
    >>> bad = check_conv(np.arange(9.0).reshape(3, 3), (5, 5), matrix=C, torch=False)
    >>> bad.exit_code, [c.name for c in bad.failures]      # doctest: +NORMALIZE_WHITESPACE
    (1, ['adjoint (dot test)', 'C x vs numpy sliding windows', 'C x vs scipy.signal',
         'C^T y vs zero insertion', 'C^T y vs fusion (seed)'])
    """
    from .geometry import conv_geometry

    common = _common_options(rng, rtol, atol, torch, max_bytes)
    flip = V.as_bool(flip, "flip")
    k, out_dtype = _kernel_and_dtype(kernel, dtype)
    geom = conv_geometry(k.shape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode)
    _check_axes(geom)
    wshape = (geom.out_channels, geom.in_per_group) + geom.kernel_shape
    p = _Conv(_placeholder(wshape), geom.groups, geom.stride, geom.dilation, geom.padding, geom.padding_mode,
              geom.input_shape, ())
    p.out_shape = p.natural_out()  # the references' own output size

    def build(budget: int | None) -> Any:
        from .matrices import conv_matrix

        return conv_matrix(k, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                           padding_mode=padding_mode, flip=flip, dtype=dtype, max_bytes=budget)

    def weights(wdt: type) -> tuple[np.ndarray, np.ndarray | None]:
        w = k.astype(out_dtype).astype(wdt).reshape(wshape)
        if not flip:
            return w, None
        # copy: torch rejects negative strides
        return w[(slice(None), slice(None)) + (slice(None, None, -1),) * geom.ndim].copy(), w

    return _check("conv", "check_conv", geom, p, k, out_dtype, matrix, build, weights, flip, common)


def _common_options(rng: Any, rtol: Any, atol: Any, torch: Any, max_bytes: Any) -> dict[str, Any]:
    """Validate the options check_conv and check_transpose share (before anything is built)."""
    rtol, atol = _tolerances(rtol, atol)
    return {"gen": _generator(rng), "rtol": rtol, "atol": atol, "torch_opt": _torch_option(torch),
            "budget": V.budget(max_bytes)}


def _check_axes(geom: Any) -> None:
    if geom.ndim > _MAX_AXES:
        raise ValueError(f"input_shape must have at most {_MAX_AXES} spatial axes for the verifier's references; "
                         f"got {geom.ndim}")


def _placeholder(shape: tuple[int, ...]) -> np.ndarray:
    """A weight of the right shape that allocates nothing (for the memory prediction)."""
    return np.broadcast_to(np.zeros((), dtype=np.float64), shape)


def _check(direction: str, what: str, geom: Any, p: _Conv, k: np.ndarray, out_dtype: np.dtype, matrix: Any,
           build: Callable[[int | None], Any], weights: Callable[[type], tuple[np.ndarray, np.ndarray | None]],
           flip: bool, common: dict[str, Any]) -> Report:
    """Guard the memory, build (or take) the matrix, and run every check."""
    budget = common["budget"]
    given = matrix is not None
    if given:
        matrix = _plain_matrix(matrix, "matrix")
        mshape, mdtype = _matrix_ops(matrix)[2:]
    else:
        mshape, mdtype = geom.shape, out_dtype
    cplx = _work_dtype(out_dtype, k.dtype, mdtype) is np.complex128
    torch_on = _torch_installed(common["torch_opt"]) and geom.ndim <= 3  # imported after the guard
    b = 16 if cplx else 8
    if given:
        matrix_bytes, cast = 0, _operator_bytes(matrix, b)
    else:
        matrix_bytes = geom.predicted_bytes(out_dtype)
        same = np.dtype(out_dtype) == np.dtype(np.complex128 if cplx else np.float64)
        cast = 0 if same else (geom.nnz + mshape[1]) * b
    _guard(p, what, mshape, budget, matrix_bytes, cast, cplx, torch_on)
    torch_mod = _import_torch(common["torch_opt"])
    if not given:
        matrix = build(budget)
    wdt = _work_dtype(out_dtype, k.dtype)
    p.weight, p.scipy_kernel = weights(wdt)
    checks = _run(p, geom, matrix, direction == "conv_transpose", gen=common["gen"], rtol=common["rtol"],
                  atol=common["atol"], torch=torch_mod, torch_opt=common["torch_opt"])
    shown = getattr(matrix, "dtype", None)
    try:
        shown = np.dtype(shown) if shown is not None else out_dtype
    except TypeError:
        shown = out_dtype
    return Report(_title(direction, geom, mshape, shown, flip, given), checks)


def check_transpose(
    kernel: Any,
    input_shape: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    output_shape: Any = None,
    dtype: Any = None,
    matrix: Any = None,
    rng: Any = 0,
    rtol: float | None = None,
    atol: float | None = None,
    torch: Any = "auto",
    max_bytes: Any = "auto",
) -> Report:
    """Verify the transposed-convolution matrix ``Cᵀ`` of :func:`convmatrix.conv_transpose_matrix`.

    ``Cᵀ y`` is compared with zero insertion + padding + rotated kernel, with the seed's fusion
    (scatter-add of kernel copies), with ``torch conv_transposeNd`` and with the autograd
    vector-Jacobian product of ``torch convNd``; ``C x`` (the matrix's transpose applied) with a
    reference convolution; the shape with the SymPy-derived formula.

    Parameters
    ----------
    kernel, input_shape, stride, padding, output_padding, dilation, groups, output_shape, dtype
        As :func:`convmatrix.conv_transpose_matrix` (``input_shape`` is the transposed
        convolution's input; the kernel is PyTorch's ``(C_in, C_out/groups, *k)`` or spatial).
    matrix : sparse matrix/array, ndarray or LinearOperator, optional
        Verify this matrix (of the transposed convolution) instead of building one; as in
        :func:`check_conv`.
    rng, rtol, atol, torch, max_bytes
        As :func:`check_conv` (the builder is :func:`convmatrix.conv_transpose_matrix`).

    Returns
    -------
    Report

    Raises
    ------
    TypeError, ValueError, MatrixTooLargeError, ImportError
        As :func:`check_conv`.

    Examples
    --------
    The seed article's deconvolution: 2x2 input, 4x4 kernel, stride 3, output 7x7.

    >>> import numpy as np
    >>> r = check_transpose(np.arange(16).reshape(4, 4), (2, 2), stride=3, torch=False)
    >>> r.ok
    True
    >>> print(r)                                      # doctest: +NORMALIZE_WHITESPACE
    conv_transpose 2-D: input 2x2, kernel 4x4, stride 3x3, padding (0,0),(0,0), dilation 1x1 -> output 7x7
    C^T = conv_transpose_matrix(...): 49 x 4, int64
    <BLANKLINE>
    check                            max abs error  tolerance  result  detail
    -------------------------------  -------------  ---------  ------  ------
    shape vs symbolic formula                    0          0  pass    matrix 49 x 4; formula output 7x7
    adjoint (dot test)                    ...  pass    vdot(A u, v) = ..., vdot(u, A^H v) = ...
    C^T y vs zero insertion                      0          0  pass
    C^T y vs fusion (seed)                       0          0  pass
    C^T y vs torch conv_transpose2d              -          -  skip    torch checks disabled
    C^T y vs torch autograd VJP                  -          -  skip    torch checks disabled
    C x vs numpy sliding windows                 0          0  pass
    C x vs scipy.signal                          0          0  pass    correlate
    C x vs torch conv2d                          -          -  skip    torch checks disabled
    <BLANKLINE>
    passed: 6 of 9 checks (3 skipped)

    A kernel that was rotated by mistake is caught:

    >>> import convmatrix as cm
    >>> wrong = cm.conv_transpose_matrix(np.arange(16).reshape(4, 4)[::-1, ::-1], (2, 2), stride=3)
    >>> check_transpose(np.arange(16).reshape(4, 4), (2, 2), stride=3, matrix=wrong, torch=False).ok
    False
    """
    from .geometry import conv_transpose_geometry

    common = _common_options(rng, rtol, atol, torch, max_bytes)
    k, out_dtype = _kernel_and_dtype(kernel, dtype)
    geom = conv_transpose_geometry(k.shape, input_shape, stride=stride, padding=padding, output_padding=output_padding,
                                   dilation=dilation, groups=groups, output_shape=output_shape)
    _check_axes(geom)
    # PyTorch's transposed weight (C_in, C_out/g, *k) is the weight of the forward convolution it transposes
    wshape = (geom.in_channels, geom.out_per_group) + geom.kernel_shape
    # the transposed output size, by the references' own formula
    o = tuple((n - 1) * s - b - e + d * (kk - 1) + a + 1 for n, s, (b, e), d, kk, a in
              zip(geom.input_shape, geom.stride, geom.padding, geom.dilation, geom.kernel_shape, geom.output_padding))
    p = _Conv(_placeholder(wshape), geom.groups, geom.stride, geom.dilation, geom.padding, "zeros", o, geom.input_shape)

    def build(budget: int | None) -> Any:
        from .matrices import conv_transpose_matrix

        return conv_transpose_matrix(k, input_shape, stride=stride, padding=padding, output_padding=output_padding,
                                     dilation=dilation, groups=groups, output_shape=output_shape, dtype=dtype,
                                     max_bytes=budget)

    def weights(wdt: type) -> tuple[np.ndarray, None]:
        return k.astype(out_dtype).astype(wdt).reshape(wshape), None

    return _check("conv_transpose", "check_transpose", geom, p, k, out_dtype, matrix, build, weights, False, common)


# ============================================================================ cases and sweeps
def _dtype_name(value: Any, name: str) -> str:
    """The name of a numeric dtype a kernel may have (integer, float32/64, complex); else an error naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        raise TypeError(f"{name} must be a numeric dtype such as 'float64'; got {V._describe(value)}")
    import warnings

    try:
        with warnings.catch_warnings():  # deprecated aliases ('a') are refused below anyway
            warnings.simplefilter("ignore", DeprecationWarning)
            dt = np.dtype(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric dtype such as 'float64'; got {V._describe(value)}") from None
    if dt.kind not in "iufc" or dt == np.float16:
        raise ValueError(f"{name} must be an integer, float32/float64 or complex dtype; got {dt}")
    return dt.name


def _shape_tuple(value: Any, name: str) -> tuple[int, ...]:
    """A non-empty sequence of positive ints (a kernel's shape)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of positive ints; got {V._describe(value)}")
    if not value:
        raise ValueError(f"{name} must have at least one axis; got {V._describe(value)}")
    return tuple(V.as_int(v, f"{name}[{i}]", minimum=1) for i, v in enumerate(value))


def _kernel_bytes(size: int, dtype: np.dtype) -> int:
    """Peak of drawing ``size`` random values of ``dtype`` (float64 draws, complex parts, the cast)."""
    if dtype.kind == "c":
        return size * (2 * 8 + 3 * 16)
    return size * (8 + dtype.itemsize)


def random_kernel(shape: Sequence[int], dtype: Any = "float64", seed: int = 0, *,
                  max_bytes: Any = "auto") -> np.ndarray:
    """The random kernel ``convmatrix verify --seed S`` and :func:`sweep` use.

    Standard normal values (real and imaginary parts for complex dtypes; integers in ``[-4, 4]``
    for signed integer dtypes, ``[0, 4]`` for unsigned ones) from
    ``np.random.default_rng([seed, 17])``.

    Parameters
    ----------
    shape : sequence of positive ints
    dtype : integer, float32/float64 or complex dtype
    seed : non-negative int
    max_bytes : int, None or "auto"
        Budget for the draw's peak memory (``"auto"``: half the RAM; ``None``: no limit).

    Raises
    ------
    TypeError, ValueError
        An invalid ``shape``, ``dtype`` or ``seed`` (the message names it).
    MatrixTooLargeError
        The kernel would exceed ``max_bytes``; raised before drawing.

    Examples
    --------
    >>> random_kernel((2, 2), "int64", seed=0)
    array([[-4, -1],
           [ 0,  3]])
    """
    shape = _shape_tuple(shape, "shape")
    dt = np.dtype(_dtype_name(dtype, "dtype"))
    seed = V.as_int(seed, "seed", minimum=0)
    size = math.prod(shape)
    V.check_bytes(f"random_kernel of shape {shape} and dtype {dt}", _kernel_bytes(size, dt), V.budget(max_bytes),
                  "draw a smaller kernel, or pass a larger max_bytes (or None for no limit)")
    gen = np.random.default_rng([seed, 17])
    if dt.kind == "u":
        return gen.integers(0, 5, size=shape).astype(dt)
    if dt.kind == "i":
        return gen.integers(-4, 5, size=shape).astype(dt)
    if dt.kind == "c":
        return (gen.standard_normal(shape) + 1j * gen.standard_normal(shape)).astype(dt)
    return gen.standard_normal(shape).astype(dt)


_CASE_KEYS_CONV = ("stride", "padding", "dilation", "groups", "padding_mode", "flip")
_CASE_KEYS_TR = ("stride", "padding", "output_padding", "dilation", "groups", "output_shape")


def _case_fields(case: Any) -> dict[str, Any]:
    """Validate a case dict: its kind, keys and the values verify itself reads (not the geometry's).

    Returns ``transpose`` (bool), ``kernel_shape``, ``input_shape`` (tuples), ``dtype`` (name or
    None), ``seed`` (int or None), ``flip`` (bool) and ``kw`` (the geometry keywords, lists as
    tuples).
    """
    if not isinstance(case, dict):
        raise TypeError(f"case must be a dict (from a sweep report); got {type(case).__name__}")
    missing = [k for k in ("kernel_shape", "input_shape") if k not in case]
    if missing:
        raise ValueError(f"case is missing {', '.join(missing)}; got keys {sorted(map(str, case))}")
    transpose = V.as_bool(case.get("transpose", False), "case['transpose']")
    keys = _CASE_KEYS_TR if transpose else _CASE_KEYS_CONV
    unknown = sorted(map(str, set(case) - set(keys) - {"transpose", "kernel_shape", "input_shape", "dtype", "seed"}))
    if unknown:
        raise ValueError(f"case has keys that do not apply to a {'transposed ' if transpose else ''}convolution: "
                         f"{', '.join(unknown)}")
    out: dict[str, Any] = {
        "transpose": transpose,
        "kernel_shape": _shape_tuple(case["kernel_shape"], "case['kernel_shape']"),
        "input_shape": V.input_shape_tuple(case["input_shape"], "case['input_shape']"),
        "dtype": None if case.get("dtype") is None else _dtype_name(case["dtype"], "case['dtype']"),
        "seed": None if case.get("seed") is None else V.as_int(case["seed"], "case['seed']", minimum=0),
        "flip": V.as_bool(case.get("flip", False), "case['flip']"),
    }
    out["kw"] = {k: _untuple(case[k]) for k in keys if k in case and k != "flip"}
    return out


def _exact_limit(dtype: np.dtype) -> int:
    """Largest integer ``n`` such that every integer in ``[1, n]`` is exact in ``dtype``."""
    if dtype.kind in "iu":
        return int(np.iinfo(dtype).max)
    return 2 ** (np.finfo(dtype).nmant + 1)


def case_kernel(case: dict[str, Any], *, max_bytes: Any = "auto") -> np.ndarray:
    """The kernel of a case dict: ``random_kernel(kernel_shape, dtype, seed)``, or ``1..K`` without a seed.

    ``1..K`` (``np.arange(1, K+1)`` in the kernel's shape, cast to the case's dtype) is also what
    ``convmatrix`` uses when given neither ``--weights`` nor ``--seed``.  Only ``kernel_shape``,
    ``dtype`` and ``seed`` are read (and validated); other keys are ignored.

    Raises
    ------
    TypeError, ValueError
        An invalid case (see :func:`run_case`), or a dtype that cannot hold ``K`` exactly
        (``1..200`` in int8 would wrap).
    MatrixTooLargeError
        The kernel would exceed ``max_bytes`` (``"auto"``: half the RAM; ``None``: no limit).

    Examples
    --------
    >>> case_kernel({"kernel_shape": [2, 3], "input_shape": [4, 4]})
    array([[1, 2, 3],
           [4, 5, 6]])
    """
    if not isinstance(case, dict):
        raise TypeError(f"case must be a dict (from a sweep report); got {type(case).__name__}")
    if "kernel_shape" not in case:
        raise ValueError(f"case is missing kernel_shape; got keys {sorted(map(str, case))}")
    f = {"kernel_shape": _shape_tuple(case["kernel_shape"], "case['kernel_shape']"),
         "dtype": None if case.get("dtype") is None else _dtype_name(case["dtype"], "case['dtype']"),
         "seed": None if case.get("seed") is None else V.as_int(case["seed"], "case['seed']", minimum=0)}
    shape = f["kernel_shape"]
    if f["seed"] is not None:
        return random_kernel(shape, f["dtype"] or "float64", f["seed"], max_bytes=max_bytes)
    size = math.prod(shape)
    dt = np.dtype(f["dtype"] or "int64")
    if size > _exact_limit(dt):
        raise ValueError(f"case['dtype'] {dt} cannot hold the kernel 1..K exactly: K = {size:,} exceeds "
                         f"{_exact_limit(dt):,}")
    V.check_bytes(f"the 1..K kernel of shape {shape}", size * (8 + dt.itemsize), V.budget(max_bytes),
                  "use a smaller kernel_shape, or pass a larger max_bytes (or None for no limit)")
    k = np.arange(1, size + 1).reshape(shape)
    return k.astype(f["dtype"]) if f["dtype"] else k


def run_case(case: dict[str, Any], *, torch: Any = "auto", rtol: float | None = None, atol: float | None = None,
             max_bytes: Any = "auto") -> Report:
    """Re-run one case of a :func:`sweep` (or a ``Report.case``) from its keyword dict.

    ``case`` holds ``transpose`` (bool), ``kernel_shape``, ``input_shape``, optionally
    ``dtype`` and ``seed``, and the geometry keywords of :func:`check_conv` (``flip`` and
    ``padding_mode`` included) or of :func:`check_transpose`; the kernel is :func:`case_kernel`.

    Parameters
    ----------
    case : dict
    torch, rtol, atol, max_bytes
        As :func:`check_conv` (``max_bytes`` also bounds the kernel).

    Returns
    -------
    Report
        The report of :func:`check_conv` or :func:`check_transpose`, with ``report.case`` a copy
        of ``case``.

    Raises
    ------
    TypeError, ValueError
        ``case`` is not a dict, lacks ``kernel_shape``/``input_shape``, has keys that do not
        apply to its kind of convolution, or invalid values (the message names the key); an
        invalid option.
    MatrixTooLargeError
        The kernel or the check would exceed ``max_bytes``.

    Examples
    --------
    >>> case = {"transpose": True, "kernel_shape": [4, 4], "input_shape": [2, 2], "stride": 3,
    ...         "dtype": "float64", "seed": 0}
    >>> run_case(case, torch=False).ok
    True
    >>> case_command(case)
    'convmatrix verify --transpose --input 2x2 --kernel 4x4 --stride 3 --dtype float64 --seed 0'
    """
    f = _case_fields(case)
    _torch_option(torch)
    _tolerances(rtol, atol)
    V.budget(max_bytes)
    kernel = case_kernel(case, max_bytes=max_bytes)
    opts = dict(dtype=f["dtype"], rng=0 if f["seed"] is None else f["seed"], torch=torch, rtol=rtol, atol=atol,
                max_bytes=max_bytes)
    if f["transpose"]:
        report = check_transpose(kernel, f["input_shape"], **f["kw"], **opts)
    else:
        report = check_conv(kernel, f["input_shape"], flip=f["flip"], **f["kw"], **opts)
    report.case = dict(case)
    return report


def _untuple(v: Any) -> Any:
    """JSON-ish value -> keyword value: lists (and arrays) become tuples, 0-d arrays scalars."""
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return tuple(_untuple(x) for x in v)
    return v


def _dims(v: Any) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return "x".join(str(int(x)) for x in v)


def _padding_arg(p: Any) -> str:
    if isinstance(p, str):
        return p
    if isinstance(p, (int, np.integer)):
        return str(int(p))
    parts = []
    for item in p:
        if isinstance(item, (list, tuple)):
            parts.append(f"{int(item[0])},{int(item[1])}")
        else:
            parts.append(str(int(item)))
    return ":".join(parts)


def case_command(case: dict[str, Any]) -> str:
    """The ``convmatrix verify`` command line of a case dict (see :func:`run_case`).

    The case is validated first (as :func:`run_case` does, the geometry included), so that the
    line it prints is one the command line accepts.

    Raises
    ------
    TypeError, ValueError
        An invalid case; the message names the key.
    """
    from .geometry import conv_geometry, conv_transpose_geometry

    f = _case_fields(case)
    transpose = f["transpose"]
    ks = list(f["kernel_shape"])
    nd = len(f["input_shape"])
    if transpose:
        conv_transpose_geometry(tuple(ks), f["input_shape"], **f["kw"])
    else:
        conv_geometry(tuple(ks), f["input_shape"], **f["kw"])
    parts = ["convmatrix verify"]
    if transpose:
        parts.append("--transpose")
    parts += ["--input", _dims(f["input_shape"]), "--kernel", _dims(ks[-nd:])]
    kw = f["kw"]
    if len(ks) == nd + 2:
        g = int(kw.get("groups", 1))
        if transpose:
            c_in, c_out = ks[0], ks[1] * g
        else:
            c_in, c_out = ks[1] * g, ks[0]
        parts += ["--channels", f"{c_in}:{c_out}"]
    for key, flag in (("stride", "--stride"), ("padding", "--padding"), ("dilation", "--dilation"),
                      ("output_padding", "--output-padding"), ("output_shape", "--output-shape"),
                      ("groups", "--groups"), ("padding_mode", "--padding-mode")):
        if key in kw and kw[key] is not None:
            v = kw[key]
            if key == "padding":
                text = _padding_arg(v)
            elif key == "padding_mode":
                text = str(v)
            else:
                text = _dims(v)
            if key in ("stride", "dilation", "groups") and set(text.split("x")) == {"1"}:
                continue
            if key == "padding" and text == "0" or key == "padding_mode" and text == "zeros":
                continue
            if key == "output_padding" and set(text.split("x")) == {"0"}:
                continue
            parts += [flag, text]
    if f["flip"]:
        parts.append("--flip")
    if f["dtype"] is not None:
        parts += ["--dtype", f["dtype"]]
    if f["seed"] is not None:
        parts += ["--seed", str(f["seed"])]
    return " ".join(parts)


def seed_cases() -> list[tuple[str, dict[str, Any]]]:
    """The seed article's geometries as ``(description, case)`` pairs (kernels ``1..K``, integer, exact).

    Examples
    --------
    >>> [name for name, _ in seed_cases()][:2]
    ['figure 1: 1-D full convolution, n1+n2-1 = 5+3-1 = 7', 'figure 2: 2-D same convolution, 5x5 stays 5x5']
    """
    return [
        ("figure 1: 1-D full convolution, n1+n2-1 = 5+3-1 = 7",
         {"kernel_shape": [3], "input_shape": [5], "padding": "full", "flip": True}),
        ("figure 2: 2-D same convolution, 5x5 stays 5x5",
         {"kernel_shape": [3, 3], "input_shape": [5, 5], "padding": "same", "flip": True}),
        ("figure 5: 2-D valid convolution, 5x5 -> 3x3",
         {"kernel_shape": [3, 3], "input_shape": [5, 5], "padding": "valid", "flip": True}),
        ("figure 6: 2-D full convolution, 2x2 with 3x3 -> 4x4",
         {"kernel_shape": [3, 3], "input_shape": [2, 2], "padding": "full", "flip": True}),
        ("valid with stride S: (N1-N2)/S+1 = (7-3)/2+1 = 3",
         {"kernel_shape": [3, 3], "input_shape": [7, 7], "stride": 2, "flip": True}),
        ("figure 7: transposed, 3x3 -> zero insertion 5x5, padding -> 7x7, valid 3x3 -> 5x5",
         {"transpose": True, "kernel_shape": [3, 3], "input_shape": [3, 3], "stride": 2, "padding": 1}),
        ("deconvolution: 2x2 input, 4x4 kernel, stride 3 -> (2-1)*3+4 = 7x7",
         {"transpose": True, "kernel_shape": [4, 4], "input_shape": [2, 2], "stride": 3}),
    ]


def _random_case(gen: np.random.Generator, ndims: Sequence[int], dtypes: Sequence[str], modes: Sequence[str],
                 transpose: bool | None) -> dict[str, Any]:
    """One random, valid geometry (retries until the core accepts it)."""
    from .geometry import conv_geometry, conv_transpose_geometry

    for _ in range(200):
        nd = int(gen.choice(list(ndims)))
        tr = bool(gen.integers(2)) if transpose is None else transpose
        nmax = {1: 12, 2: 7, 3: 5}.get(nd, 4)
        n = [int(v) for v in gen.integers(1, nmax + 1, size=nd)]
        k = [int(v) for v in gen.integers(1, (4 if nd < 3 else 3) + 1, size=nd)]
        s = [int(v) for v in gen.choice([1, 1, 2, 3], size=nd)]
        d = [int(v) for v in gen.choice([1, 1, 1, 2, 3], size=nd)]
        g = int(gen.choice([1, 1, 1, 2, 3]))
        ci, co = int(gen.integers(1, 3)) * g, int(gen.integers(1, 3)) * g
        spatial_only = g == 1 and ci == 1 and co == 1 and bool(gen.integers(2))
        form = int(gen.integers(6))
        if form == 0:
            pad: Any = int(gen.integers(0, 3))
        elif form == 1:
            pad = [int(v) for v in gen.integers(0, 3, size=nd)]
        elif form == 2:
            pad = [[int(v) for v in gen.integers(0, 3, size=2)] for _ in range(nd)]
        else:
            pad = str(gen.choice(["valid", "same", "same_lower", "full"]))
        case: dict[str, Any] = {"transpose": tr, "input_shape": n}
        if tr:
            kshape = k if spatial_only else [ci, co // g] + k
            case.update(kernel_shape=kshape, stride=s, padding=pad, dilation=d, groups=g)
            if not isinstance(pad, str):
                a = [int(gen.integers(0, max(si, di))) for si, di in zip(s, d)]
                if gen.integers(4) == 0 and all(ai < si for ai, si in zip(a, s)):  # ask for the size instead
                    pairs = _untuple(pad) if isinstance(pad, list) else pad
                    pairs = [(pairs, pairs)] * nd if isinstance(pairs, int) else [
                        (q, q) if isinstance(q, int) else q for q in pairs]
                    case["output_shape"] = [(ni - 1) * si - pb - pa + di * (ki - 1) + ai + 1 for ni, si, (pb, pa), di, ki, ai
                                            in zip(n, s, pairs, d, k, a)]
                else:
                    case["output_padding"] = a
        else:
            kshape = k if spatial_only else [co, ci // g] + k
            mode = str(gen.choice(list(modes)))
            case.update(kernel_shape=kshape, stride=s, padding=pad, dilation=d, groups=g, padding_mode=mode,
                        flip=bool(gen.integers(4) == 0))
        case["dtype"] = str(gen.choice(list(dtypes)))
        case["seed"] = int(gen.integers(2**31 - 1))
        try:
            if tr:
                conv_transpose_geometry(tuple(kshape), n, stride=s, padding=_untuple(pad), dilation=d, groups=g,
                                        output_padding=case.get("output_padding", 0),
                                        output_shape=case.get("output_shape"))
            else:
                conv_geometry(tuple(kshape), n, stride=s, padding=_untuple(pad), dilation=d, groups=g,
                              padding_mode=case["padding_mode"])
        except ValueError:
            continue
        return case
    raise RuntimeError("could not draw a valid geometry in 200 attempts")  # pragma: no cover


_DEFAULT_DTYPES = ("float64", "float32", "complex128", "int64")
_DEFAULT_MODES = ("zeros", "zeros", "zeros", "circular", "reflect", "replicate", "symmetric")
#: most spatial dimensions a sweep draws (random sizes grow as 4**ndim)
_SWEEP_MAX_NDIM = 4


def _name_list(value: Any, name: str, check: Callable[[Any, str], str]) -> tuple[str, ...]:
    """A non-empty sequence (not a string) whose entries ``check`` normalises."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a non-empty sequence such as ({V._describe(value)},); got {V._describe(value)}")
    items = list(value)
    if not items:
        raise ValueError(f"{name} must list at least one entry; got an empty sequence")
    return tuple(check(v, f"{name}[{i}]") for i, v in enumerate(items))


def _mode_name(value: Any, name: str) -> str:
    try:
        return V.padding_mode_name(value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None


def sweep(
    n: int,
    *,
    seed: int,
    ndim: Iterable[int] = (1, 2, 3),
    transpose: bool | None = None,
    dtypes: Sequence[str] = _DEFAULT_DTYPES,
    padding_modes: Sequence[str] | None = None,
    torch: Any = "auto",
    progress: bool = False,
    rtol: float | None = None,
    atol: float | None = None,
) -> Report:
    """Run every check on ``n`` random geometries.

    Geometries vary the spatial sizes (1-D/2-D/3-D), kernel sizes, stride, padding (int, per
    axis, ``(before, after)`` pairs, ``"valid"``/``"same"``/``"same_lower"``/``"full"``),
    dilation, channels and groups, output padding, flipping, boundary modes and dtypes;
    half are transposed convolutions (``transpose=None``).  They are drawn one at a time and run
    as they are drawn (nothing is built up front).

    Parameters
    ----------
    n : int
        Number of geometries, from 0 to :data:`MAX_SWEEP` (100,000: a sweep keeps one small
        report per geometry, about 4 KiB, and spends ~10 ms on each; run several seeds for more).
    seed : int
        Seed of the sweep (non-negative): the same seed draws the same geometries.
    ndim : int or iterable of int
        Spatial dimensions to draw from, each from 1 to 4.
    transpose : bool or None
        Only transposed (``True``) or only forward (``False``) convolutions; ``None`` mixes them.
    dtypes : sequence of dtype names
        Drawn uniformly (repeat an entry to weight it): integer, float32/float64 or complex.
    padding_modes : sequence of str, optional
        Boundary modes of the forward convolutions, drawn uniformly; default: zeros three times
        out of seven, each other mode once.  An error with ``transpose=True`` (no forward
        convolution is drawn, so it would have no effect).
    torch : {"auto", True, False}
    progress : bool
        Show a tqdm progress bar (``pip install convmatrix[progress]``; a warning and no bar without it).
    rtol, atol : float, optional
        Replace every geometry's default tolerances (see :func:`check_conv`); ``0`` is honoured.

    Returns
    -------
    Report
        ``checks`` aggregates each check over the geometries: its row shows the error and
        tolerance of the geometry where ``error / tolerance`` is largest (the one closest to
        failing, or failing worst), with counts in the detail; ``notes`` name that worst case and
        the tolerances used; ``cases`` holds the per-geometry reports; ``failing_cases`` the
        geometries to re-run, each with ``.case`` (a dict for :func:`run_case`) and ``.command``
        (a CLI line).

    Raises
    ------
    TypeError, ValueError
        An invalid argument (the message names it), ``n`` above :data:`MAX_SWEEP`, or
        ``padding_modes`` with ``transpose=True``.
    ImportError
        ``torch=True`` without PyTorch installed.

    Examples
    --------
    >>> r = sweep(5, seed=1, torch=False)
    >>> r.ok, len(r.cases)
    (True, 5)
    """
    count = V.as_int(n, "n", minimum=0, maximum=None)
    if count > MAX_SWEEP:
        raise ValueError(f"n must be at most {MAX_SWEEP:,} (a sweep keeps one report per geometry, about 4 KiB, and "
                         f"takes ~10 ms per geometry): run several sweeps with different seeds; got {count:,}")
    seed = V.as_int(seed, "seed", minimum=0)
    if isinstance(ndim, np.ndarray):
        ndim = ndim.tolist()
    if isinstance(ndim, (str, bytes)):
        raise TypeError(f"ndim must be an int or a sequence of ints from 1 to {_SWEEP_MAX_NDIM}; got {ndim!r}")
    rule = f"an integer from 1 to {_SWEEP_MAX_NDIM}"
    ndims = tuple(V.as_int(v, "ndim", minimum=1, maximum=None, rule=rule)
                  for v in (ndim if isinstance(ndim, Iterable) else [ndim]))
    if any(d > _SWEEP_MAX_NDIM for d in ndims):
        raise ValueError(f"ndim must be {rule}; got {max(ndims)}")
    if not ndims:
        raise ValueError("ndim must list at least one number of spatial dimensions; got an empty sequence")
    if transpose is not None:
        transpose = V.as_bool(transpose, "transpose")
    progress = V.as_bool(progress, "progress")
    dtypes = _name_list(dtypes, "dtypes", _dtype_name)
    if padding_modes is not None and transpose is True:
        raise ValueError("padding_modes applies to forward convolutions only, and transpose=True draws none: "
                         "drop padding_modes (or use transpose=None)")
    modes = _DEFAULT_MODES if padding_modes is None else _name_list(padding_modes, "padding_modes", _mode_name)
    torch = _torch_option(torch)
    rtol, atol = _tolerances(rtol, atol)
    _import_torch(torch)  # torch=True without torch: fail before the sweep, naming the extra
    gen = np.random.default_rng(seed)

    def drawn() -> Iterable[dict[str, Any]]:  # one geometry at a time, in the order of the seed
        for _ in range(count):
            yield _random_case(gen, ndims, dtypes, modes, transpose)

    it: Iterable = drawn()
    if progress:
        try:
            from tqdm import tqdm

            it = tqdm(it, total=count, desc="verify", unit="geometry")
        except ImportError:
            import warnings

            warnings.warn("progress=True needs tqdm (pip install convmatrix[progress]); running without a progress bar",
                          stacklevel=2)
    reports = [run_case(c, torch=torch, rtol=rtol, atol=atol) for c in it]
    return _summarise(reports, f"sweep: {count} random geometries (seed {seed}; "
                               f"{', '.join(f'{d}-D' for d in ndims)}; dtypes {', '.join(dtypes)})", rtol, atol)


def _ratio(c: Check) -> float:
    """``error / tolerance`` (inf for a positive or NaN error over a zero tolerance, or a NaN error)."""
    if c.error is None:
        return -math.inf
    if math.isnan(c.error):
        return math.inf
    if c.tolerance:
        return c.error / c.tolerance
    return 0.0 if c.error == 0 else math.inf


def _tolerance_note(rtol: float | None, atol: float | None) -> str:
    if rtol is None and atol is None:
        return ("tolerances: each geometry's defaults (rtol from its dtype, atol 0, integer matrices exact); "
                "each row shows the tolerance its error was held to")
    text = lambda v: "the dtype's default" if v is None else repr(v)
    return (f"tolerances: rtol={text(rtol)}, atol={text(atol)} (given) in every check but the shape; "
            "each row shows the tolerance its error was held to")


def _summarise(reports: list[Report], title: str, rtol: float | None = None, atol: float | None = None) -> Report:
    """Aggregate per-geometry reports into one: a row per check name, from the case with the largest error/tolerance."""
    order: list[str] = []
    rows: dict[str, list[tuple[Check, Report]]] = {}
    for r in reports:
        for c in r.checks:
            generic = re.sub(r"(conv|conv_transpose)\dd$", r"\1Nd", c.name)
            if generic not in rows:
                rows[generic] = []
                order.append(generic)
            rows[generic].append((c, r))
    checks = []
    worst_ratio, worst = -math.inf, None
    for name in order:
        items = rows[name]
        cnt = {s: sum(c.status == s for c, _ in items) for s in _STATUSES}
        ran = [(c, r) for c, r in items if c.error is not None]
        row = Check(name, "fail" if cnt["fail"] else ("pass" if cnt["pass"] else "skip"))
        row.detail = f"{cnt['pass']} pass, {cnt['fail']} fail, {cnt['skip']} skip"
        if ran:
            c_row, r_row = max(ran, key=lambda cr: _ratio(cr[0]))  # the first of the worst
            row.error, row.tolerance, row.rtol, row.atol = c_row.error, c_row.tolerance, c_row.rtol, c_row.atol
            if _ratio(c_row) > worst_ratio:
                worst_ratio, worst = _ratio(c_row), (c_row, r_row)
            if c_row.tolerance or c_row.error != 0:
                row.detail += f"; worst error/tolerance {_ratio(c_row):.1e}"
        checks.append(row)
    notes = []
    failing = [r for r in reports if not r.ok]
    if worst is not None:
        c, r = worst
        share = f"{_ratio(c):.1e} of" if c.tolerance else ("0 of" if c.error == 0 else "above")
        notes.append(f"worst case: error {c.error:.2e} = {share} its tolerance {c.tolerance:.2e}, in {c.name!r}"
                     + (f" for: {r.command}" if r.command else ""))
    notes.append(_tolerance_note(rtol, atol))
    if failing:
        notes.append(f"{len(failing)} failing geometries (re-run each with the command or run_case(case)):")
        for r in failing:
            notes.append(f"  {r.command}")
            notes.append(f"    failed: {', '.join(c.name for c in r.failures)}")
            notes.append(f"    case: {json.dumps(r.case)}")
    else:
        notes.append(f"all {len(reports)} geometries passed")
    if len(reports) <= 20:
        notes.append("geometries:")
        for r in reports:
            verdict = "pass" if r.ok else "FAIL"
            notes.append(f"  {verdict}  {r.title.splitlines()[0]}")
    return Report(title, checks, cases=reports, notes=notes)


def seed_report(*, torch: Any = "auto", rtol: float | None = None, atol: float | None = None) -> Report:
    """Every check on the seed article's geometries (:func:`seed_cases`; kernels ``1..K``, exact).

    ``torch``, ``rtol`` and ``atol`` are passed to :func:`run_case` for every geometry (see
    :func:`check_conv`; ``None`` keeps the defaults, under which these integer kernels are
    compared exactly).

    Examples
    --------
    >>> seed_report(torch=False).ok
    True
    """
    torch = _torch_option(torch)
    rtol, atol = _tolerances(rtol, atol)
    reports = []
    for name, case in seed_cases():
        r = run_case(case, torch=torch, rtol=rtol, atol=atol)
        r.title = f"{name}\n{r.title}"
        reports.append(r)
    return _summarise(reports, f"the seed article's {len(reports)} geometries (integer kernels 1..K: exact)",
                      rtol, atol)
