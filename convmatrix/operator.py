"""Matrix-free convolution operators: ``conv_matrix`` without the matrix.

:class:`ConvOperator` and :class:`ConvTransposeOperator` are
:class:`scipy.sparse.linalg.LinearOperator` objects that apply exactly the linear map of
:func:`convmatrix.conv_matrix` / :func:`convmatrix.conv_transpose_matrix` (same keywords, same
geometry object, same vector layout) in memory ``O(input + output)``:

* the input is padded once by the geometry's fold rule (:func:`convmatrix.geometry.fold_index`:
  zeros, circular, reflect, replicate, symmetric);
* ``method="direct"``: for each kernel tap a strided view of the padded input is copied into an
  im2col block of at most 8 MiB and one BLAS GEMM per vector and group contracts taps and input
  channels; single-channel and depthwise kernels accumulate tap by tap in cache-sized blocks
  instead;
* ``method="fft"``: the stride-1 correlation of the padded input with the dilated kernel by
  ``scipy.fft`` (``rfftn`` for real data) and a per-frequency channel contraction, then the
  strided samples; ``method="auto"`` picks the cheaper by a flop/byte estimate;
* the adjoint scatters the taps back (transposed strided views, a loop over taps, never over
  pixels) and folds the padded gradient back onto the input: the transpose of the padding map.

Dask arrays (optional extra ``dask``) are accepted by ``matvec``/``rmatvec``/``matmat``/
``rmatmat`` and by :func:`apply`: a volume is convolved block by block with
``dask.array.map_overlap`` and a batch of vectors one batch chunk per task.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import numpy as np
from scipy.sparse.linalg import LinearOperator

from . import _validate as V
from .geometry import Geometry, conv_geometry, conv_transpose_geometry, fold_index

__all__ = ["ConvOperator", "ConvTransposeOperator", "apply"]

METHODS = ("auto", "direct", "fft")
#: bytes of one im2col block (taps x input channels x output positions)
_COL_BYTES = 8 * 2**20
#: bytes of one output block in the tap-accumulation path (kept cache-sized)
_TAP_BYTES = 2 * 2**20
#: largest kernel spectrum (bytes) ``method="auto"`` caches without comparing to the data size
_SPEC_BYTES = 256 * 2**20
#: bytes of the vectors (input or output, the larger) of one group of columns in matmat
_BATCH_BYTES = 4 * 2**20
#: kernel spectra (one per FFT grid and conjugation) kept per operator
_SPEC_CACHE = 6
#: the adjoint of a boundary mode folds padded positions back by strided runs, up to this many ...
_FOLD_RUNS = 64
#: ... beyond, by 0/1 matrices over chunks of at most this many positions
_FOLD_CHUNK = 256

_DASK_HINT = "pip install convmatrix[dask]"


# ----------------------------------------------------------------------------- validation helpers
def _method_name(method: Any) -> str:
    if not isinstance(method, str):
        raise TypeError(
            f"method must be one of 'auto', 'direct', 'fft'; got {method!r} of type {type(method).__name__}"
        )
    if method not in METHODS:
        raise ValueError(f"method must be one of 'auto', 'direct', 'fft'; got {method!r}")
    return method


def _check_flip(flip: Any) -> bool:
    return V.as_bool(flip, "flip")


def _operator_dtype(matrix_dtype: np.dtype) -> np.dtype:
    """Floating dtype the operator computes in: the matrix dtype, integers promoted to float64."""
    return matrix_dtype if matrix_dtype.kind in "fc" else np.dtype(np.float64)


def _is_dask(x: Any) -> bool:
    mod = type(x).__module__
    return mod.startswith("dask.") and hasattr(x, "chunks") and hasattr(x, "dask")


def _import_dask():
    try:
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - dask is installed in CI
        raise ImportError(f"dask arrays need the optional dependency dask: {_DASK_HINT}") from exc
    return da


# ----------------------------------------------------------------------------- the numeric core
class _Workspace:
    """One scratch buffer reused by the blocks of a call (block sizes only shrink at the end)."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype, self.buf = dtype, None

    def get(self, shape: tuple[int, ...]) -> np.ndarray:
        size = math.prod(shape)
        if self.buf is None or self.buf.size < size:
            self.buf = None  # free the old buffer before allocating the new one
            self.buf = np.empty(size, self.dtype)
        return self.buf[:size].reshape(shape)


