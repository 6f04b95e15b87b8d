"""Circulant spectra: per-frequency blocks of a multi-channel kernel, exact norms, the padding map's norm, scaling."""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from .._validate import PaddingMode
from ..geometry import Geometry, fold_index

__all__: list[str] = []


# ----------------------------------------------------------------------------- argument types
#: per-frequency blocks of a kernel's transform, and singular values
_Complex: TypeAlias = npt.NDArray[np.complexfloating]
_Real: TypeAlias = npt.NDArray[np.floating]


#: largest matrix (rows x columns) that ``method="auto"`` turns dense for an exact SVD
_DENSE_ENTRIES = 1 << 20


#: block size of the power (subspace) iteration: separates a few nearly equal top singular values
_POWER_BLOCK = 8


def _compute_dtype(kdt: np.dtype, single: bool) -> np.dtype[np.inexact]:
    """float32/complex64 kernels compute in single precision when ``single``; everything else
    (integers, bools, float64, extended precision) in float64/complex128."""
    low = single and kdt in (np.float32, np.complex64)
    if kdt.kind == "c":
        return np.dtype(np.complex64 if low else np.complex128)
    return np.dtype(np.float32 if low else np.float64)


def _scaled(k: np.ndarray, dt: np.dtype) -> tuple[npt.NDArray[np.inexact], int]:
    """``(k * 2**-e in dt, e)`` with the largest magnitude in [0.5, 1) (``e = 0`` for a zero kernel).

    Scaling by a power of two is exact; it keeps the transforms, SVDs and Krylov products of
    kernels near the ends of the float range from overflowing or underflowing.
    """
    if k.dtype.kind in "fc" and np.abs(k).max() > np.finfo(dt).max:  # extended precision beyond dt's range
        raise ValueError(f"kernel entries must be within the range of {dt} for a spectrum; got a kernel of dtype "
                         f"{k.dtype} whose largest magnitude overflows it")
    ks = k.astype(dt)
    top = float(np.abs(ks).max())
    if top == 0.0:
        return ks, 0
    e = math.frexp(top)[1]
    parts = (ks.real, ks.imag) if dt.kind == "c" else (ks,)
    for part in parts:
        np.ldexp(part, -e, out=part)
    return ks, e


def _unscale(value: float, e: int, what: str) -> float:
    try:
        return math.ldexp(value, e)
    except OverflowError:
        raise ValueError(f"the {what} of this kernel, about 2**{math.frexp(value)[1] + e}, overflows float64") from None


