"""The spectral norm of any convolution matrix: exact for circulants, else dense SVD, Lanczos or power iteration."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from .. import _validate as V
from .._validate import IntOrSequence, MaxBytes, Padding, PaddingMode
from ..geometry import Geometry, conv_geometry
from ._circulant import (
    _DENSE_ENTRIES,
    _POWER_BLOCK,
    _circulant_bytes,
    _circulant_norm,
    _compute_dtype,
    _is_circulant,
    _padding_norm_bytes,
    _scaled,
    _unscale,
    _upper_bound,
)

if TYPE_CHECKING:
    from scipy.sparse.linalg import LinearOperator

    from ..operator import ConvOperator

__all__ = ['SpectralNorm', 'spectral_norm']


#: how :func:`spectral_norm` computes the norm (``"auto"`` picks one of the others)
Method: TypeAlias = Literal["auto", "exact", "dense", "lanczos", "power"]
#: the method a :class:`SpectralNorm` was obtained with
UsedMethod: TypeAlias = Literal["exact", "dense", "lanczos", "power"]

#: vectors (or blocks of them) the operator maps
_Vectors: TypeAlias = npt.NDArray[np.inexact]

SPECTRAL_METHODS: tuple[Method, ...] = ("auto", "exact", "dense", "lanczos", "power")


class SpectralNorm(float):
    """The spectral norm (a ``float``) with how it was obtained.

    Parameters
    ----------
    value : float
        The norm.
    **info
        The attributes below, by name.

    Attributes
    ----------
    method : str
        ``"exact"`` (circulant: per-frequency SVDs), ``"dense"`` (SVD of the small explicit
        matrix), ``"lanczos"`` (ARPACK via ``scipy.sparse.linalg.svds``) or ``"power"``.
    tol : float
        Stated relative accuracy: the true norm ``s`` satisfies ``|value - s| <= tol * s``
        (0 for ``exact``/``dense``, i.e. round-off).
    lower_bound : float
        ``||A v||`` for the returned unit vector ``v``: a guaranteed lower bound (up to round-off).
    upper_bound : float
        Guaranteed upper bound: the norm of the circulant convolution on the padded grid that
        this convolution restricts, times the norm of the padding map (1 for zeros padding).
    converged : bool
        Whether the iteration met ``tol`` (always True for exact methods).
    matvecs : int
        Products with the operator or its adjoint that were used.

    See Also
    --------
    spectral_norm : Returns it.
    """

    method: UsedMethod
    tol: float
    lower_bound: float
    upper_bound: float
    converged: bool
    matvecs: int

    def __new__(cls, value: float, **info: object) -> SpectralNorm:
        names = ("method", "tol", "lower_bound", "upper_bound", "converged", "matvecs")
        missing, extra = [n for n in names if n not in info], sorted(set(info) - set(names))
        if missing or extra:
            raise TypeError(f"SpectralNorm takes the value and exactly the keywords {', '.join(names)}; "
                            + (f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(extra)}"))
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"value must be a real number (the norm); got {V._describe(value)}")
        if not (math.isfinite(float(value)) and value >= 0):
            raise ValueError(f"value must be a finite non-negative number (a norm); got {value!r}")
        if info["method"] not in ("exact", "dense", "lanczos", "power"):
            raise ValueError(f"method must be one of 'exact', 'dense', 'lanczos', 'power'; got {info['method']!r}")
        obj = super().__new__(cls, value)
        obj.__dict__.update(info)
        return obj

    def __repr__(self) -> str:
        return (f"SpectralNorm({float(self)!r}, method={self.method!r}, tol={self.tol!r}, "
                f"lower_bound={self.lower_bound!r}, upper_bound={self.upper_bound!r}, converged={self.converged})")

    def __reduce__(self) -> tuple[Callable[[float, dict[str, object]], SpectralNorm], tuple[float, dict[str, object]]]:
        return (_rebuild, (float(self), dict(self.__dict__)))


def _rebuild(value: float, info: dict[str, object]) -> SpectralNorm:
    return SpectralNorm(value, **info)


# ----------------------------------------------------------------------------- validation helpers
def _spectral_method(method: object) -> Method:
    rule = f"method must be one of {', '.join(map(repr, SPECTRAL_METHODS))}"
    if not isinstance(method, str):
        raise TypeError(f"{rule}; got {method!r} of type {type(method).__name__}")
    if method not in SPECTRAL_METHODS:
        raise ValueError(f"{rule}; got {method!r}")
    return method


def spectral_norm(
    kernel: npt.ArrayLike,
    input_shape: IntOrSequence,
    *,
    stride: IntOrSequence = 1,
    padding: Padding = 0,
    dilation: IntOrSequence = 1,
    groups: int = 1,
    padding_mode: PaddingMode = "zeros",
    flip: bool = False,
    tol: float | None = None,
    method: Method = "auto",
    maxiter: int | None = None,
    seed: int | None = None,
    max_bytes: MaxBytes = "auto",
) -> SpectralNorm:
    """Spectral norm (largest singular value, the Lipschitz constant) of ``conv_matrix`` for any geometry.

    Parameters
    ----------
    kernel, input_shape, stride, padding, dilation, groups, padding_mode, flip
        As :func:`convmatrix.conv_matrix` (the kernel's entries must be finite; ``flip`` a bool).
    tol : float, optional
        Relative accuracy of the iterative methods, ``|result - norm| <= tol * norm``; default
        1e-6.  Only for ``"lanczos"``, ``"power"`` and ``"auto"`` (used if it picks one of them).
    method : {"auto", "exact", "dense", "lanczos", "power"}
        ``"exact"``: per-frequency SVDs, only for a circulant geometry (circular padding,
        stride 1, output shape = input shape).  ``"dense"``: SVD of the explicit matrix (small
        cases).  ``"lanczos"``: ``scipy.sparse.linalg.svds(tol=tol)`` (ARPACK, tolerance
        ``tol**2`` on ``sigma**2``) on :class:`ConvOperator`.  ``"power"``: block power
        (subspace) iteration on ``C^H C`` (8 vectors, Rayleigh-Ritz) until the top Ritz pair's
        residual ``||C^H C v - mu v|| <= tol * mu``.  ``"auto"``: exact if circulant, dense if
        the matrix has at most 2**20 entries, else lanczos, each only if its predicted peak
        fits in ``max_bytes``.
    maxiter : int, optional
        Iteration cap (a positive integer below 2**31) for ``lanczos`` (ARPACK's default) and
        ``power`` (default 10000); only for the iterative methods (and ``"auto"``).
    seed : int, optional
        Non-negative seed of the random start vectors (default 0: results are deterministic);
        only for the iterative methods (and ``"auto"``).
    max_bytes : int, None or "auto"
        Refuse (:class:`~convmatrix.MatrixTooLargeError`, before allocating) a computation whose
        predicted peak memory exceeds this many bytes; ``"auto"`` (default): half the RAM;
        ``None``: no limit.  The prediction covers the method's vectors or matrices, the
        operator's products and the upper bound.

    Returns
    -------
    SpectralNorm
        A ``float`` with attributes ``method`` (the one used), ``tol`` (float), ``lower_bound``
        and ``upper_bound`` (floats), ``converged`` (bool) and ``matvecs`` (int).  A matrix that
        is zero (e.g. a zero kernel) gives 0.0 for every method, with both bounds 0.0,
        ``converged=True`` and ``matvecs`` 0 (or the one product that found it zero).

    Raises
    ------
    ValueError
        An invalid geometry, a kernel with NaN or inf, ``method="exact"`` on a non-circulant
        geometry, ``tol``/``maxiter``/``seed`` given to ``"exact"`` or ``"dense"``, a negative or
        non-finite ``tol``, or a norm beyond float64.
    TypeError
        Wrongly typed arguments (e.g. ``flip="yes"``, ``tol="a"``, ``method=3``).
    MatrixTooLargeError
        The predicted peak exceeds ``max_bytes`` (e.g. ``method="dense"`` on a large geometry).

    See Also
    --------
    singular_values : Every singular value of a circular convolution.
    ConvOperator : The matrix-free operator the iterative methods use.
    scipy.sparse.linalg.svds : The Lanczos route.

    Warns
    -----
    RuntimeWarning
        An iterative method that stopped at ``maxiter`` before ``tol``: the result is then a
        lower bound (``converged=False``).

    Notes
    -----
    Upper bound: with ``L = (o-1)*s + d*(k-1) + 1`` per axis, ``C = S R Z_L P`` where ``P`` pads
    (norm ``prod_a sqrt(max fold multiplicity)``: 1 for zeros, up to ``sqrt(1 + p)`` for
    replicate), ``Z_L`` is the circulant convolution on the grid ``L`` (no wrap-around reaches
    the kept outputs), ``R``/``S`` select rows.  Hence
    ``||C|| <= max_f ||A_L(f)|| * ||P||``, exact (equality) in the circulant case.  When the
    spectrum on the grid ``L`` does not fit in ``max_bytes`` (many channels), the looser
    ``sum_t ||w[:, :, t]|| * ||P||`` (triangle inequality) is reported instead.  The kernel is
    scaled by a power of two (exactly) so that its largest entry is near 1, and the norm is
    computed in float64 (complex128 for complex kernels) whatever the kernel's dtype.  The exact
    route is that of Sedghi, Gupta & Long [1]_.

    References
    ----------
    .. [1] H. Sedghi, V. Gupta and P. M. Long, "The singular values of convolutional layers",
       International Conference on Learning Representations (ICLR), 2019.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> sn = spectral_norm(w, (8, 8), padding=((0, 1), (0, 1)), padding_mode="circular")
    >>> float(sn), sn.method                            # circulant: the DC gain 1+2+3+4
    (10.0, 'exact')
    >>> sn = spectral_norm(w, (32, 32), stride=2, padding=1, method="lanczos", tol=1e-8)
    >>> round(float(sn), 6), round(30 ** 0.5, 6)        # non-overlapping windows: the kernel's norm
    (5.477226, 5.477226)
    >>> bool(sn.lower_bound <= sn * (1 + 1e-12) and sn <= sn.upper_bound), sn.upper_bound
    (True, 10.0)
    """
    from ..operator import ConvOperator

    method = _spectral_method(method)
    tol = V.tolerance(tol, "tol")
    flip = V.as_bool(flip, "flip")
    if maxiter is not None:
        maxiter = V.as_int(maxiter, "maxiter", minimum=1, maximum=2**31 - 1)
    if seed is not None:
        seed = V.as_int(seed, "seed", minimum=0, maximum=None)
    if method in ("exact", "dense"):
        for name, value in (("tol", tol), ("maxiter", maxiter), ("seed", seed)):
            if value is not None:
                raise ValueError(f"{name} applies only to the iterative methods ('lanczos', 'power', or 'auto' when "
                                 f"it picks one); got {name}={value!r} with method={method!r}")
    budget = V.budget(max_bytes)
    k = V.kernel_array(kernel)
    geom = conv_geometry(k.shape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode)
    tol = 1e-6 if tol is None else tol
    seed = 0 if seed is None else seed
    ctype = _compute_dtype(k.dtype, single=False)  # norms are computed in double precision
    ks, e = _scaled(k, ctype)  # kernel-sized allocations only, until the plan is checked
    w = geom.engine_weight(ks, flip)
    A = ConvOperator(ks, geom.input_shape, stride=geom.stride, padding=geom.padding, dilation=geom.dilation,
                     groups=geom.groups, padding_mode=geom.padding_mode, flip=flip, dtype=ctype, max_bytes=None)
    circ = _is_circulant(geom)
    plan = _NormPlan(geom, A, k.size, ctype, budget)
    method = plan.choose(method, circ)
    if method == "exact" and not circ:
        raise ValueError(
            "method='exact' needs a circulant geometry (padding_mode='circular', stride 1, output shape = input "
            f"shape); got padding_mode={geom.padding_mode!r}, stride={geom.stride}, input shape "
            f"{geom.input_shape} -> output shape {geom.output_shape}"
        )
    plan.check(method)
    if method == "exact":
        value = _unscale(_circulant_norm(w, geom.input_shape, geom.dilation, geom.groups), e, "spectral norm")
        return SpectralNorm(value, method="exact", tol=0.0, lower_bound=value, upper_bound=value, converged=True,
                            matvecs=0)
    if method == "lanczos" and min(A.shape) < 2:  # ARPACK needs k < min(shape); a row or column is its own norm
        method = "dense"
    zero = SpectralNorm(0.0, method=method, tol=0.0 if method == "dense" else tol, lower_bound=0.0, upper_bound=0.0,
                        converged=True, matvecs=0)
    if not ks.any():  # the zero matrix: every method agrees, nothing to iterate on
        return zero
    upper = _upper_bound(w, geom, plan.circulant_bound)
    if upper == 0.0:  # the padding map reads no input at all: the matrix is zero
        return zero
    rng = np.random.default_rng(seed)
    if method == "dense":
        value = lower = _dense_norm(A, ctype)
        info: dict[str, object] = {"method": "dense", "tol": 0.0, "converged": True, "matvecs": min(A.shape)}
    elif method == "lanczos":
        value, lower, converged, count = _lanczos(A, ctype, tol, maxiter, rng)
        info = {"method": "lanczos", "tol": tol, "converged": converged, "matvecs": count}
    else:
        value, converged, count = _power(A, ctype, tol, maxiter, rng)
        lower = value
        info = {"method": "power", "tol": tol, "converged": converged, "matvecs": count}
    if value == 0.0:  # found zero by its products (taps on the padding only, or folds that cancel)
        return SpectralNorm(0.0, lower_bound=0.0, upper_bound=0.0, **info)
    what = "spectral norm"
    return SpectralNorm(_unscale(value, e, what), lower_bound=_unscale(min(lower, value), e, what),
                        upper_bound=_unscale(upper, e, what), **info)


class _NormPlan:
    """Closed-form peak memory of each route of :func:`spectral_norm`, the choice of ``"auto"`` and the refusal.

    Every prediction is O(number of axes) arithmetic on the geometry and the operator's own
    predictions (:meth:`ConvOperator._call_bytes`); nothing proportional to the geometry is
    allocated before :meth:`check` passes.  Phases run one after the other: the kernel copies
    stay, the upper bound's spectrum is freed before the method's vectors are allocated.
    """

    m: int  # the matrix's shape
    n: int

    def __init__(self, geom: Geometry, A: ConvOperator, kernel_size: int, ctype: np.dtype,
                 budget: int | None) -> None:
        self.geom, self.A, self.ctype, self.budget = geom, A, ctype, budget
        it = ctype.itemsize
        self.it = it
        self.m, self.n = A.shape
        c = geom.out_channels * geom.in_per_group
        mm = geom.groups * min(geom.out_per_group, geom.in_per_group)
        # the scaled kernel, its magnitudes, the operator's weight and cached layouts; small arrays
        self.kernel = 6 * kernel_size * it + 2**18
        self.exact = _circulant_bytes(c, mm, geom.input_shape, ctype)
        grid = geom.read_shape
        pn = _padding_norm_bytes(geom)
        circ_bound = _circulant_bytes(c, mm, grid, ctype) + pn
        self.circulant_bound = budget is None or self.kernel + circ_bound <= budget
        self.bound = circ_bound if self.circulant_bound else 2 * kernel_size * it + pn

    def _calls(self, K: int, other: int) -> int:
        """Peak of the products with ``K`` vectors (either direction), the operator's share of the budget
        being what ``other`` leaves; plus the kernel spectrum of the other direction if both go by FFT."""
        A, p = self.A, self.A._plan
        p.budget = None if self.budget is None else max(1, self.budget - other)
        peak = max(A._call_bytes(role, K, self.ctype) for role in ("forward", "transpose"))
        b = 1 if K <= 1 else min(K, A._step("forward", self.ctype))
        if any(p.use_fft(b, p.out, self.ctype, role) for role in ("forward", "transpose")):
            peak += p.spectrum_bytes(self.ctype)
        return peak

    def need(self, method: UsedMethod) -> int:
        it, m, n = self.it, self.m, self.n
        if method == "exact":
            return self.kernel + self.exact
        small = min(m, n)
        if method == "dense" or (method == "lanczos" and small < 2):
            # the identity, the product with it (the matrix), then LAPACK's copy of the matrix
            other = self.kernel + small * small * it
            return self.kernel + max(self.bound, max(small * small * it + self._calls(small, other),
                                                     2 * m * n * it + 2**16))
        if method == "lanczos":
            ncv = min(small, 20)
            # ARPACK's Krylov basis and work vectors (measured: 2*ncv + 5 real vectors for the symmetric
            # driver, ncv + 6 complex ones for the Hermitian), the start vector, one product's result kept
            vectors = (ncv + 8) if self.ctype.kind == "c" else (2 * ncv + 8)
            other = self.kernel + vectors * small * it + 8 * small + (m + n) * it
            return max(self.kernel + self.bound, other + self._calls(1, other))
        p = min(_POWER_BLOCK, small)
        # the block Q, C^H C Q, its rotation and QR (a copy and the new Q), the random start, C Q
        other = self.kernel + 4 * n * p * it + 8 * n * p + m * p * it
        return max(self.kernel + self.bound, other + self._calls(p, other))

    def fits(self, method: UsedMethod) -> bool:
        return self.budget is None or self.need(method) <= self.budget

    def choose(self, method: Method, circ: bool) -> UsedMethod:
        if method != "auto":
            return method
        if circ and self.fits("exact"):
            return "exact"
        if self.m * self.n <= _DENSE_ENTRIES and self.fits("dense"):
            return "dense"
        return "lanczos"

    def check(self, method: UsedMethod) -> None:
        need = self.need(method)  # leaves the operator with this method's share of the budget, so that its
        if self.budget is None or need <= self.budget:  # choice of route per product is the one predicted
            return
        better = [alt for alt in ("lanczos", "power") if alt != method and method != "exact" and self.fits(alt)]
        hint = (f"method={better[0]!r} fits" if better else "pass a larger max_bytes (or None)")
        V.refuse(f"spectral_norm (method={method!r}) of the {self.m}x{self.n} matrix", need, self.budget, hint)


def _dense_norm(A: LinearOperator, ctype: np.dtype) -> float:
    """Largest singular value of the explicit matrix (``C`` or ``C^H``: the same spectrum), by LAPACK."""
    small = min(A.shape)
    M = A.matmat(np.eye(small, dtype=ctype)) if A.shape[1] == small else A.rmatmat(np.eye(small, dtype=ctype))
    return float(np.linalg.norm(M, 2)) if M.size else 0.0


def _lanczos(A: LinearOperator, ctype: np.dtype, tol: float, maxiter: int | None,
             rng: np.random.Generator) -> tuple[float, float, bool, int]:
    """(value, lower bound, converged, products) by ARPACK on ``C^H C`` (or ``C C^H``, the smaller)."""
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, svds

    counter = _Counting(A)
    small = min(A.shape)
    tall = A.shape[0] >= A.shape[1]  # svds iterates on the smaller Gram matrix: C^H C if tall
    v0 = rng.standard_normal(small).astype(ctype, copy=False)
    probe = A.matvec(v0) if tall else A.rmatvec(v0)
    counter.count += 1
    if not probe.any():  # a random vector mapped to exactly zero: the matrix is zero (almost surely)
        return 0.0, 0.0, True, counter.count
    del probe
    try:
        _, s, vh = svds(counter.op, k=1, tol=tol, v0=v0, maxiter=maxiter, solver="arpack")
    except ArpackNoConvergence as exc:
        vecs = exc.eigenvectors
        v = vecs[:, -1] if vecs is not None and vecs.size else v0
        image = A.matvec(v) if tall else A.rmatvec(v)
        lower = float(np.linalg.norm(image) / np.linalg.norm(v))
        warnings.warn(f"lanczos (ARPACK) did not reach tol={tol} in maxiter={maxiter} restarts; the result is a "
                      f"lower bound", RuntimeWarning, stacklevel=3)
        return lower, lower, False, counter.count + 1
    except ArpackError as exc:  # pragma: no cover - ARPACK internal failures
        raise RuntimeError(f"ARPACK failed on this operator ({exc}); method='power' does not use ARPACK") from None
    v = vh[0].conj()
    lower = float(np.linalg.norm(A @ v) / np.linalg.norm(v))
    return float(s[0]), lower, True, counter.count


def _power(A: LinearOperator, ctype: np.dtype, tol: float, maxiter: int | None,
           rng: np.random.Generator) -> tuple[float, bool, int]:
    """Block power (subspace) iteration on ``C^H C`` with Rayleigh-Ritz and an eigen-residual stopping rule."""
    maxiter = 10000 if maxiter is None else maxiter
    p = min(_POWER_BLOCK, min(A.shape))
    Q = np.linalg.qr(rng.standard_normal((A.shape[1], p)).astype(ctype, copy=False))[0]
    theta, converged, it = 0.0, False, 0
    for it in range(1, maxiter + 1):
        Z = A.rmatmat(A.matmat(Q))  # C^H C Q
        if not Z.any():  # C Q = 0 for a random Q: the matrix is zero (almost surely)
            return 0.0, True, 2 * p * it
        vals, U = np.linalg.eigh(Q.conj().T @ Z)
        theta = float(vals[-1])
        Z = Z @ U[:, ::-1]
        resid = np.linalg.norm(Z[:, 0] - theta * (Q @ U[:, -1]))
        if resid <= tol * theta:
            converged = True
            break
        Q = np.linalg.qr(Z)[0]
        del Z
    if not converged:
        warnings.warn(f"power iteration did not reach tol={tol} in {it} iterations; the result is a lower bound",
                      RuntimeWarning, stacklevel=3)
    return math.sqrt(max(theta, 0.0)), converged, 2 * p * it


class _Counting:
    """Wrap a LinearOperator and count its (adjoint) products, for the ``matvecs`` report."""

    def __init__(self, op: LinearOperator) -> None:
        from scipy.sparse.linalg import LinearOperator

        self.count = 0
        outer = self

        def mv(x: _Vectors) -> _Vectors:
            outer.count += 1
            return cast(_Vectors, op.matvec(x))

        def rmv(x: _Vectors) -> _Vectors:
            outer.count += 1
            return cast(_Vectors, op.rmatvec(x))

        def mm(X: _Vectors) -> _Vectors:
            outer.count += X.shape[1]
            return cast(_Vectors, op.matmat(X))

        def rmm(X: _Vectors) -> _Vectors:
            outer.count += X.shape[1]
            return cast(_Vectors, op.rmatmat(X))

        self.op = LinearOperator(op.shape, matvec=mv, rmatvec=rmv, matmat=mm, rmatmat=rmm, dtype=op.dtype)
