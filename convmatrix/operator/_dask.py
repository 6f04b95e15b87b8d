"""Dask graphs: a volume convolved block by block with map_overlap, a batch of vectors one chunk per task."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from ._plan import _Plan

if TYPE_CHECKING:
    from dask.array import Array as DaskArray
    from scipy.sparse import sparray, spmatrix
    from typing_extensions import TypeIs

__all__ = []


#: what a map_overlap block reads of dask's ``block_info[0]`` (the block's place in the input)
_BlockInfo = TypedDict("_BlockInfo", {"chunk-location": tuple[int, ...]})


_DASK_HINT = "pip install convmatrix[dask]"


def _is_dask(x: object) -> TypeIs[DaskArray]:
    mod = type(x).__module__
    return mod.startswith("dask.") and hasattr(x, "chunks") and hasattr(x, "dask")


def _import_dask() -> ModuleType:
    """``dask.array``, or an ImportError naming the extra to install."""
    try:
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - dask is installed in CI
        raise ImportError(f"dask arrays need the optional dependency dask: {_DASK_HINT}") from exc
    return da


# ----------------------------------------------------------------------------- Dask routes
# Each output block owns the windows that *start* in one input chunk (window j starts at input
# position j*s - p_before), so chunk outputs line up for every stride.  One map_overlap does the
# work: the halo (right side, d*(k-1)) is what those windows read past their chunk; boundary
# folding happens inside the edge blocks, whose chunks are made large enough to hold the folded
# sources.  Circular padding reads the other end of the axis: a wrap-around slab is concatenated
# and merged into each edge chunk first (dask's own 'periodic' boundary would multiply the tasks).
def _window_range(plan: _Plan, a: int, x0: int, x1: int) -> tuple[int, int]:
    """Windows owned by the input chunk ``[x0, x1)`` along axis ``a`` (the first and last take the edges)."""
    s, pb, n, out = plan.s[a], plan.pb[a], plan.n[a], plan.out[a]
    j0 = 0 if x0 == 0 else min(out, -(-(x0 + pb) // s))
    j1 = out if x1 == n else min(out, -(-(x1 + pb) // s))
    return j0, j1


def _axis_limits(plan: _Plan, a: int) -> tuple[int, int, int]:
    """(smallest chunk, smallest first chunk, smallest last chunk) when an axis has several chunks."""
    n, pb, e = plan.n[a], plan.pb[a], plan.E[a]
    pa = max(plan.L[a] - pb - n, 0)  # padding actually read after the input
    if plan.mode == "zeros":
        return max(e - 1, 1), 1, 1
    if plan.mode == "circular":  # wrapped windows land within pa of the start and pb of the end
        return max(e - 1, 1), max(pa, 1), max(pb, 1)
    return max(e - 1, 1), pb + 1, pa + 1  # folded sources stay inside the edge chunks


def _plan_chunks(plan: _Plan, a: int, candidates: Iterable[int],
                 extra: Callable[[int], bool] | None = None) -> list[int]:
    """Input chunk boundaries along axis ``a`` (from ``candidates``), merged until every chunk is valid."""
    n = plan.n[a]
    size, first, last = _axis_limits(plan, a)

    def ok(x0: int, x1: int) -> bool:
        if x1 - x0 < size or (x0 == 0 and x1 - x0 < first) or (x1 == n and x1 - x0 < last):
            return False
        j0, j1 = _window_range(plan, a, x0, x1)
        return j1 > j0 and (extra is None or extra(j1 - j0))

    kept = [0]
    for b in sorted({int(c) for c in candidates}):
        if 0 < b < n and ok(kept[-1], b) and n - b >= max(size, last):
            kept.append(b)
    while len(kept) > 1 and not ok(kept[-1], n):
        kept.pop()
    return [*kept, n]


def _sizes(bounds: list[int]) -> tuple[int, ...]:
    return tuple(int(b - a) for a, b in itertools.pairwise(bounds))


def _wrap(da: ModuleType, arr: DaskArray, axis: int, left: int, right: int) -> DaskArray:
    """Concatenate the last ``left`` and first ``right`` entries around ``axis``, merged into the edge chunks."""
    if left == 0 and right == 0:
        return arr
    n = arr.shape[axis]
    sl = [slice(None)] * arr.ndim
    pieces = []
    if left:
        sl[axis] = slice(n - left, n)
        pieces.append(arr[tuple(sl)])
    pieces.append(arr)
    if right:
        sl[axis] = slice(0, right)
        pieces.append(arr[tuple(sl)])
    chunks = list(arr.chunks[axis])
    chunks[0] += left
    chunks[-1] += right
    wrapped: DaskArray = da.concatenate(pieces, axis=axis).rechunk({axis: tuple(chunks)})
    return wrapped


def _dask_forward(plan: _Plan, x: DaskArray, conj: bool) -> DaskArray:
    """``(C_in, *n)`` dask volume -> ``(C_out, *out)`` with one ``map_overlap``."""
    da = _import_dask()
    nd = plan.nd
    dt = np.result_type(x.dtype, plan.weight.dtype)
    bounds = [_plan_chunks(plan, a, np.cumsum(x.chunks[1 + a])[:-1]) for a in range(nd)]
    x = x.astype(dt).rechunk(((plan.cin,), *(_sizes(b) for b in bounds)))  # type: ignore[no-untyped-call]
    windows = [[_window_range(plan, a, x0, x1) for x0, x1 in itertools.pairwise(b)] for a, b in enumerate(bounds)]
    counts = [tuple(j1 - j0 for j0, j1 in w) for w in windows]
    ext: list[tuple[int, int]] = []
    depth: dict[int, int | tuple[int, int]] = {0: 0}  # map_overlap's halo per axis: (before, after) or none
    for a in range(nd):
        multi = len(counts[a]) > 1
        e = (plan.pb[a], max(plan.L[a] - plan.pb[a] - plan.n[a], 0)) if multi and plan.mode == "circular" else (0, 0)
        ext.append(e)
        x = _wrap(da, x, 1 + a, *e)
        depth[1 + a] = (0, plan.E[a] - 1) if multi else 0

    def block(b: np.ndarray, block_info: dict[int | None, _BlockInfo] | None = None) -> np.ndarray:
        assert block_info is not None  # dask passes it to a function that takes it
        loc = block_info[0]["chunk-location"]
        index, out = [], []
        for a in range(nd):
            i = loc[1 + a]
            start = bounds[a][i] - (ext[a][0] if i == 0 else 0)  # original coordinate of b's first element
            j0, j1 = windows[a][i]
            q = np.arange(j0 * plan.s[a] - plan.pb[a], (j1 - 1) * plan.s[a] - plan.pb[a] + plan.E[a])
            index.append(plan.sources(a, q, (start, start + b.shape[1 + a])))
            out.append(j1 - j0)
        res: np.ndarray = plan.correlate(plan.gather(b, 1, index)[None], tuple(out), conj)[0]
        return res

    result: DaskArray = da.map_overlap(block, x, depth=depth, boundary="none", trim=False, dtype=dt,
                                       allow_rechunk=False, chunks=((plan.cout,), *counts),
                                       meta=np.empty((0,) * (nd + 1), dt))
    return result


def _runs(true: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs ``(u0, u1, first window)`` of consecutive window indices, each window kept once."""
    keep = np.zeros(true.size, bool)
    keep[np.unique(true, return_index=True)[1]] = True
    idx = np.nonzero(keep)[0]
    cut = np.nonzero((np.diff(idx) != 1) | (np.diff(true[idx]) != 1))[0] + 1
    return [(int(g[0]), int(g[-1]) + 1, int(true[g[0]])) for g in np.split(idx, cut)]


