"""Format conversions of a built CSR, and what they need beside it.

Every format but DIA is scipy's own conversion, counted by :func:`_format_extra`.  A DIA stores
one row per diagonal, as long as the largest column plus one: its size is the number of
diagonals, which :func:`_dia_diagonals` counts from the per-axis maps before the build when the
axes are short (the refusal then states the whole need), and :func:`_to_dia` counts on the CSR
otherwise, in chunks, before allocating the diagonals.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from . import _validate as V
from ._axis import IndexArray, c_strides
from .geometry import Geometry

__all__ = ["convert"]

#: candidate entries per chunk of rows of a DIA conversion
_DIA_CHUNK = 1 << 16
#: (output position, tap) pairs (summed over the axes) up to which a DIA's diagonals are counted before the build,
#: and sums of offsets up to which they are counted exactly (the count's temporaries stay within ~0.5 MB)
_DIA_MAP_ENTRIES = 1 << 13
_DIA_SUMS = 1 << 14
#: bytes per stored entry of the Python-object formats (measured with tracemalloc, rounded up)
_OBJECT_ENTRY_BYTES = {"lil": 120, "dok": 260}


def _hint(what: str) -> str:
    """The advice that ends a refusal of ``what`` (a builder's, or another function's)."""
    return ("use convmatrix.ConvOperator (matrix-free, same keywords) to apply it, or pass a larger max_bytes "
            "(max_bytes=None: no limit)" if "conv" in what else "pass a larger max_bytes (None: no limit)")


def _format_extra(geom: Geometry, dtype: np.dtype, fmt: V.SparseFormat) -> int:
    """Bytes alive on top of the CSR while it is converted to ``fmt`` (``dia``: see :func:`convert`)."""
    nnz, (rows, cols) = geom.nnz, geom.shape
    it, item = geom.index_dtype().itemsize, dtype.itemsize
    if fmt == "csc":
        return nnz * (item + it) + (cols + 1) * it
    if fmt == "coo":
        return nnz * it
    if fmt == "bsr":  # scipy keeps blocks that are >= 70% full (or 1x1 blocks)
        return nnz * (math.ceil(item / 0.7) + it) + (rows + 1) * it
    if fmt in _OBJECT_ENTRY_BYTES:  # lists (or a dict) of Python scalars, plus scipy's COO on the way for dok
        per = _OBJECT_ENTRY_BYTES[fmt] + (16 if dtype.kind == "c" else 0)
        return nnz * per + rows * 120 + (nnz * (2 * it) if fmt == "dok" else 0)
    if fmt == "dia":  # the diagonals are counted first, with one byte per possible diagonal (and a chunk's rows)
        return rows + cols + min(_DIA_CHUNK, nnz) * 24 + 16 * min(_DIA_CHUNK, rows)
    return 0


def convert(out: sp.csr_array, geom: Geometry, fmt: V.SparseFormat, max_bytes: int | None, what: str) -> sp.sparray:
    """``out.asformat(fmt)``; a DIA is counted first and refused when its diagonals exceed the budget."""
    if fmt == "csr":
        return out
    if fmt == "dia":
        return _to_dia(out, geom, max_bytes, what)
    return out.asformat(fmt)


def _to_dia(out: sp.csr_array, geom: Geometry, max_bytes: int | None, what: str) -> sp.dia_array:
    """scipy's ``todia`` (same offsets, same data layout) in bounded temporaries, budget checked first."""
    rows, cols = out.shape
    if out.nnz == 0:
        return sp.dia_array(out.shape, dtype=out.dtype)
    step = _dia_rows(geom)

    def chunks() -> Iterator[tuple[IndexArray, IndexArray, slice]]:  # (columns, offset + rows, slice of data) per chunk
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            lo, hi = int(out.indptr[r0]), int(out.indptr[r1])
            if lo < hi:
                c = out.indices[lo:hi].astype(np.int64)
                c -= np.repeat(np.arange(r0 - rows, r1 - rows, dtype=np.int64), np.diff(out.indptr[r0 : r1 + 1]))
                yield out.indices[lo:hi], c, slice(lo, hi)

    seen = np.zeros(rows + cols, dtype=bool)  # offset col - row, shifted by rows
    for _, diag, _ in chunks():
        seen[diag] = True
        del diag  # before the next chunk is made (one chunk's temporaries at a time, as _dia_bytes counts)
    width = int(out.indices.max()) + 1
    offsets = np.flatnonzero(seen) - rows
    slot = np.cumsum(seen, dtype=np.int64) - 1
    del seen
    need = _dia_bytes(geom, out.data.nbytes + out.indices.nbytes + out.indptr.nbytes, out.dtype.itemsize,
                      int(offsets.size), width)
    if max_bytes is not None and need > max_bytes:
        detail = f" as 'dia' ({offsets.size:,} diagonals of {width:,} values)"
        V.refuse(what + detail, need, max_bytes, _hint(what))
    dia = np.zeros((offsets.size, width), dtype=out.dtype)
    for col, diag, part in chunks():
        dia[slot[diag], col] = out.data[part]
        del col, diag, part
    return sp.dia_array((dia, offsets.astype(out.indices.dtype)), shape=out.shape)


