"""Engine of the sparse builders: CSR straight from the geometry's per-axis structure.

For every row (output channel, output position) the entries are the Cartesian product,
over spatial axes, of that axis' slots (distinct input indices of the output position),
times the input channels of the row's group.  ``data``/``indices``/``indptr`` are
allocated once at their exact final size (:attr:`Geometry.nnz`) and filled in place:

* *regular boxes*: along each axis, output positions whose taps all read the input
  unfolded form runs (closed form, :meth:`Axis.runs`: step 1, or the stride for a
  transposed axis) on which row pointers and columns are affine, so a product of runs is
  written through one strided view of ``data`` and one of ``indices`` (this is nearly all
  of a large matrix); long runs are cut so that the temporaries of one write stay small;
* *the shell*: the remaining rows go through a general masked path, in chunks of rows,
  which also sums taps that a boundary mode folds onto the same input -- exactly, for
  integer kernels (in int64, or in Python integers when int64 could overflow).

Nothing proportional to the matrix is allocated besides the result and one small array
per spatial axis (a count per output position), so the peak memory of a build is
predicted in closed form by :func:`peak_bytes` before anything is allocated.

Rows come out sorted and without duplicates: canonical CSR without a sort.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import math
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from . import _validate as V
from ._axis import Axis, IndexArray, c_strides
from ._formats import _dia_bytes, _dia_diagonals, _format_extra, _hint
from ._rows import _CAND_BYTES, _CAND_CHUNK, _CAND_OBJECT_BYTES, _Indices, _RowFiller, _wrap
from .geometry import ROW_CHUNK, TABLE_ENTRIES, Geometry, Run

__all__ = ["build_csr", "check_budget", "peak_bytes"]

#: allocator of the result's arrays (the tests poison it to catch an entry that is never written)
_empty = np.empty
#: output positions per chunk of the row-pointer pass
_FLAT_CHUNK = 1 << 15
#: output positions from which a chunk of whole lines takes :func:`_fill_lines` (fewer numpy calls below)
_LINES_MIN = 1024
#: rows of one strided box write (longer boxes are cut)
_BOX_ROWS = 1 << 15
#: entries of the template a box's weights are copied from (a few rows: one long copy per few rows)
_DATA_BLOCK = 2048
#: at most this many strided boxes (each costs a few numpy calls); beyond, boundary rows go the general way
_MAX_BOXES = 64
#: entries below which a build runs in the calling thread (above: one thread per core, see :func:`_num_threads`)
_THREAD_MIN_NNZ = 1 << 22
#: at most this share of the smallest result in the temporaries of each thread beyond the first
_THREAD_TEMP_SHARE = 1 / 16
#: output positions (summed over the axes) up to which the memory model asks the planner whether boxes are kept
_PLAN_POSITIONS = 1 << 16
#: rough costs (seconds) used to choose between boxes and the general path: per box, per general candidate
_COST_BOX = 40e-6
_COST_CANDIDATE = 15e-9
_T = TypeVar("_T")
_R = TypeVar("_R")
# ============================================================================ memory model
def _fold_dtype(geom: Geometry, kernel_dtype: np.dtype, dtype: np.dtype, kmax: int | None = None) -> np.dtype | None:
    """dtype in which folded taps are summed: the target for float kernels, exact for integers.

    ``None`` when no tap can be folded.  Integer sums use int64 when ``max|w|`` times the most
    taps that can meet in one entry fits, else Python integers (``object``).
    """
    if geom.kind != "conv" or geom.padding_mode == "zeros":
        return None
    if kernel_dtype.kind not in "iub":
        return dtype
    if kmax is None:  # prediction: assume the worst value of the dtype
        kmax = max(abs(int(np.iinfo(kernel_dtype).min)), int(np.iinfo(kernel_dtype).max)) if kernel_dtype.kind != "b" \
            else 1
    return np.dtype(np.int64) if kmax * math.prod(geom.kernel_shape) <= np.iinfo(np.int64).max else np.dtype(object)


def _csr_bytes(geom: Geometry, dtype: np.dtype) -> int:
    return geom.predicted_bytes(dtype)


def _workspace(geom: Geometry, dtype: np.dtype, kernel_dtype: np.dtype) -> int:
    """Temporaries of :func:`build_csr` beyond the result (closed form, an upper bound)."""
    shared, per_thread = _workspaces(geom, dtype, kernel_dtype)
    return shared + _num_threads(geom) * per_thread


def _workspaces(geom: Geometry, dtype: np.dtype, kernel_dtype: np.dtype) -> tuple[int, int]:
    """Temporaries of a build: shared by its threads, and held by each thread (one chunk or box piece at a time)."""
    axes = geom.axes()
    nd = geom.ndim
    n_out = math.prod(geom.output_shape)
    per_axis = sum(ax.out * (ax.count_dtype().itemsize + 1) for ax in axes)
    kernel = geom.out_channels * geom.in_per_group * math.prod(geom.kernel_shape)
    acc = _fold_dtype(geom, kernel_dtype, dtype)
    weights = kernel * (dtype.itemsize + (8 if acc is not None else 0))
    rows = min(_FLAT_CHUNK, n_out)
    flat = rows * (8 * nd + 8 * 4 + 2 + 8 * 2)
    taps = [ax.wrapped_taps() for ax in axes]  # taps per axis on the general path (wrapped onto a period)
    cand = geom.in_per_group * math.prod(taps)
    runs = [ax.runs(max_runs=_MAX_BOXES) for ax in axes]
    box_rows = _box_rows(geom, runs) if all(runs) else 0
    if box_rows and _boxes_may_lose(geom, math.prod(len(r) for r in runs), box_rows):
        # the planner's own choice when the axes are short (a cheap plan the build reuses), else every row
        short = sum(ax.out for ax in axes) <= _PLAN_POSITIONS
        box_rows = _box_rows(geom, _plan(geom, keep=True)[1]) if short else 0
    active = geom.out_channels * math.prod(ax.active() for ax in axes)  # rows with entries
    shell = active - box_rows  # rows on the general path
    chunk = max(cand, min(_CAND_CHUNK, shell * cand)) if shell > 0 else 0
    general = chunk * (_CAND_BYTES + (_CAND_OBJECT_BYTES if acc == np.dtype(object) else 0))
    # the per-row tables of one chunk of positions (a short axis keeps its table for the whole build; a long one
    # maps a chunk of rows to count reflect/symmetric/transposed edges, and the general path's rows)
    general_rows = max(1, chunk // max(cand, 1))

    def table_rows(ax: Axis, k: int) -> int:
        step = max(1, min(ROW_CHUNK, TABLE_ENTRIES // k))  # Axis.chunk_rows of the wrapped axis
        return min(ax.out, step if ax.transposed or ax.mode in ("reflect", "symmetric") or ax.out <= step
                   else general_rows)

    tables = sum(table_rows(ax, k) * k * 8 * (6 if ax.transposed or ax.mode == "zeros" else 14)
                 for ax, k in zip(axes, taps))
    # one box piece: per-row parts (int64 and index dtype), a block of rows' columns (int64 and index dtype), weights
    boxes = min(_BOX_ROWS, n_out) * 8 * 3 + min(_BOX_ROWS, geom.nnz) * 12 + kernel * 8 * 5\
        + min(geom.nnz, _DATA_BLOCK + kernel) * dtype.itemsize  # the template of a few rows' weights
    return per_axis + weights, max(flat + general + tables, boxes)


def peak_bytes(geom: Geometry, dtype: npt.DTypeLike, fmt: V.SparseFormat = "csr",
               kernel_dtype: npt.DTypeLike | None = None) -> int:
    """Predicted peak bytes of building ``geom``'s matrix in format ``fmt`` (closed form, no allocation)."""
    dt = np.dtype(dtype)
    kernel_dt = dt if kernel_dtype is None else np.dtype(kernel_dtype)
    count = geom.count_bytes()  # before nnz is known: counting reflect/symmetric edges maps rows in chunks
    csr = _csr_bytes(geom, dt)
    return max(count, csr + max(_workspace(geom, dt, kernel_dt), _format_extra(geom, dt, fmt)))


