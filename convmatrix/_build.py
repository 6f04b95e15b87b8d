"""Engine of the sparse builders: CSR straight from the geometry's per-axis index maps.

For every row (output channel, output position) the candidate entries are the
Cartesian product, over spatial axes, of that axis' slots (distinct input indices
of the output position), times the input channels of the row's group.  Column
indices and values are produced chunk by chunk with broadcast arithmetic and
written in place into the final ``data``/``indices`` arrays, whose sizes are known
exactly in advance from :attr:`Geometry.nnz`; rows come out sorted and without
duplicates, so the result is in canonical CSR form without a sort.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._validate import MatrixTooLargeError
from .geometry import Geometry

__all__ = ["build_csr", "check_budget", "CHUNK_ENTRIES"]

#: candidate entries handled per chunk (bounds temporary memory to a few tens of MB)
CHUNK_ENTRIES = 1 << 19


def check_budget(geom: Geometry, dtype: Any, max_bytes: int | None, what: str) -> None:
    """Refuse, before allocating anything, a matrix predicted larger than ``max_bytes``."""
    if max_bytes is None:
        return
    need = geom.predicted_bytes(dtype)
    if need > max_bytes:
        raise MatrixTooLargeError(
            f"{what} would have shape {geom.shape} with nnz={geom.nnz:,} and need about {need / 2**30:.2f} GiB "
            f"(max_bytes={max_bytes:,} = {max_bytes / 2**30:.2f} GiB); use convmatrix.ConvOperator (matrix-free, "
            f"same keywords) to apply it, or pass a larger max_bytes"
        )


def _one_hot(assign: np.ndarray, k: int, dtype: np.dtype) -> np.ndarray:
    """``(out, k_slot, k_tap)`` 0/1 matrices: entry (m, t) is 1 when tap t lands in slot m."""
    return (assign[:, None, :] == np.arange(k)[None, :, None]).astype(dtype)


def build_csr(geom: Geometry, weight: np.ndarray, dtype: np.dtype) -> sp.csr_array:
    """Build the CSR matrix of ``geom`` with engine weight ``(out_channels, in_per_group, *taps)``.

    ``weight[c, i, t...]`` multiplies input channel ``group(c)*in_per_group + i`` at the input
    index the geometry's maps give for tap ``t``.
    """
    nd = geom.ndim
    rows, ncols = geom.shape
    oshape, ishape = geom.output_shape, geom.input_shape
    n_out, n_in = math.prod(oshape), math.prod(ishape)
    cg, og = geom.in_per_group, geom.out_per_group
    itype = geom.index_dtype()
    weight = np.ascontiguousarray(weight, dtype=dtype)

    slots = geom.axis_slots()
    in_strides = [math.prod(ishape[a + 1 :]) for a in range(nd)]
    # per-axis tables, cast once to the index type (masked entries may be negative: never stored)
    col_tabs = [(c.astype(itype) * itype.type(st)) for (c, _, _), st in zip(slots, in_strides)]
    valid_tabs = [c >= 0 for c, _, _ in slots]
    hot = [None if asg is None else _one_hot(asg, c.shape[1], dtype) for c, asg, _ in slots]

    # row pointer: rows are (channel, output position) in C order
    sp_count = np.ones((), dtype=np.int64)
    for _, _, cnt in slots:
        sp_count = np.multiply.outer(sp_count, cnt.astype(np.int64))
    sp_cum = np.cumsum(sp_count.ravel()) * cg
    per_channel = int(sp_cum[-1]) if sp_cum.size else 0
    indptr = np.empty(rows + 1, dtype=itype)
    indptr[0] = 0
    indptr[1:].reshape(geom.out_channels, n_out)[...] = (
        np.arange(geom.out_channels, dtype=np.int64)[:, None] * per_channel + sp_cum[None, :]
    )
    nnz = per_channel * geom.out_channels
    data = np.empty(nnz, dtype=dtype)
    indices = np.empty(nnz, dtype=itype)

    cand = cg * math.prod(geom.kernel_shape)
    step = max(1, CHUNK_ENTRIES // max(cand, 1))
    ci = np.arange(cg, dtype=itype)
    # broadcasting shapes: (rows, cg, k_0, ..., k_{nd-1})
    def axis_view(tab: np.ndarray, a: int) -> np.ndarray:
        return tab.reshape(tab.shape[0], *([1] * (1 + a)), tab.shape[1], *([1] * (nd - a - 1)))

    for r0 in range(0, rows, step):  # loop over row chunks, not rows
        r1 = min(rows, r0 + step)
        r = np.arange(r0, r1, dtype=np.int64)
        ch = r // n_out
        js = np.unravel_index(r - ch * n_out, oshape)
        col = (((ch // og) * cg).astype(itype)[:, None] + ci[None, :]) * itype.type(n_in)
        col = col.reshape(col.shape + (1,) * nd)
        mask = None
        for a in range(nd):
            col = col + axis_view(col_tabs[a][js[a]], a)
            v = valid_tabs[a][js[a]]
            if not v.all():
                v = axis_view(v, a)
                mask = v if mask is None else (mask & v)
        vals = weight[ch]  # (rows, cg, *k): taps
        for a in range(nd):
            if hot[a] is not None:  # several taps share a slot: sum them (boundary folding)
                moved = np.moveaxis(vals, 2 + a, -1)
                flat = moved.reshape(moved.shape[0], -1, moved.shape[-1])
                summed = np.matmul(flat, np.swapaxes(hot[a][js[a]], 1, 2)).reshape(moved.shape)
                vals = np.moveaxis(summed, -1, 2 + a)
        lo, hi = int(indptr[r0]), int(indptr[r1])
        if mask is None:
            indices[lo:hi] = col.reshape(-1)
            data[lo:hi] = vals.reshape(-1)
        else:
            full = np.broadcast_to(mask, col.shape)
            indices[lo:hi] = col[full]
            data[lo:hi] = vals[full]

    out = sp.csr_array((data, indices, indptr), shape=(rows, ncols), copy=False)
    out.has_sorted_indices = True
    out.has_canonical_format = True
    return out
