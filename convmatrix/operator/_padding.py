"""The padding map of a plan and its transpose: a gather by the geometry's fold rule (zeros,
circular, reflect, replicate, symmetric) and the fold-add that sends each padded position back
onto the input it was read from, for whole volumes and for Dask blocks with halos."""

from __future__ import annotations

import numpy as np

from .. import _validate as V
from ..geometry import fold_index

__all__ = []


#: the adjoint of a boundary mode folds padded positions back by strided runs, up to this many ...
_FOLD_RUNS = 64


#: ... beyond, by 0/1 matrices over chunks of at most this many positions
_FOLD_CHUNK = 256


class _Padding:
    """Padding and its transpose, a base of :class:`~convmatrix.operator._plan._Plan`.

    Per axis the padded length is ``L`` and position ``m`` of the padded axis holds input
    ``fold(m - pb)`` of an axis of length ``n``, folded by ``mode`` (zeros where it reads no
    input).  The plan sets these attributes from its geometry.
    """

    n: tuple[int, ...]
    pb: tuple[int, ...]
    L: tuple[int, ...]
    nd: int
    mode: V.PaddingMode

    def pads(self) -> bool:
        """Whether the padded grid reads outside the input (otherwise :meth:`pad` returns a view)."""
        return any(pb > 0 or length - pb > n for pb, length, n in zip(self.pb, self.L, self.n, strict=False))

    def sources(self, a: int, q: np.ndarray, present: tuple[int, int | None] = (0, None)) -> np.ndarray:
        """Index, relative to ``present[0]``, of the data read at (unpadded) positions ``q`` of axis ``a``.

        Positions in ``present`` (default the input ``[0, n)``; a block with halos, possibly
        periodic ones outside ``[0, n)``) are read where they are, the others by the fold rule;
        -1 reads a zero.
        """
        lo, hi = present[0], self.n[a] if present[1] is None else present[1]
        folded = fold_index(q, self.n[a], self.mode)
        return np.where((q >= lo) & (q < hi), q - lo, np.where(folded >= 0, folded - lo, -1))

    @staticmethod
    def gather(x: np.ndarray, lead: int, index: list[np.ndarray]) -> np.ndarray:
        """``x`` indexed along each spatial axis (after ``lead`` axes) by ``index``; -1 gives zeros.

        One copy when every axis reads a contiguous run (zeros padding, interior blocks: a
        view when nothing is padded), else one ``take`` per axis that is not such a run.
        """
        # per axis (first position, length, first source) when the reads are one increasing run
        runs: list[tuple[int, int, int] | None] = []
        for idx in index:
            ok = idx >= 0
            v = idx[ok]
            first = int(np.argmax(ok))
            contiguous = v.size > 0 and bool(np.all(np.diff(v) == 1)) and bool(ok[first:first + v.size].all())
            runs.append((first, v.size, int(v[0])) if contiguous else None)
        plain = [r for r in runs if r is not None]
        if len(plain) == len(runs):
            src = tuple(slice(v0, v0 + cnt) for _, cnt, v0 in plain)
            block = x[(slice(None),) * lead + src]
            if all(cnt == idx.size for (_, cnt, _), idx in zip(plain, index, strict=False)):
                return block
            out = np.zeros(x.shape[:lead] + tuple(idx.size for idx in index), x.dtype)
            out[(slice(None),) * lead + tuple(slice(s0, s0 + cnt) for s0, cnt, _ in plain)] = block
            return out
        for a, idx in enumerate(index):
            axis = lead + a
            run = runs[a]
            if run is not None and run[1] == idx.size:  # a plain run along this axis: a view
                sl: list[slice | np.ndarray] = [slice(None)] * x.ndim
                sl[axis] = slice(run[2], run[2] + idx.size)
                x = x[tuple(sl)]
                continue
            ok = idx >= 0
            x = np.take(x, np.where(ok, idx, 0), axis=axis)
            if not ok.all():
                sl = [slice(None)] * x.ndim
                sl[axis] = np.nonzero(~ok)[0]
                x[tuple(sl)] = 0
        return x

    def fold_add(self, G: np.ndarray, lead: int, m0: tuple[int, ...], lo: tuple[int, ...],
                 hi: tuple[int, ...]) -> np.ndarray:
        """Transpose of the gather: padded positions ``m0 + arange`` of ``G`` added onto the inputs they
        were read from, keeping inputs in ``[lo, hi)`` per axis (result axis length ``hi - lo``)."""
        maps: list[tuple[np.ndarray, np.ndarray, tuple[slice, slice] | None]] = []
        for a in range(self.nd):
            q = m0[a] + np.arange(G.shape[lead + a]) - self.pb[a]
            i = fold_index(q, self.n[a], self.mode)
            keep = (i >= lo[a]) & (i < hi[a])
            direct = keep & (i == q)  # read without folding: a contiguous run
            d = np.nonzero(direct)[0]
            run = (slice(q[d[0]] - lo[a], q[d[-1]] - lo[a] + 1), slice(d[0], d[-1] + 1)) if d.size else None
            maps.append((i, keep & ~direct, run))
        if not any(f.any() for _, f, _ in maps):  # nothing folded (zeros padding): one copy of the interior
            out = np.zeros(G.shape[:lead] + tuple(h - b0 for b0, h in zip(lo, hi, strict=False)), G.dtype)
            runs = [run for _, _, run in maps if run is not None]
            if len(runs) == len(maps):
                out[(slice(None),) * lead + tuple(r[0] for r in runs)] = \
                    G[(slice(None),) * lead + tuple(r[1] for r in runs)]
            return out
        for a, (i, fold_mask, run) in enumerate(maps):
            axis = lead + a
            shape = list(G.shape)
            shape[axis] = hi[a] - lo[a]
            if not fold_mask.any() and run is not None and run[1] == slice(0, G.shape[axis]) \
                    and shape[axis] == G.shape[axis]:
                continue
            out = np.zeros(shape, G.dtype)
            if run is not None:
                dst = [slice(None)] * G.ndim
                dst[axis] = run[0]
                src = [slice(None)] * G.ndim
                src[axis] = run[1]
                out[tuple(dst)] = G[tuple(src)]
            folded = np.nonzero(fold_mask)[0]
            if folded.size:  # the positions a boundary mode folds back
                self._fold_into(G, out, axis, folded, i[folded] - lo[a])
            G = out
        return G

    @staticmethod
    def _fold_into(G: np.ndarray, out: np.ndarray, axis: int, src: np.ndarray, dst: np.ndarray) -> None:
        """``out[.., dst[j], ..] += G[.., src[j], ..]`` along ``axis`` (``src`` increasing, ``dst`` may repeat).

        A boundary mode folds runs of padded positions onto runs of inputs with a constant step
        (+1 circular, -1 mirrored, 0 replicated): each run is one in-place add of strided views (a
        sum for step 0), so nothing slab-sized is copied.  Many short runs (a mirror much wider
        than the input) go through small 0/1 matrices instead, on chunks of at most an eighth of
        the axis so the slabs they copy stay small.
        """
        nd = G.ndim

        def on(index: int | slice | np.ndarray) -> tuple[int | slice | np.ndarray, ...]:
            sl: list[int | slice | np.ndarray] = [slice(None)] * nd
            sl[axis] = index
            return tuple(sl)

        if src.size > 1:
            ds, dd = np.diff(src), np.diff(dst)
            starts = np.concatenate(([0], np.nonzero((ds[1:] != ds[:-1]) | (dd[1:] != dd[:-1]))[0] + 2))
        else:
            starts = np.zeros(1, np.int64)
        if starts.size <= _FOLD_RUNS:
            ends = np.append(starts[1:], src.size)
            for r0, r1 in zip(starts.tolist(), ends.tolist(), strict=False):
                s0, d0 = int(src[r0]), int(dst[r0])
                if r1 - r0 == 1:
                    out[on(slice(d0, d0 + 1))] += G[on(slice(s0, s0 + 1))]
                    continue
                s_step, d_step = int(src[r0 + 1] - src[r0]), int(dst[r0 + 1] - dst[r0])
                s_run = slice(s0, int(src[r1 - 1]) + 1, s_step)
                if d_step == 0:
                    out[on(d0)] += G[on(s_run)].sum(axis=axis)
                else:
                    stop = int(dst[r1 - 1]) + (1 if d_step > 0 else -1)
                    out[on(slice(d0, stop if stop >= 0 else None, d_step))] += G[on(s_run)]
            return
        chunk = max(1, min(_FOLD_CHUNK, G.shape[axis] // 8))
        for c0 in range(0, src.size, chunk):
            uniq, inv = np.unique(dst[c0:c0 + chunk], return_inverse=True)
            onehot = (inv[None, :] == np.arange(uniq.size)[:, None]).astype(G.dtype)
            contrib = np.tensordot(onehot, np.take(G, src[c0:c0 + chunk], axis=axis), axes=([1], [axis]))
            out[on(uniq)] += np.moveaxis(contrib, 0, axis)

    def pad(self, x: np.ndarray) -> np.ndarray:
        """``(B, C, *n) -> (B, C, *L)``: position ``m`` holds input ``fold(m - p_before)``."""
        return self.gather(x, 2, [self.sources(a, np.arange(self.L[a]) - self.pb[a]) for a in range(self.nd)])

    def unpad(self, G: np.ndarray) -> np.ndarray:
        """Transpose of :meth:`pad`: ``(B, C, *L) -> (B, C, *n)``, folded positions added back."""
        return self.fold_add(G, 2, (0,) * self.nd, (0,) * self.nd, self.n)
