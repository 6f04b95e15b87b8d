"""Engine of the sparse builders: CSR straight from the geometry's per-axis index maps.

For every row (output channel, output position) the entries are the Cartesian product,
over spatial axes, of that axis' slots (distinct input indices of the output position),
times the input channels of the row's group.  ``data``/``indices``/``indptr`` are
allocated once at their exact final size (:attr:`Geometry.nnz`) and filled in place:

* *regular boxes*: along each axis, output positions whose taps all read the input
  unfolded form runs (step 1, or the stride for a transposed axis) on which row pointers
  and columns are affine, so a product of runs is written through one strided view of
  ``data`` and one of ``indices`` (this is nearly all of a large matrix);
* *the shell*: the remaining boundary rows go through a general masked path, in chunks
  of rows, which also sums taps that a boundary mode folds onto the same input.

Rows come out sorted and without duplicates: canonical CSR without a sort.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._validate import MatrixTooLargeError
from .geometry import Geometry

__all__ = ["build_csr", "check_budget"]

#: candidate entries handled per chunk of the general path (bounds its temporaries to tens of MB)
_CHUNK_ENTRIES = 1 << 19
#: at most this many strided boxes (each costs a few numpy calls); beyond, boundary rows go the general way
_MAX_BOXES = 64
#: rough costs (seconds) used to choose between boxes and the general path: per box, per general candidate
_COST_BOX = 40e-6
_COST_CANDIDATE = 15e-9


#: rough bytes per stored entry of the Python-object formats (list/dict entries, boxed scalars)
_OBJECT_ENTRY_BYTES = {"lil": 100, "dok": 150}


def format_bytes(geom: Geometry, dtype: Any, fmt: str) -> int:
    """Predicted bytes of the matrix in format ``fmt`` (``dia`` is predicted from the CSR later)."""
    csr = geom.predicted_bytes(dtype)
    it = geom.index_dtype().itemsize
    item = np.dtype(dtype).itemsize
    if fmt == "csc":
        return geom.nnz * (item + it) + (geom.shape[1] + 1) * it
    if fmt == "coo":
        return geom.nnz * (item + 2 * it)
    if fmt == "bsr":  # scipy may choose dense blocks that are >= 70% full
        return int(csr / 0.7)
    if fmt in _OBJECT_ENTRY_BYTES:
        return geom.nnz * _OBJECT_ENTRY_BYTES[fmt] + geom.shape[0] * 64
    return csr


def _refuse(what: str, geom: Geometry, need: int, max_bytes: int, fmt: str) -> None:
    raise MatrixTooLargeError(
        f"{what} would have shape {geom.shape} with nnz={geom.nnz:,} and need about {need / 2**30:.2f} GiB "
        f"as {fmt!r} (max_bytes={max_bytes:,} = {max_bytes / 2**30:.2f} GiB); use convmatrix.ConvOperator "
        f"(matrix-free, same keywords) to apply it, or pass a larger max_bytes"
    )


def check_budget(geom: Geometry, dtype: Any, max_bytes: int | None, what: str, fmt: str = "csr") -> None:
    """Refuse, before allocating anything, a matrix predicted larger than ``max_bytes``.

    The CSR that is built first and the requested format (alive together during the
    conversion) both count.
    """
    if max_bytes is None:
        return
    csr = geom.predicted_bytes(dtype)
    need = csr if fmt == "csr" else csr + format_bytes(geom, dtype, fmt)
    if need > max_bytes:
        _refuse(what, geom, need, max_bytes, fmt)


def convert(out: sp.csr_array, geom: Geometry, fmt: str, max_bytes: int | None, what: str) -> sp.sparray:
    """``out.asformat(fmt)``, refusing a DIA whose dense diagonals would exceed the budget."""
    if fmt == "csr":
        return out
    if fmt == "dia" and max_bytes is not None:
        rows = np.repeat(np.arange(out.shape[0], dtype=np.int64), np.diff(out.indptr))
        n_diag = np.unique(out.indices.astype(np.int64) - rows).size
        need = n_diag * out.shape[1] * out.dtype.itemsize + out.data.nbytes + out.indices.nbytes
        if need > max_bytes:
            _refuse(what, geom, need, max_bytes, fmt)
    return out.asformat(fmt)


def _one_hot(assign: np.ndarray, k: int, dtype: np.dtype) -> np.ndarray:
    """``(out, k_slot, k_tap)`` 0/1 matrices: entry (m, t) is 1 when tap t lands in slot m."""
    return (assign[:, None, :] == np.arange(k)[None, :, None]).astype(dtype)


@dataclass(frozen=True)
class _Run:
    """Output positions ``start + step*m`` (``m < length``) of one axis that share one tap pattern.

    Every row of the run keeps the taps ``taps`` unfolded, and their input indices are
    ``first + m*delta``; so row pointers and columns are affine in ``m``.
    """

    start: int
    step: int
    length: int
    taps: np.ndarray
    first: np.ndarray
    delta: int


def _runs(cols: np.ndarray, assign: np.ndarray | None, count: np.ndarray, step: int) -> list[_Run]:
    """Regular runs of one axis: for each residue mod ``step``, the longest affine stretch.

    ``step`` is 1 for a convolution axis and the stride for a transposed one (whose tap pattern
    repeats with period ``s``).  Positions in no run go through the general path.
    """
    out_len, k = cols.shape
    valid = cols >= 0
    if assign is not None:  # only unfolded rows (each tap its own slot) can be regular
        plain = np.all((assign == np.arange(k)[None, :]) | (assign < 0), axis=1)
    else:
        plain = np.ones(out_len, dtype=bool)
    ptr = np.concatenate([[0], np.cumsum(count)])
    runs = []
    for r in range(min(step, out_len)):  # loop over residues (at most the stride)
        pos = np.arange(r, out_len, step)
        if pos.size < 2:
            continue
        mid = pos[(pos.size - 1) // 2]
        pat = valid[mid]
        if not pat.any():
            continue
        taps = np.flatnonzero(pat)
        good = plain[pos] & np.all(valid[pos] == pat[None, :], axis=1)
        c = cols[pos][:, taps]
        m0 = (pos.size - 1) // 2
        delta = int(c[m0 + 1, 0] - c[m0, 0])
        period = int(ptr[pos[m0 + 1]] - ptr[pos[m0]])
        pair = (
            good[:-1] & good[1:]
            & np.all(c[1:] - c[:-1] == delta, axis=1)
            & (ptr[pos[1:]] - ptr[pos[:-1]] == period)
        )
        if not pair.any():
            continue
        edges = np.diff(np.concatenate([[0], pair.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        best = int(np.argmax(stops - starts))
        m_lo, m_hi = int(starts[best]), int(stops[best]) + 1  # rows m_lo..m_hi-1 of the progression
        runs.append(_Run(int(pos[m_lo]), step, m_hi - m_lo, taps, c[m_lo].astype(np.int64), delta))
    return runs


def _uncovered(cols: np.ndarray, assign: np.ndarray | None, runs: list[_Run]) -> np.ndarray:
    """Unfolded positions of an axis that no regular run covers (its boundary positions)."""
    out_len, k = cols.shape
    covered = np.zeros(out_len, dtype=bool)
    for run in runs:
        covered[run.start : run.start + run.step * run.length : run.step] = True
    if assign is not None:
        covered |= ~np.all((assign == np.arange(k)[None, :]) | (assign < 0), axis=1)
    return np.flatnonzero(~covered)


def _singletons(cols: np.ndarray, positions: np.ndarray) -> list[_Run]:
    """One-position runs (called only when few: the caller caps the number of boxes)."""
    return [_Run(int(p), 1, 1, np.flatnonzero(cols[p] >= 0), cols[p][cols[p] >= 0].astype(np.int64), 0)
            for p in positions]


def build_csr(geom: Geometry, weight: np.ndarray, dtype: np.dtype) -> sp.csr_array:
    """Build the CSR matrix of ``geom`` with engine weight ``(out_channels, in_per_group, *taps)``.

    ``weight[c, i, t...]`` multiplies input channel ``group(c)*in_per_group + i`` at the input
    index the geometry's maps give for tap ``t``.

    Regular boxes are written through strided views, the boundary shell by :func:`_fill_rows`.
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

    steps = geom.stride if geom.kind == "conv_transpose" else (1,) * nd
    runs = [_runs(c, a, n, st) for (c, a, n), st in zip(slots, steps)]
    cand_row = cg * math.prod(kshape)  # candidates per row on the general path
    if all(runs):
        edges = [_uncovered(c, a, r) for (c, a, _), r in zip(slots, runs)]
        box_rows = c_out * math.prod(sum(r.length for r in ax) for ax in runs)
        shell_cost = (rows - box_rows) * cand_row * _COST_CANDIDATE
        boxes = math.prod(len(r) for r in runs)
        all_boxes = math.prod(len(r) + len(e) for r, e in zip(runs, edges))
        if all_boxes <= _MAX_BOXES and (all_boxes - boxes) * _COST_BOX < shell_cost:
            # few boundary positions with many entries: their rows become boxes of one row too
            runs = [r + _singletons(c, e) for (c, _, _), r, e in zip(slots, runs, edges)]
            boxes = all_boxes
        if boxes * _COST_BOX + shell_cost > rows * cand_row * _COST_CANDIDATE:
            runs = []  # small matrix: one pass of the general path is cheaper than the boxes
    if runs and all(runs):
        for combo in itertools.product(*runs):  # at most max(prod(stride), _MAX_BOXES) boxes
            _fill_box(geom, weight, combo, in_strides, sp_ptr, per_channel, data, indices)
        in_box = np.ones((), dtype=bool)
        for axis_runs, o in zip(runs, oshape):
            m = np.zeros(o, dtype=bool)
            for run in axis_runs:
                m[run.start : run.start + run.step * run.length : run.step] = True
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