def check_budget(geom: Geometry, dtype: npt.DTypeLike, max_bytes: int | None, what: str, fmt: V.SparseFormat = "csr",
                 kernel_dtype: npt.DTypeLike | None = None) -> int | None:
    """Refuse, before allocating anything, a build whose predicted peak exceeds ``max_bytes``.

    The peak counts the CSR that is built first, the engine's temporaries, and the requested
    format (alive together with the CSR during the conversion).  Returns the smallest
    ``max_bytes`` that this call passes (``None`` when ``max_bytes`` is ``None``: nothing was
    predicted), so that a caller can pass the same geometry again without re-predicting.
    """
    if max_bytes is None:
        return None
    work = geom.count_bytes()  # reflect/symmetric edges are counted from per-row maps, before the exact check
    if work > max_bytes:
        detail = f" (shape {geom.shape[0]:,} x {geom.shape[1]:,}, entries counted from {geom.padding_mode} maps)"
        V.refuse(what + detail, work, max_bytes, _hint(what), at_least=True)
    low, high = geom.nnz_bounds()
    least = 0
    if low != high:  # long reflect/symmetric edges: refuse on the lower bound before counting them exactly
        least = low * (np.dtype(dtype).itemsize + 4) + (geom.shape[0] + 1) * 4
        if least > max_bytes:
            detail = f" (shape {geom.shape[0]:,} x {geom.shape[1]:,}, nnz at least {low:,}, format {fmt!r})"
            V.refuse(what + detail, least, max_bytes, _hint(what), at_least=True)
    need = peak_bytes(geom, dtype, fmt, kernel_dtype)
    detail = f" (shape {geom.shape[0]:,} x {geom.shape[1]:,}, nnz {geom.nnz:,}, format {fmt!r})"
    exact = fmt != "dia"
    if fmt == "dia":  # the diagonals are counted on the CSR; counted before it when the axes are short
        found = _dia_diagonals(geom)
        if found is not None:
            diagonals, width, exact = found
            need = max(need, _dia_bytes(geom, geom.predicted_bytes(dtype), np.dtype(dtype).itemsize, diagonals, width))
            detail = f" as 'dia' ({'' if exact else 'at least '}{diagonals:,} diagonals of {width:,} values)"
    if need > max_bytes:
        V.refuse(what + detail, need, max_bytes, _hint(what), at_least=not exact)
    return max(work, least, need)