# ----------------------------------------------------------------------------- circulant spectra
def _block_spectrum(w: npt.NDArray[np.inexact], grid: tuple[int, ...], dilation: tuple[int, ...],
                    groups: int) -> tuple[_Complex, npt.NDArray[np.int_] | None]:
    """Per-frequency blocks ``(F, groups, C_out/g, C_in/g)`` of the circulant on ``grid`` and multiplicities.

    Taps are wrapped modulo the grid (kernels larger than the input fold onto themselves, as the
    circulant matrix does).  For a real kernel only the ``rfftn`` half is transformed; the other
    half are complex conjugates with the same singular values, so each frequency of the last
    axis carries a multiplicity (1 or 2; ``None`` for a complex kernel: all 1).
    """
    import scipy.fft as fft

    nd = len(grid)
    cout, cg = w.shape[:2]
    wrapped = np.zeros((cout, cg, *grid), w.dtype)
    idx = [np.mod(np.arange(k) * d, n) for k, d, n in zip(w.shape[2:], dilation, grid)]
    np.add.at(wrapped, (slice(None), slice(None), *np.ix_(*idx)), w)
    axes = tuple(range(2, 2 + nd))
    if w.dtype.kind == "c":
        spec, mult = fft.fftn(wrapped, axes=axes), None
    else:
        spec = fft.rfftn(wrapped, axes=axes)
        f = np.arange(spec.shape[-1])
        mult = np.where((f > 0) & (2 * f != grid[-1]), 2, 1)  # conjugate partner not transformed: twice
    del wrapped
    F = math.prod(spec.shape[2:])
    blocks = spec.reshape(groups, cout // groups, cg, F).transpose(3, 0, 1, 2)
    return blocks, mult


def _circulant_svals(w: npt.NDArray[np.inexact], grid: tuple[int, ...], dilation: tuple[int, ...],
                     groups: int) -> _Real:
    """Every singular value of the circulant, descending, in the real dtype of ``w``."""
    blocks, mult = _block_spectrum(w, grid, dilation, groups)
    s = np.linalg.svd(blocks, compute_uv=False)  # (F, g, min(og, cg)), batched LAPACK
    del blocks
    if mult is not None:  # repeat along the last frequency axis (the order is sorted away)
        last = mult.size
        s = np.repeat(s.reshape(-1, last, s.shape[1] * s.shape[2]), mult, axis=1)
    s = s.reshape(-1)
    np.negative(s, out=s)  # descending sort in place
    s.sort()
    np.negative(s, out=s)
    return s


def _circulant_norm(w: npt.NDArray[np.inexact], grid: tuple[int, ...], dilation: tuple[int, ...],
                    groups: int) -> float:
    blocks, _ = _block_spectrum(w, grid, dilation, groups)
    if blocks.shape[2] == 1 or blocks.shape[3] == 1:  # a column or a row per block: its Euclidean norm
        a = np.abs(blocks)
        del blocks
        np.square(a, out=a)
        return float(np.sqrt(a.sum(axis=(2, 3)).max()))
    return float(np.linalg.svd(blocks, compute_uv=False).max())


def _circulant_bytes(c: int, mm: int, grid: tuple[int, ...], dt: np.dtype) -> int:
    """Peak bytes of :func:`_circulant_norm` / the spectrum of :func:`_circulant_svals` on ``grid``.

    ``c = C_out * C_in/groups`` kernel channels, ``mm`` singular values per frequency (all groups).
    The dilated kernel wrapped on the grid and its transform, or the transform and the magnitudes
    (or batched SVD output) computed from it.
    """
    P = math.prod(grid)
    cplx = dt.kind == "c"
    F = P if cplx else P // grid[-1] * (grid[-1] // 2 + 1)
    r = dt.itemsize // 2 if cplx else dt.itemsize  # real itemsize
    spec = c * F * 2 * r
    return max(c * P * dt.itemsize + spec, spec + spec // 2, spec + F * mm * r)


def _is_circulant(geom: Geometry) -> bool:
    """Circular padding, stride 1, output grid == input grid: the matrix is block-circulant."""
    return (geom.padding_mode == "circular" and all(s == 1 for s in geom.stride)
            and geom.output_shape == geom.input_shape)


def _fold_multiplicity(n: int, L: int, pb: int, mode: PaddingMode) -> int:
    """Largest number of padded positions ``m in [0, L)`` reading one input ``fold(m - pb)``.

    Closed form for zeros, circular and replicate; the mirror modes count per residue of their
    period (O(n) work and memory, n the input length of the axis).
    """
    lo, hi = -pb, L - pb  # positions q = m - pb read, before folding
    if mode == "zeros":
        return 1 if max(lo, 0) < min(hi, n) else 0
    if mode == "circular":
        return -(-L // n)
    if n == 1:
        return L
    if mode == "replicate":
        inner = 1 if max(lo, 1) < min(hi, n - 1) else 0
        return max(inner, max(0, min(hi, 1) - lo), max(0, hi - max(lo, n - 1)))
    period = 2 * n if mode == "symmetric" else 2 * (n - 1)
    r = np.arange(period)
    count = (hi - 1 - r) // period - (lo - 1 - r) // period  # positions with q = r (mod period)
    return int(np.bincount(fold_index(r, n, mode), weights=count, minlength=n).max())


def _padding_norm(geom: Geometry) -> float:
    """Norm of the padding map ``x -> x_pad`` restricted to the positions the output reads."""
    norm = 1.0
    for n, L, (pb, _) in zip(geom.input_shape, geom.read_shape, geom.padding):
        norm *= math.sqrt(_fold_multiplicity(n, L, pb, geom.padding_mode))
    return norm


def _padding_norm_bytes(geom: Geometry) -> int:
    mirror = geom.padding_mode in ("reflect", "symmetric")
    return 64 * max(geom.input_shape) if mirror else 0


def _tap_norm(w: npt.NDArray[np.inexact], groups: int) -> float:
    """``sum_t ||w[:, :, t]||``: the triangle inequality bounds every ``||A(f)||`` by it."""
    cout, cg = w.shape[:2]
    taps = w.reshape(groups, cout // groups, cg, -1).transpose(3, 0, 1, 2)
    if cout // groups == 1 or cg == 1:
        per = np.sqrt((np.abs(taps) ** 2).sum(axis=(2, 3)))
    else:
        per = np.linalg.svd(taps, compute_uv=False)[..., 0]
    return float(per.max(axis=1).sum())


def _upper_bound(w: npt.NDArray[np.inexact], geom: Geometry, circulant: bool) -> float:
    """``max_f ||A_L(f)|| * ||P||`` (``circulant``), else the looser ``sum_t ||w_t|| * ||P||``."""
    pn = _padding_norm(geom)
    if pn == 0.0:
        return 0.0
    if not circulant:
        return _tap_norm(w, geom.groups) * pn
    grid = geom.read_shape
    return _circulant_norm(w, grid, geom.dilation, geom.groups) * pn
