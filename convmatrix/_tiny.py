"""Tiny builds: the whole candidate table of a small fold-free geometry in one vectorized pass.

The engine of :mod:`convmatrix._build` plans boxes, counts rows in closed form and fills chunks:
a fixed cost of a few dozen numpy calls that dominates a matrix of a few hundred entries.  When
every candidate (output row x input channel of its group x kernel tap) fits in a small table and
no two taps meet in one entry (zero padding, or a transposed convolution), the matrix is that
table with the dropped taps removed: the per-axis index maps of :class:`~convmatrix._axis.Axis`
(the same formulas :mod:`convmatrix.proofs` proves) broadcast into columns, one boolean mask,
one cumulative sum for the row pointers.  The result equals the engine's bit for bit (values,
indices, index dtype, canonical flags; ``tests/test_tiny.py``).

The budget: such a build takes at most a few MiB, and the engine's predicted peak for any
geometry this path takes is below :data:`FLOOR` in every format (checked by the tests against
:func:`convmatrix._build.peak_bytes`).  A call whose budget is at least :data:`FLOOR` (the
default ``"auto"`` is half the RAM) therefore passes the engine's check too and skips computing
it; a smaller budget goes the engine's way, with its exact check and its error.
"""

from __future__ import annotations

import math
from typing import Final, cast

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from . import _axis
from ._axis import IndexArray, c_strides
from .geometry import Geometry, _index_dtype_for

__all__: list[str] = []

#: candidates (output rows x input channels per group x kernel taps) up to which a fold-free build is tiny
CANDIDATES: Final = 1 << 15
#: columns up to which a build is tiny (a CSC or DIA conversion allocates per column)
COLUMNS: Final = 1 << 20
#: a budget of at least this passes every tiny build, on this path and on the engine's (see the module notes)
FLOOR: Final = 64 << 20


def eligible(geom: Geometry, dtype: np.dtype) -> bool:
    """Whether ``geom`` is small and fold-free (every stored entry holds one tap) and ``dtype`` numeric."""
    if geom.kind == "conv" and geom.padding_mode != "zeros":
        return False
    if dtype.kind not in "biufc":
        return False
    rows, cols = geom.shape  # few columns too: a CSC or DIA conversion allocates per column
    return cols <= COLUMNS and rows * geom.in_per_group * math.prod(geom.kernel_shape) <= CANDIDATES


def _index_maps(geom: Geometry) -> IndexArray:
    """``(ndim, max out, max k)``: every axis' input index per (output position, tap), -1 where none.

    The index maps of :meth:`Axis.index_map <convmatrix._axis.Axis.index_map>` (the same proved
    functions, :func:`~convmatrix._axis.conv_index` and :func:`~convmatrix._axis.transpose_index`),
    evaluated for all axes at once: the formulas are elementwise, so per-axis parameters broadcast.
    Entries past an axis' own ``out`` or ``k`` are not read.
    """
    pads = [before for before, _ in geom.padding]
    n, k, s, d, p = np.array([geom.input_shape, geom.kernel_shape, geom.stride, geom.dilation, pads],
                             dtype=np.int64)[:, :, None, None]
    j = np.arange(max(geom.output_shape), dtype=np.int64)[None, :, None]
    t = np.arange(max(geom.kernel_shape), dtype=np.int64)[None, None, :]
    if geom.kind == "conv":
        return cast(IndexArray, _axis.conv_index(j, t, n, s, d, p, "zeros"))
    return cast(IndexArray, _axis.transpose_index(j, t, n, k, s, d, p))


def build(geom: Geometry, weight: np.ndarray, dtype: np.dtype) -> sp.csr_array:
    """The CSR matrix of an :func:`eligible` geometry with engine weight ``(out_channels, in_per_group, *taps)``.

    Row ``c * P + p`` (output channel ``c``, output position ``p`` of ``P``) holds, for each input
    channel ``i`` of its group and each tap ``t`` whose input index exists, the column
    ``(group(c) * in_per_group + i) * N + column(p, t)`` with value ``weight[c, i, t]``; within a
    row, channels then taps in C order give increasing columns (each axis' map increases along
    its taps), so the table in C order, without its dropped taps, is canonical CSR.
    """
    oshape, kshape = geom.output_shape, geom.kernel_shape
    nd = len(oshape)
    maps = _index_maps(geom)
    hits = maps >= 0
    column: IndexArray | None = None
    valid: npt.NDArray[np.bool_] | None = None
    for a, step in enumerate(c_strides(geom.input_shape)):  # the C-order ravel of the per-axis indices
        shape = [1] * (2 * nd)
        shape[a], shape[nd + a] = oshape[a], kshape[a]
        m = maps[a, : oshape[a], : kshape[a]].reshape(shape)
        h = hits[a, : oshape[a], : kshape[a]].reshape(shape)
        term = m * step if step != 1 else m
        column = term if column is None else column + term
        valid = h if valid is None else valid & h
    assert column is not None and valid is not None
    positions, taps = math.prod(oshape), math.prod(kshape)
    c_out, cg = geom.out_channels, geom.in_per_group
    w = np.asarray(weight, dtype=dtype).reshape(-1)
    if c_out == 1 and cg == 1:
        flat = np.flatnonzero(valid)  # over (positions, taps) in C order
        cols = column.reshape(-1)[flat]
        data = w[flat % taps]
        width = taps
    else:
        shape4 = (c_out, positions, cg, taps)
        first = (np.arange(c_out) // geom.out_per_group * cg)[:, None] + np.arange(cg)[None, :]  # input channel
        table = (first * math.prod(geom.input_shape))[:, None, :, None] + column.reshape(1, positions, 1, taps)
        flat = np.flatnonzero(np.broadcast_to(valid.reshape(1, positions, 1, taps), shape4))
        cols = table.reshape(-1)[flat]
        data = np.broadcast_to(w.reshape(c_out, 1, cg, taps), shape4).reshape(-1)[flat]
        width = cg * taps
    itype = _index_dtype_for(geom.shape, cols.size)  # Geometry.index_dtype's rule; nnz is the number of kept candidates
    indptr = np.searchsorted(flat, np.arange(0, (geom.shape[0] + 1) * width, width)).astype(itype)
    out = sp.csr_array((data, cols.astype(itype), indptr), shape=geom.shape, copy=False)
    out.has_sorted_indices = True
    out.has_canonical_format = True
    return out