# ============================================================================ the build
def _axis_counts(ax: Axis) -> npt.NDArray[np.unsignedinteger]:
    """Compact per-position counts of one axis (chunked: no temporaries proportional to the axis)."""
    dt = ax.count_dtype()
    out = np.empty(ax.out, dt)
    for a in range(0, ax.out, _FLAT_CHUNK):
        b = min(ax.out, a + _FLAT_CHUNK)
        out[a:b] = ax.counts(a, b)
    return out


def _singletons(ax: Axis, positions: IndexArray) -> list[Run]:
    """One-row runs of the unfolded positions among ``positions`` (the caller keeps them few)."""
    cols, assign, _ = ax.slots(positions)
    runs = []
    for i, p in enumerate(positions.tolist()):
        if assign is not None and not np.all((assign[i] == np.arange(ax.k)) | (assign[i] < 0)):
            continue  # folded taps: stays on the general path
        valid = cols[i] >= 0
        runs.append(Run(int(p), 1, 1, np.flatnonzero(valid), cols[i][valid].astype(np.int64), 0))
    return runs


def _box_rows(geom: Geometry, runs: list[list[Run]]) -> int:
    """Rows (every output channel) that the boxes of ``runs`` (per axis; ``[]``: no boxes) write."""
    return geom.out_channels * math.prod(sum(r.length for r in ax) for ax in runs) if runs else 0


def _boxes_may_lose(geom: Geometry, boxes: int, box_rows: int) -> bool:
    """Whether :func:`_plan_boxes` may send every row the general way, judged from the closed-form runs.

    It does when one box costs more than the general pass over every row, or when the boxes cost more
    than the rows they spare; boundary rows made one-row boxes add at most :data:`_MAX_BOXES` boxes in
    all and only more rows to the boxes, so ``False`` here means the planner keeps at least these boxes."""
    cand = geom.in_per_group * math.prod(geom.kernel_shape)
    return (geom.shape[0] * cand * _COST_CANDIDATE < _COST_BOX
            or max(boxes, _MAX_BOXES) * _COST_BOX >= box_rows * cand * _COST_CANDIDATE)


_Plan: TypeAlias = tuple[list[npt.NDArray[np.unsignedinteger]], list[list[Run]], list[npt.NDArray[np.uint8]]]


