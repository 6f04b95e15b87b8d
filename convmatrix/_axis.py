"""One spatial axis of a convolution: index maps, slots, counts and runs, in closed form or in chunks.

:class:`Axis` answers, for one axis, which input each (output position, tap) reads (its *index
map*), how many distinct inputs a row reads (its *count*), how many entries the axis
contributes (:meth:`Axis.entries`, in closed form), and which stretches of rows are regular
(:meth:`Axis.runs`, what the builder writes as strided boxes).  :class:`~convmatrix.geometry.Geometry`
holds one per spatial axis.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, TypeAlias, cast, overload

import numpy as np
import numpy.typing as npt

from . import _validate as V

__all__ = [
    "ROW_CHUNK",
    "TABLE_ENTRIES",
    "Axis",
    "IndexArray",
    "Run",
    "c_strides",
    "conv_index",
    "conv_source",
    "fold",
    "fold_index",
    "fold_period",
    "kernel_tap",
    "nd_column",
    "ravel",
    "strip_count",
    "transpose_index",
    "wrapped_offset",
]

#: an array of int64 indices (or counts); -1 marks a dropped tap or an unused slot
IndexArray: TypeAlias = npt.NDArray[np.int64]


# ----------------------------------------------------------------------------- the index arithmetic
# Written once for every backend: ``xp`` is the array namespace, :mod:`numpy` here (arrays in,
# arrays out) or :data:`convmatrix.proofs._smt.Z3`, whose symbolic integers let
# :mod:`convmatrix.proofs` run these very functions on every geometry at once.  Only
# ``+ - * // %``, comparisons, ``& | ~`` and ``xp.where`` / ``xp.mod`` / ``xp.clip`` /
# ``xp.zeros_like`` are used, and Python ``if`` only on sizes and mode names (the proofs follow
# every branch).  Keep it that way: a formula changed here is re-proved by ``convmatrix prove``.


def conv_source(j: Any, t: Any, s: Any, d: Any, p_before: Any) -> Any:
    """Unfolded input index that output ``j`` of a convolution reads through tap ``t``: ``j*s + t*d - p_before``.

    ``t*d`` is the tap's offset; a wrapped axis passes its offsets as ``t`` with ``d = 1``.
    """
    return j * s + t * d - p_before


def fold(i: Any, n: Any, mode: str, xp: Any = np) -> Any:
    """Index ``i`` mapped into ``[0, n)`` by the boundary ``mode``; -1 means dropped (``"zeros"``).

    The backend-generic form of :func:`fold_index` (``xp``: the array namespace).
    """
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
    raise ValueError(f"padding_mode must be one of {V.PADDING_MODES}; got {mode!r}")


def conv_index(j: Any, t: Any, n: Any, s: Any, d: Any, p_before: Any, mode: str, xp: Any = np) -> Any:
    """Input index that output ``j`` of a convolution reads through tap ``t``, folded by ``mode`` (-1: none)."""
    return fold(conv_source(j, t, s, d, p_before), n, mode, xp)


def kernel_tap(t: Any, k: Any) -> Any:
    """Kernel tap held by tap ``t`` of a transposed geometry's engine weight: its taps are reversed."""
    return k - 1 - t


