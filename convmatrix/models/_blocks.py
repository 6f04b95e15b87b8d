"""Sparse matrices of the affine layers that are not convolutions, built vectorized.

Most of them act on each axis of a sample separately (pooling, padding, resizing): a 1-D matrix
per axis, and the layer's matrix is their Kronecker product (C order: the last axis varies
fastest).  The others move entries around (pixel shuffle, transpose, broadcasting): one
permutation-like matrix from an index array.  Nothing here loops over pixels or rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .._axis import fold_index
from ._affine import Step, check_nnz

__all__ = [
    "NearestRound",
    "PadMode",
    "adaptive_axis",
    "broadcast_step",
    "channel_scale_step",
    "dense_step",
    "diagonal_step",
    "gather_step",
    "pad_axis",
    "pool_axis",
    "resize_axis",
    "separable_step",
    "torch_resize_axis",
]

Matrix: TypeAlias = sp.csr_array
IntArray: TypeAlias = npt.NDArray[np.int64]
FloatArray: TypeAlias = npt.NDArray[np.float64]
#: the boundary of a padding layer (numpy's constant, reflect, edge and wrap)
PadMode: TypeAlias = Literal["zeros", "reflect", "replicate", "circular"]
#: how a nearest-neighbour resize rounds a source coordinate (ONNX ``nearest_mode``)
NearestRound: TypeAlias = Literal["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def _csr(rows: IntArray, cols: IntArray, vals: FloatArray, shape: tuple[int, int]) -> Matrix:
    """CSR from triplets (duplicates summed, explicit zeros dropped)."""
    out = sp.csr_array((vals, (rows, cols)), shape=shape)
    out.sum_duplicates()
    out.eliminate_zeros()
    return out


# ----------------------------------------------------------------------------- 1-D matrices
def pool_axis(n: int, k: int, s: int, d: int, pads: tuple[int, int], out: int, *, include_pad: bool,
              divide: bool = True) -> Matrix:
    """``(out, n)`` average pooling along one axis: window ``j*s - p_before + t*d`` (``t < k``).

    Taps beyond the padded end (``>= n + p_after``, the windows ``ceil_mode`` adds) never count;
    ``include_pad`` divides by the taps inside the padded input, else by those on the input.
    ``divide=False`` leaves the ones (a ``divisor_override`` divides the whole layer).
    """
    j = np.arange(out, dtype=np.int64)[:, None]
    idx = j * s - pads[0] + np.arange(k, dtype=np.int64)[None, :] * d
    valid = (idx >= 0) & (idx < n)
    counted = idx < n + pads[1] if include_pad else valid
    div = np.maximum(counted.sum(axis=1, keepdims=True), 1).astype(np.float64)
    vals = np.broadcast_to(1.0 / div if divide else np.ones_like(div), idx.shape)
    rows = np.broadcast_to(j, idx.shape)
    return _csr(rows[valid], idx[valid], vals[valid], (out, n))


def adaptive_axis(n: int, out: int) -> Matrix:
    """``(out, n)`` adaptive average pooling: window ``floor(j n / o) .. ceil((j+1) n / o)``."""
    j = np.arange(out, dtype=np.int64)
    start = (j * n) // out
    stop = -((-(j + 1) * n) // out)
    length = stop - start
    rows = np.repeat(j, length)
    first = np.repeat(np.cumsum(length) - length, length)
    cols = np.repeat(start, length) + np.arange(rows.size, dtype=np.int64) - first
    return _csr(rows, cols, np.repeat(1.0 / length, length), (out, n))


def pad_axis(n: int, before: int, after: int, mode: PadMode) -> Matrix:
    """``(n + before + after, n)`` padding (negative widths crop); ``zeros`` leaves the padded rows empty."""
    size = n + before + after
    src = fold_index(np.arange(size, dtype=np.int64) - before, n, mode)
    rows = np.flatnonzero(src >= 0)
    return _csr(rows, src[rows], np.ones(rows.size), (size, n))


def _gather_rows(n: int, idx: IntArray, weights: FloatArray) -> Matrix:
    """``(out, n)`` matrix with ``weights[j, t]`` at column ``clip(idx[j, t])`` of row ``j`` (edge clamping)."""
    out = idx.shape[0]
    rows = np.broadcast_to(np.arange(out, dtype=np.int64)[:, None], idx.shape)
    return _csr(rows.ravel(), np.clip(idx, 0, n - 1).ravel(), weights.ravel(), (out, n))


def _cubic(x: FloatArray, a: float) -> FloatArray:
    """Keys' cubic convolution kernel with parameter ``a`` (``|x| >= 2``: 0)."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def resize_axis(n: int, out: int, x: FloatArray, mode: Literal["nearest", "linear", "cubic"], *,
                nearest: NearestRound = "round_prefer_floor", cubic_a: float = -0.75, antialias: float | None = None,
                exclude_outside: bool = False, outside: npt.NDArray[np.bool_] | None = None) -> Matrix:
    """``(out, n)`` interpolation (ONNX ``Resize``) from the source coordinate ``x[j]`` of each output.

    Neighbours outside the input are clamped to its edge.  ``antialias`` (the scale, when
    downsampling) widens the linear/cubic kernels by ``1/scale``; ``exclude_outside`` drops the
    neighbours outside the input and renormalises.  Rows flagged in ``outside`` are left empty
    (``tf_crop_and_resize``'s extrapolation: the caller puts the value in the offset).
    """
    if mode == "nearest":
        lo = np.floor(x)
        frac = x - lo
        if nearest == "floor":
            src = lo
        elif nearest == "ceil":
            src = np.ceil(x)
        elif nearest == "round_prefer_ceil":
            src = np.where(frac < 0.5, lo, lo + 1)
        else:
            src = np.where(frac <= 0.5, lo, lo + 1)
        idx = src.astype(np.int64)[:, None]
        weights = np.ones(idx.shape)
    else:
        i0 = np.ceil(x).astype(np.int64) - 1  # the left neighbour; an integer coordinate sits at ratio 1
        ratio = x - i0
        scale = 1.0 if antialias is None else min(antialias, 1.0)
        reach = 1 if mode == "linear" else 2  # the kernel's support, in output units, is [-reach, reach]
        start = 1 - reach if antialias is None else int(np.floor(-reach / scale)) + 1
        taps = np.arange(start, 2 - start, dtype=np.int64)  # offsets of the neighbours from i0
        idx = i0[:, None] + taps[None, :]
        arg = (taps[None, :] - ratio[:, None]) * scale
        weights = np.clip(1 - np.abs(arg), 0.0, 1.0) if mode == "linear" else _cubic(arg, cubic_a)
        if antialias is not None:
            weights = weights / weights.sum(axis=1, keepdims=True)
        if exclude_outside:
            weights = np.where((idx < 0) | (idx >= n), 0.0, weights)
            total = weights.sum(axis=1, keepdims=True)
            weights = weights / np.where(total == 0, 1.0, total)
    if outside is not None:
        weights = np.where(outside[:, None], 0.0, weights)
    return _gather_rows(n, idx, weights)


