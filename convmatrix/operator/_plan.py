"""The numeric core shared by every operator: y = correlate(pad(x)) and its transpose, by im2col GEMMs, tap accumulation or FFTs, in bounded blocks."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from .. import _validate as V
from ..geometry import Geometry
from ._padding import _Padding
from ._taps import _correlate_t_taps, _correlate_taps, _taps_fit

__all__ = []


#: how an operator computes: by cost estimate, im2col/tap accumulation, or FFTs
Method: TypeAlias = Literal["auto", "direct", "fft"]

#: which of the two maps of a plan: the correlation or its transpose
Role: TypeAlias = Literal["forward", "transpose"]
#: a block of a whole-volume call: (first vector, end vector, first row, end row) of the output, see _Plan._blocks
_Block: TypeAlias = tuple[int, int, int, int]

#: what a plan memoises: arrays (weight layouts, kernel spectra), bools (FFT or not), ints (predicted peaks)
_Memo: TypeAlias = np.ndarray | int

METHODS: tuple[Method, ...] = ("auto", "direct", "fft")


#: bytes of one im2col block (taps x input channels x output positions)
_COL_BYTES = 8 * 2**20


#: fewest input channels per group for which one GEMM per tap beats the im2col copy (measured)
_TAP_GEMM_CHANNELS = 16


#: threads of the single-channel tap accumulation (numpy releases the GIL in its loops): two at most,
#: fewer with fewer cores or with ``CONVMATRIX_NUM_THREADS`` (read at import; the builders' knob too)
#: (an invalid value is not raised at import: the builders report it by name)
def _tap_threads() -> int:
    try:
        override = V.env_threads()
    except ValueError:
        override = None
    return min(2, override or os.cpu_count() or 1)


_TAP_THREADS = _tap_threads()


_POOL: list[ThreadPoolExecutor] = []


def _tap_pool() -> ThreadPoolExecutor:
    """The threads of the tap accumulation, made once per process (a pool made per call cost 0.1-0.3 ms,
    which kept a 512^2 volume on one thread)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(_TAP_THREADS, thread_name_prefix="convmatrix-taps"))
    return _POOL[0]


def _on_cores(run: Callable[[list[_Block]], None], blocks: list[_Block]) -> None:
    """``run`` over ``blocks`` (which must write disjoint outputs), one share per tap thread when there are enough."""
    if len(blocks) >= _TAP_THREADS > 1:
        list(_tap_pool().map(run, [blocks[i::_TAP_THREADS] for i in range(_TAP_THREADS)]))
    else:
        run(blocks)


if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads
    os.register_at_fork(after_in_child=_POOL.clear)


#: bytes of one output block in the tap-accumulation path (kept cache-sized)
_TAP_BYTES = 2**20


#: largest kernel spectrum (bytes) ``method="auto"`` caches without comparing to the data size
_SPEC_BYTES = 256 * 2**20


#: bytes of the vectors (input or output, the larger) of one group of columns in matmat
_BATCH_BYTES = 4 * 2**20


#: kernel spectra (one per FFT grid and conjugation) kept per operator
_SPEC_CACHE = 6


# ----------------------------------------------------------------------------- validation helpers
def _method_name(method: object) -> Method:
    if not isinstance(method, str):
        raise TypeError(
            f"method must be one of 'auto', 'direct', 'fft'; got {method!r} of type {type(method).__name__}"
        )
    if method not in METHODS:
        raise ValueError(f"method must be one of 'auto', 'direct', 'fft'; got {method!r}")
    return method


def _operator_dtype(matrix_dtype: np.dtype) -> np.dtype:
    """Floating dtype the operator computes in: the matrix dtype, integers promoted to float64."""
    return matrix_dtype if matrix_dtype.kind in "fc" else np.dtype(np.float64)


