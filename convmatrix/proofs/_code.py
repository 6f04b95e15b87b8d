"""The index arithmetic of :mod:`convmatrix._axis` and :mod:`convmatrix._build`, written once for numpy and z3.

Each function is the scalar, backend-generic form of a line of the library (named in its
comment).  ``xp`` is the array namespace: :mod:`numpy` (the default: arrays in, arrays out) or
:data:`convmatrix.proofs._smt.Z3` (symbolic integers in, z3 terms out).  Only ``+ - * // %``,
comparisons, ``& | ~`` and ``xp.where`` / ``xp.mod`` / ``xp.clip`` / ``xp.zeros_like`` are used,
and Python ``if`` only on scalar sizes (the proofs follow both branches), so the same function
runs in the builders and in the proofs.  ``tests/test_proofs.py`` evaluates every function here
with numpy on many random geometries and compares it with :class:`convmatrix._axis.Axis`, so the
two cannot drift apart until these functions move into ``_axis.py`` (and ``Axis.index_map``
calls them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "conv_index",
    "conv_source",
    "fold",
    "fold_period",
    "kernel_tap",
    "nd_column",
    "ravel",
    "transpose_index",
    "wrapped_offset",
]

_MODES = ("zeros", "circular", "reflect", "replicate", "symmetric")


def conv_source(j: Any, t: Any, s: Any, d: Any, p_before: Any) -> Any:
    """Unfolded input index that output position ``j`` reads through tap ``t``: ``j*s + t*d - p_before``."""
    # _axis.Axis.index_map: fold_index(j * self.s + off - self.pad[0], ...) with off = t * self.d
    return j * s + t * d - p_before


def fold(i: Any, n: Any, mode: str, xp: Any = np) -> Any:
    """Index ``i`` mapped into ``[0, n)`` by the boundary ``mode`` (``-1``: dropped, for ``"zeros"``)."""
    # _axis.fold_index, line by line (after its np.asarray)
    if mode == "zeros":
        return xp.where((i >= 0) & (i < n), i, -1)
    if mode == "circular":
        return xp.mod(i, n)
    if mode == "replicate":
        return xp.clip(i, 0, n - 1)
    if mode == "symmetric":
        m = xp.mod(i, 2 * n)
        return xp.where(m >= n, 2 * n - 1 - m, m)
    if mode == "reflect":
        if n == 1:
            return xp.zeros_like(i)
        period = 2 * (n - 1)
        m = xp.mod(i, period)
        return xp.where(m >= n, period - m, m)
    raise ValueError(f"padding_mode must be one of {_MODES}; got {mode!r}")


def conv_index(j: Any, t: Any, n: Any, s: Any, d: Any, p_before: Any, mode: str, xp: Any = np) -> Any:
    """Input index that output ``j`` of a convolution reads through tap ``t`` (``-1``: zero padding)."""
    # _axis.Axis.index_map, convolution axis: fold_index(j * self.s + off - self.pad[0], self.n, self.mode)
    return fold(conv_source(j, t, s, d, p_before), n, mode, xp)


def transpose_index(j: Any, t: Any, n: Any, k: Any, s: Any, d: Any, p_before: Any, xp: Any = np) -> Any:
    """Input index that output ``j`` of a transposed convolution reads through (flipped) tap ``t``, or ``-1``."""
    # _axis.Axis.index_map, transposed axis (n: the transposed input's length), its three lines
    q = j + p_before - (k - 1 - t) * d  # = input_index * s when it is a hit
    hit = (q >= 0) & (q % s == 0) & (q // s < n)
    return xp.where(hit, q // s, -1)


def kernel_tap(t: Any, k: Any) -> Any:
    """Kernel tap held by tap ``t`` of a transposed geometry's engine weight (its taps are reversed)."""
    # geometry.Geometry.engine_weight, kind "conv_transpose": w[..., ::-1] (slice(None, None, -1) per axis)
    return k - 1 - t


def fold_period(n: Any, mode: str) -> Any:
    """Period of the boundary fold of a convolution axis (``0``: zeros and replicate do not repeat)."""
    # _axis.Axis.fold_period (convolution axis)
    if mode in ("zeros", "replicate"):
        return 0
    if mode == "circular":
        return n
    if mode == "symmetric":
        return 2 * n
    return 2 * (n - 1) if n > 1 else 1  # reflect


def wrapped_offset(t: Any, d: Any, period: Any) -> Any:
    """Offset replacing ``t*d`` when the taps are wrapped onto one period of the fold."""
    # _axis.Axis.wrapped: off = (np.arange(self.k) * self.d) % self.fold_period()
    return (t * d) % period


def ravel(index: Sequence[Any], shape: Sequence[Any]) -> Any:
    """C-order flat index of ``index`` in ``shape``: ``sum(index[a] * prod(shape[a+1:]))``."""
    # _build._RowFiller: in_strides = [math.prod(geom.input_shape[a + 1 :]) for a in range(nd)],
    # the column of an entry is sum_a cols_a * in_strides[a]; rows come from np.unravel_index (C order)
    return sum((index[a] * math.prod(shape[a + 1 :]) for a in range(len(shape))), 0)


def nd_column(cols: Sequence[Any], shape: Sequence[Any]) -> tuple[Any, Any]:
    """Column of the N-D entry whose per-axis input indices are ``cols`` (each ``-1`` if dropped), and its mask.

    Returns ``(column, valid)``: the C-order ravel of ``cols`` in the input ``shape`` and whether
    every axis reads the input (the builder stores the entry only then).
    """
    # _build._RowFiller._chunk: col = col + axis_view(cols * self.in_strides[a], a) per axis,
    # mask = mask & (cols >= 0) per axis
    valid = cols[0] >= 0
    for c in cols[1:]:
        valid = valid & (c >= 0)
    return ravel(cols, shape), valid