class _Plan:
    """The convolution core shared by every operator: ``y = correlate(pad(x))`` and its transpose.

    ``weight`` is the engine weight ``(C_out, C_in/groups, *k)`` (already flipped if asked);
    ``n``/``out`` the spatial input/output shapes of the *convolution* (for a transposed
    convolution the roles are swapped by the caller).  Per axis the padded length is
    ``L = (out-1)*s + d*(k-1) + 1`` (exactly what the output reads; a longer padded input is
    never built), position ``m`` of the padded axis holding input ``fold(m - p_before)``.
    """

    def __init__(self, weight: np.ndarray, n, out, stride, dilation, pad_before, mode: str, groups: int,
                 method: str, budget: int | None = None) -> None:
        self.weight = np.ascontiguousarray(weight)
        self.budget = budget  # bytes one whole-volume call may use at its peak (None: no limit)
        self.n, self.out = tuple(n), tuple(out)
        self.s, self.d, self.pb = tuple(stride), tuple(dilation), tuple(pad_before)
        self.mode, self.g, self.method = mode, groups, method
        self.k = tuple(weight.shape[2:])
        self.nd = len(self.k)
        self.cout, self.cg = weight.shape[0], weight.shape[1]
        self.og, self.cin = self.cout // groups, self.cg * groups
        self.E = tuple(d * (k - 1) + 1 for k, d in zip(self.k, self.d))
        self.L = tuple((o - 1) * s + e for o, s, e in zip(self.out, self.s, self.E))
        self._cache: dict = {}

    def __getstate__(self) -> dict:  # spectra are rebuilt where needed (e.g. on a Dask worker)
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    # ---------------------------------------------------------------- weights in the layouts used
    def _w(self, conj: bool, dtype: np.dtype) -> np.ndarray:
        conj = conj and self.weight.dtype.kind == "c"  # a real kernel is its own conjugate: one cache entry
        key = ("w", conj, np.dtype(dtype).str)
        if key not in self._cache:
            w = np.conj(self.weight) if conj and self.weight.dtype.kind == "c" else self.weight
            self._cache[key] = w.astype(dtype, copy=False)
        return self._cache[key]

    def _mat(self, conj: bool, dtype: np.dtype, transposed: bool) -> np.ndarray:
        """``(g, og, K*cg)`` (taps major) or its ``(g, K*cg, og)`` transpose, contiguous."""
        conj = conj and self.weight.dtype.kind == "c"
        key = ("mat", conj, np.dtype(dtype).str, transposed)
        if key not in self._cache:
            K = math.prod(self.k)
            w = self._w(conj, dtype).reshape(self.g, self.og, self.cg, K).transpose(0, 1, 3, 2)
            w = w.reshape(self.g, self.og, K * self.cg)
            self._cache[key] = np.ascontiguousarray(w.transpose(0, 2, 1) if transposed else w)
        return self._cache[key]

    # ---------------------------------------------------------------- blocking
    def _slices(self, t: tuple[int, ...], r0: int, r1: int, out: tuple[int, ...]) -> tuple[slice, ...]:
        """Padded-input positions read by tap ``t`` for output rows ``r0:r1`` (all of the other axes)."""
        sl = []
        for a in range(self.nd):
            lo, cnt = (r0, r1 - r0) if a == 0 else (0, out[a])
            start = t[a] * self.d[a] + lo * self.s[a]
            sl.append(slice(start, start + (cnt - 1) * self.s[a] + 1, self.s[a]))
        return tuple(sl)

    @staticmethod
    def _blocks(batch: int, out: tuple[int, ...], row_bytes: int, budget: int):
        """(b0, b1, r0, r1): batch and first-axis row ranges whose block stays within ``budget``."""
        per_row = max(1, row_bytes * math.prod(out[1:]))
        rows = min(out[0], max(1, budget // per_row))
        bb = min(batch, max(1, budget // (per_row * out[0]))) if rows == out[0] else 1
        for b0 in range(0, batch, bb):
            for r0 in range(0, out[0], rows):
                yield b0, min(batch, b0 + bb), r0, min(out[0], r0 + rows)

    # ---------------------------------------------------------------- choice of method
    def _fft_shape(self, out: tuple[int, ...]) -> tuple[int, ...]:
        from scipy.fft import next_fast_len

        return tuple(next_fast_len((o - 1) * s + e, True) for o, s, e in zip(out, self.s, self.E))

    def use_fft(self, batch: int, out: tuple[int, ...], dt: Any, role: str = "forward") -> bool:
        """Whether a correlation (``role="forward"``) or its transpose of ``batch`` vectors goes by FFT.

        ``method="auto"`` takes the cheaper by a cost estimate, among the routes whose predicted peak
        (:meth:`peak_bytes`, whole-volume calls only) fits in ``self.budget``.
        """
        if self.method != "auto":
            return self.method == "fft"
        dt = np.dtype(dt)
        key = ("fft", batch, tuple(out), dt.str, role, self.budget)  # memoised: O(1), but on every product
        if key not in self._cache:
            self._cache[key] = self._choose_fft(batch, tuple(out), dt, role)
        return self._cache[key]

    def _choose_fft(self, batch: int, out: tuple[int, ...], dt: np.dtype, role: str) -> bool:
        itemsize = dt.itemsize
        if self.budget is not None and tuple(out) == self.out:
            fits_fft = self.peak_bytes(role, batch, dt, True) <= self.budget
            fits_direct = self.peak_bytes(role, batch, dt, False) <= self.budget
            if fits_fft != fits_direct:
                return fits_fft
        # estimated nanoseconds, calibrated on the reference machine (benchmarks/bench_operator.py)
        K, P = math.prod(self.k), math.prod(out)
        if self.cg == 1 and self.og == 1:  # tap accumulation: memory-bound, ~1.2 ns per multiply-add
            direct = 1.2 * batch * self.g * K * P + 3e3 * K
        else:  # im2col copy ~0.5 ns per element + BLAS ~0.0175 ns per multiply-add
            direct = 0.5 * batch * self.g * K * self.cg * P + 0.0175 * batch * self.cout * self.cg * K * P + 3e3 * K
        M = self._fft_shape(out)
        m = math.prod(M)
        F = m // M[-1] * (M[-1] // 2 + 1)
        # transforms ~0.3 ns per point and log2 in cache, ~0.8 ns beyond (memory-bound); the per-frequency
        # contraction streams the kernel spectrum
        per_point = 0.3 if m * itemsize <= 4 * 2**20 else 0.8
        fft = per_point * batch * (self.cin + self.cout) * m * max(1.0, math.log2(m))
        fft += (1.0 + 0.25 * batch) * self.cout * self.cg * F + 1e5
        spectrum = self.cout * self.cg * F * 2 * itemsize
        data = batch * (self.cin * math.prod(self.L) + self.cout * P) * itemsize
        if spectrum > max(_SPEC_BYTES, 4 * data):
            return False
        return fft < 0.7 * direct

    # ---------------------------------------------------------------- predicted memory
    def pads(self) -> bool:
        """Whether the padded grid reads outside the input (otherwise :meth:`pad` returns a view)."""
        return any(pb > 0 or length - pb > n for pb, length, n in zip(self.pb, self.L, self.n))

    def _work_bytes(self, batch: int, it: int) -> int:
        """Scratch of the direct route for whole-volume calls: the block of :meth:`_blocks` and a GEMM result."""
        tap = self.cg == 1 and self.og == 1
        row, budget = (self.g * it, _TAP_BYTES) if tap else (self.g * math.prod(self.k) * self.cg * it, _COL_BYTES)
        per_row = max(1, row * math.prod(self.out[1:]))
        rows = min(self.out[0], max(1, budget // per_row))
        bb = min(batch, max(1, budget // (per_row * self.out[0]))) if rows == self.out[0] else 1
        work = per_row * rows * bb
        if not tap and rows < self.out[0]:  # partial rows: the GEMM result is a temporary
            work += self.og * rows * math.prod(self.out[1:]) * it
        return work

    def spectrum_bytes(self, dt: Any) -> int:
        """Bytes of one cached kernel spectrum (``method="fft"``) for whole-volume calls in ``dt``."""
        dt = np.dtype(dt)
        cit = dt.itemsize if dt.kind == "c" else 2 * dt.itemsize
        M = self._fft_shape(self.out)
        m = math.prod(M)
        F = m if dt.kind == "c" else m // M[-1] * (M[-1] // 2 + 1)
        return self.cout * self.cg * F * cit

    def peak_bytes(self, role: str, batch: int, dt: Any, fft: bool, copy_input: bool = True) -> int:
        """Predicted peak bytes (numpy buffers) of :meth:`forward` (``role="forward"``) or :meth:`transpose`
        of ``batch`` whole volumes computed in ``dt``, by FFT or directly.

        Closed form, O(number of axes): the contiguous copy of the input (``copy_input``), the
        padded volume (one more copy for the folds of a boundary mode), the result, the direct
        route's scratch (:meth:`_work_bytes`) or the FFT route's transforms, per-frequency
        contraction and the building of one kernel spectrum, the cached weights and the per-axis
        index vectors.  Each phase counts the arrays alive together at its worst point, so the
        prediction is an upper bound (with a 1/16 margin), measured within about 2x of the traced
        peak.  Spectra cached by earlier calls are not counted (see :meth:`spectrum_bytes`).
        """
        peak = self._peak(role, batch, np.dtype(dt), fft, copy_input)
        return peak + peak // 16

    def _peak(self, role: str, batch: int, dt: np.dtype, fft: bool, copy_input: bool) -> int:
        it = dt.itemsize
        cplx = dt.kind == "c"
        cit = it if cplx else 2 * it
        Xn = batch * self.cin * math.prod(self.n) * it
        Yo = batch * self.cout * math.prod(self.out) * it
        Xl = batch * self.cin * math.prod(self.L) * it
        pads = self.pads()
        folds = pads and self.mode != "zeros"
        P = Xl if pads else 0  # the padded volume (a view of the input when nothing is padded)
        pad_peak = 2 * Xl if folds else P
        unpad = Xl + (2 * Xl if folds else Xn)  # the padded gradient, then the folded copies or the interior
        # cached weight layouts; index vectors of every axis (kept) and of the longest (being built)
        # (and 256 KiB of small arrays and bookkeeping)
        fixed = 3 * self.cout * self.cg * math.prod(self.k) * it + 8 * sum(self.L) + 34 * max(self.L) + 2**18
        src = (Xn if role == "forward" else Yo) if copy_input else 0
        if not fft:
            work = self._work_bytes(batch, it)
            if role == "forward":
                return src + max(pad_peak, P + Yo + work) + fixed
            return src + max(Xl + work, unpad) + fixed
        M = self._fft_shape(self.out)
        m = math.prod(M)
        F = m if cplx else m // M[-1] * (M[-1] // 2 + 1)
        fixed += self.cout * self.cg * m * it + 2 * self.spectrum_bytes(dt)  # building one spectrum
        Fin, Fout = batch * self.cin * F * cit, batch * self.cout * F * cit
        Min, Mout = batch * self.cin * m * it, batch * self.cout * m * it
        single = self.cg == 1 and self.og == 1
        if role == "forward":
            contract = Fout if single else Fin + 2 * Fout
            work = max(Min + Fin, Fin + contract, Fin + Fout + Mout + Yo)
            return src + max(pad_peak, P + work) + fixed
        contract = Fin if single else Fout + 2 * Fin
        work = max(Mout + Fout + contract, Mout + Fout + Fin + Min + Xl)
        return src + max(work, unpad) + fixed

    # ---------------------------------------------------------------- padding (a gather) and its transpose (a fold-add)
    def sources(self, a: int, q: np.ndarray, present: tuple[int, int] = (0, None)) -> np.ndarray:
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
        runs = []  # per axis (first position, length, first source) when the reads are one increasing run
        for idx in index:
            ok = idx >= 0
            v = idx[ok]
            first = int(np.argmax(ok))
            contiguous = v.size > 0 and bool(np.all(np.diff(v) == 1)) and bool(ok[first:first + v.size].all())
            runs.append((first, v.size, int(v[0])) if contiguous else None)
        if all(r is not None for r in runs):
            src = tuple(slice(v0, v0 + cnt) for _, cnt, v0 in runs)
            block = x[(slice(None),) * lead + src]
            if all(cnt == idx.size for (_, cnt, _), idx in zip(runs, index)):
                return block
            out = np.zeros(x.shape[:lead] + tuple(idx.size for idx in index), x.dtype)
            out[(slice(None),) * lead + tuple(slice(s0, s0 + cnt) for s0, cnt, _ in runs)] = block
            return out
        for a, idx in enumerate(index):
            axis = lead + a
            if runs[a] is not None and runs[a][1] == idx.size:  # a plain run along this axis: a view
                sl = [slice(None)] * x.ndim
                sl[axis] = slice(runs[a][2], runs[a][2] + idx.size)
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
        maps = []
        for a in range(self.nd):
            q = m0[a] + np.arange(G.shape[lead + a]) - self.pb[a]
            i = fold_index(q, self.n[a], self.mode)
            keep = (i >= lo[a]) & (i < hi[a])
            direct = keep & (i == q)  # read without folding: a contiguous run
            d = np.nonzero(direct)[0]
            run = (slice(q[d[0]] - lo[a], q[d[-1]] - lo[a] + 1), slice(d[0], d[-1] + 1)) if d.size else None
            maps.append((i, keep & ~direct, run))
        if not any(f.any() for _, f, _ in maps):  # nothing folded (zeros padding): one copy of the interior
            out = np.zeros(G.shape[:lead] + tuple(h - l for l, h in zip(lo, hi)), G.dtype)
            if all(run is not None for _, _, run in maps):
                out[(slice(None),) * lead + tuple(r[0] for _, _, r in maps)] = \
                    G[(slice(None),) * lead + tuple(r[1] for _, _, r in maps)]
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

        def on(index) -> tuple:
            sl = [slice(None)] * nd
            sl[axis] = index
            return tuple(sl)

        if src.size > 1:
            ds, dd = np.diff(src), np.diff(dst)
            starts = np.concatenate(([0], np.nonzero((ds[1:] != ds[:-1]) | (dd[1:] != dd[:-1]))[0] + 2))
        else:
            starts = np.zeros(1, np.int64)
        if starts.size <= _FOLD_RUNS:
            ends = np.append(starts[1:], src.size)
            for r0, r1 in zip(starts.tolist(), ends.tolist()):
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

    # ---------------------------------------------------------------- direct correlation and transpose
    def correlate(self, P: np.ndarray, out: tuple[int, ...], conj: bool, method: str | None = None) -> np.ndarray:
        """Strided, dilated, grouped correlation of a padded ``(B, C_in, *Lp)`` block: ``(B, C_out, *out)``."""
        dt = np.result_type(P.dtype, self.weight.dtype)
        fft = self.use_fft(P.shape[0], out, dt, "forward") if method is None else method == "fft"
        return self._correlate_fft(P, out, conj, dt) if fft else self._correlate_direct(P, out, conj, dt)

    def correlate_t(self, Y: np.ndarray, length: tuple[int, ...], conj: bool, method: str | None = None) -> np.ndarray:
        """Transpose of :meth:`correlate` (no conjugation unless ``conj``): ``(B, C_out, *o) -> (B, C_in, *length)``."""
        dt = np.result_type(Y.dtype, self.weight.dtype)
        out = Y.shape[2:]
        fft = self.use_fft(Y.shape[0], out, dt, "transpose") if method is None else method == "fft"
        return self._correlate_t_fft(Y, length, conj, dt) if fft else self._correlate_t_direct(Y, length, conj, dt)

    def _correlate_direct(self, P, out, conj, dt):
        B, g, og, cg, nd = P.shape[0], self.g, self.og, self.cg, self.nd
        ws = _Workspace(dt)
        taps = list(np.ndindex(*self.k))
        Pg = P.reshape((B, g, cg) + P.shape[2:])
        Y = np.empty((B, g, og) + tuple(out), dt)
        w = self._w(conj, dt)
        if cg == 1 and og == 1:  # single channel / depthwise: accumulate tap by tap, cache-sized blocks
            wt = w.reshape(g, -1).T.reshape((len(taps), 1, g) + (1,) * nd)
            for b0, b1, r0, r1 in self._blocks(B, out, g * dt.itemsize, _TAP_BYTES):
                acc = Y[b0:b1, :, 0, r0:r1]
                tmp = ws.get(acc.shape)
                for i, t in enumerate(taps):
                    view = Pg[(slice(b0, b1), slice(None), 0) + self._slices(t, r0, r1, out)]
                    if i == 0:
                        np.multiply(view, wt[i], out=acc)
                    else:
                        np.multiply(view, wt[i], out=tmp)
                        acc += tmp
            return Y.reshape((B, self.cout) + tuple(out))
        K = len(taps)
        W = self._mat(conj, dt, False)  # (g, og, K*cg)
        for b0, b1, r0, r1 in self._blocks(B, out, g * K * cg * dt.itemsize, _COL_BYTES):
            blk = (r1 - r0,) + tuple(out[1:])
            cols = ws.get((b1 - b0, g, K, cg) + blk)
            for i, t in enumerate(taps):  # im2col, one strided copy per tap
                cols[:, :, i] = Pg[(slice(b0, b1), slice(None), slice(None)) + self._slices(t, r0, r1, out)]
            cols = cols.reshape(b1 - b0, g, K * cg, math.prod(blk))
            whole = r0 == 0 and r1 == out[0]
            dst = Y[b0:b1].reshape(b1 - b0, g, og, math.prod(blk)) if whole else None
            for b, gi in np.ndindex(b1 - b0, g):  # one plain GEMM per vector and group (stacked matmul
                if whole:                         # with a broadcast weight can miss BLAS)
                    np.matmul(W[gi], cols[b, gi], out=dst[b, gi])
                else:
                    Y[b0 + b, gi, :, r0:r1] = np.matmul(W[gi], cols[b, gi]).reshape((og,) + blk)
        return Y.reshape((B, self.cout) + tuple(out))

    def _correlate_t_direct(self, Y, length, conj, dt):
        B, g, og, cg, nd = Y.shape[0], self.g, self.og, self.cg, self.nd
        ws = _Workspace(dt)
        out = Y.shape[2:]
        taps = list(np.ndindex(*self.k))
        Yg = Y.reshape((B, g, og) + tuple(out))
        G = np.zeros((B, g, cg) + tuple(length), dt)
        w = self._w(conj, dt)
        if cg == 1 and og == 1:
            wt = w.reshape(g, -1).T.reshape((len(taps), 1, g) + (1,) * nd)
            for b0, b1, r0, r1 in self._blocks(B, out, g * dt.itemsize, _TAP_BYTES):
                src = Yg[b0:b1, :, 0, r0:r1]
                tmp = ws.get(src.shape)
                for i, t in enumerate(taps):
                    np.multiply(src, wt[i], out=tmp)
                    G[(slice(b0, b1), slice(None), 0) + self._slices(t, r0, r1, out)] += tmp
            return G.reshape((B, self.cin) + tuple(length))
        K = len(taps)
        WT = self._mat(conj, dt, True)  # (g, K*cg, og)
        for b0, b1, r0, r1 in self._blocks(B, out, g * K * cg * dt.itemsize, _COL_BYTES):
            blk = (r1 - r0,) + tuple(out[1:])
            src = Yg[b0:b1, :, :, r0:r1].reshape(b1 - b0, g, og, math.prod(blk))
            cols = ws.get((b1 - b0, g, K * cg, math.prod(blk)))
            for b, gi in np.ndindex(b1 - b0, g):
                np.matmul(WT[gi], src[b, gi], out=cols[b, gi])
            cols = cols.reshape((b1 - b0, g, K, cg) + blk)
            for i, t in enumerate(taps):  # col2im, one strided scatter per tap
                G[(slice(b0, b1), slice(None), slice(None)) + self._slices(t, r0, r1, out)] += cols[:, :, i]
        return G.reshape((B, self.cin) + tuple(length))

    # ---------------------------------------------------------------- FFT correlation and transpose
    def _spectrum(self, M: tuple[int, ...], conj: bool, real: bool, reverse: bool, dt: np.dtype,
                  transposed: bool = False) -> np.ndarray:
        """Kernel spectrum ``(F, g, og, cg)`` (``transposed``: ``(F, g, cg, og)``) on the grid ``M``: dilated
        kernel, reversed for the forward; contiguous and cached."""
        import scipy.fft as fft

        conj = conj and self.weight.dtype.kind == "c"
        key = ("spec", M, conj, real, reverse, np.dtype(dt).str, transposed)
        if key in self._cache:
            return self._cache[key]
        axes = tuple(range(2, 2 + self.nd))
        w = self._w(conj, dt)
        wd = np.zeros(w.shape[:2] + M, dt)
        wd[(slice(None),) * 2 + tuple(slice(0, e, d) for e, d in zip(self.E, self.d))] = w
        if real:
            S = fft.rfftn(wd, s=M, axes=axes)
            if reverse:  # sum_u w[u] e^{+i f u} is the conjugate for a real kernel
                S = np.conj(S)
        else:
            if reverse:  # place tap u at (-u) mod M
                wd = np.roll(np.flip(wd, axis=axes), 1, axis=axes)
            S = fft.fftn(wd, s=M, axes=axes)
        F = math.prod(S.shape[2:])
        S = np.ascontiguousarray(S.reshape(self.g, self.og, self.cg, F).transpose((3, 0, 2, 1) if transposed
                                                                                 else (3, 0, 1, 2)))
        spectra = [k for k in self._cache if k[0] == "spec"]
        if len(spectra) >= _SPEC_CACHE:  # Dask blocks of many shapes: keep the most recent grids only
            del self._cache[spectra[0]]
        self._cache[key] = S
        return S

    def _contract(self, S: np.ndarray, X: np.ndarray, c_in: int, c_out: int) -> np.ndarray:
        """Per-frequency channel contraction: ``S (F, g, c_out, c_in)``, ``X (B, g*c_in, *F)``."""
        B = X.shape[0]
        fshape = X.shape[2:]
        F = math.prod(fshape)
        if c_in == 1 and c_out == 1:
            return (X.reshape(B, self.g, F) * S.reshape(F, self.g).T[None]).reshape((B, self.g) + fshape)
        Xf = np.ascontiguousarray(X.reshape(B, self.g, c_in, F).transpose(3, 1, 2, 0))  # (F, g, c_in, B)
        Yf = np.matmul(S, Xf)  # (F, g, c_out, B)
        return np.ascontiguousarray(Yf.transpose(3, 1, 2, 0)).reshape((B, self.g * c_out) + fshape)

    def _correlate_fft(self, P, out, conj, dt):
        import scipy.fft as fft

        axes = tuple(range(2, 2 + self.nd))
        need = tuple((o - 1) * s + e for o, s, e in zip(out, self.s, self.E))
        P = P[(slice(None),) * 2 + tuple(slice(0, m) for m in need)]
        M = self._fft_shape(out)
        real = dt.kind != "c"
        Ph = fft.rfftn(P, s=M, axes=axes) if real else fft.fftn(P, s=M, axes=axes)
        S = self._spectrum(M, conj, real, True, dt)
        Yh = self._contract(S, Ph, self.cg, self.og)
        y = fft.irfftn(Yh, s=M, axes=axes) if real else fft.ifftn(Yh, s=M, axes=axes)
        y = y[(slice(None),) * 2 + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, self.s))]
        return np.ascontiguousarray(y, dtype=dt)

    def _correlate_t_fft(self, Y, length, conj, dt):
        import scipy.fft as fft

        axes = tuple(range(2, 2 + self.nd))
        out = Y.shape[2:]
        M = self._fft_shape(out)
        real = dt.kind != "c"
        up = np.zeros(Y.shape[:2] + M, dt)
        up[(slice(None),) * 2 + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, self.s))] = Y
        Uh = fft.rfftn(up, axes=axes) if real else fft.fftn(up, axes=axes)
        S = self._spectrum(M, conj, real, False, dt, transposed=True)  # (F, g, cg, og)
        Gh = self._contract(S, Uh, self.og, self.cg)
        G = fft.irfftn(Gh, s=M, axes=axes) if real else fft.ifftn(Gh, s=M, axes=axes)
        res = np.zeros(G.shape[:2] + tuple(length), dt)
        keep = tuple(slice(0, min(m, l)) for m, l in zip(M, length))
        res[(slice(None),) * 2 + keep] = G[(slice(None),) * 2 + keep]
        return res

    # ---------------------------------------------------------------- whole maps (numpy)
    def forward(self, x: np.ndarray, conj: bool) -> np.ndarray:
        """``(B, C_in, *n) -> (B, C_out, *out)``."""
        return self.correlate(self.pad(x), self.out, conj)

    def transpose(self, y: np.ndarray, conj: bool) -> np.ndarray:
        """``(B, C_out, *out) -> (B, C_in, *n)``: the transpose (``conj``: the adjoint)."""
        return self.unpad(self.correlate_t(y, self.L, conj))


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


def _plan_chunks(plan: _Plan, a: int, candidates, extra=None) -> list[int]:
    """Input chunk boundaries along axis ``a`` (from ``candidates``), merged until every chunk is valid."""
    n = plan.n[a]
    size, first, last = _axis_limits(plan, a)

    def ok(x0: int, x1: int) -> bool:
        if x1 - x0 < size or (x0 == 0 and x1 - x0 < first) or (x1 == n and x1 - x0 < last):
            return False
        j0, j1 = _window_range(plan, a, x0, x1)
        return j1 > j0 and (extra is None or extra(j1 - j0))

    kept = [0]
    for b in sorted(set(int(c) for c in candidates)):
        if 0 < b < n and ok(kept[-1], b) and n - b >= max(size, last):
            kept.append(b)
    while len(kept) > 1 and not ok(kept[-1], n):
        kept.pop()
    return kept + [n]


def _sizes(bounds: list[int]) -> tuple[int, ...]:
    return tuple(int(b - a) for a, b in zip(bounds[:-1], bounds[1:]))


def _wrap(da, arr, axis: int, left: int, right: int):
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
    return da.concatenate(pieces, axis=axis).rechunk({axis: tuple(chunks)})


def _dask_forward(plan: _Plan, x, conj: bool):
    """``(C_in, *n)`` dask volume -> ``(C_out, *out)`` with one ``map_overlap``."""
    da = _import_dask()
    nd = plan.nd
    dt = np.result_type(x.dtype, plan.weight.dtype)
    bounds = [_plan_chunks(plan, a, np.cumsum(x.chunks[1 + a])[:-1]) for a in range(nd)]
    x = x.astype(dt).rechunk(((plan.cin,),) + tuple(_sizes(b) for b in bounds))
    windows = [[_window_range(plan, a, x0, x1) for x0, x1 in zip(b[:-1], b[1:])] for a, b in enumerate(bounds)]
    counts = [tuple(j1 - j0 for j0, j1 in w) for w in windows]
    ext, depth = [], {0: 0}
    for a in range(nd):
        multi = len(counts[a]) > 1
        e = (plan.pb[a], max(plan.L[a] - plan.pb[a] - plan.n[a], 0)) if multi and plan.mode == "circular" else (0, 0)
        ext.append(e)
        x = _wrap(da, x, 1 + a, *e)
        depth[1 + a] = (0, plan.E[a] - 1) if multi else 0

    def block(b: np.ndarray, block_info=None) -> np.ndarray:
        loc = block_info[0]["chunk-location"]
        index, out = [], []
        for a in range(nd):
            i = loc[1 + a]
            start = bounds[a][i] - (ext[a][0] if i == 0 else 0)  # original coordinate of b's first element
            j0, j1 = windows[a][i]
            q = np.arange(j0 * plan.s[a] - plan.pb[a], (j1 - 1) * plan.s[a] - plan.pb[a] + plan.E[a])
            index.append(plan.sources(a, q, (start, start + b.shape[1 + a])))
            out.append(j1 - j0)
        return plan.correlate(plan.gather(b, 1, index)[None], tuple(out), conj)[0]

    return da.map_overlap(block, x, depth=depth, boundary="none", trim=False, dtype=dt, allow_rechunk=False,
                          chunks=((plan.cout,),) + tuple(counts), meta=np.empty((0,) * (nd + 1), dt))


def _dask_transpose(plan: _Plan, y, conj: bool):
    """``(C_out, *out)`` dask volume -> ``(C_in, *n)``: each input chunk sums the windows that read it."""
    da = _import_dask()
    nd = plan.nd
    dt = np.result_type(y.dtype, plan.weight.dtype)
    bounds, windows, counts, back = [], [], [], []
    for a in range(nd):
        s, pb = plan.s[a], plan.pb[a]
        h = (plan.E[a] - 1) // s  # earlier windows that still reach into a chunk
        cand = [j * s - pb for j in np.cumsum(y.chunks[1 + a])[:-1]]
        b = _plan_chunks(plan, a, cand, extra=lambda c, h=h: c >= h)
        bounds.append(b)
        windows.append([_window_range(plan, a, x0, x1) for x0, x1 in zip(b[:-1], b[1:])])
        counts.append(tuple(j1 - j0 for j0, j1 in windows[-1]))
        back.append(h)
    y = y.astype(dt).rechunk(((plan.cout,),) + tuple(counts))
    ext, depth = [], {0: 0}
    for a in range(nd):
        multi = len(counts[a]) > 1
        e = (0, 0)
        if multi and plan.mode == "circular":  # windows wrapping past the end / starting before 0
            out, s = plan.out[a], plan.s[a]
            e = (out - min(out, -(-(plan.n[a] + plan.pb[a] - plan.E[a] + 1) // s)), min(out, -(-plan.pb[a] // s)))
        ext.append(e)
        y = _wrap(da, y, 1 + a, *e)
        depth[1 + a] = (back[a], 0) if multi else 0

    def block(b: np.ndarray, block_info=None) -> np.ndarray:
        loc = block_info[0]["chunk-location"]
        runs, lo, hi = [], [], []
        for a in range(nd):
            i = loc[1 + a]
            j0, j1 = windows[a][i]
            first_j = j0 - (ext[a][0] if i == 0 else back[a])  # window index of b's first element
            true = np.mod(np.arange(first_j, first_j + b.shape[1 + a]), plan.out[a])
            runs.append(_runs(true))
            lo.append(bounds[a][i])
            hi.append(bounds[a][i + 1])
        acc = np.zeros((plan.cin,) + tuple(h - l for l, h in zip(lo, hi)), dt)
        for combo in itertools.product(*runs):  # one run per axis, more only where windows wrap around
            slab = b[(slice(None),) + tuple(slice(u0, u1) for u0, u1, _ in combo)]
            length = tuple((u1 - u0 - 1) * s + e for (u0, u1, _), s, e in zip(combo, plan.s, plan.E))
            G = plan.correlate_t(slab[None], length, conj)[0]
            acc += plan.fold_add(G, 1, tuple(j * s for (_, _, j), s in zip(combo, plan.s)), tuple(lo), tuple(hi))
        return acc

    return da.map_overlap(block, y, depth=depth, boundary="none", trim=False, dtype=dt, allow_rechunk=False,
                          chunks=((plan.cin,),) + tuple(_sizes(b) for b in bounds),
                          meta=np.empty((0,) * (nd + 1), dt))


def _runs(true: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs ``(u0, u1, first window)`` of consecutive window indices, each window kept once."""
    keep = np.zeros(true.size, bool)
    keep[np.unique(true, return_index=True)[1]] = True
    idx = np.nonzero(keep)[0]
    cut = np.nonzero((np.diff(idx) != 1) | (np.diff(true[idx]) != 1))[0] + 1
    return [(int(g[0]), int(g[-1]) + 1, int(true[g[0]])) for g in np.split(idx, cut)]


# ----------------------------------------------------------------------------- the operators
def _vectors(x: Any, name: str, rows: int, *, matrix: bool | None) -> Any:
    """Validate what is given to matvec/matmat (and their adjoints): a numeric array with ``rows`` rows.

    ``matrix``: True for ``(rows, K)``, False for ``(rows,)``/``(rows, 1)``, None for either.
    Returns ``x`` as an array (an ``np.matrix`` unchanged, for scipy's matrix-in, matrix-out rule).
    Errors name the argument, the rule and the shape or type received, never the contents.
    """
    want = {True: f"({rows}, K) (vectors as columns)", False: f"({rows},) or ({rows}, 1)",
            None: f"({rows},) or ({rows}, K) (vectors as columns)"}[matrix]
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array of shape {want}; got a {type(x).__name__}")
    if hasattr(x, "tocsr") and hasattr(x, "nnz"):  # scipy.sparse: np.asarray would make a 0-d object array
        raise TypeError(f"{name} must be a dense numeric array of shape {want}; got a scipy sparse "
                        f"{type(x).__name__}: pass {name}.toarray()")
    if isinstance(x, np.ma.MaskedArray) and np.ma.getmask(x) is not np.ma.nomask and np.ma.getmaskarray(x).any():
        raise ValueError(f"{name} is a masked array with masked entries, and an operator has no mask: "
                         f"pass {name}.filled(0) (or the fill you mean) instead")
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception:  # ragged nested sequences and the like
            raise TypeError(f"{name} must be a numeric array of shape {want}; got a {type(x).__name__} that "
                            f"numpy cannot turn into one") from None
    elif isinstance(x, np.ma.MaskedArray):
        x = np.ma.getdata(x)
    if x.dtype.kind not in "biufc":
        raise TypeError(f"{name} must have a numeric dtype (bool, integer, float or complex); got dtype {x.dtype} "
                        f"with shape {x.shape}")
    two = x.ndim == 2 and x.shape[0] == rows
    ok = two if matrix else (x.shape in ((rows,), (rows, 1)) or (matrix is None and two))
    if not ok:
        raise ValueError(f"{name} must have shape {want}, the operator having {rows} "
                         f"{'columns' if name.lower() == 'x' else 'rows'}; got shape {x.shape}")
    return x


def _derived_sparse(root: Any, transposed: bool, conj: bool, format: Any, max_bytes: Any) -> Any:
    """``root.to_sparse()`` transposed and/or conjugated, built in the format whose transpose is ``format``.

    ``csr``/``csc``/``coo`` come out of the builder already transposed (a transpose is then a
    view, and the conjugation is done in place on the fresh matrix): the peak is the builder's.
    The other formats go through CSR, refused first if CSR + the format exceed ``max_bytes``.
    """
    from ._build import check_budget, convert

    fmt = V.sparse_format(format)
    flip = {"csr": "csc", "csc": "csr", "coo": "coo"}
    inner = (flip.get(fmt, "csc") if transposed else (fmt if fmt in flip else "csr"))
    budget = V.budget(max_bytes)
    what = f"{type(root).__name__}{'.T' if transposed else ''}{'.conj()' if conj else ''}.to_sparse"
    dtype = V.result_dtype(root.kernel, root._keywords["dtype"])
    if fmt not in flip:
        check_budget(root.geometry, dtype, budget, what, fmt)
    C = root.to_sparse(format=inner, max_bytes=max_bytes)
    if transposed:
        C = C.T
    if conj and C.dtype.kind == "c":
        np.conjugate(C.data, out=C.data)
    return C if C.format == fmt else convert(C, root.geometry, fmt, budget, what)


class _ConvLinearOperator(LinearOperator):
    """A convolution core used forwards (``role="forward"``) or transposed, conjugated or not.

    The four linear maps around one convolution ``C`` are ``C`` (forward), ``conj(C)`` (forward,
    conjugated weights), ``C.T`` (transpose) and ``C.H`` (transpose, conjugated weights); each
    one's ``.T``/``.H`` is another of the four, computed directly (no extra conjugation passes).
    Every one pickles (no closures): a derived operator keeps its root operator and how it
    transposes and conjugates it.
    """

    def __init__(self, plan: _Plan, role: str, conj: bool, dtype: np.dtype, channel_axis: bool,
                 root: Any = None) -> None:
        self._plan, self._role, self._conj = plan, role, conj
        self._channel_axis = channel_axis
        self._root = self if root is None else root  # the ConvOperator/ConvTransposeOperator (role, not conjugated)
        cin, cout = plan.cin * math.prod(plan.n), plan.cout * math.prod(plan.out)
        shape = (cout, cin) if role == "forward" else (cin, cout)
        super().__init__(dtype=dtype, shape=shape)

    # shapes of the vectors this operator maps between
    @property
    def input_vector_shape(self) -> tuple[int, ...]:
        """Shape of the vectors the operator multiplies (``(C, *spatial)``, or spatial only)."""
        p = self._plan
        c, sp = (p.cin, p.n) if self._role == "forward" else (p.cout, p.out)
        return ((c,) if self._channel_axis else ()) + tuple(sp)

    @property
    def output_vector_shape(self) -> tuple[int, ...]:
        """Shape of the result vectors (``(C, *spatial)``, or spatial only)."""
        p = self._plan
        c, sp = (p.cout, p.out) if self._role == "forward" else (p.cin, p.n)
        return ((c,) if self._channel_axis else ()) + tuple(sp)

    @property
    def max_bytes(self) -> int | None:
        """Peak bytes one product may use (shared with ``.T``/``.H``); ``None``: no limit."""
        return self._plan.budget

    def _map(self, X: np.ndarray, role: str, conj: bool) -> np.ndarray:
        """Apply to a batch ``(B, C, *spatial)`` of the role's input space."""
        return self._plan.forward(X, conj) if role == "forward" else self._plan.transpose(X, conj)

    def _step(self, role: str, dt: np.dtype) -> int:
        """Columns per group in a batch: the largest per-vector intermediate of a group stays near 4 MiB."""
        p = self._plan
        per_vector = max(p.cin * math.prod(p.n), p.cout * math.prod(p.out), p.cin * math.prod(p.L))
        if p.method != "direct":
            per_vector = max(per_vector, (p.cin + p.cout) * math.prod(p._fft_shape(p.out)))
        return max(1, _BATCH_BYTES // (per_vector * np.dtype(dt).itemsize))

    def _call_bytes(self, role: str, K: int, dt: Any, copy_input: bool = True) -> int:
        """Predicted peak bytes of one product with ``K`` vectors computed in ``dt`` (closed form)."""
        p = self._plan
        dt = np.dtype(dt)
        b = 1 if K <= 1 else min(K, self._step(role, dt))
        peak = p.peak_bytes(role, b, dt, p.use_fft(b, p.out, dt, role), copy_input or K > 1)
        if K > 1:  # the result, filled group by group
            rows = p.cout * math.prod(p.out) if role == "forward" else p.cin * math.prod(p.n)
            peak += K * rows * dt.itemsize
        return peak

    def _guard(self, role: str, K: int, dt: np.dtype, name: str, copy_input: bool = True) -> None:
        budget = self._plan.budget
        if budget is None:
            return
        key = ("peak", role, K, np.dtype(dt).str, copy_input, budget)  # O(1) arithmetic, memoised per call shape
        need = self._plan._cache.get(key)
        if need is None:
            need = self._plan._cache[key] = self._call_bytes(role, K, dt, copy_input)
        if need > budget:
            cols = f" of {K} vectors" if K > 1 else ""
            V.refuse(f"{self._name()}.{name}{cols} in {np.dtype(dt)}", need, budget,
                     ("pass fewer vectors at a time, or " if K > 1 else "")
                     + "create the operator with a larger max_bytes (or max_bytes=None)")

    def _check_construction(self) -> None:
        """Refuse now (nothing allocated yet) an operator whose one-vector products exceed ``max_bytes``."""
        p = self._plan
        if p.budget is None:
            return
        dt = self.dtype
        need = max(self._call_bytes(role, 1, dt) for role in ("forward", "transpose"))
        if need <= p.budget:
            return
        direct = max(p.peak_bytes(role, 1, dt, False) for role in ("forward", "transpose"))
        if p.method == "fft" and direct <= p.budget:
            hint = (f"the kernel spectrum of method='fft' is the bulk ({p.cout}x{p.cg} channels on the FFT grid "
                    f"{p._fft_shape(p.out)}): use method='direct' or 'auto', or pass a larger max_bytes")
        else:
            hint = "pass a larger max_bytes, or max_bytes=None to disable the guard"
        V.refuse(f"one product of {type(self).__name__} with shape {self.shape} in {np.dtype(dt)}", need, p.budget,
                 hint)

    def _name(self) -> str:
        kind = {("forward", False): "C", ("forward", True): "conj(C)", ("transpose", False): "C.T",
                ("transpose", True): "C.H"}[(self._role, self._conj)]
        return f"{type(self._root).__name__} ({kind})"

    def _batch(self, X: np.ndarray, role: str, conj: bool, name: str = "matmat") -> np.ndarray:
        """Columns of ``X`` are vectors: ``(N, K) -> (M, K)``."""
        p = self._plan
        c, sp = (p.cin, p.n) if role == "forward" else (p.cout, p.out)
        X = np.asarray(X)
        dt = np.result_type(X.dtype, self.dtype)
        K = X.shape[1]
        self._guard(role, K, dt, name, K > 1 or X.dtype != dt or not X.T.flags.c_contiguous)
        if K == 1:
            batch = np.ascontiguousarray(X.T, dtype=dt).reshape((1, c) + tuple(sp))
            return self._map(batch, role, conj).reshape(1, -1).T
        # a few columns at a time: temporaries stay small and reused instead of batch-sized fresh pages
        m = self.shape[0] if role == self._role else self.shape[1]
        step = self._step(role, dt)
        out = np.empty((K, m), np.result_type(dt, self._plan.weight.dtype))
        for k0 in range(0, K, step):
            k1 = min(K, k0 + step)
            batch = np.ascontiguousarray(X[:, k0:k1].T, dtype=dt).reshape((k1 - k0, c) + tuple(sp))
            out[k0:k1] = self._map(batch, role, conj).reshape(k1 - k0, m)
            del batch  # before the next group's copy
        return out.T

    def _other(self) -> str:
        return "transpose" if self._role == "forward" else "forward"

    def _matvec(self, x):
        return self._batch(np.reshape(x, (-1, 1)), self._role, self._conj, "matvec")

    def _matmat(self, X):
        return self._batch(X, self._role, self._conj, "matmat")

    def _rmatvec(self, x):
        return self._batch(np.reshape(x, (-1, 1)), self._other(), not self._conj, "rmatvec")

    def _rmatmat(self, X):
        return self._batch(X, self._other(), not self._conj, "rmatmat")

    def _derived(self, role: str, conj: bool) -> _ConvLinearOperator:
        return _ConvLinearOperator(self._plan, role, conj, self.dtype, self._channel_axis, self._root)

    def _transpose(self) -> _ConvLinearOperator:
        return self._derived(self._other(), self._conj)

    def _adjoint(self) -> _ConvLinearOperator:
        return self._derived(self._other(), not self._conj)

    def to_sparse(self, *, format: str = "csr", max_bytes: Any = "auto") -> Any:
        """The explicit sparse matrix of this operator (refused above ``max_bytes``, as the builders do).

        Built by the root operator's builder directly in the format whose transpose is the one
        asked for (``csr``/``csc``/``coo``), so transposing costs no copy and conjugating is in place.
        """
        return _derived_sparse(self._root, self._role != self._root._role, self._conj, format, max_bytes)

    # ---------------------------------------------------------------- dask entry points
    def _dask_apply(self, x, role: str, conj: bool, name: str):
        p = self._plan
        n_in = self.shape[1] if role == self._role else self.shape[0]
        c, sp = (p.cin, p.n) if role == "forward" else (p.cout, p.out)
        vol = ((c,) if self._channel_axis else ()) + tuple(sp)
        shaped = tuple(x.shape) == vol
        if x.ndim == 2 and x.shape[0] == n_in and not shaped:  # a batch of columns: one batch chunk per task
            rows = self.shape[0] if role == self._role else self.shape[1]
            return _dask_columns(functools.partial(self._batch, role=role, conj=conj), x, rows,
                                 np.result_type(x.dtype, self.dtype))
        flat = x.ndim == 1 and x.shape[0] == n_in and not shaped
        if not flat and not shaped:
            raise ValueError(
                f"{name} of a dask array needs shape ({n_in},), ({n_in}, K) or the volume shape {vol}; got {x.shape}"
            )
        v = x.reshape(vol) if flat else x
        if not self._channel_axis:
            v = v[None]
        res = _dask_forward(p, v, conj) if role == "forward" else _dask_transpose(p, v, conj)
        if not self._channel_axis:
            res = res[0]
        return res.reshape(-1) if flat else res

    def matvec(self, x: Any) -> Any:
        """``A @ x`` for ``x`` of shape ``(N,)`` or ``(N, 1)``; a dask ``x`` (flat, or shaped like the input
        volume) gives a lazy dask result.

        Raises ``TypeError`` (not a numeric array) or ``ValueError`` (wrong shape, masked entries)
        naming ``x``, and :class:`~convmatrix.MatrixTooLargeError` when the product is predicted to
        need more than the operator's ``max_bytes`` at its peak.
        """
        if _is_dask(x):
            return self._dask_apply(x, self._role, self._conj, "matvec")
        return super().matvec(_vectors(x, "x", self.shape[1], matrix=False))

    def rmatvec(self, x: Any) -> Any:
        """``A.H @ x`` for ``x`` of shape ``(M,)`` or ``(M, 1)``; accepts dask arrays and raises like :meth:`matvec`."""
        if _is_dask(x):
            return self._dask_apply(x, self._other(), not self._conj, "rmatvec")
        return super().rmatvec(_vectors(x, "y", self.shape[0], matrix=False))

    def matmat(self, X: Any) -> Any:
        """``A @ X`` for a batch ``(N, K)`` of column vectors; a dask ``X`` is processed one column chunk per
        task.  Raises like :meth:`matvec`."""
        if _is_dask(X):
            if X.ndim != 2:
                raise ValueError(f"matmat expects a 2-D array (vectors as columns); got shape {X.shape}")
            return self._dask_apply(X, self._role, self._conj, "matmat")
        return super().matmat(_vectors(X, "X", self.shape[1], matrix=True))

    def rmatmat(self, X: Any) -> Any:
        """``A.H @ Y`` for a batch ``(M, K)``; accepts dask arrays and raises like :meth:`matmat`."""
        if _is_dask(X):
            if X.ndim != 2:
                raise ValueError(f"rmatmat expects a 2-D array (vectors as columns); got shape {X.shape}")
            return self._dask_apply(X, self._other(), not self._conj, "rmatmat")
        return super().rmatmat(_vectors(X, "Y", self.shape[0], matrix=True))

    def dot(self, x: Any) -> Any:
        """``A @ x``: a vector ``(N,)``/``(N, 1)`` (matvec), a batch ``(N, K)`` (matmat), a scalar (a scaled
        operator) or another LinearOperator (a product)."""
        if _is_dask(x):
            return self.matvec(x) if x.ndim == 1 or tuple(x.shape) == self.input_vector_shape else self.matmat(x)
        if isinstance(x, LinearOperator) or (np.isscalar(x) and not isinstance(x, (str, bytes))):
            return super().dot(x)
        if isinstance(x, (str, bytes)):
            raise TypeError(f"x must be a numeric array, a scalar or a LinearOperator; got a {type(x).__name__}")
        arr = _vectors(x, "x", self.shape[1], matrix=None)
        return self.matvec(arr) if arr.ndim == 1 or arr.shape[1] == 1 else self.matmat(arr)

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, (str, bytes)):
            raise TypeError(f"x must be a numeric array or a LinearOperator; got a {type(other).__name__}")
        return super().__matmul__(other)

    def __repr__(self) -> str:
        kind = {("forward", False): "C", ("forward", True): "conj(C)", ("transpose", False): "C.T",
                ("transpose", True): "C.H"}[(self._role, self._conj)]
        return f"<{self.shape[0]}x{self.shape[1]} {type(self).__name__} ({kind}) with dtype={self.dtype}>"


class ConvOperator(_ConvLinearOperator):
    """Matrix-free ``conv_matrix``: a :class:`~scipy.sparse.linalg.LinearOperator` for ``conv{d}d``.

    Takes exactly the keywords of :func:`convmatrix.conv_matrix` and applies the same matrix,
    to round-off, without building it: memory ``O(input + output)``.

    Parameters
    ----------
    kernel : array_like
        Spatial kernel (one channel in and out) or PyTorch weight ``(C_out, C_in/groups, *k)``.
    input_shape : int or sequence of int
        Spatial input shape (any number of dimensions).
    stride, padding, dilation, groups, padding_mode, flip, dtype
        As :func:`convmatrix.conv_matrix` (padding modes ``"zeros"``, ``"circular"``,
        ``"reflect"``, ``"replicate"``, ``"symmetric"``; ``flip=True`` is true convolution).
        The operator computes in ``dtype`` (default the kernel's); integer kernels compute in
        float64.
    method : {"auto", "direct", "fft"}
        ``"direct"``: strided views, im2col blocks of at most 8 MiB and BLAS GEMMs;
        ``"fft"``: ``scipy.fft`` (stride-1 correlation of the padded input, then the strided
        samples); ``"auto"``: FFT when its estimated cost is lower (large kernels) and the
        kernel spectrum is small enough to cache, among the routes that fit in ``max_bytes``.
    max_bytes : int, None or "auto"
        Peak bytes one product (``matvec``, ``rmatvec``, ``matmat``, ``rmatmat``, of this
        operator and of its ``.T``/``.H``) may allocate: ``"auto"`` (default) half the RAM,
        ``None`` no limit.  The peak of a product is predicted in closed form (padded copies,
        im2col blocks, FFT grids, the kernel spectrum it builds, the result) and a product
        predicted above it raises before allocating; the constructor already refuses an
        operator whose one-vector products cannot fit.

    Attributes
    ----------
    geometry : Geometry
        The validated geometry, the same object ``conv_matrix`` builds from.
    max_bytes : int or None
        The budget of one product, in bytes (shared with ``.T``, ``.H`` and the like).
    shape : tuple of int
        ``(C_out * prod(output_shape), C_in * prod(input_shape))``.
    input_vector_shape, output_vector_shape : tuple of int
        ``(C_in, *input_shape)`` and ``(C_out, *output_shape)`` (spatial only for a spatial kernel).

    Raises
    ------
    ValueError, TypeError
        Invalid keywords (as :func:`convmatrix.conv_matrix`; ``flip`` must be a bool, ``method``
        one of the three).  Products raise ``TypeError``/``ValueError`` naming the argument for
        anything but a numeric array of the right shape (the contents are never printed).
    MatrixTooLargeError
        One product of a single vector is predicted above ``max_bytes`` (e.g. ``method="fft"``
        forced with many channels, or a padding far wider than the input); products with more
        vectors or a wider dtype are checked when called.

    Notes
    -----
    ``matvec``, ``rmatvec`` (the adjoint ``C^H``: complex kernels conjugated), ``matmat`` and
    ``rmatmat`` (columns are vectors), ``.T`` (transpose, no conjugation) and ``.H`` are all
    available; ``to_sparse()`` builds ``conv_matrix`` with the same keywords.  The forward map is

    ``y[o, j] = sum_{c, t} w[o, c, t] * x_pad[g(o)*C_in/groups + c, j*s + t*d]``,

    ``x_pad[m] = x[fold(m - p_before)]``; the adjoint scatters ``conj(w)`` back along the same
    positions and adds each padded position onto the input it was folded from.

    A dask array (``pip install convmatrix[dask]``) may be passed to ``matvec``/``rmatvec``
    (a flat vector or the volume ``input_vector_shape``, lazily, with ``map_overlap``) or to
    ``matmat``/``rmatmat`` (``(N, K)``, one column chunk per task).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> A = cm.ConvOperator([1.0, 2.0, 3.0], (5,))
    >>> A.shape
    (3, 5)
    >>> A @ np.arange(5.0)
    array([ 8., 14., 20.])
    >>> A.T @ np.ones(3)
    array([1., 3., 6., 5., 3.])
    >>> w = np.random.default_rng(0).standard_normal((4, 2, 3, 3))
    >>> B = cm.ConvOperator(w, (9, 8), stride=2, padding=1, padding_mode="reflect")
    >>> x = np.random.default_rng(1).standard_normal(B.shape[1])
    >>> bool(np.allclose(B @ x, B.to_sparse() @ x))
    True
    """

    def __init__(
        self,
        kernel: Any,
        input_shape: Any,
        *,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: Any = 1,
        padding_mode: str = "zeros",
        flip: bool = False,
        dtype: Any = None,
        method: str = "auto",
        max_bytes: Any = "auto",
    ) -> None:
        k = V.kernel_array(kernel)
        mdtype = V.result_dtype(k, dtype)
        flip = _check_flip(flip)
        method = _method_name(method)
        budget = V.budget(max_bytes)
        geom = conv_geometry(k.shape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                             padding_mode=padding_mode)
        odtype = _operator_dtype(mdtype)
        weight = k.reshape((geom.out_channels, geom.in_per_group) + geom.kernel_shape).astype(odtype)
        if flip:
            weight = weight[(slice(None), slice(None)) + (slice(None, None, -1),) * geom.ndim]
        plan = _Plan(weight, geom.input_shape, geom.output_shape, geom.stride, geom.dilation,
                     tuple(p[0] for p in geom.padding), geom.padding_mode, geom.groups, method, budget)
        self.geometry: Geometry = geom
        self.kernel = k
        self.method = method
        self._keywords = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                              padding_mode=padding_mode, flip=flip, dtype=dtype)
        super().__init__(plan, "forward", False, odtype, geom.channel_axis)
        self._check_construction()

    def _build(self, *, format: str = "csr", max_bytes: Any = "auto"):
        from .matrices import conv_matrix

        return conv_matrix(self.kernel, self.geometry.input_shape, format=format, max_bytes=max_bytes,
                           **self._keywords)

    def to_sparse(self, *, format: str = "csr", max_bytes: Any = "auto") -> Any:
        """``conv_matrix`` with this operator's keywords (exactly; refused above ``max_bytes``).

        Examples
        --------
        >>> import convmatrix as cm
        >>> cm.ConvOperator([[1, 2], [3, 4]], (3, 3)).to_sparse().toarray()
        array([[1, 2, 0, 3, 4, 0, 0, 0, 0],
               [0, 1, 2, 0, 3, 4, 0, 0, 0],
               [0, 0, 0, 1, 2, 0, 3, 4, 0],
               [0, 0, 0, 0, 1, 2, 0, 3, 4]])
        """
        return self._build(format=format, max_bytes=max_bytes)


class ConvTransposeOperator(_ConvLinearOperator):
    """Matrix-free ``conv_transpose_matrix``: ``conv_transpose{d}d`` as a LinearOperator.

    Takes exactly the keywords of :func:`convmatrix.conv_transpose_matrix`; it is the transpose
    (not conjugated) of the :class:`ConvOperator` of the same weight on the transposed output shape.

    Parameters
    ----------
    kernel : array_like
        Spatial kernel or PyTorch's transposed weight ``(C_in, C_out/groups, *k)``.
    input_shape : int or sequence of int
        Spatial shape of the transposed convolution's input.
    stride, padding, output_padding, dilation, groups, output_shape, padding_mode, dtype
        As :func:`convmatrix.conv_transpose_matrix` (``padding_mode`` only ``"zeros"``).
    method : {"auto", "direct", "fft"}
        As :class:`ConvOperator`.
    max_bytes : int, None or "auto"
        As :class:`ConvOperator`: the peak bytes one product may allocate.

    Raises
    ------
    ValueError, TypeError, MatrixTooLargeError
        As :class:`ConvOperator`.

    Notes
    -----
    Per axis ``o = (n-1)*s - p_before - p_after + d*(k-1) + a + 1``; the forward map scatters
    one kernel copy per input position ``i`` at ``i*s + t*d - p_before`` (the seed's fusion);
    ``rmatvec`` is the (conjugated) strided convolution.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> T = cm.ConvTransposeOperator(np.ones((4, 4)), (2, 2), stride=3)   # the seed: 2x2 -> 7x7
    >>> T.shape
    (49, 4)
    >>> (T @ np.ones(4)).reshape(7, 7)[3]
    array([2., 2., 2., 4., 2., 2., 2.])
    """

    def __init__(
        self,
        kernel: Any,
        input_shape: Any,
        *,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        dilation: Any = 1,
        groups: Any = 1,
        output_shape: Any = None,
        padding_mode: str = "zeros",
        dtype: Any = None,
        method: str = "auto",
        max_bytes: Any = "auto",
    ) -> None:
        k = V.kernel_array(kernel)
        mdtype = V.result_dtype(k, dtype)
        V.padding_mode_name(padding_mode, allowed=("zeros",))
        method = _method_name(method)
        budget = V.budget(max_bytes)
        geom = conv_transpose_geometry(k.shape, input_shape, stride=stride, padding=padding,
                                       output_padding=output_padding, dilation=dilation, groups=groups,
                                       output_shape=output_shape)
        odtype = _operator_dtype(mdtype)
        # the weight (C_in, C_out/g, *k) is the conv weight of the convolution N-space -> n-space
        weight = k.reshape((geom.in_channels, geom.out_per_group) + geom.kernel_shape).astype(odtype)
        plan = _Plan(weight, geom.output_shape, geom.input_shape, geom.stride, geom.dilation,
                     tuple(p[0] for p in geom.padding), "zeros", geom.groups, method, budget)
        self.geometry: Geometry = geom
        self.kernel = k
        self.method = method
        self._keywords = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
                              groups=groups, output_shape=output_shape, padding_mode=padding_mode, dtype=dtype)
        super().__init__(plan, "transpose", False, odtype, geom.channel_axis)
        self._check_construction()

    def _build(self, *, format: str = "csr", max_bytes: Any = "auto"):
        from .matrices import conv_transpose_matrix

        return conv_transpose_matrix(self.kernel, self.geometry.input_shape, format=format, max_bytes=max_bytes,
                                     **self._keywords)

    def to_sparse(self, *, format: str = "csr", max_bytes: Any = "auto") -> Any:
        """``conv_transpose_matrix`` with this operator's keywords (exactly)."""
        return self._build(format=format, max_bytes=max_bytes)


# ----------------------------------------------------------------------------- apply (explicit or not, dask or not)
def _dask_columns(fn, X, rows: int, dtype):
    """``fn`` on every column chunk of a dask ``(N, K)`` array: one task per chunk."""
    X = X.rechunk({0: -1})
    return X.map_blocks(fn, dtype=dtype, chunks=((rows,), X.chunks[1]), meta=np.empty((0, 0), dtype))


def apply(C: Any, X: Any) -> Any:
    """``C @ X`` for an explicit matrix or an operator, with ``X`` a numpy or a dask array.

    Parameters
    ----------
    C : scipy sparse matrix/array, numpy array, or LinearOperator (e.g. :class:`ConvOperator`)
    X : array_like or dask.array.Array
        A vector ``(N,)`` or a batch of column vectors ``(N, K)``.  A ConvOperator also takes the
        input volume ``C.input_vector_shape`` as a dask array (convolved chunk by chunk).

    Returns
    -------
    ndarray or dask.array.Array
        ``C @ X``; lazy when ``X`` is a dask array.  For an explicit ``C`` and a dask ``(N, K)``
        batch, each column chunk of ``X`` is one task ``C @ X_chunk`` and ``C`` enters the task
        graph once (``dask.delayed``), so a distributed scheduler ships it to each worker once.

    Notes
    -----
    Needs the optional extra for dask inputs: ``pip install convmatrix[dask]``.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> C = cm.conv_matrix([1.0, -1.0], (4,))
    >>> cm.apply(C, np.arange(4.0))
    array([-1., -1., -1.])
    """
    if isinstance(C, _ConvLinearOperator):
        if _is_dask(X):
            return C.dot(X)
        X = _vectors(X, "X", C.shape[1], matrix=None)
        return C.matvec(X) if X.ndim == 1 else C.matmat(X)
    if not (hasattr(C, "shape") and len(getattr(C, "shape", ())) == 2):
        raise TypeError(f"C must be a 2-D matrix (sparse or dense) or a LinearOperator; got {type(C).__name__}")
    if not _is_dask(X):
        return C @ _vectors(X, "X", C.shape[1], matrix=None)
    da = _import_dask()
    import dask

    rows, cols = C.shape
    if X.shape[0] != cols:
        raise ValueError(f"X must have C.shape[1] = {cols} rows (vectors as columns); got shape {X.shape}")
    dt = np.result_type(X.dtype, getattr(C, "dtype", np.float64))
    if X.ndim == 1:
        return apply(C, X[:, None])[:, 0]
    if X.ndim != 2:
        raise ValueError(f"X must be a vector (N,) or a batch of column vectors (N, K); got shape {X.shape}")
    X = X.rechunk({0: -1})
    Cd = dask.delayed(C, pure=True)
    return da.map_blocks(_matmul_block, Cd, X, dtype=dt, chunks=((rows,), X.chunks[1]), meta=np.empty((0, 0), dt))


def _matmul_block(C, block):
    return np.asarray(C @ block)