def _dia_diagonals(geom: Geometry) -> tuple[int, int, bool] | None:
    """``(diagonals, row length, exact)`` of a DIA of ``geom``, from the per-axis maps (``None``: an axis too long
    to map in a few hundred KB).

    An entry's diagonal is ``col - row = (ci*N - c*P) + sum_a (i_a*N_a - j_a*O_a)`` (input and output channels
    ``ci``, ``c`` of sizes ``N``, ``P``; input and output positions ``i_a``, ``j_a`` with C-order strides ``N_a``,
    ``O_a``), and the channels' and axes' pairs combine freely (an entry exists where every axis reads): the
    diagonals are the sums of one value of each of these sets.  They are added up exactly while the sums stay
    few, else bounded below (``|A + B| >= |A| + |B| - 1`` for sets of integers).  The rows are as long as the
    largest column plus one: the last input channel's, at every axis' largest input index.
    """
    axes = geom.axes()
    if sum(ax.out * ax.k for ax in axes) > _DIA_MAP_ENTRIES:
        return None
    n_in, n_out = math.prod(geom.input_shape), math.prod(geom.output_shape)
    c = np.arange(geom.out_channels, dtype=np.int64)
    first = (c // geom.out_per_group) * geom.in_per_group
    sets = [np.unique((first[:, None] + np.arange(geom.in_per_group)[None, :]) * n_in - (c * n_out)[:, None])]
    width = (geom.in_channels - 1) * n_in + 1
    for ax, n_stride, o_stride in zip(axes, c_strides(geom.input_shape), c_strides(geom.output_shape), strict=True):
        idx = ax.index_map()
        j, t = np.nonzero(idx >= 0)
        if j.size == 0:
            return 0, 0, True
        i = idx[j, t]
        sets.append(np.unique(i * n_stride - j * o_stride))
        width += int(i.max()) * n_stride
    sets.sort(key=len)
    total = sets[0]
    for k, part in enumerate(sets[1:], 1):
        if total.size * part.size > _DIA_SUMS:
            return total.size + sum(s.size - 1 for s in sets[k:]), width, False
        total = np.unique(total[:, None] + part[None, :])
    return int(total.size), width, True


def _dia_bytes(geom: Geometry, csr_bytes: int, itemsize: int, diagonals: int, width: int) -> int:
    """Peak of the DIA conversion of :func:`_to_dia`: the CSR, the diagonals, the slot and offset tables (and the
    offsets cast for scipy, 12 bytes each), and one chunk's temporaries: 24 bytes per entry (columns, row
    offsets, slots) and 16 per row (aranges, row lengths)."""
    rows, cols = geom.shape
    step = _dia_rows(geom)
    return csr_bytes + diagonals * width * itemsize + 8 * (rows + cols) + 20 * diagonals + 16 * min(rows, step) \
        + min(geom.nnz, step * geom.in_per_group * math.prod(geom.kernel_shape)) * 24


def _dia_rows(geom: Geometry) -> int:
    """Rows per chunk of :func:`_to_dia`."""
    return max(1, _DIA_CHUNK // max(1, geom.in_per_group * math.prod(geom.kernel_shape)))
