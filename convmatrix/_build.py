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


def _interior(cols: np.ndarray, assign: np.ndarray | None, count: np.ndarray) -> tuple[int, int, np.ndarray, int]:
    """Longest run ``[lo, hi)`` of output positions whose taps are all kept, unfolded and affine in ``j``.

    Returns ``(lo, hi, cols[lo], delta)`` with ``cols[j] == cols[lo] + (j - lo) * delta`` on the run
    (``hi == lo`` when there is none).
    """
    k = cols.shape[1]
    full = count == k
    if assign is not None:
        full &= np.all(assign == np.arange(k)[None, :], axis=1)
    if not full.any():
        return 0, 0, cols[0], 0
    edges = np.diff(np.concatenate([[0], full.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    best = int(np.argmax(stops - starts))
    lo, hi = int(starts[best]), int(stops[best])
    delta = int(cols[lo + 1, 0] - cols[lo, 0]) if hi - lo > 1 else 0
    if hi - lo > 1 and not np.array_equal(cols[lo:hi], cols[lo] + delta * np.arange(hi - lo)[:, None]):
        return 0, 0, cols[0], 0
    return lo, hi, cols[lo], delta


def build_csr(geom: Geometry, weight: np.ndarray, dtype: np.dtype) -> sp.csr_array:
    """Build the CSR matrix of ``geom`` with engine weight ``(out_channels, in_per_group, *taps)``.

    ``weight[c, i, t...]`` multiplies input channel ``group(c)*in_per_group + i`` at the input
    index the geometry's maps give for tap ``t``.

    Rows inside the *interior box* (output positions whose every tap reads the input unfolded) have
    affine row pointers and columns, so their entries are written through one strided view of
    ``data``/``indices`` each; the remaining boundary rows go through the general masked path.
    """
    nd = geom.ndim
    rows, ncols = geom.shape
    oshape, ishape, kshape = geom.output_shape, geom.input_shape, geom.kernel_shape
    n_out, n_in = math.prod(oshape), math.prod(ishape)
    cg, og, c_out = geom.in_per_group, geom.out_per_group, geom.out_channels
    itype = geom.index_dtype()
    weight = np.ascontiguousarray(weight, dtype=dtype)

    slots = geom.axis_slots()
    in_strides = [math.prod(ishape[a + 1 :]) for a in range(nd)]

    # row pointer: rows are (channel, output position) in C order
    sp_count = np.ones((), dtype=np.int64)
    for _, _, cnt in slots:
        sp_count = np.multiply.outer(sp_count, cnt.astype(np.int64))
    sp_ptr = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(sp_count.ravel(), out=sp_ptr[1:])
    sp_ptr *= cg
    per_channel = int(sp_ptr[-1])
    del sp_count
    indptr = np.empty(rows + 1, dtype=itype)
    indptr[-1] = per_channel * c_out
    for c in range(c_out):  # loop over output channels: one vectorized copy each
        np.add(sp_ptr[:-1], c * per_channel, out=indptr[c * n_out : (c + 1) * n_out], casting="unsafe")
    nnz = per_channel * c_out
    data = np.empty(nnz, dtype=dtype)
    indices = np.empty(nnz, dtype=itype)

    inner = [_interior(c, a, n) for c, a, n in slots]
    if all(hi > lo for lo, hi, _, _ in inner):
        _fill_box(geom, weight, inner, in_strides, sp_ptr, per_channel, data, indices)
        in_box = np.ones((), dtype=bool)
        for (lo, hi, _, _), o in zip(inner, oshape):
            m = np.zeros(o, dtype=bool)
            m[lo:hi] = True
            in_box = np.logical_and.outer(in_box, m)
        shell = np.flatnonzero(~in_box.ravel())
        del in_box
        if shell.size:
            shell_rows = (np.arange(c_out, dtype=np.int64)[:, None] * n_out + shell[None, :]).ravel()
            _fill_rows(geom, weight, dtype, slots, in_strides, indptr, data, indices, shell_rows)
    else:
        _fill_rows(geom, weight, dtype, slots, in_strides, indptr, data, indices, None)

    out = sp.csr_array((data, indices, indptr), shape=(rows, ncols), copy=False)
    out.has_sorted_indices = True
    out.has_canonical_format = True
    return out


def _fill_box(geom, weight, inner, in_strides, sp_ptr, per_channel, data, indices) -> None:
    """Write the interior box through strided views (rows with every tap kept are affine)."""
    nd = geom.ndim
    oshape, kshape = geom.output_shape, geom.kernel_shape
    cg, og, c_out = geom.in_per_group, geom.out_per_group, geom.out_channels
    itype = indices.dtype
    lo = [b[0] for b in inner]
    sizes = [b[1] - b[0] for b in inner]
    o_strides = [math.prod(oshape[a + 1 :]) for a in range(nd)]
    corner = sum(l * st for l, st in zip(lo, o_strides))
    base = int(sp_ptr[corner])
    row_steps = [int(sp_ptr[corner + st] - base) if m > 1 else 0 for m, st in zip(sizes, o_strides)]
    # rows that are neighbours along the last axis are adjacent in memory (every box row holds
    # row_len entries), so the last axis and the entries merge into one contiguous run per line
    row_len = cg * math.prod(kshape)
    run = sizes[-1] * row_len
    shape = (c_out, *sizes[:-1], run)
    steps = (per_channel, *row_steps[:-1], 1)
    dview = np.lib.stride_tricks.as_strided(data[base:], shape, [s * data.itemsize for s in steps], writeable=True)
    iview = np.lib.stride_tricks.as_strided(indices[base:], shape, [s * indices.itemsize for s in steps],
                                            writeable=True)
    lead = (c_out,) + (1,) * (nd - 1)
    tile = np.broadcast_to(weight.reshape(c_out, 1, row_len), (c_out, sizes[-1], row_len))
    dview[...] = tile.reshape(lead + (run,))
    # column = channel offset + sum_a cols_a[lo_a, t_a]*stride_a  (per entry of a row)
    #        + sum_a (j_a - lo_a)*delta_a*stride_a                  (per row)
    n_in = math.prod(geom.input_shape)
    ent = (((np.arange(c_out) // og) * cg)[:, None] + np.arange(cg)[None, :]).astype(np.int64) * n_in
    ent = ent.reshape((c_out, cg) + (1,) * nd)
    rowpart = np.zeros((), dtype=np.int64)
    for a, ((_, _, first, delta), st) in enumerate(zip(inner, in_strides)):
        ent = ent + (first.astype(np.int64) * st).reshape((1, 1) + (1,) * a + (-1,) + (1,) * (nd - a - 1))
        if a < nd - 1:
            rowpart = np.add.outer(rowpart, np.arange(sizes[a], dtype=np.int64) * (delta * st))
    _, _, _, delta_last = inner[-1]
    last = ent.reshape(c_out, 1, row_len) + (np.arange(sizes[-1], dtype=np.int64) * (delta_last * in_strides[-1]))[
        None, :, None
    ]
    np.add(rowpart.astype(itype).reshape((1, *sizes[:-1], 1)), last.astype(itype).reshape(lead + (run,)), out=iview)


def _fill_rows(geom, weight, dtype, slots, in_strides, indptr, data, indices, row_list) -> None:
    """General path: masked candidates, folded taps summed; ``row_list`` None means every row."""
    nd = geom.ndim
    rows = geom.shape[0]
    oshape = geom.output_shape
    n_out, n_in = math.prod(oshape), math.prod(geom.input_shape)
    cg, og = geom.in_per_group, geom.out_per_group
    itype = indices.dtype
    col_tabs = [(c.astype(itype) * itype.type(st)) for (c, _, _), st in zip(slots, in_strides)]
    valid_tabs = [c >= 0 for c, _, _ in slots]
    hot = [None if asg is None else _one_hot(asg, c.shape[1], dtype) for c, asg, _ in slots]
    cand = cg * math.prod(geom.kernel_shape)
    step = max(1, CHUNK_ENTRIES // max(cand, 1))
    ci = np.arange(cg, dtype=itype)
    total = rows if row_list is None else row_list.size

    def axis_view(tab: np.ndarray, a: int) -> np.ndarray:  # (rows, cg, k_0, ..., k_{nd-1}) broadcasting
        return tab.reshape(tab.shape[0], *([1] * (1 + a)), tab.shape[1], *([1] * (nd - a - 1)))

    for c0 in range(0, total, step):  # loop over row chunks, not rows
        c1 = min(total, c0 + step)
        r = np.arange(c0, c1, dtype=np.int64) if row_list is None else row_list[c0:c1]
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
        vals = weight[ch]  # (rows, cg, *taps)
        for a in range(nd):
            if hot[a] is not None:  # several taps share a slot: sum them (boundary folding)
                moved = np.moveaxis(vals, 2 + a, -1)
                flat = moved.reshape(moved.shape[0], -1, moved.shape[-1])
                summed = np.matmul(flat, np.swapaxes(hot[a][js[a]], 1, 2)).reshape(moved.shape)
                vals = np.moveaxis(summed, -1, 2 + a)
        if mask is None:
            col, vals = col.reshape(-1), vals.reshape(-1)
        else:
            full = np.broadcast_to(mask, col.shape)
            col, vals = col[full], vals[full]
        starts = indptr[r].astype(np.int64)
        if row_list is None or r[-1] - r[0] == r.size - 1:  # contiguous rows: contiguous output
            lo = int(starts[0])
            indices[lo : lo + col.size] = col
            data[lo : lo + col.size] = vals
        else:
            counts = indptr[r + 1].astype(np.int64) - starts
            pos = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(col.size)
            indices[pos] = col
            data[pos] = vals
