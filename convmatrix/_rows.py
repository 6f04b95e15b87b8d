"""The builder's general path: rows given by position, candidates masked, folded taps summed exactly.

The rows that no regular box covers (boundary rows, or every row of a small or irregular matrix)
are filled here in chunks of :data:`_CAND_CHUNK` candidate entries (row x input channel x tap):
the per-axis slots of each row (:meth:`Axis.slots_of <convmatrix._axis.Axis.slots_of>`), their
C-order ravel by the proved :func:`~convmatrix._axis.nd_column`, and, where a boundary mode
sends several taps to one input, their exact sum.
"""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from . import _validate as V
from ._axis import Axis, IndexArray, nd_column
from .geometry import Geometry

__all__: list[str] = []

#: candidate entries handled per chunk of the general path
_CAND_CHUNK = 1 << 16
#: bytes of temporaries per candidate of the general path (measured ~70 with exact int64 sums)
_CAND_BYTES = 112
#: extra bytes per candidate when folded integer sums need Python integers (boxed ints)
_CAND_OBJECT_BYTES = 96
#: the index arrays of a CSR (int32 when every index fits, else int64: :meth:`Geometry.index_dtype`)
_Indices: TypeAlias = npt.NDArray[np.int32 | np.int64]


def _wrap(geom: Geometry, wt: np.ndarray, wacc: np.ndarray | None) -> tuple[list[Axis], np.ndarray, np.ndarray | None]:
    """Axes with taps wrapped onto one period of their fold, and the weights summed accordingly."""
    axes = []
    for a, ax in enumerate(geom.axes()):
        wrapped, groups = ax.wrapped()
        if groups is not None:
            wt = _sum_taps(wt, a, groups, wrapped.k)
            wacc = None if wacc is None else _sum_taps(wacc, a, groups, wrapped.k)
        axes.append(wrapped)
    return axes, wt, wacc


def _sum_taps(w: np.ndarray, a: int, groups: IndexArray, k: int) -> np.ndarray:
    """Engine weight ``w`` with the taps of axis ``a`` added up by ``groups`` (exact in ``w``'s dtype)."""
    moved = np.moveaxis(w, 2 + a, -1)
    out = np.zeros((*moved.shape[:-1], k), dtype=w.dtype)
    np.add.at(out, (Ellipsis, groups), moved)  # type: ignore[arg-type]  # numpy's stubs take no tuple index
    return np.ascontiguousarray(np.moveaxis(out, -1, 2 + a))


