"""Spectra of convolution matrices: every singular value of a circular convolution, the spectral norm of any.

A multi-channel *circular* stride-1 convolution is block-circulant: the discrete Fourier
transform on the input grid block-diagonalises it, so its singular values are those of the
``C_out x C_in`` matrices

    A(f) = sum_t w[:, :, t] * exp(2*pi*i * sum_a f_a * t_a * d_a / n_a),   f in the grid,

one small SVD per frequency (Sedghi, Gupta & Long, "The singular values of convolutional
layers", ICLR 2019).  Any other geometry (zero or mirror padding, stride, dilation) is a
restriction of such a circulant, which gives a cheap upper bound on the spectral norm; the norm
itself comes from Lanczos (``scipy.sparse.linalg.svds``) or power iteration on the matrix-free
:class:`~convmatrix.ConvOperator`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from . import _validate as V
from .geometry import Geometry, conv_geometry, fold_index

__all__ = ["singular_values", "spectral_norm", "SpectralNorm"]

SPECTRAL_METHODS = ("auto", "exact", "dense", "lanczos", "power")
#: largest matrix (rows x columns) that ``method="auto"`` turns dense for an exact SVD
_DENSE_ENTRIES = 1 << 20
#: block size of the power (subspace) iteration: separates a few nearly equal top singular values
_POWER_BLOCK = 8


class SpectralNorm(float):
    """The spectral norm (a ``float``) with how it was obtained.

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
    """

    method: str
    tol: float
    lower_bound: float
    upper_bound: float
    converged: bool
    matvecs: int

    def __new__(cls, value: float, **info: Any) -> SpectralNorm:
        obj = super().__new__(cls, value)
        obj.__dict__.update(info)
        return obj

    def __repr__(self) -> str:
        return (f"SpectralNorm({float(self)!r}, method={self.method!r}, tol={self.tol!r}, "
                f"lower_bound={self.lower_bound!r}, upper_bound={self.upper_bound!r}, converged={self.converged})")

    def __reduce__(self):
        return (_rebuild, (float(self), dict(self.__dict__)))


def _rebuild(value: float, info: dict) -> SpectralNorm:
    return SpectralNorm(value, **info)


# ----------------------------------------------------------------------------- helpers
def _spectral_method(method: Any) -> str:
    if not isinstance(method, str) or method not in SPECTRAL_METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, SPECTRAL_METHODS))}; got {method!r}")
    return method


def _engine_weight(k: np.ndarray, geom: Geometry, flip: bool = False) -> np.ndarray:
    w = k.reshape((geom.out_channels, geom.in_per_group) + geom.kernel_shape)
    if flip:
        w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * geom.ndim]
    return w


def _block_spectrum(w: np.ndarray, grid: tuple[int, ...], dilation: tuple[int, ...], groups: int):
    """Per-frequency blocks ``(F, groups, C_out/g, C_in/g)`` of the circulant on ``grid`` and a weight per block.

    Taps are wrapped modulo the grid (kernels larger than the input fold onto themselves, as the
    circulant matrix does).  For a real kernel only the ``rfftn`` half is transformed; the other
    half are complex conjugates with the same singular values, so each frequency carries a
    multiplicity (1 or 2).
    """
    import scipy.fft as fft

    nd = len(grid)
    cout, cg = w.shape[:2]
    dt = np.result_type(w.dtype, np.float32)
    wrapped = np.zeros((cout, cg) + tuple(grid), dt)
    idx = [np.mod(np.arange(k) * d, n) for k, d, n in zip(w.shape[2:], dilation, grid)]
    np.add.at(wrapped, (slice(None), slice(None)) + np.ix_(*idx), w.astype(dt, copy=False))
    axes = tuple(range(2, 2 + nd))
    if dt.kind == "c":
        spec = fft.fftn(wrapped, axes=axes)
        mult = np.ones(spec.shape[2:], np.int64)
    else:
        spec = fft.rfftn(wrapped, axes=axes)
        n_last = grid[-1]
        f = np.arange(spec.shape[-1])
        twice = (f > 0) & (2 * f != n_last)  # frequencies whose conjugate partner is not transformed
        mult = np.broadcast_to(np.where(twice, 2, 1), spec.shape[2:])
    F = math.prod(spec.shape[2:])
    blocks = spec.reshape(groups, cout // groups, cg, F).transpose(3, 0, 1, 2)
    return blocks, mult.reshape(F)


def _circulant_svals(w, grid, dilation, groups) -> np.ndarray:
    blocks, mult = _block_spectrum(w, grid, dilation, groups)
    s = np.linalg.svd(blocks, compute_uv=False)  # (F, g, min(og, cg)), batched LAPACK
    s = np.repeat(s.reshape(s.shape[0], -1), mult, axis=0).ravel()
    return -np.sort(-s)


def _circulant_norm(w, grid, dilation, groups) -> float:
    blocks, _ = _block_spectrum(w, grid, dilation, groups)
    if blocks.shape[2] == 1 or blocks.shape[3] == 1:
        return float(np.sqrt((np.abs(blocks) ** 2).sum(axis=(2, 3))).max())
    return float(np.linalg.svd(blocks, compute_uv=False).max())


def _is_circulant(geom: Geometry) -> bool:
    """Circular padding, stride 1, output grid == input grid: the matrix is block-circulant."""
    return (geom.padding_mode == "circular" and all(s == 1 for s in geom.stride)
            and geom.output_shape == geom.input_shape)


def _padding_norm(geom: Geometry) -> float:
    """Norm of the padding map ``x -> x_pad`` restricted to the positions the output reads."""
    norm = 1.0
    for ax in geom.axes():
        L = (ax.out - 1) * ax.s + ax.d * (ax.k - 1) + 1
        idx = fold_index(np.arange(L) - ax.pad[0], ax.n, ax.mode)
        counts = np.bincount(idx[idx >= 0], minlength=ax.n)
        norm *= math.sqrt(counts.max()) if counts.size else 0.0
    return norm


def _upper_bound(w: np.ndarray, geom: Geometry) -> float:
    grid = tuple((o - 1) * s + d * (k - 1) + 1 for o, s, d, k in
                 zip(geom.output_shape, geom.stride, geom.dilation, geom.kernel_shape))
    return _circulant_norm(w, grid, geom.dilation, geom.groups) * _padding_norm(geom)


# ----------------------------------------------------------------------------- public API
def singular_values(
    kernel: Any,
    input_shape: Any,
    padding_mode: str = "circular",
    *,
    dilation: Any = 1,
    groups: Any = 1,
) -> np.ndarray:
    """All singular values of a multi-channel circular stride-1 convolution, exactly, via the FFT.

    The matrix is ``conv_matrix(kernel, input_shape, padding_mode="circular", padding=p)`` with
    any padding ``p`` whose total per axis is ``d*(k-1)`` (output shape = input shape; the split
    only permutes rows and does not change the singular values).  Kernels larger than the
    input are allowed: taps wrap modulo the input size, as in the circulant matrix.

    Parameters
    ----------
    kernel : array_like
        Spatial kernel, or PyTorch weight ``(C_out, C_in/groups, *k)``.
    input_shape : int or sequence of int
        Spatial input shape, any number of dimensions.
    padding_mode : {"circular"}
        Only circular convolutions have this closed form; use :func:`spectral_norm` otherwise.
    dilation : int or sequence of int
    groups : int

    Returns
    -------
    ndarray
        ``min(C_out, C_in) * prod(input_shape)`` singular values in descending order, in the
        kernel's precision (float32 kernels give float32; integers float64).

    Notes
    -----
    With ``n`` the input grid, ``A(f) = sum_t w[:, :, t] exp(2 pi i <f, t*d / n>)`` is the
    ``C_out x C_in`` block of frequency ``f`` (block-diagonal over groups); the singular values
    of the convolution are the union over ``f`` of those of ``A(f)`` (Sedghi, Gupta & Long 2019).
    Cost: one FFT of the kernel on the grid and ``prod(n)`` small batched SVDs (half of them
    for a real kernel, whose spectrum is conjugate-symmetric).

    Examples
    --------
    >>> import numpy as np
    >>> singular_values([1.0, 1.0], (4,))          # |1 + e^{2 pi i f/4}| for f = 0..3
    array([2.        , 1.41421356, 1.41421356, 0.        ])
    >>> w = np.random.default_rng(0).standard_normal((3, 2, 3, 3))
    >>> s = singular_values(w, (5, 6))
    >>> s.shape
    (60,)
    >>> import convmatrix as cm
    >>> C = cm.conv_matrix(w, (5, 6), padding=1, padding_mode="circular").toarray()
    >>> bool(np.allclose(s, np.linalg.svd(C, compute_uv=False)))
    True
    """
    k = V.kernel_array(kernel)
    mode = V.padding_mode_name(padding_mode)
    if mode != "circular":
        raise ValueError(
            f"padding_mode must be 'circular' for singular_values (only circular stride-1 convolutions are "
            f"block-circulant); got {mode!r}: use spectral_norm for other geometries"
        )
    # the geometry validates kernel layout, dilation and groups ('full' padding fits any kernel)
    geom = conv_geometry(k.shape, input_shape, padding="full", dilation=dilation, groups=groups)
    w = _engine_weight(k, geom)
    return _circulant_svals(w, geom.input_shape, geom.dilation, geom.groups)


def spectral_norm(
    kernel: Any,
    input_shape: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    padding_mode: str = "zeros",
    flip: bool = False,
    tol: float = 1e-6,
    method: str = "auto",
    maxiter: int | None = None,
    seed: int = 0,
) -> SpectralNorm:
    """Spectral norm (largest singular value, the Lipschitz constant) of ``conv_matrix`` for any geometry.

    Parameters
    ----------
    kernel, input_shape, stride, padding, dilation, groups, padding_mode, flip
        As :func:`convmatrix.conv_matrix`.
    tol : float
        Relative accuracy for the iterative methods: ``|result - norm| <= tol * norm``.
    method : {"auto", "exact", "dense", "lanczos", "power"}
        ``"exact"``: per-frequency SVDs, only for a circulant geometry (circular padding,
        stride 1, output shape = input shape).  ``"dense"``: SVD of the explicit matrix (small
        cases).  ``"lanczos"``: ``scipy.sparse.linalg.svds`` (ARPACK) on :class:`ConvOperator`,
        ARPACK tolerance ``tol`` on ``sigma**2``.  ``"power"``: block power (subspace) iteration on
        ``C^H C`` (8 vectors, Rayleigh-Ritz) until the top Ritz pair's residual
        ``||C^H C v - mu v|| <= tol * mu``.  ``"auto"``: exact if
        circulant, dense if the matrix has at most 2**20 entries, else lanczos.
    maxiter : int, optional
        Iteration cap for ``lanczos`` (ARPACK's default) and ``power`` (default 10000).
    seed : int
        Seed of the random start vector (results are deterministic).

    Returns
    -------
    SpectralNorm
        A ``float`` with attributes ``method``, ``tol``, ``lower_bound``, ``upper_bound``
        (the circulant bound, always available), ``converged`` and ``matvecs``.

    Notes
    -----
    Upper bound: with ``L = (o-1)*s + d*(k-1) + 1`` per axis, ``C = S R Z_L P`` where ``P`` pads
    (norm ``prod_a sqrt(max fold multiplicity)``: 1 for zeros, up to ``sqrt(1 + p)`` for
    replicate), ``Z_L`` is the circulant convolution on the grid ``L`` (no wrap-around reaches
    the kept outputs), ``R``/``S`` select rows.  Hence
    ``||C|| <= max_f ||A_L(f)|| * ||P||``, exact (equality) in the circulant case.

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
    from .operator import ConvOperator

    method = _spectral_method(method)
    tol = float(tol)
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a non-negative finite number; got {tol!r}")
    k = V.kernel_array(kernel)
    ctype = np.result_type(k.dtype, np.float64)  # norms are computed in double precision
    A = ConvOperator(k, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     padding_mode=padding_mode, flip=flip, dtype=ctype)
    geom = A.geometry
    w = _engine_weight(k.astype(ctype), geom, flip)
    circ = _is_circulant(geom)
    upper = _upper_bound(w, geom)
    if method == "auto":
        method = "exact" if circ else ("dense" if A.shape[0] * A.shape[1] <= _DENSE_ENTRIES else "lanczos")
    if method == "exact":
        if not circ:
            raise ValueError(
                "method='exact' needs a circulant geometry (padding_mode='circular', stride 1, output shape = input "
                f"shape); got padding_mode={geom.padding_mode!r}, stride={geom.stride}, input shape "
                f"{geom.input_shape} -> output shape {geom.output_shape}"
            )
        value = _circulant_norm(w, geom.input_shape, geom.dilation, geom.groups)
        return SpectralNorm(value, method="exact", tol=0.0, lower_bound=value, upper_bound=value, converged=True,
                            matvecs=0)
    rng = np.random.default_rng(seed)
    if method == "dense":
        n_small = min(A.shape)
        M = A.matmat(np.eye(A.shape[1], dtype=ctype)) if A.shape[1] == n_small else \
            A.rmatmat(np.eye(A.shape[0], dtype=ctype)).conj().T
        value = float(np.linalg.norm(M, 2)) if M.size else 0.0
        return SpectralNorm(value, method="dense", tol=0.0, lower_bound=value, upper_bound=upper, converged=True,
                            matvecs=n_small)
    v0 = rng.standard_normal(A.shape[1]).astype(ctype)
    if method == "lanczos":
        from scipy.sparse.linalg import svds

        if min(A.shape) < 2:  # ARPACK needs k < min(shape): a single row or column is its own norm
            return spectral_norm(k, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                                 padding_mode=padding_mode, flip=flip, method="dense")
        counter = _Counting(A)
        if A.shape[0] < A.shape[1]:
            v0 = rng.standard_normal(A.shape[0]).astype(ctype)
        _, s, vh = svds(counter.op, k=1, tol=tol, v0=v0, maxiter=maxiter, solver="arpack", random_state=seed)
        v = vh[0].conj()
        lower = float(np.linalg.norm(A @ v) / np.linalg.norm(v))
        value = float(s[0])
        return SpectralNorm(value, method="lanczos", tol=tol, lower_bound=min(lower, value), upper_bound=upper,
                            converged=True, matvecs=counter.count)
    # block power (subspace) iteration on C^H C with Rayleigh-Ritz and an eigen-residual stopping rule
    maxiter = 10000 if maxiter is None else V.as_int(maxiter, "maxiter", minimum=1)
    p = min(_POWER_BLOCK, min(A.shape))
    Q = np.linalg.qr(rng.standard_normal((A.shape[1], p)).astype(ctype))[0]
    theta, converged, it = 0.0, False, 0
    for it in range(1, maxiter + 1):
        Z = A.rmatmat(A.matmat(Q))  # C^H C Q
        vals, U = np.linalg.eigh(Q.conj().T @ Z)
        theta = float(vals[-1])
        if theta <= 0:
            break
        Z = Z @ U[:, ::-1]
        resid = np.linalg.norm(Z[:, 0] - theta * (Q @ U[:, -1]))
        if resid <= tol * theta:
            converged = True
            break
        Q = np.linalg.qr(Z)[0]
    value = math.sqrt(max(theta, 0.0))
    if not converged:
        warnings.warn(f"power iteration did not reach tol={tol} in {it} iterations; the result is a lower bound",
                      RuntimeWarning, stacklevel=2)
    return SpectralNorm(value, method="power", tol=tol, lower_bound=value, upper_bound=upper, converged=converged,
                        matvecs=2 * p * it)


class _Counting:
    """Wrap a LinearOperator and count its (adjoint) products, for the ``matvecs`` report."""

    def __init__(self, op) -> None:
        from scipy.sparse.linalg import LinearOperator

        self.count = 0
        outer = self

        def mv(x):
            outer.count += 1
            return op.matvec(x)

        def rmv(x):
            outer.count += 1
            return op.rmatvec(x)

        def mm(X):
            outer.count += X.shape[1]
            return op.matmat(X)

        def rmm(X):
            outer.count += X.shape[1]
            return op.rmatmat(X)

        self.op = LinearOperator(op.shape, matvec=mv, rmatvec=rmv, matmat=mm, rmatmat=rmm, dtype=op.dtype)

    def __getattr__(self, name):
        return getattr(self.op, name)