def _plan(geom: Geometry, keep: bool = False) -> _Plan:
    """The per-axis counts, the runs that become boxes and the position codes of a build of ``geom``.

    ``keep``: remember them on the geometry (the memory model asks first when the boxes may lose,
    on few rows); the build takes them off it, so that they do not outlive it (nor sit in a format
    conversion's peak)."""
    kept = geom._cache.get("plan") if keep else geom._cache.pop("plan", None)
    if kept is not None:
        return kept
    counts = [_axis_counts(ax) for ax in geom.axes()]
    plan = (counts, *_plan_boxes(geom, counts, geom.in_per_group * math.prod(geom.kernel_shape)))
    if keep:
        geom._cache["plan"] = plan
    return plan


def _plan_boxes(geom: Geometry, counts: list[npt.NDArray[np.unsignedinteger]], cand: int
                ) -> tuple[list[list[Run]], list[npt.NDArray[np.uint8]]]:
    """The runs per axis that become boxes ([] if none) and the per-axis position codes.

    Codes: 0 = the row reads nothing along this axis, 1 = general path, 2 = covered by a run.
    """
    axes = geom.axes()
    rows = geom.shape[0]
    codes = [(c > 0).astype(np.uint8) for c in counts]
    if rows * cand * _COST_CANDIDATE < _COST_BOX:  # one box costs more than the general pass over every row
        return [], codes  # (the choice at the end for any number >= 1 of boxes, without computing them)
    runs = [ax.runs(max_runs=_MAX_BOXES) for ax in axes]
    if not all(runs):
        return [], codes

    def mark(code: npt.NDArray[np.uint8], axis_runs: list[Run]) -> None:
        for run in axis_runs:
            code[run.start : run.start + run.step * run.length : run.step] = 2

    for code, axis_runs in zip(codes, runs):
        mark(code, axis_runs)
    box_rows = _box_rows(geom, runs)
    shell_cost = (rows - box_rows) * cand * _COST_CANDIDATE
    boxes = math.prod(len(r) for r in runs)
    edges = [int(np.count_nonzero(code == 1)) for code in codes]
    all_boxes = math.prod(len(r) + e for r, e in zip(runs, edges))
    if all_boxes <= _MAX_BOXES and (all_boxes - boxes) * _COST_BOX < shell_cost:
        # few boundary positions with many entries: their (unfolded) rows become boxes of one row too
        for ax, code, axis_runs in zip(axes, codes, runs):
            extra = _singletons(ax, np.flatnonzero(code == 1))
            mark(code, extra)
            axis_runs += extra
        boxes = math.prod(len(r) for r in runs)
        box_rows = _box_rows(geom, runs)
        shell_cost = (rows - box_rows) * cand * _COST_CANDIDATE
    if boxes * _COST_BOX + shell_cost > rows * cand * _COST_CANDIDATE:
        return [], [(c > 0).astype(np.uint8) for c in counts]  # small matrix: one general pass is cheaper
    return runs, codes