def transpose_index(j: Any, t: Any, n: Any, k: Any, s: Any, d: Any, p_before: Any, xp: Any = np) -> Any:
    """Input index that output ``j`` of a transposed convolution reads through engine tap ``t``, or -1.

    ``n`` is the transposed convolution's input length; engine tap ``t`` holds kernel tap
    :func:`kernel_tap` ``(t, k)``, which input ``i`` sends to output ``i*s + kernel_tap(t, k)*d - p_before``.
    """
    q = j + p_before - kernel_tap(t, k) * d  # = input_index * s when it is a hit
    hit = (q >= 0) & (q % s == 0) & (q // s < n)
    return xp.where(hit, q // s, -1)


def fold_period(n: Any, mode: str) -> Any:
    """Period of the boundary fold of ``mode`` on an axis of length ``n`` (0: zeros and replicate do not repeat)."""
    if mode in ("zeros", "replicate"):
        return 0
    if mode == "circular":
        return n
    if mode == "symmetric":
        return 2 * n
    return 2 * (n - 1) if n > 1 else 1  # reflect


def wrapped_offset(t: Any, d: Any, period: Any) -> Any:
    """Offset replacing ``t*d`` when the taps of a periodic fold are wrapped onto one period."""
    return (t * d) % period


def c_strides(shape: Sequence[Any]) -> list[Any]:
    """C-order strides of ``shape`` in elements: ``prod(shape[a+1:])`` for each axis ``a``."""
    return [math.prod(shape[a + 1 :]) for a in range(len(shape))]


def ravel(index: Sequence[Any], shape: Sequence[Any]) -> Any:
    """C-order flat index of the per-axis ``index`` in ``shape``: ``sum(index[a] * c_strides(shape)[a])``."""
    return sum((i * st for i, st in zip(index, c_strides(shape), strict=True)), 0)


def nd_column(cols: Sequence[Any], shape: Sequence[Any]) -> tuple[Any, Any]:
    """Column of the N-D entry whose per-axis input indices are ``cols`` (each -1 if dropped), and its mask.

    Returns ``(column, valid)``: the C-order :func:`ravel` of ``cols`` in the input ``shape``, and
    whether every axis reads the input (an entry is stored only then).  The arrays broadcast.
    """
    valid = cols[0] >= 0
    for c in cols[1:]:
        valid = valid & (c >= 0)
    return ravel(cols, shape), valid


def fold_index(i: npt.ArrayLike, n: int, mode: V.PaddingMode) -> IndexArray:
    """Map (possibly out-of-range) indices into ``[0, n)`` by the boundary ``mode``; -1 means dropped.

    ``circular`` wraps, ``reflect`` mirrors without repeating the edge (numpy ``reflect``),
    ``symmetric`` mirrors repeating the edge, ``replicate`` clamps; all work for any width.
    """
    out: IndexArray = fold(np.asarray(i, dtype=np.int64), n, mode)
    return out


# ----------------------------------------------------------------------------- one axis
#: output positions handled at once by the per-row maps of an axis (bounds their temporaries)
ROW_CHUNK = 1 << 15
#: at most this many (position, tap) pairs are mapped at once (a kernel with many taps maps fewer rows)
TABLE_ENTRIES = 1 << 16
#: peak bytes per mapped (position, tap) pair while counting rows from their maps (slots, the
#: sort that finds distinct inputs, the counts): 108-123 measured with tracemalloc, kernels of 2-1000 taps
MAP_PAIR_BYTES = 128




_BIG = np.iinfo(np.int64).max
#: (largest value, dtype) of the unsigned count dtypes, smallest first (np.iinfo is slow to make per call)
_COUNT_DTYPES: tuple[tuple[int, np.dtype[np.unsignedinteger]], ...] = tuple((int(np.iinfo(dt).max), np.dtype(dt)) for dt in (np.uint8, np.uint16, np.uint32))
#: up to this many taps, :meth:`Axis.active` loops over the taps in Python (same arithmetic, no numpy calls)
_SCALAR_TAPS = 32


def _floor_sum(n: int, m: int, a: int, b: int) -> int:
    """``sum(floor((a*i + b) / m) for i in range(n))`` for ``n, a, b >= 0``, ``m >= 1``, in O(log) steps."""
    total = 0
    while n > 0:
        if a >= m:
            total += (n - 1) * n // 2 * (a // m)
            a %= m
        if b >= m:
            total += n * (b // m)
            b %= m
        top = a * n + b
        if top < m:
            break
        n, b, m, a = top // m, top % m, a, m
    return total


def _lattice_below(J: int, K: int, s: int, d: int, X: int) -> int:
    """``#{(j, t) : 0 <= j < J, 0 <= t < K, j*s + t*d <= X}`` exactly, in O(log) steps."""
    if X < 0 or J <= 0 or K <= 0:
        return 0
    full = min(J - 1, (X - (K - 1) * d) // s)  # rows whose every tap is <= X
    count = (full + 1) * K if full >= 0 else 0
    lo, hi = max(0, full + 1), min(J - 1, X // s)  # rows with 1..K-1 taps <= X
    if lo <= hi:  # sum of floor((X - j*s)/d) + 1 over those rows, with i = hi - j
        count += _floor_sum(hi - lo + 1, d, s, X - s * hi) + (hi - lo + 1)
    return count


def strip_count(J: int, K: int, s: int, d: int, low: int, high: int) -> int:
    """``#{(j, t) : 0 <= j < J, 0 <= t < K, low <= j*s + t*d <= high}``: the taps of ``J`` rows at stride
    ``s`` (dilation ``d``) that land in ``[low, high]``, in closed form whatever the sizes."""
    if low > high:
        return 0
    return _lattice_below(J, K, s, d, high) - _lattice_below(J, K, s, d, low - 1)


@overload
def _ceil_div(a: int, b: int) -> int: ...
@overload
def _ceil_div(a: IndexArray, b: int) -> IndexArray: ...
def _ceil_div(a: IndexArray | int, b: int) -> IndexArray | int:
    return -((-a) // b)


@dataclass(frozen=True)
class Run:
    """Output positions ``start + step*m`` (``m < length``) of one axis that share one tap pattern.

    Every row of the run reads the taps ``taps`` unfolded (each its own input), at input indices
    ``first + m*delta``: row pointers and columns are affine in ``m``.
    """

    start: int
    step: int
    length: int
    taps: IndexArray
    first: IndexArray
    delta: int

    def positions(self) -> IndexArray:
        return self.start + self.step * np.arange(self.length, dtype=np.int64)

    def split(self, pieces: int) -> list[Run]:
        """The run cut into ``pieces`` consecutive runs of (almost) equal length."""
        bounds = [self.length * i // pieces for i in range(pieces + 1)]
        return [Run(self.start + self.step * a, self.step, b - a, self.taps, self.first + a * self.delta, self.delta)
                for a, b in itertools.pairwise(bounds) if b > a]


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a convolution (``transposed``: rows are the transposed output).

    Everything here works on output positions in chunks of at most :data:`ROW_CHUNK` (or in
    closed form), so no method allocates in proportion to the length of the axis unless it
    returns such an array.
    """

    n: int  # length of the axis in the vector the matrix multiplies
    k: int
    s: int
    d: int
    pad: tuple[int, int]
    mode: V.PaddingMode
    out: int  # length of the axis in the result vector
    transposed: bool = False
    #: tap offsets replacing ``t*d`` (the engine's wrapped taps, see :meth:`wrapped`); only maps read them
    offsets: tuple[int, ...] | None = None

    # ------------------------------------------------------------------ maps of given rows
    def index_map(self, rows: npt.ArrayLike | None = None) -> IndexArray:
        """``(out, k)`` int64 array: input index of each (output position, tap), -1 if dropped.

        For a transposed axis the taps are listed flipped (tap ``t`` is kernel index ``k-1-t``),
        which makes every row increasing.  ``rows`` restricts the map to those output positions.
        """
        j = (np.arange(self.out, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64))[:, None]
        t = np.arange(self.k, dtype=np.int64)[None, :]
        out: IndexArray
        if self.transposed:
            out = transpose_index(j, t, self.n, self.k, self.s, self.d, self.pad[0])
        elif self.offsets is None:
            out = conv_index(j, t, self.n, self.s, self.d, self.pad[0], self.mode)
        else:  # wrapped taps: their offsets replace t*d (dilation 1 over the offsets)
            off = np.asarray(self.offsets, dtype=np.int64)[None, :]
            out = conv_index(j, off, self.n, self.s, 1, self.pad[0], self.mode)
        return out

    def slots(self, rows: npt.ArrayLike | None = None) -> tuple[IndexArray, IndexArray | None, IndexArray]:
        """Unique input indices per output position (all positions, or those in ``rows``).

        Returns ``(cols, assign, count)``: ``cols`` is ``(R, k)``, the distinct input indices of
        each row in increasing order (-1 marks an unused slot); ``assign`` is ``None`` when every
        tap has its own slot (``cols`` is then the index map itself), else the ``(R, k)`` slot of
        each tap (-1 if dropped), for boundary modes that send two taps to one input; ``count`` is
        the number of used slots per row.
        """
        idx = self.index_map(rows)
        valid = idx >= 0
        count = valid.sum(axis=1)
        if self.transposed or (self.mode in ("zeros", "replicate") and self._no_clamp(idx)):
            return idx, None, count  # transposed and unclamped maps are increasing without repeats
        masked = np.where(valid, idx, -1)
        running = np.maximum.accumulate(masked, axis=1)
        prev = np.concatenate([np.full((idx.shape[0], 1), -1, np.int64), running[:, :-1]], axis=1)
        if np.all(~valid | (idx > prev)):
            return idx, None, count
        big = np.where(valid, idx, _BIG)
        order = np.argsort(big, axis=1, kind="stable")
        srt = np.take_along_axis(big, order, axis=1)
        first = np.ones_like(srt, dtype=bool)
        first[:, 1:] = srt[:, 1:] != srt[:, :-1]
        first &= srt != _BIG
        count = first.sum(axis=1)
        rank = np.cumsum(first, axis=1) - 1  # slot number of each sorted position
        cols = np.full_like(idx, -1)
        r, c = np.nonzero(first)
        cols[r, rank[r, c]] = srt[r, c]
        assign = np.full_like(idx, -1)
        np.put_along_axis(assign, order, np.where(srt != _BIG, rank, -1), axis=1)
        return cols, assign, count

    def chunk_rows(self) -> int:
        """Output positions mapped at once: :data:`ROW_CHUNK`, fewer for a kernel with many taps.

        An axis with at most this many positions keeps the table of all its rows."""
        return max(1, min(ROW_CHUNK, TABLE_ENTRIES // max(self.k, 1)))

    @cached_property
    def _table(self) -> tuple[IndexArray, IndexArray | None, IndexArray]:
        """:meth:`slots` of every row, kept for short axes (see :meth:`chunk_rows`)."""
        return self.slots()

    def slots_of(self, rows: IndexArray) -> tuple[IndexArray, IndexArray | None, IndexArray]:
        """:meth:`slots` of the positions ``rows`` (any order, repeats allowed)."""
        if self.out <= self.chunk_rows():
            cols, assign, count = self._table
            return cols[rows], (None if assign is None else assign[rows]), count[rows]
        uniq, inv = np.unique(rows, return_inverse=True)
        cols, assign, count = self.slots(uniq)
        return cols[inv], (None if assign is None else assign[inv]), count[inv]

    def _no_clamp(self, idx: IndexArray) -> bool:
        if self.mode == "zeros":
            return True
        # replicate repeats an index only where a tap is clamped onto another
        return bool(np.all(np.diff(idx, axis=1) > 0)) if self.k > 1 else True

    # ------------------------------------------------------------------ closed-form structure
    def fold_period(self) -> int:
        """Period of the boundary fold of a convolution axis (0: zeros and replicate do not repeat)."""
        if self.transposed:
            return 0
        period: int = fold_period(self.n, self.mode)
        return period

    def wrapped_taps(self) -> int:
        """Taps that read distinct inputs on some row: ``k``, or at most one per residue of the fold's period."""
        period = self.fold_period()
        if not period or (self.k - 1) * self.d < period:
            return self.k
        return min(self.k, period // math.gcd(self.d, period))

    def wrapped(self) -> tuple[Axis, IndexArray | None]:
        """The axis with its taps wrapped onto one period of a periodic fold, and the tap groups.

        Taps ``t`` and ``t'`` with ``t*d = t'*d`` modulo the fold's period read the same input on
        every row, so a kernel longer than the period can be summed along this axis first (over
        ``groups``: the group of each tap) and the axis given one tap per residue (``offsets``).
        Returns ``(self, None)`` when no two taps always meet.
        """
        if self.wrapped_taps() == self.k:
            return self, None
        off = wrapped_offset(np.arange(self.k, dtype=np.int64), self.d, self.fold_period())
        uniq, groups = np.unique(off, return_inverse=True)
        return replace(self, k=int(uniq.size), offsets=tuple(uniq.tolist())), groups

    def interior(self) -> tuple[int, int]:
        """Output positions ``[lo, hi)`` of a convolution axis whose taps all read the input unfolded."""
        lo = min(self.out, _ceil_div(self.pad[0], self.s))
        hi = (self.n - 1 + self.pad[0] - (self.k - 1) * self.d) // self.s + 1
        return lo, max(lo, min(self.out, hi))

    def _tap_offsets(self) -> IndexArray:
        """Transposed axis: row ``j`` reads input ``(j - u_t) / s`` through tap ``t`` (when an integer in range)."""
        t = np.arange(self.k, dtype=np.int64)
        return (self.k - 1 - t) * self.d - self.pad[0]

    def runs(self, max_runs: int | None = None) -> list[Run]:
        """The regular runs of the axis, in closed form (``[]`` if more than ``max_runs``).

        A convolution axis has one: its interior (step 1, columns advancing by ``s``).  A
        transposed axis has one per residue class of rows modulo ``s`` that some tap hits
        (step ``s``, columns advancing by 1), over the rows where the taps of every class are in
        range (so that the row pointer is affine along each run).
        """
        memo = self._runs_memo
        if max_runs not in memo:
            memo[max_runs] = self._runs(max_runs)
        return list(memo[max_runs])  # a new list (callers extend it); the runs themselves are immutable

    @cached_property
    def _runs_memo(self) -> dict[int | None, list[Run]]:
        """:meth:`runs` by ``max_runs`` (the cost model and the planner of one build both ask)."""
        return {}

    def _runs(self, max_runs: int | None) -> list[Run]:
        t = np.arange(self.k, dtype=np.int64)
        if not self.transposed:
            lo, hi = self.interior()
            first = conv_source(lo, t, self.s, self.d, self.pad[0])  # row lo + m reads first + m*s, unfolded
            return [Run(lo, 1, hi - lo, t, first, self.s)] if hi > lo else []
        # rows where every tap of every residue class is in range: there each class reads all of its taps,
        # and the row pointer advances by the same amount over every stride window (an affine run)
        lo, hi = self._periodic_region()
        u = self._tap_offsets()
        res = np.mod(u, self.s)
        classes = np.unique(res)
        if hi <= lo or (max_runs is not None and classes.size > max_runs):
            return []
        runs = []
        for c in classes.tolist():  # at most min(k, s) residue classes
            taps = t[res == c]
            j0 = lo + (c - lo) % self.s
            if j0 < hi:
                runs.append(Run(j0, self.s, (hi - 1 - j0) // self.s + 1, taps, (j0 - u[taps]) // self.s, 1))
        return runs

    def active(self) -> int:
        """Number of output positions that read at least one input (closed form, O(k log k))."""
        if not self.transposed and self.mode != "zeros":
            return self.out  # every tap is folded onto some input
        if self.k <= _SCALAR_TAPS:
            return self._active_scalar()
        t = np.arange(self.k, dtype=np.int64)
        if not self.transposed:  # tap t reads the input for rows lo_t..hi_t
            cls = np.zeros(self.k, np.int64)
            lo = np.maximum(0, _ceil_div(self.pad[0] - t * self.d, self.s))
            hi = np.minimum(self.out - 1, (self.n - 1 + self.pad[0] - t * self.d) // self.s)
        else:  # tap t hits rows u_t + i*s (0 <= i < n): an interval of the lattice of its residue class
            u = self._tap_offsets()
            cls = np.mod(u, self.s)
            lo = np.maximum(0, _ceil_div(-u, self.s))  # index i of the first row >= 0
            hi = np.minimum(self.n - 1, (self.out - 1 - u) // self.s)
            lo, hi = (u + lo * self.s - cls) // self.s, (u + hi * self.s - cls) // self.s  # lattice positions
        keep = hi >= lo
        cls, lo, hi = cls[keep], lo[keep], hi[keep]
        if not cls.size:
            return 0
        order = np.lexsort((lo, cls))
        cls, lo, hi = cls[order], lo[order], hi[order]
        reach = np.maximum.accumulate(hi)  # within a class: merge overlapping or touching intervals
        new = np.ones(cls.size, bool)
        new[1:] = (cls[1:] != cls[:-1]) | (lo[1:] > reach[:-1] + 1)
        starts = lo[new]
        ends = np.maximum.reduceat(hi, np.flatnonzero(new))
        return int((ends - starts + 1).sum())

    def _active_scalar(self) -> int:
        """:meth:`active` with the same arithmetic on Python ints, one tap at a time (few taps: no numpy calls)."""
        n, k, s, d, pb, out = self.n, self.k, self.s, self.d, self.pad[0], self.out
        spans = []
        for t in range(k):
            if not self.transposed:
                cls = 0
                lo = max(0, _ceil_div(pb - t * d, s))
                hi = min(out - 1, (n - 1 + pb - t * d) // s)
            else:
                u = (k - 1 - t) * d - pb  # _tap_offsets
                cls = u % s
                lo = max(0, _ceil_div(-u, s))
                hi = min(n - 1, (out - 1 - u) // s)
                lo, hi = (u + lo * s - cls) // s, (u + hi * s - cls) // s
            if hi >= lo:
                spans.append((cls, lo, hi))
        if not spans:
            return 0
        spans.sort(key=lambda span: span[:2])  # stable, as np.lexsort((lo, cls))
        total, reach = 0, None
        start = end = prev_cls = 0
        for i, (cls, lo, hi) in enumerate(spans):
            if i == 0 or cls != prev_cls or lo > cast(int, reach) + 1:  # a new merged interval
                if i:
                    total += end - start + 1
                start, end = lo, hi
            else:
                end = max(end, hi)
            reach = hi if reach is None else max(reach, hi)  # np.maximum.accumulate over all classes
            prev_cls = cls
        return total + end - start + 1

    def count_dtype(self) -> np.dtype[np.unsignedinteger]:
        """Smallest unsigned dtype that holds a row's count (at most ``k``)."""
        for limit, dt in _COUNT_DTYPES:
            if self.k <= limit:
                return dt
        return np.dtype(np.uint64)

    def _map_counts(self, j0: int, j1: int) -> IndexArray:
        """Distinct inputs of rows ``j0..j1-1`` from their maps, in chunks (taps wrapped onto one period first)."""
        wrapped, groups = self.wrapped()
        if groups is not None:
            return wrapped._map_counts(j0, j1)
        step = self.chunk_rows()
        if self.out <= step:
            return self._table[2][j0:j1]
        out = np.empty(j1 - j0, np.int64)
        for a in range(j0, j1, step):
            b = min(j1, a + step)
            out[a - j0 : b - j0] = self.slots(np.arange(a, b, dtype=np.int64))[2]
        return out

    def _period(self) -> int:
        """Period in ``j`` of a row's count outside the closed-form cases (0: none)."""
        if self.transposed:
            return self.s
        if self.mode == "symmetric":
            return 2 * self.n // math.gcd(self.s, 2 * self.n)
        if self.mode == "reflect" and self.n > 1:
            return 2 * (self.n - 1) // math.gcd(self.s, 2 * (self.n - 1))
        return 0

    def _periodic_region(self) -> tuple[int, int]:
        """Rows ``[lo, hi)`` in which the count is periodic with :meth:`_period`."""
        if not self.transposed:
            return 0, self.out
        u = self._tap_offsets()
        lo = max(0, int(u.max()))
        return min(lo, self.out), max(min(lo, self.out), min(self.out, int(u.min()) + (self.n - 1) * self.s + 1))

    def counts(self, j0: int = 0, j1: int | None = None) -> IndexArray:
        """Stored entries of rows ``j0..j1-1`` along this axis (distinct inputs read), int64.

        Closed form for convolution axes with zeros, replicate or circular padding; interior
        rows count ``k``; the rest from the per-row maps, with periodicity (reflect and
        symmetric padding, transposed axes) so that the cost does not grow with the padding.
        """
        j1 = self.out if j1 is None else j1
        j = np.arange(j0, j1, dtype=np.int64)
        n, k, s, d, pb = self.n, self.k, self.s, self.d, self.pad[0]
        if not self.transposed:
            base = j * s - pb  # input index of tap 0
            if self.mode == "zeros":
                inside: IndexArray = np.maximum(np.minimum(k - 1, (n - 1 - base) // d) - np.maximum(0, _ceil_div(-base, d))
                                                + 1, 0)
                return inside
            if self.mode == "replicate":
                if n == 1:
                    return np.ones(j.size, np.int64)
                last = np.minimum(k - 1, (n - 2 - base) // d + 1)
                unclamped: IndexArray = np.maximum(last - np.maximum(1, _ceil_div(1 - base, d)) + 1, 0)
                return 1 + unclamped
            if self.mode == "circular":
                return np.full(j.size, min(k, n // math.gcd(d, n)), np.int64)
            if self.mode == "reflect" and n == 1:
                return np.ones(j.size, np.int64)
        if self.out <= self.chunk_rows():
            return self._map_counts(j0, j1).astype(np.int64)
        out = np.empty(j.size, np.int64)
        plo, phi = self._periodic_region()
        if not self.transposed:
            lo, hi = self.interior()  # k each: no folding
            a, b = max(lo, j0), min(hi, j1)
            if a < b:
                out[a - j0 : b - j0] = k
                self._fill_periodic(out, j0, j0, a, 0, self.out)
                self._fill_periodic(out, j0, b, j1, 0, self.out)
                return out
        for a, b in ((j0, min(j1, plo)), (max(j0, plo), min(j1, phi)), (max(j0, phi), j1)):
            if a < b:
                self._fill_periodic(out, j0, a, b, plo, phi)
        return out

    def _fill_periodic(self, out: IndexArray, j0: int, a: int, b: int, plo: int, phi: int) -> None:
        """``out[a-j0 : b-j0]`` = counts of rows ``a..b-1``, tiling one period inside ``[plo, phi)``."""
        if a >= b:
            return
        period = self._period()
        inside = plo <= a and b <= phi
        if inside and 0 < period < b - a:
            one = self._map_counts(a, a + period)
            out[a - j0 : b - j0] = np.resize(one, b - a)
        else:
            out[a - j0 : b - j0] = self._map_counts(a, b)

    def entries(self) -> int:
        """Stored entries contributed along this axis: sum over rows of distinct valid inputs.

        Closed form (O(k)) for zeros, replicate and circular padding and for transposed axes;
        reflect and symmetric padding add their boundary rows one period at a time.  Nothing is
        allocated in proportion to the length of the axis.
        """
        if self.transposed:  # same entries as the forward axis it transposes (input o, output n)
            return Axis(self.out, self.k, self.s, self.d, self.pad, "zeros", self.n).entries()
        n, k, s, d, pb, out = self.n, self.k, self.s, self.d, self.pad[0], self.out
        if self.mode == "zeros":  # pairs (row j, tap t) with 0 <= j*s + t*d - pb <= n-1
            return strip_count(out, k, s, d, pb, n - 1 + pb)
        if self.mode == "replicate":  # 1 per row, +1 per tap t >= 1 that leaves both clamped ends:
            if n == 1:  # q_t >= 1 and q_{t-1} <= n-2, i.e. pb + 1 - d <= j*s + (t-1)*d <= n - 2 + pb
                return out
            return out + strip_count(out, k - 1, s, d, pb + 1 - d, n - 2 + pb)
        if self.mode == "circular":
            return out * min(k, n // math.gcd(d, n))
        if self.mode == "reflect" and n == 1:
            return out
        if out <= self.chunk_rows():
            return int(self._map_counts(0, out).sum())
        lo, hi = self.interior()
        total = (hi - lo) * k
        period = self._period()
        for a, b in ((0, lo), (hi, out)):
            if b - a > 2 * period:
                whole = (b - a) // period
                total += whole * self._sum_counts(a, a + period) + self._sum_counts(a + whole * period, b)
            else:
                total += self._sum_counts(a, b)
        return total

    def count_bytes(self) -> int:
        """Peak bytes of :meth:`entries` in closed form: 0, or one chunk of per-row maps (reflect, symmetric)."""
        if self.transposed or self.mode in ("zeros", "replicate", "circular") or self.n == 1:
            return 0
        wrapped, groups = self.wrapped()  # a kernel longer than the fold's period is mapped wrapped
        ax = wrapped if groups is not None else self
        return MAP_PAIR_BYTES * min(ax.out, ax.chunk_rows()) * ax.k

    def entries_bounds(self) -> tuple[int, int]:
        """``(lower, upper)`` bounds of :meth:`entries` in O(k): exact except for reflect and symmetric padding."""
        if self.transposed or self.mode not in ("reflect", "symmetric") or self.out <= self.chunk_rows():
            e = self.entries()
            return e, e
        lo, hi = self.interior()
        edge = self.out - (hi - lo)
        return (hi - lo) * self.k + edge, (hi - lo) * self.k + edge * min(self.k, self.n)

    def _sum_counts(self, a: int, b: int) -> int:
        step = self.chunk_rows()
        return sum(int(self._map_counts(c, min(b, c + step)).sum()) for c in range(a, b, step))