def _fill_box(geom, weight, box, in_strides, sp_ptr, per_channel, data, indices) -> None:
    """Write one box (a product of per-axis runs) through strided views of data and indices."""
    nd = geom.ndim
    oshape = geom.output_shape
    cg, og, c_out = geom.in_per_group, geom.out_per_group, geom.out_channels
    itype = indices.dtype
    sizes = [run.length for run in box]
    o_strides = [math.prod(oshape[a + 1 :]) for a in range(nd)]
    corner = sum(run.start * st for run, st in zip(box, o_strides))
    base = int(sp_ptr[corner])
    row_steps = [
        int(sp_ptr[corner + run.step * st] - base) if run.length > 1 else 0 for run, st in zip(box, o_strides)
    ]
    kept = [run.taps.size for run in box]
    row_len = cg * math.prod(kept)
    if row_len == 0:  # rows whose taps all fall on zero padding
        return
    w = weight[np.ix_(np.arange(c_out), np.arange(cg), *[run.taps for run in box])]
    if box[-1].step == 1:
        # neighbours along the last axis are adjacent in memory (each holds row_len entries):
        # the last axis and the entries merge into one contiguous run per line
        run_len = sizes[-1] * row_len
        shape = (c_out, *sizes[:-1], run_len)
        steps = (per_channel, *row_steps[:-1], 1)
        lead = (c_out,) + (1,) * (nd - 1)
        tile = np.broadcast_to(w.reshape(c_out, 1, row_len), (c_out, sizes[-1], row_len)).reshape(lead + (run_len,))
    else:
        shape = (c_out, *sizes, row_len)
        steps = (per_channel, *row_steps, 1)
        lead = (c_out,) + (1,) * nd
        tile = w.reshape(lead + (row_len,))
    dview = np.lib.stride_tricks.as_strided(data[base:], shape, [s * data.itemsize for s in steps], writeable=True)
    iview = np.lib.stride_tricks.as_strided(indices[base:], shape, [s * indices.itemsize for s in steps],
                                            writeable=True)
    dview[...] = tile
    # column = channel offset + sum_a first_a[t_a]*stride_a  (per entry of a row)
    #        + sum_a m_a*delta_a*stride_a                     (per row)
    n_in = math.prod(geom.input_shape)
    ent = (((np.arange(c_out) // og) * cg)[:, None] + np.arange(cg)[None, :]).astype(np.int64) * n_in
    ent = ent.reshape((c_out, cg) + (1,) * nd)
    moves = []  # per axis: column shift of each row of the run
    for a, (run, st) in enumerate(zip(box, in_strides)):
        ent = ent + (run.first * st).reshape((1, 1) + (1,) * a + (-1,) + (1,) * (nd - a - 1))
        moves.append(np.arange(run.length, dtype=np.int64) * (run.delta * st))
    ent = ent.reshape(c_out, row_len)
    if box[-1].step == 1:  # the last axis' shift goes into the per-line entry table
        ent = (ent[:, None, :] + moves.pop()[None, :, None]).reshape(c_out, -1)
    rowpart = np.zeros((), dtype=np.int64)
    for mv in moves:
        rowpart = np.add.outer(rowpart, mv)
    np.add(rowpart.astype(itype).reshape((1, *rowpart.shape, 1)), ent.astype(itype).reshape(lead + (-1,)), out=iview)


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
    # folded taps are summed in a wide type: a small integer kernel must not wrap around silently
    wide = np.dtype(np.int64 if dtype.kind == "i" else np.uint64) if dtype.kind in "iu" else dtype
    hot = [None if asg is None else _one_hot(asg, c.shape[1], wide) for c, asg, _ in slots]
    cand = cg * math.prod(geom.kernel_shape)
    step = max(1, _CHUNK_ENTRIES // max(cand, 1))
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
        if vals.dtype != dtype:
            info = np.iinfo(dtype)
            if vals.size and (vals.min() < info.min or vals.max() > info.max):
                bad = vals.max() if vals.max() > info.max else vals.min()
                raise ValueError(
                    f"dtype {dtype} cannot hold an entry of this matrix: padding_mode={geom.padding_mode!r} "
                    f"folds several taps onto one input and they sum to {bad}; pass a wider dtype "
                    f"(e.g. dtype=np.int64)"
                )
            vals = vals.astype(dtype)
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