def build_csr(geom: Geometry, weight: np.ndarray, dtype: npt.DTypeLike) -> sp.csr_array:
    """Build the CSR matrix of ``geom`` with engine weight ``(out_channels, in_per_group, *taps)``.

    ``weight[c, i, t...]`` multiplies input channel ``group(c)*in_per_group + i`` at the input
    index the geometry's maps give for tap ``t``.  ``weight`` keeps its own dtype: values are
    written as ``dtype`` (the caller checked that they fit), folded sums are computed exactly
    first and refused (``ValueError``) when ``dtype`` cannot hold them.
    """
    dtype = np.dtype(dtype)
    rows, ncols = geom.shape
    oshape = geom.output_shape
    n_out = math.prod(oshape)
    cg, c_out = geom.in_per_group, geom.out_channels
    itype = geom.index_dtype()
    wt = np.ascontiguousarray(weight, dtype=dtype)
    kmax = None
    if weight.dtype.kind in "iub" and weight.size:
        kmax = max(abs(int(weight.min())), abs(int(weight.max())))
    acc = _fold_dtype(geom, weight.dtype, dtype, kmax)
    wacc = None if acc is None or acc == dtype else np.ascontiguousarray(weight).astype(acc)

    threads = _num_threads(geom)  # first: its memory model may keep a plan on the geometry, taken off below
    counts, runs, codes = _plan(geom)
    per_channel = geom.nnz // c_out if c_out else 0
    nnz = per_channel * c_out

    indptr = _empty(rows + 1, dtype=itype)
    data = _empty(nnz, dtype=dtype)
    indices = _empty(nnz, dtype=itype)
    indptr[0] = 0
    if runs:
        fill = _RowFiller(geom, geom.axes(), wt, wacc, dtype, indices, data, per_channel)
    else:  # no boxes: a kernel longer than a periodic fold's period is summed over each period first
        fill = _RowFiller(geom, *_wrap(geom, wt, wacc), dtype, indices, data, per_channel)
    pieces = [piece for combo in itertools.product(*runs) for piece in _cut(list(combo))] if runs else []
    step = _FLAT_CHUNK if geom.ndim == 1 or not 0 < oshape[-1] <= _FLAT_CHUNK else _FLAT_CHUNK // oshape[-1] * oshape[-1]
    chunks = [(r0, min(n_out, r0 + step)) for r0 in range(0, n_out, step)]  # whole lines: see _fill_lines
    starts = _chunk_starts(counts, oshape, cg, [r0 for r0, _ in chunks])
    for ax in fill.axes if threads > 1 else ():  # a short axis' table of every row: made once, before the threads
        if ax.out <= ax.chunk_rows():
            ax.slots_of(np.zeros(0, np.int64))

    def rows_of(task: int) -> tuple[int, int]:  # row pointers and general rows of one chunk of positions
        (r0, r1), start = chunks[task], starts[task]
        return start, _fill_positions(geom, counts, codes, bool(runs), fill, indptr, r0, r1, start)

    in_strides = c_strides(geom.input_shape)
    with _pool(threads) as run:
        ends = list(run(rows_of, range(len(chunks))))
        running = ends[-1][1] if ends else 0
        if any(a[1] != b[0] for a, b in itertools.pairwise(ends)):  # pragma: no cover - closed form and rows disagree
            raise AssertionError("internal error: the closed-form row offsets of the chunks disagree with their rows")
        if running != per_channel:  # pragma: no cover - the closed-form counts and the rows disagree
            raise AssertionError(f"internal error: rows hold {running} entries per channel, nnz predicts {per_channel}")
        for c in range(1, c_out):  # loop over output channels: one vectorized copy each
            np.add(indptr[1 : n_out + 1], c * per_channel, out=indptr[c * n_out + 1 : (c + 1) * n_out + 1],
                   casting="unsafe")
        # at most max(prod(stride), _MAX_BOXES) boxes, each cut into pieces of at most _BOX_ROWS rows
        list(run(lambda piece: _fill_box(geom, wt, piece, in_strides, indptr, per_channel, data, indices), pieces))
    out = sp.csr_array((data, indices, indptr), shape=(rows, ncols), copy=False)
    out.has_sorted_indices = True
    out.has_canonical_format = True
    return out