class _RowFiller:
    """The general path: rows given by position, candidates masked, folded taps summed exactly."""

    def __init__(self, geom: Geometry, axes: list[Axis], wt: np.ndarray, wacc: np.ndarray | None, dtype: np.dtype,
                 indices: _Indices, data: np.ndarray, per_channel: int) -> None:
        self.geom, self.wt, self.wacc, self.dtype = geom, wt, wacc, dtype
        self.indices, self.data, self.per_channel = indices, data, per_channel
        self.axes = axes
        self.nd = geom.ndim
        self.cand = geom.in_per_group * math.prod(ax.k for ax in axes)
        self.n_out = math.prod(geom.output_shape)
        self.n_in = math.prod(geom.input_shape)
        self.per_call = max(1, _CAND_CHUNK // max(self.cand, 1))

    def rows(self, flat: IndexArray, pos: tuple[IndexArray, ...], starts: IndexArray) -> None:
        """Fill the rows of output positions ``flat`` (spatial, C order) for every output channel."""
        c_out, m = self.geom.out_channels, flat.size
        if m >= self.per_call:
            for c in range(c_out):  # loop over output channels, positions in chunks
                for a in range(0, m, self.per_call):
                    b = min(m, a + self.per_call)
                    self._chunk(np.full(b - a, c, np.int64), tuple(p[a:b] for p in pos), starts[a:b])
            return
        group = max(1, self.per_call // m)  # several channels at once
        for c0 in range(0, c_out, group):
            ch = np.repeat(np.arange(c0, min(c_out, c0 + group), dtype=np.int64), m)
            reps = ch.size // m
            self._chunk(ch, tuple(np.tile(p, reps) for p in pos), np.tile(starts, reps))

    def _chunk(self, ch: IndexArray, js: tuple[IndexArray, ...], starts: IndexArray) -> None:
        geom, nd = self.geom, self.nd
        cg, og = geom.in_per_group, geom.out_per_group
        itype = self.indices.dtype
        R = ch.size

        def tap_major(tab: np.ndarray, a: int) -> np.ndarray:  # (R, k_a) as (cg, k_0, ..., k_{nd-1}, R) broadcasting
            return np.ascontiguousarray(tab.T).reshape(1, *([1] * a), tab.shape[1], *([1] * (nd - a - 1)), R)

        def rows_first(tab: np.ndarray) -> np.ndarray:  # (..., R) -> (R, ...) in C order, as one 2-D transpose
            return np.ascontiguousarray(tab.reshape(-1, R).T).reshape(R, *tab.shape[:-1])

        chan = (((ch // og) * cg)[None, :] + np.arange(cg, dtype=np.int64)[:, None]) * self.n_in  # (cg, R)
        per_axis = []
        folds = []
        for a, ax in enumerate(self.axes):
            cols, assign, _ = ax.slots_of(js[a])
            per_axis.append(tap_major(cols, a))
            if assign is not None:
                folds.append((a, assign))
        # the N-D entry: C-order ravel of the per-axis columns, stored where every axis reads the input; taps
        # first and rows last, so that numpy's inner loops run over the rows (not over a few taps), then rows first
        spatial, valid = nd_column(per_axis, geom.input_shape)
        col = rows_first(chan.reshape((cg,) + (1,) * nd + (R,)) + spatial)  # (R, cg, k_0, ...)
        del spatial
        valid = rows_first(valid)
        mask = None if valid.all() else valid
        if folds:
            vals = (self.wt if self.wacc is None else self.wacc)[ch]
            for a, assign in folds:  # several taps share a slot: add them up (boundary folding)
                vals = _fold(vals, assign, a)
            if vals.dtype != self.dtype:
                V.check_values_fit(vals, self.dtype, f"an entry of this matrix (padding_mode={geom.padding_mode!r} "
                                                     f"adds several taps onto one input), namely",
                                   "no numpy integer dtype holds it: use smaller kernel values"
                                   if self.dtype.kind in "iu" and self.dtype.itemsize == 8 else
                                   "pass a dtype that holds the sums of folded taps (e.g. dtype=np.int64)")
                vals = vals.astype(self.dtype)
        else:
            vals = self.wt[ch]
        if mask is None:
            lengths = np.full(R, col[0].size if R else 0, np.int64)
            col, vals = col.reshape(-1), vals.reshape(-1)
        else:
            full = np.broadcast_to(mask, col.shape)
            lengths = full.reshape(R, -1).sum(axis=1)
            col, vals = col[full], vals[full]
        begin = starts + ch * self.per_channel
        if R == 1 or np.all(begin[1:] == begin[:-1] + lengths[:-1]):  # consecutive rows: one slice
            lo = int(begin[0])
            self.indices[lo : lo + col.size] = col
            self.data[lo : lo + col.size] = vals
        else:
            pos = np.repeat(begin - (np.cumsum(lengths) - lengths), lengths) + np.arange(col.size)
            self.indices[pos] = col.astype(itype, copy=False)
            self.data[pos] = vals


def _fold(vals: np.ndarray, assign: IndexArray, a: int) -> np.ndarray:
    """Sum the taps of axis ``a`` (``vals``: ``(R, cg, k_0, ...)``) into the slots ``assign`` gives per row."""
    moved = np.moveaxis(vals, 2 + a, -1)
    R, k = moved.shape[0], moved.shape[-1]
    X = moved[0].size // k if R else 0
    src = moved.reshape(R, X, k)
    out = np.zeros((R, X, k), dtype=vals.dtype)
    keep = assign >= 0  # (R, k)
    r, t = np.nonzero(keep)
    slot = assign[r, t]
    target = (r[:, None] * X + np.arange(X)[None, :]) * k + slot[:, None]
    np.add.at(out.reshape(-1), target.ravel(), src[r, :, t].ravel())
    return np.moveaxis(out.reshape(moved.shape), -1, 2 + a)