def torch_resize_axis(n: int, out: int, mode: Literal["nearest", "nearest-exact", "linear"], *,
                      align_corners: bool, scale_factor: float | None) -> Matrix:
    """``(out, n)`` matrix of ``torch.nn.functional.interpolate`` along one axis (PyTorch's CPU kernels).

    ``scale_factor`` is the factor given to ``interpolate`` (used for the coordinates unless
    ``recompute_scale_factor``); nearest modes compute in float32, as PyTorch does.
    """
    j = np.arange(out, dtype=np.int64)
    if mode != "linear":
        if out == n:
            src = j
        elif out == 2 * n and mode == "nearest":
            src = j >> 1
        else:
            scale = np.float32(1.0 / scale_factor) if scale_factor else np.float32(n) / np.float32(out)
            pos = j.astype(np.float32) + np.float32(0.5 if mode == "nearest-exact" else 0.0)
            src = np.minimum(np.floor(pos * scale).astype(np.int64), n - 1)
        return _csr(j, src, np.ones(out), (out, n))
    if align_corners:
        step = (n - 1) / (out - 1) if out > 1 else 0.0
        real = step * j.astype(np.float64)
    else:
        step = 1.0 / scale_factor if scale_factor else n / out
        real = np.maximum(step * (j + 0.5) - 0.5, 0.0)
    i0 = np.minimum(real.astype(np.int64), n - 1)
    lam = np.clip(real - i0, 0.0, 1.0)
    i1 = i0 + (i0 < n - 1)
    rows = np.concatenate([j, j])
    return _csr(rows, np.concatenate([i0, i1]), np.concatenate([1.0 - lam, lam]), (out, n))