def _dask_transpose(plan: _Plan, y: DaskArray, conj: bool) -> DaskArray:
    """``(C_out, *out)`` dask volume -> ``(C_in, *n)``: each input chunk sums the windows that read it."""
    da = _import_dask()
    nd = plan.nd
    dt = np.result_type(y.dtype, plan.weight.dtype)
    bounds, windows, counts, back = [], [], [], []
    for a in range(nd):
        s, pb = plan.s[a], plan.pb[a]
        h = (plan.E[a] - 1) // s  # earlier windows that still reach into a chunk
        cand = [j * s - pb for j in np.cumsum(y.chunks[1 + a])[:-1]]

        def owns_back(c: int, h: int = h) -> bool:  # a chunk takes at least the windows reaching back into it
            return c >= h

        b = _plan_chunks(plan, a, cand, extra=owns_back)
        bounds.append(b)
        windows.append([_window_range(plan, a, x0, x1) for x0, x1 in itertools.pairwise(b)])
        counts.append(tuple(j1 - j0 for j0, j1 in windows[-1]))
        back.append(h)
    y = y.astype(dt).rechunk(((plan.cout,), *counts))  # type: ignore[no-untyped-call]
    ext: list[tuple[int, int]] = []
    depth: dict[int, int | tuple[int, int]] = {0: 0}  # map_overlap's halo per axis: (before, after) or none
    for a in range(nd):
        multi = len(counts[a]) > 1
        e = (0, 0)
        if multi and plan.mode == "circular":  # windows wrapping past the end / starting before 0
            out, s = plan.out[a], plan.s[a]
            e = (out - min(out, -(-(plan.n[a] + plan.pb[a] - plan.E[a] + 1) // s)), min(out, -(-plan.pb[a] // s)))
        ext.append(e)
        y = _wrap(da, y, 1 + a, *e)
        depth[1 + a] = (back[a], 0) if multi else 0

    def block(b: np.ndarray, block_info: dict[int | None, _BlockInfo] | None = None) -> np.ndarray:
        assert block_info is not None  # dask passes it to a function that takes it
        loc = block_info[0]["chunk-location"]
        runs, lo, hi = [], [], []
        for a in range(nd):
            i = loc[1 + a]
            j0 = windows[a][i][0]
            first_j = j0 - (ext[a][0] if i == 0 else back[a])  # window index of b's first element
            true = np.mod(np.arange(first_j, first_j + b.shape[1 + a]), plan.out[a])
            runs.append(_runs(true))
            lo.append(bounds[a][i])
            hi.append(bounds[a][i + 1])
        acc = np.zeros((plan.cin, *(h - b0 for b0, h in zip(lo, hi, strict=False))), dt)
        for combo in itertools.product(*runs):  # one run per axis, more only where windows wrap around
            slab = b[(slice(None), *(slice(u0, u1) for u0, u1, _ in combo))]
            length = tuple((u1 - u0 - 1) * s + e for (u0, u1, _), s, e in zip(combo, plan.s, plan.E, strict=False))
            G = plan.correlate_t(slab[None], length, conj)[0]
            acc += plan.fold_add(G, 1, tuple(j * s for (_, _, j), s in zip(combo, plan.s, strict=False)), tuple(lo),
                                 tuple(hi))
        return acc

    result: DaskArray = da.map_overlap(block, y, depth=depth, boundary="none", trim=False, dtype=dt,
                                       allow_rechunk=False, chunks=((plan.cin,), *(_sizes(b) for b in bounds)),
                                       meta=np.empty((0,) * (nd + 1), dt))
    return result


# ----------------------------------------------------------------------------- apply (explicit or not, dask or not)
def _dask_columns(fn: Callable[[np.ndarray], np.ndarray], X: DaskArray, rows: int, dtype: np.dtype) -> DaskArray:
    """``fn`` on every column chunk of a dask ``(N, K)`` array: one task per chunk."""
    da = _import_dask()
    X = X.rechunk({0: -1})  # type: ignore[no-untyped-call]
    # da.map_blocks(fn, X) is X.map_blocks(fn), whose wrapped signature mypy misreads
    result: DaskArray = da.map_blocks(fn, X, dtype=dtype, chunks=((rows,), X.chunks[1]), meta=np.empty((0, 0), dtype))
    return result


def _matmul_block(C: np.ndarray | sparray | spmatrix, block: np.ndarray) -> np.ndarray:
    return np.asarray(C @ block)