# ----------------------------------------------------------------------------- the numeric core
class _Workspace:
    """One scratch buffer reused by the blocks of a call (block sizes only shrink at the end)."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.buf: np.ndarray | None = None

    def get(self, shape: tuple[int, ...]) -> np.ndarray:
        size = math.prod(shape)
        if self.buf is None or self.buf.size < size:
            self.buf = None  # free the old buffer before allocating the new one
            self.buf = np.empty(size, self.dtype)
        return self.buf[:size].reshape(shape)


class _Plan(_Padding):
    """The convolution core shared by every operator: ``y = correlate(pad(x))`` and its transpose.

    ``geom`` is the *convolution* (for a transposed operator, :attr:`Geometry.forward`) and
    ``weight`` its engine weight ``(C_out, C_in/groups, *k)`` (already flipped if asked).  Per
    axis the padded length is ``L = geom.read_shape`` (exactly what the output reads; a longer
    padded input is never built), position ``m`` of the padded axis holding input
    ``fold(m - p_before)``.  The short names below are the geometry's, for the numeric code.
    """

    def __init__(self, geom: Geometry, weight: np.ndarray, method: Method, budget: int | None = None) -> None:
        if geom.kind != "conv":
            raise ValueError("a plan runs a convolution: pass geom.forward for a transposed one")  # pragma: no cover
        self.geom = geom
        self.weight = np.ascontiguousarray(weight)
        self.budget = budget  # bytes one whole-volume call may use at its peak (None: no limit)
        self.n, self.out = geom.input_shape, geom.output_shape
        self.s, self.d = geom.stride, geom.dilation
        self.pb = tuple(p[0] for p in geom.padding)
        self.mode, self.g, self.method = geom.padding_mode, geom.groups, method
        self.k, self.nd = geom.kernel_shape, geom.ndim
        self.cout, self.cg = geom.out_channels, geom.in_per_group
        self.og, self.cin = geom.out_per_group, geom.in_channels
        self.E, self.L = geom.extent, geom.read_shape
        self._cache: dict[tuple[Hashable, ...], _Memo] = {}

    def __getstate__(self) -> dict[str, object]:  # spectra are rebuilt where needed (e.g. on a Dask worker)
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    # ---------------------------------------------------------------- weights in the layouts used
    def _w(self, conj: bool, dtype: npt.DTypeLike) -> np.ndarray:
        conj = conj and self.weight.dtype.kind == "c"  # a real kernel is its own conjugate: one cache entry
        key = ("w", conj, np.dtype(dtype).str)
        if key not in self._cache:
            w = np.conj(self.weight) if conj and self.weight.dtype.kind == "c" else self.weight
            self._cache[key] = w.astype(dtype, copy=False)
        return cast(np.ndarray, self._cache[key])

    def _mat(self, conj: bool, dtype: npt.DTypeLike, transposed: bool) -> np.ndarray:
        """``(g, og, K*cg)`` (taps major) or its ``(g, K*cg, og)`` transpose, contiguous."""
        conj = conj and self.weight.dtype.kind == "c"
        key = ("mat", conj, np.dtype(dtype).str, transposed)
        if key not in self._cache:
            K = math.prod(self.k)
            w: np.ndarray = self._w(conj, dtype).reshape(self.g, self.og, self.cg, K).transpose(0, 1, 3, 2)
            w = w.reshape(self.g, self.og, K * self.cg)
            self._cache[key] = np.ascontiguousarray(w.transpose(0, 2, 1) if transposed else w)
        return cast(np.ndarray, self._cache[key])

    def _tap_mats(self, conj: bool, dt: np.dtype) -> np.ndarray:
        """``(g, K, og, cg)``: the weight matrix of each tap, contiguous and cached."""
        conj = conj and self.weight.dtype.kind == "c"
        key = ("taps", conj, dt.str)
        if key not in self._cache:
            w = self._w(conj, dt).reshape(self.g, self.og, self.cg, -1)
            self._cache[key] = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
        return cast(np.ndarray, self._cache[key])

    # ---------------------------------------------------------------- blocking
    def _slices(self, t: tuple[int, ...], r0: int, r1: int, out: tuple[int, ...],
                stride: tuple[int, ...] | None = None) -> tuple[slice, ...]:
        """Padded-input positions read by tap ``t`` for output rows ``r0:r1`` (all of the other axes)."""
        s = self.s if stride is None else stride
        sl = []
        for a in range(self.nd):
            lo, cnt = (r0, r1 - r0) if a == 0 else (0, out[a])
            start = t[a] * self.d[a] + lo * s[a]
            sl.append(slice(start, start + (cnt - 1) * s[a] + 1, s[a]))
        return tuple(sl)

    @staticmethod
    def _blocks(batch: int, out: tuple[int, ...], row_bytes: int, budget: int) -> Iterator[tuple[int, int, int, int]]:
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

        return tuple(next_fast_len((o - 1) * s + e, True) for o, s, e in zip(out, self.s, self.E, strict=False))

    def use_fft(self, batch: int, out: tuple[int, ...], dt: npt.DTypeLike, role: Role = "forward") -> bool:
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
        return cast(bool, self._cache[key])

    def _choose_fft(self, batch: int, out: tuple[int, ...], dt: np.dtype, role: Role) -> bool:
        itemsize = dt.itemsize
        if self.budget is not None and tuple(out) == self.out:
            fits_fft = self.peak_bytes(role, batch, dt, True) <= self.budget
            fits_direct = self.peak_bytes(role, batch, dt, False) <= self.budget
            if fits_fft != fits_direct:
                return fits_fft
        # estimated nanoseconds, calibrated on the reference machine (benchmarks/bench_operator.py)
        K, P = math.prod(self.k), math.prod(out)
        if self.cg == 1 and self.og == 1:  # tap accumulation in cache-sized blocks: ~0.06 ns per byte of a multiply-add
            direct = 0.06 * itemsize * batch * self.g * K * P + 3e3 * K
        elif self.tap_gemm(self.L, out, dt):  # one GEMM per tap, no copy: BLAS ~0.02 ns per multiply-add
            direct = 0.02 * batch * self.cout * self.cg * K * P + 3e3 * K
        else:  # im2col copy ~0.5 ns per element + BLAS ~0.0175 ns per multiply-add
            direct = 0.5 * batch * self.g * K * self.cg * P + 0.0175 * batch * self.cout * self.cg * K * P + 3e3 * K
        M = self._fft_shape(out)
        m = math.prod(M)
        F = m // M[-1] * (M[-1] // 2 + 1)
        # transforms ~0.3 ns per point and log2 in cache, ~0.55 ns beyond (memory-bound); the per-frequency
        # contraction streams the kernel spectrum (calibrated against the direct routes of issue 14)
        per_point = 0.3 if m * itemsize <= 4 * 2**20 else 0.55
        fft = per_point * batch * (self.cin + self.cout) * m * max(1.0, math.log2(m))
        if dt.kind == "f":  # scipy.fft transforms float32 in single precision: about half the time of float64
            fft *= itemsize / 8
        fft += (1.0 + 0.25 * batch) * self.cout * self.cg * F + 1e5
        spectrum = self.cout * self.cg * F * 2 * itemsize
        data = batch * (self.cin * math.prod(self.L) + self.cout * P) * itemsize
        if spectrum > max(_SPEC_BYTES, 4 * data):
            return False
        return fft < 0.7 * direct

    def tap_gemm(self, length: tuple[int, ...], out: tuple[int, ...], dt: npt.DTypeLike) -> bool:
        """Whether the direct route goes by one GEMM per tap on shifted views (no im2col copy).

        Stride 1 on every axis (so each tap reads one contiguous run of the flattened padded
        input, the junk columns at the row ends dropped afterwards), at least
        ``_TAP_GEMM_CHANNELS`` input channels per group (below, the im2col GEMM's longer inner
        dimension wins), a BLAS dtype and sizes that fit BLAS integers.
        """
        return self.method != "fft" and self.cg >= _TAP_GEMM_CHANNELS and _taps_fit(self.s, length, out, dt)

    # ---------------------------------------------------------------- predicted memory
    def _work_bytes(self, batch: int, dt: np.dtype, out: tuple[int, ...] | None = None,
                    stride: tuple[int, ...] | None = None) -> int:
        """Scratch of the direct route for whole-volume calls: the block of :meth:`_blocks` and a GEMM result
        (tap GEMMs: the output with its junk columns, zeroed for the transpose); ``out``: the blocked shape
        (default the output; the input for :meth:`gathers_transpose`); ``stride``: the tap accumulation reads
        blocks of the padded grid with this stride (:meth:`_accumulate_taps`)."""
        it = dt.itemsize
        if out is None:
            out = self.out
            if self.tap_gemm(self.L, out, dt):
                return batch * self.cout * out[0] * math.prod(self.L[1:]) * it
        tap = self.cg == 1 and self.og == 1
        row, budget = (self.g * it, _TAP_BYTES) if tap else (self.g * math.prod(self.k) * self.cg * it, _COL_BYTES)
        per_row = max(1, row * math.prod(out[1:]))
        rows = min(out[0], max(1, budget // per_row))
        bb = min(batch, max(1, budget // (per_row * out[0]))) if rows == out[0] else 1
        work = per_row * rows * bb
        if tap and stride is not None:  # the block of the padded grid it reads (see _accumulate_taps)
            span = math.prod((o - 1) * s + e for o, s, e in zip(out[1:], stride[1:], self.E[1:], strict=True))
            work += bb * self.g * ((rows - 1) * stride[0] + self.E[0]) * span * it
        if tap:  # one scratch block per thread
            work *= _TAP_THREADS
        if not tap and rows < out[0]:  # partial rows: the GEMM result is a temporary
            work += self.og * rows * math.prod(out[1:]) * it
        return work

    def spectrum_bytes(self, dt: npt.DTypeLike) -> int:
        """Bytes of one cached kernel spectrum (``method="fft"``) for whole-volume calls in ``dt``."""
        dt = np.dtype(dt)
        cit = dt.itemsize if dt.kind == "c" else 2 * dt.itemsize
        M = self._fft_shape(self.out)
        m = math.prod(M)
        F = m if dt.kind == "c" else m // M[-1] * (M[-1] // 2 + 1)
        return self.cout * self.cg * F * cit

    def peak_bytes(self, role: Role, batch: int, dt: npt.DTypeLike, fft: bool, copy_input: bool = True) -> int:
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

    def _peak(self, role: Role, batch: int, dt: np.dtype, fft: bool, copy_input: bool) -> int:
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
        weights = 3 * self.cout * self.cg * math.prod(self.k) * it + 2**18
        fixed = weights + 8 * sum(self.L) + 34 * max(self.L)
        src = (Xn if role == "forward" else Yo) if copy_input else 0
        if not fft:
            work = self._work_bytes(batch, dt)
            if role == "forward":
                if self._forward_blocks(dt):  # no padded volume (nor its index vectors): the result and the blocks
                    return src + Yo + self._work_bytes(batch, dt, self.out, self.s) + weights
                return src + max(pad_peak, P + Yo + work) + fixed
            if self._transpose_blocks(dt):  # no padded volume (nor its index vectors): the result and the blocks
                return src + Xn + self._work_bytes(batch, dt, self.n, (1,) * self.nd) + weights
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

    # ---------------------------------------------------------------- direct correlation and transpose
    def correlate(self, P: np.ndarray, out: tuple[int, ...], conj: bool, method: Method | None = None) -> np.ndarray:
        """Strided, dilated, grouped correlation of a padded ``(B, C_in, *Lp)`` block: ``(B, C_out, *out)``."""
        dt = np.result_type(P.dtype, self.weight.dtype)
        fft = self.use_fft(P.shape[0], out, dt, "forward") if method is None else method == "fft"
        return self._correlate_fft(P, out, conj, dt) if fft else self._correlate_direct(P, out, conj, dt)

    def correlate_t(self, Y: np.ndarray, length: tuple[int, ...], conj: bool,
                    method: Method | None = None) -> np.ndarray:
        """Transpose of :meth:`correlate` (no conjugation unless ``conj``): ``(B, C_out, *o) -> (B, C_in, *length)``."""
        dt = np.result_type(Y.dtype, self.weight.dtype)
        out = Y.shape[2:]
        fft = self.use_fft(Y.shape[0], out, dt, "transpose") if method is None else method == "fft"
        return self._correlate_t_fft(Y, length, conj, dt) if fft else self._correlate_t_direct(Y, length, conj, dt)

    def _correlate_direct(self, P: np.ndarray, out: tuple[int, ...], conj: bool, dt: np.dtype) -> np.ndarray:
        B, g, og, cg, nd = P.shape[0], self.g, self.og, self.cg, self.nd
        if cg == 1 and og == 1:  # single channel / depthwise: the tap accumulation, reading P in place
            return self._accumulate_taps(P, (0,) * nd, self.s, out, conj, dt, flip=False)
        if self.tap_gemm(P.shape[2:], out, dt):
            return _correlate_taps(P, out, self._tap_mats(conj, dt), self.k, self.d, dt)
        ws = _Workspace(dt)
        taps = list(np.ndindex(*self.k))
        Pg = P.reshape((B, g, cg, *P.shape[2:]))
        Y = np.empty((B, g, og, *out), dt)
        K = len(taps)
        W = self._mat(conj, dt, False)  # (g, og, K*cg)
        for b0, b1, r0, r1 in self._blocks(B, out, g * K * cg * dt.itemsize, _COL_BYTES):
            blk = (r1 - r0, *out[1:])
            cols = ws.get((b1 - b0, g, K, cg, *blk))
            for i, t in enumerate(taps):  # im2col, one strided copy per tap
                cols[:, :, i] = Pg[(slice(b0, b1), slice(None), slice(None), *self._slices(t, r0, r1, out))]
            cols = cols.reshape(b1 - b0, g, K * cg, math.prod(blk))
            whole = r0 == 0 and r1 == out[0]
            dst = Y[b0:b1].reshape(b1 - b0, g, og, math.prod(blk)) if whole else None
            for b, gi in np.ndindex(b1 - b0, g):  # one plain GEMM per vector and group (stacked matmul
                if dst is not None:               # with a broadcast weight can miss BLAS)
                    np.matmul(W[gi], cols[b, gi], out=dst[b, gi])
                else:
                    Y[b0 + b, gi, :, r0:r1] = np.matmul(W[gi], cols[b, gi]).reshape((og, *blk))
        return Y.reshape((B, self.cout, *out))

    def _correlate_t_direct(self, Y: np.ndarray, length: tuple[int, ...], conj: bool, dt: np.dtype) -> np.ndarray:
        B, g, og, cg, nd = Y.shape[0], self.g, self.og, self.cg, self.nd
        ws = _Workspace(dt)
        out = Y.shape[2:]
        taps = list(np.ndindex(*self.k))
        Yg = Y.reshape((B, g, og, *out))
        G = np.zeros((B, g, cg, *length), dt)
        w = self._w(conj, dt)
        if cg == 1 and og == 1:
            wt = w.reshape(g, -1).T.reshape((len(taps), 1, g) + (1,) * nd)
            blocks = list(self._blocks(B, out, g * dt.itemsize, _TAP_BYTES))

            def run(part: list[tuple[int, int, int, int]]) -> None:
                wsp = _Workspace(dt)
                for b0, b1, r0, r1 in part:
                    src = Yg[b0:b1, :, 0, r0:r1]
                    tmp = wsp.get(src.shape)
                    for i, t in enumerate(taps):
                        np.multiply(src, wt[i], out=tmp)
                        at: tuple[slice | int, ...] = (slice(b0, b1), slice(None), 0,
                                                       *self._slices(t, r0, r1, out))
                        G[at] += tmp

            # blocks j and j + 2 write disjoint rows of G when a block spans the kernel's extent: the even
            # blocks, then the odd ones, each phase shared between the cores
            rows = blocks[0][3] - blocks[0][2]
            if _TAP_THREADS > 1 and len(blocks) >= 4 and (rows + 1) * self.s[0] >= self.E[0]:
                for phase in (blocks[0::2], blocks[1::2]):
                    _on_cores(run, phase)
            else:
                run(blocks)
            return G.reshape((B, self.cin, *length))
        if self.tap_gemm(tuple(length), out, dt):
            return _correlate_t_taps(Y, length, self._tap_mats(conj, dt), self.k, self.d, dt)
        K = len(taps)
        WT = self._mat(conj, dt, True)  # (g, K*cg, og)
        for b0, b1, r0, r1 in self._blocks(B, out, g * K * cg * dt.itemsize, _COL_BYTES):
            blk = (r1 - r0, *out[1:])
            src = Yg[b0:b1, :, :, r0:r1].reshape(b1 - b0, g, og, math.prod(blk))
            cols = ws.get((b1 - b0, g, K * cg, math.prod(blk)))
            for b, gi in np.ndindex(b1 - b0, g):
                np.matmul(WT[gi], src[b, gi], out=cols[b, gi])
            cols = cols.reshape((b1 - b0, g, K, cg, *blk))
            for i, t in enumerate(taps):  # col2im, one strided scatter per tap
                G[(slice(b0, b1), slice(None), slice(None), *self._slices(t, r0, r1, out))] += cols[:, :, i]
        return G.reshape((B, self.cin, *length))

    # ---------------------------------------------------------------- FFT correlation and transpose
    def _spectrum(self, M: tuple[int, ...], conj: bool, real: bool, reverse: bool, dt: np.dtype,
                  transposed: bool = False) -> np.ndarray:
        """Kernel spectrum ``(F, g, og, cg)`` (``transposed``: ``(F, g, cg, og)``) on the grid ``M``: dilated
        kernel, reversed for the forward; contiguous and cached."""
        import scipy.fft as fft

        conj = conj and self.weight.dtype.kind == "c"
        key = ("spec", M, conj, real, reverse, np.dtype(dt).str, transposed)
        if key in self._cache:
            return cast(np.ndarray, self._cache[key])
        axes = tuple(range(2, 2 + self.nd))
        w = self._w(conj, dt)
        wd = np.zeros(w.shape[:2] + M, dt)
        wd[(slice(None),) * 2 + tuple(slice(0, e, d) for e, d in zip(self.E, self.d, strict=False))] = w
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
            single: np.ndarray = X.reshape(B, self.g, F) * S.reshape(F, self.g).T[None]
            return single.reshape((B, self.g, *fshape))
        Xf = np.ascontiguousarray(X.reshape(B, self.g, c_in, F).transpose(3, 1, 2, 0))  # (F, g, c_in, B)
        Yf = np.matmul(S, Xf)  # (F, g, c_out, B)
        return np.ascontiguousarray(Yf.transpose(3, 1, 2, 0)).reshape((B, self.g * c_out, *fshape))

    def _correlate_fft(self, P: np.ndarray, out: tuple[int, ...], conj: bool, dt: np.dtype) -> np.ndarray:
        import scipy.fft as fft

        axes = tuple(range(2, 2 + self.nd))
        need = tuple((o - 1) * s + e for o, s, e in zip(out, self.s, self.E, strict=False))
        P = P[(slice(None),) * 2 + tuple(slice(0, m) for m in need)]
        M = self._fft_shape(out)
        real = dt.kind != "c"
        Ph = fft.rfftn(P, s=M, axes=axes) if real else fft.fftn(P, s=M, axes=axes)
        S = self._spectrum(M, conj, real, True, dt)
        Yh = self._contract(S, Ph, self.cg, self.og)
        y = fft.irfftn(Yh, s=M, axes=axes) if real else fft.ifftn(Yh, s=M, axes=axes)
        y = y[(slice(None),) * 2 + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, self.s, strict=False))]
        return np.ascontiguousarray(y, dtype=dt)

    def _correlate_t_fft(self, Y: np.ndarray, length: tuple[int, ...], conj: bool, dt: np.dtype) -> np.ndarray:
        import scipy.fft as fft

        axes = tuple(range(2, 2 + self.nd))
        out = Y.shape[2:]
        M = self._fft_shape(out)
        real = dt.kind != "c"
        up = np.zeros(Y.shape[:2] + M, dt)
        up[(slice(None),) * 2 + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, self.s, strict=False))] = Y
        Uh = fft.rfftn(up, axes=axes) if real else fft.fftn(up, axes=axes)
        S = self._spectrum(M, conj, real, False, dt, transposed=True)  # (F, g, cg, og)
        Gh = self._contract(S, Uh, self.og, self.cg)
        G = fft.irfftn(Gh, s=M, axes=axes) if real else fft.ifftn(Gh, s=M, axes=axes)
        res = np.zeros(G.shape[:2] + tuple(length), dt)
        keep = tuple(slice(0, min(m, n)) for m, n in zip(M, length, strict=False))
        res[(slice(None),) * 2 + keep] = G[(slice(None),) * 2 + keep]
        return res

    # ---------------------------------------------------------------- whole maps (numpy)
    def forward(self, x: np.ndarray, conj: bool) -> np.ndarray:
        """``(B, C_in, *n) -> (B, C_out, *out)``."""
        dt = np.result_type(x.dtype, self.weight.dtype)
        if self._forward_blocks(dt) and not self.use_fft(x.shape[0], self.out, dt, "forward"):
            return self._accumulate_taps(x, self.pb, self.s, self.out, conj, dt, flip=False)
        return self.correlate(self.pad(x), self.out, conj)

    def transpose(self, y: np.ndarray, conj: bool) -> np.ndarray:
        """``(B, C_out, *out) -> (B, C_in, *n)``: the transpose (``conj``: the adjoint)."""
        dt = np.result_type(y.dtype, self.weight.dtype)
        if self.gathers_transpose(y.shape[0], dt):
            # input i is read by output o through tap t when o + t*d = i + p_before; with t' = k-1-t that is
            # o = i + t'*d - (E-1-p_before): a stride-1 correlation of y with the rotated kernel
            shift = tuple(e - 1 - p for e, p in zip(self.E, self.pb, strict=True))
            return self._accumulate_taps(y, shift, (1,) * self.nd, self.n, conj, dt, flip=True)
        return self.unpad(self.correlate_t(y, self.L, conj))

    @property
    def _taps_unpadded(self) -> bool:
        """One channel per group and zero padding: the direct forward reads the input in place (no padded copy)."""
        return self.cg == 1 and self.og == 1 and self.mode == "zeros"

    def _windows_fit(self, out: tuple[int, ...], stride: tuple[int, ...], dt: np.dtype) -> bool:
        """Whether the blocks of :meth:`_accumulate_taps` over ``out`` read windows of at most four times their
        own rows (a kernel far longer than a block along the first axis, e.g. a large dilation, would copy the
        same rows of the input into many blocks: the padded volume, copied once, is then cheaper; a 3x3x3
        kernel on planes of a block each, as in a 512^3 float32 volume, still gains from the blocks)."""
        per_row = max(1, self.g * dt.itemsize * math.prod(out[1:]))
        rows = min(out[0], max(1, _TAP_BYTES // per_row))
        return rows == out[0] or (rows - 1) * stride[0] + self.E[0] <= 4 * rows * stride[0]

    def _forward_blocks(self, dt: npt.DTypeLike) -> bool:
        """Whether the direct forward reads blocks of the zero-padded grid (:meth:`_accumulate_taps`)."""
        return self._taps_unpadded and self._windows_fit(self.out, self.s, np.dtype(dt))

    @property
    def _transpose_gathers(self) -> bool:  # the direct transpose's route, by structure (see gathers_transpose)
        return self._taps_unpadded and all(s == 1 for s in self.s)

    def _transpose_blocks(self, dt: npt.DTypeLike) -> bool:
        return self._transpose_gathers and self._windows_fit(self.n, (1,) * self.nd, np.dtype(dt))

    def gathers_transpose(self, batch: int, dt: npt.DTypeLike) -> bool:
        """Whether :meth:`transpose` is computed as a correlation with the rotated kernel (a gather).

        For stride 1 and zero padding, the transpose of a correlation is the correlation of the
        output, shifted by the kernel's extent, with the kernel rotated 180 degrees: the same
        tap-by-tap accumulation as the forward (disjoint output blocks on every core) instead of
        scattering each tap into a zeroed padded gradient and cropping it.  Taken for one channel
        per group when the direct route is chosen.
        """
        return self._transpose_blocks(dt) and not self.use_fft(batch, self.out, dt, "transpose")

    def _accumulate_taps(self, x: np.ndarray, shift: tuple[int, ...], stride: tuple[int, ...], out: tuple[int, ...],
                         conj: bool, dt: np.dtype, flip: bool) -> np.ndarray:
        """``Y[o] = sum_t w[t] * x[o*stride + t*d - shift]``, zero where the read falls outside ``x``.

        One channel per group (``x``: ``(B, g, *n)``), kernel rotated 180 degrees if ``flip``.  Output
        blocks of at most ``_TAP_BYTES`` (disjoint: shared between the cores); each block copies the
        part of the zero-padded input it reads into a block-sized buffer (no padded copy of the whole
        volume: fewer large temporaries, and the block stays in cache for every tap), or reads ``x`` in
        place where the window needs no padding (always, for an already padded ``x`` with ``shift`` 0),
        then accumulates tap by tap on contiguous arrays.
        """
        B, g, nd, n = x.shape[0], self.g, self.nd, x.shape[2:]
        taps = list(np.ndindex(*self.k))
        w = self._w(conj, dt)
        if flip:
            w = w[(slice(None), slice(None), *(slice(None, None, -1),) * nd)]
        wt = w.reshape(g, -1).T.reshape((len(taps), 1, g) + (1,) * nd)
        # the padded grid the outputs read: V[m] = x[m - shift], of length (out-1)*s + E per axis
        span = tuple((o - 1) * s + e for o, s, e in zip(out, stride, self.E, strict=True))
        Y = np.empty((B, g, *out), dt)
        blocks = list(self._blocks(B, out, g * dt.itemsize, _TAP_BYTES))

        def run(part: list[tuple[int, int, int, int]]) -> None:
            wsp, wsv = _Workspace(dt), _Workspace(dt)
            for b0, b1, r0, r1 in part:
                acc = Y[b0:b1, :, r0:r1]
                tmp = wsp.get(acc.shape)
                m0, m1 = r0 * stride[0], (r1 - 1) * stride[0] + self.E[0]  # rows of V this block reads
                window = (m1 - m0, *span[1:])
                dst, src = [], []
                for a, (lo, hi) in enumerate([(m0, m1), *((0, sp) for sp in span[1:])]):
                    i0, i1 = max(lo, shift[a]), min(hi, shift[a] + n[a])  # V positions that hold x
                    i1 = max(i0, i1)
                    dst.append(slice(i0 - lo, i1 - lo))
                    src.append(slice(i0 - shift[a], i1 - shift[a]))
                if all(sl.start == 0 and sl.stop == size for sl, size in zip(dst, window, strict=True)):
                    V = x[(slice(b0, b1), slice(None), *src)]  # the window reads no padding: x in place
                else:
                    V = wsv.get((b1 - b0, g, *window))
                    V[...] = 0
                    V[(slice(None), slice(None), *dst)] = x[(slice(b0, b1), slice(None), *src)]
                for i, t in enumerate(taps):
                    at = (slice(None), slice(None), *self._slices(t, 0, r1 - r0, out, stride))
                    if i == 0:
                        np.multiply(V[at], wt[i], out=acc)
                    else:
                        np.multiply(V[at], wt[i], out=tmp)
                        acc += tmp

        _on_cores(run, blocks)
        return Y