def _num_threads(geom: Geometry) -> int:
    """Threads of a build: 1 below :data:`_THREAD_MIN_NNZ` entries, else ``CONVMATRIX_NUM_THREADS`` or every core."""
    if geom.nnz < _THREAD_MIN_NNZ:
        return 1
    n = V.env_threads() or max(1, os.cpu_count() or 1)
    # each thread beyond the first may hold at most _THREAD_TEMP_SHARE of the smallest result (1-byte values, int32 indices) in
    # temporaries (taken for the largest values and exact object sums, so that it depends on the geometry alone)
    per_thread = _workspaces(geom, np.dtype(np.complex128), np.dtype(np.int64))[1]
    return max(1, min(n, 1 + int(geom.nnz * 5 * _THREAD_TEMP_SHARE // max(per_thread, 1))))


@contextlib.contextmanager
def _pool(threads: int) -> Iterator[Callable[[Callable[[_T], _R], Iterable[_T]], Iterator[_R]]]:
    """A ``map`` over tasks that write disjoint parts of the result: the built-in ``map`` for one thread, else a
    thread pool's (numpy releases the GIL in its copies and ufuncs); results and the first error come in order."""
    if threads <= 1:
        yield map
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="convmatrix") as ex:
        yield ex.map


def _chunk_starts(counts: list[npt.NDArray[np.unsignedinteger]], oshape: tuple[int, ...], cg: int,
                  firsts: list[int]) -> list[int]:
    """Entries per channel before each flat output position of ``firsts`` (sorted), in closed form.

    In C order, the entries before position ``(j_0, ..., j_{d-1})`` are
    ``cg * sum_a prod_{b<a} c_b(j_b) * P_a(j_a) * prod_{b>a} T_b`` with ``c_a`` the counts of axis ``a``,
    ``P_a(j)`` their sum over positions before ``j`` and ``T_a`` their total: one pass over each axis.
    """
    if len(firsts) <= 1:
        return [0] * len(firsts)
    coords = np.unravel_index(np.asarray(firsts, dtype=np.int64), oshape)
    prefix, totals = [], []
    for count, js in zip(counts, coords):
        p = np.zeros(js.size, np.int64)
        total = 0
        for lo in range(0, count.size, _FLAT_CHUNK):  # chunked cumulative sums: nothing as long as the axis
            hi = min(count.size, lo + _FLAT_CHUNK)
            c = np.cumsum(count[lo:hi], dtype=np.int64)
            sel = (js > lo) & (js <= hi)
            p[sel] = total + c[js[sel] - lo - 1]
            total += int(c[-1])
        prefix.append(p.tolist())
        totals.append(total)
    out = []
    for i in range(len(firsts)):
        j = [int(js[i]) for js in coords]
        before, lead = 0, 1
        for a in range(len(counts)):
            before += lead * prefix[a][i] * math.prod(totals[a + 1 :])
            lead *= int(counts[a][j[a]])
        out.append(cg * before)
    return out


def _fill_positions(geom: Geometry, counts: list[npt.NDArray[np.unsignedinteger]], codes: list[npt.NDArray[np.uint8]],
                    boxes: bool, fill: _RowFiller, indptr: _Indices, r0: int, r1: int, running: int) -> int:
    """Row pointers of output positions ``r0:r1`` (channel 0) and the rows of them the boxes leave to the general
    path; ``running``: the entries before ``r0``.  Returns the entries up to ``r1``."""
    nd, oshape = geom.ndim, geom.output_shape
    if nd > 1 and r1 - r0 >= _LINES_MIN and r0 % oshape[-1] == 0 and r1 % oshape[-1] == 0:
        return _fill_lines(geom, counts, codes, fill, indptr, r0, r1, running)
    flat = np.arange(r0, r1, dtype=np.int64)
    pos = (flat,) if nd == 1 else np.unravel_index(flat, oshape)
    cnt = counts[0][pos[0]].astype(np.int64)
    for a in range(1, nd):
        cnt *= counts[a][pos[a]]
    cnt *= geom.in_per_group
    np.cumsum(cnt, out=cnt)
    cnt += running
    indptr[r0 + 1 : r1 + 1] = cnt
    end = int(cnt[-1])
    code0 = codes[0][pos[0]]
    active = code0 > 0
    if boxes:
        box = code0 == 2
        for a in range(1, nd):
            code = codes[a][pos[a]]
            active &= code > 0
            box &= code == 2
        shell = np.flatnonzero(active & ~box)
    else:
        for a in range(1, nd):
            active &= codes[a][pos[a]] > 0
        shell = np.flatnonzero(active)
    if shell.size:  # row starts from this chunk's own counts (indptr[r0] belongs to the previous chunk's task)
        starts = np.where(shell > 0, cnt[shell - 1], running)
        del cnt
        fill.rows(flat[shell], tuple(p[shell] for p in pos), starts)
    return end



def _fill_lines(geom: Geometry, counts: list[npt.NDArray[np.unsignedinteger]], codes: list[npt.NDArray[np.uint8]],
                fill: _RowFiller, indptr: _Indices, r0: int, r1: int, running: int) -> int:
    """:func:`_fill_positions` for whole lines along the last axis: every line's row pointers are the last axis'
    cumulative counts times the line's count on the other axes (an outer product), and its general rows are the
    last axis' active positions (a line crossing a general position) or its general ones (a line inside the boxes)."""
    oshape, itype = geom.output_shape, indptr.dtype
    n_last = oshape[-1]
    lpos = np.unravel_index(np.arange(r0 // n_last, r1 // n_last, dtype=np.int64), oshape[:-1])
    lead = counts[0][lpos[0]].astype(np.int64)
    lcode = codes[0][lpos[0]]
    for a in range(1, len(lpos)):
        lead *= counts[a][lpos[a]]
        lcode = np.minimum(lcode, codes[a][lpos[a]])  # 0: reads nothing, 1: some axis general, 2: all in boxes
    lead *= geom.in_per_group
    cum = np.cumsum(counts[-1], dtype=np.int64)
    line = lead * int(cum[-1])
    off = np.cumsum(line)
    end = running + int(off[-1])
    off -= line
    off += running
    rows = indptr[r0 + 1 : r1 + 1].reshape(lead.size, n_last)  # every value fits the index dtype, so do the parts
    np.multiply(lead.astype(itype)[:, None], cum.astype(itype)[None, :], out=rows)
    rows += off.astype(itype)[:, None]
    del lead, cum, line, off
    last = codes[-1]
    general, inside = np.flatnonzero(lcode == 1), np.flatnonzero(lcode == 2)
    shell = np.concatenate([(general[:, None] * n_last + np.flatnonzero(last > 0)[None, :]).ravel(),
                            (inside[:, None] * n_last + np.flatnonzero(last == 1)[None, :]).ravel()])
    if shell.size:
        shell.sort()
        flat_rows = indptr[r0 + 1 : r1 + 1]
        starts = np.where(shell > 0, flat_rows[shell - 1], running).astype(np.int64)
        flat = shell + r0
        fill.rows(flat, np.unravel_index(flat, oshape), starts)
    return end


def _cut(box: list[Run]) -> list[list[Run]]:
    """``box`` cut along its longest axes into boxes of at most :data:`_BOX_ROWS` rows."""
    size = math.prod(r.length for r in box)
    if size <= _BOX_ROWS:
        return [box]
    a = max(range(len(box)), key=lambda i: box[i].length)
    pieces = min(box[a].length, -(-size // _BOX_ROWS))
    out = []
    for part in box[a].split(pieces):
        out += _cut([*box[:a], part, *box[a + 1 :]])
    return out


def _fill_box(geom: Geometry, weight: np.ndarray, box: list[Run], in_strides: list[int], indptr: _Indices,
              per_channel: int, data: np.ndarray, indices: _Indices) -> None:
    """Write one box (a product of per-axis runs) through strided views of data and indices."""
    nd = geom.ndim
    oshape = geom.output_shape
    cg, og, c_out = geom.in_per_group, geom.out_per_group, geom.out_channels
    sizes = [run.length for run in box]
    o_strides = c_strides(oshape)
    corner = sum(run.start * st for run, st in zip(box, o_strides))
    base = int(indptr[corner])
    row_steps = [int(indptr[corner + run.step * st]) - base if run.length > 1 else 0
                 for run, st in zip(box, o_strides)]
    row_len = cg * math.prod(run.taps.size for run in box)
    if row_len == 0:  # rows whose taps all fall on zero padding
        return
    w = weight[np.ix_(np.arange(c_out), np.arange(cg), *[run.taps for run in box])].reshape(c_out, row_len)
    # rows along the last axis of a step-1 run are adjacent (each holds row_len entries)
    if box[-1].step == 1:
        row_steps[-1] = row_len
    shape = (c_out, *sizes, row_len)
    steps = (per_channel, *row_steps, 1)
    dview = np.lib.stride_tricks.as_strided(data[base:], shape, [s * data.itemsize for s in steps], writeable=True)
    iview = np.lib.stride_tricks.as_strided(indices[base:], shape, [s * indices.itemsize for s in steps],
                                            writeable=True)
    lead = (c_out,) + (1,) * nd
    if box[-1].step == 1:  # a few rows' weights copied as one long row (a copy of short rows costs ~20% more)
        _write_rows(data, base, w, (per_channel, *row_steps[:-1]), sizes, max(1, _DATA_BLOCK // w.size))
    else:
        dview[...] = w.reshape((*lead, row_len))
    # column = channel offset + sum_a first_a[t_a]*stride_a  (per entry of a row)
    #        + sum_a m_a*delta_a*stride_a                     (per row)
    n_in = math.prod(geom.input_shape)
    ent = (((np.arange(c_out) // og) * cg)[:, None] + np.arange(cg)[None, :]).astype(np.int64) * n_in
    ent = ent.reshape((c_out, cg) + (1,) * nd)
    for a, (run, st) in enumerate(zip(box, in_strides)):
        ent = ent + (run.first * st).reshape((1, 1) + (1,) * a + (-1,) + (1,) * (nd - a - 1))
    ent = ent.reshape(c_out, row_len)
    itype = indices.dtype  # parts of a column fit it as the column does: no casting loop in the writes below
    last, st_last = box[-1], in_strides[-1]
    if last.step == 1:  # rows along the last axis are adjacent: blocks of rows written as one long row each
        block = max(1, min(last.length, _BOX_ROWS // (c_out * row_len)))
        nblk, rem = divmod(last.length, block)
        inner = (np.arange(block, dtype=np.int64) * (last.delta * st_last))[None, :, None] + ent[:, None, :]
        inner = inner.astype(itype).reshape((c_out,) + (1,) * nd + (block * row_len,))
        rowpart = np.zeros((), dtype=np.int64)  # per block of rows: sum_a m_a*delta_a*stride_a
        for run, st in zip(box[:-1], in_strides[:-1]):
            rowpart = np.add.outer(rowpart, np.arange(run.length, dtype=np.int64) * (run.delta * st))
        outer = np.add.outer(rowpart, np.arange(nblk + 1, dtype=np.int64) * (block * last.delta * st_last))
        outer = outer.astype(itype)
        main = np.lib.stride_tricks.as_strided(
            indices[base:], (c_out, *sizes[:-1], nblk, block * row_len),
            [s * indices.itemsize for s in (per_channel, *row_steps[:-1], block * row_len, 1)], writeable=True)
        np.add(outer[..., :nblk].reshape((1, *sizes[:-1], nblk, 1)), inner, out=main)
        if rem:
            tail = np.lib.stride_tricks.as_strided(
                indices[base + nblk * block * row_len :], (c_out, *sizes[:-1], rem * row_len),
                [s * indices.itemsize for s in (per_channel, *row_steps[:-1], 1)], writeable=True)
            np.add(outer[..., nblk].reshape((1, *sizes[:-1], 1)),
                   inner.reshape(c_out, block, row_len)[:, :rem].reshape((c_out,) + (1,) * (nd - 1) + (rem * row_len,)),
                   out=tail)
        return
    rowpart = np.zeros((), dtype=np.int64)  # per row: sum_a m_a*delta_a*stride_a (at most _BOX_ROWS values)
    for run, st in zip(box, in_strides):
        rowpart = np.add.outer(rowpart, np.arange(run.length, dtype=np.int64) * (run.delta * st))
    # one ufunc call writing into the strided view (an in-place update of the view would be copied whole)
    np.add(rowpart.astype(itype).reshape((1, *sizes, 1)), ent.astype(itype).reshape((*lead, row_len)), out=iview)



def _write_rows(out: np.ndarray, base: int, rows: np.ndarray, steps: tuple[int, ...], sizes: list[int],
                block: int) -> None:
    """Write ``rows[c]`` (``(c_out, row_len)``) to every row of a box whose last axis' rows are adjacent.

    ``steps``: strides (in entries) of the channel and of every axis but the last; ``sizes``: the box's lengths.
    Blocks of ``block`` adjacent rows are written from one template of them (one long copy per block)."""
    c_out, row_len = rows.shape
    n_last = sizes[-1]
    block = min(block, n_last)
    nblk, rem = divmod(n_last, block)
    tmpl = np.ascontiguousarray(np.broadcast_to(rows[:, None, :], (c_out, block, row_len))).reshape(
        (c_out,) + (1,) * len(sizes) + (block * row_len,))
    main = np.lib.stride_tricks.as_strided(out[base:], (c_out, *sizes[:-1], nblk, block * row_len),
                                           [s * out.itemsize for s in (*steps, block * row_len, 1)], writeable=True)
    main[...] = tmpl
    if rem:
        tail = np.lib.stride_tricks.as_strided(out[base + nblk * block * row_len :], (c_out, *sizes[:-1], rem * row_len),
                                               [s * out.itemsize for s in (*steps, 1)], writeable=True)
        tail[...] = tmpl[..., : rem * row_len].reshape((c_out,) + (1,) * (len(sizes) - 1) + (rem * row_len,))


def no_memory_error(geom: Geometry, dtype: np.dtype, what: str, exc: MemoryError) -> V.MatrixTooLargeError:
    """The MemoryError of an allocation the budget allowed, as a MatrixTooLargeError naming the matrix."""
    rows, cols = geom.shape
    return V.MatrixTooLargeError(
        f"{what} could not be allocated: shape {rows:,} x {cols:,}, nnz {geom.nnz:,}, about "
        f"{V.nbytes_text(geom.predicted_bytes(dtype))} as CSR ({exc}); use convmatrix.ConvOperator (matrix-free, "
        f"same keywords) to apply it"
    )