# ----------------------------------------------------------------------------- whole-sample steps
def separable_step(shape: Sequence[int], mats: Sequence[Matrix | None], dtype: np.dtype, budget: int | None,
                   what: str, *, scale: float = 1.0) -> Step:
    """The Kronecker product of one matrix per axis of ``shape`` (``None``: identity), times ``scale``."""
    out_shape = tuple(int(n) if m is None else m.shape[0] for n, m in zip(shape, mats))
    nnz = math.prod(int(n) if m is None else m.nnz for n, m in zip(shape, mats))
    check_nnz(what, nnz, math.prod(out_shape), dtype, budget)
    total: sp.sparray | None = None
    run = 1  # consecutive identity axes are one identity block
    for n, m in zip(shape, mats):
        if m is None:
            run *= int(n)
            continue
        block = m if run == 1 else sp.kron(sp.eye_array(run, format="csr"), m, format="csr")
        total = block if total is None else sp.kron(total, block, format="csr")
        run = 1
    if total is None:
        return Step(None, None, out_shape)
    if run > 1:
        total = sp.kron(total, sp.eye_array(run, format="csr"), format="csr")
    matrix = sp.csr_array(total, dtype=dtype)
    if scale != 1.0:
        matrix.data *= dtype.type(scale)
    return Step(matrix, None, out_shape)


def gather_step(shape: Sequence[int], out_shape: Sequence[int], src: IntArray, dtype: np.dtype, budget: int | None,
                what: str) -> Step:
    """Output entry ``i`` (C order) is input entry ``src[i]``: a permutation or a replication."""
    size = src.size
    check_nnz(what, size, size, dtype, budget)
    matrix = sp.csr_array((np.ones(size, dtype), src.astype(np.int64), np.arange(size + 1, dtype=np.int64)),
                          shape=(size, math.prod(shape)))
    return Step(matrix, None, tuple(out_shape))


def broadcast_step(shape: tuple[int, ...], out_shape: tuple[int, ...], dtype: np.dtype, budget: int | None,
                   what: str) -> Step:
    """``np.broadcast_to`` from ``shape`` to ``out_shape`` (identity when equal)."""
    if shape == out_shape:
        return Step(None, None, out_shape)
    src = np.broadcast_to(np.arange(math.prod(shape), dtype=np.int64).reshape(shape), out_shape).ravel()
    return gather_step(shape, out_shape, src, dtype, budget, what)


def diagonal_step(shape: tuple[int, ...], scale: npt.ArrayLike | None, shift: npt.ArrayLike | None,
                  dtype: np.dtype, budget: int | None, what: str) -> Step:
    """``y = scale * x + shift`` entrywise, both broadcast to ``shape`` (``None``: 1 and 0)."""
    size = math.prod(shape)
    offset = None if shift is None else np.broadcast_to(np.asarray(shift, dtype=dtype), shape).ravel().copy()
    if scale is None:
        return Step(None, offset, shape)
    check_nnz(what, size, size, dtype, budget)
    diag = np.broadcast_to(np.asarray(scale, dtype=dtype), shape).ravel()
    return Step(sp.diags_array(diag, format="csr").astype(dtype), offset, shape)


def channel_scale_step(shape: tuple[int, ...], axis: int, scale: FloatArray, shift: FloatArray, dtype: np.dtype,
                       budget: int | None, what: str) -> Step:
    """``y = scale[c] * x + shift[c]`` along ``axis`` (batch normalization in inference)."""
    where = (1,) * axis + (-1,) + (1,) * (len(shape) - axis - 1)
    return diagonal_step(shape, scale.reshape(where), shift.reshape(where), dtype, budget, what)


def dense_step(shape: tuple[int, ...], weight: FloatArray, bias: FloatArray | None, dtype: np.dtype,
               budget: int | None, what: str, *, left: bool = False) -> Step:
    """``x @ weight.T + bias`` on the last axis (``left``: ``weight @ x`` on the last two axes).

    ``weight`` is ``(out, in)``: PyTorch's ``Linear`` layout.
    """
    w = sp.csr_array(np.asarray(weight, dtype=dtype))
    w.eliminate_zeros()
    if left:  # (..., M, K) -> (..., P, K): kron(I_outer, W, I_K)
        outer, inner = math.prod(shape[:-2]), shape[-1]
        out_shape = (*shape[:-2], weight.shape[0], inner)
        check_nnz(what, outer * w.nnz * inner, math.prod(out_shape), dtype, budget)
        block = sp.kron(w, sp.eye_array(inner, format="csr"), format="csr")
    else:
        outer = math.prod(shape[:-1])
        out_shape = (*shape[:-1], weight.shape[0])
        check_nnz(what, outer * w.nnz, math.prod(out_shape), dtype, budget)
        block = w
    matrix = block if outer == 1 else sp.kron(sp.eye_array(outer, format="csr"), block, format="csr")
    offset = None if bias is None else np.broadcast_to(np.asarray(bias, dtype=dtype), out_shape).ravel().copy()
    return Step(sp.csr_array(matrix, dtype=dtype), offset, out_shape)
