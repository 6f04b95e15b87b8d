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


def _check_flip(flip: Any) -> None:
    if not isinstance(flip, (bool, np.bool_)):
        raise TypeError(f"flip must be a bool; got {flip!r}")


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
                 method: str) -> None:
        self.weight = np.ascontiguousarray(weight)
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
        key = ("w", conj, np.dtype(dtype).str)
        if key not in self._cache:
            w = np.conj(self.weight) if conj and self.weight.dtype.kind == "c" else self.weight
            self._cache[key] = w.astype(dtype, copy=False)
        return self._cache[key]

    def _mat(self, conj: bool, dtype: np.dtype, transposed: bool) -> np.ndarray:
        """``(g, og, K*cg)`` (taps major) or its ``(g, K*cg, og)`` transpose, contiguous."""
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

    def use_fft(self, batch: int, out: tuple[int, ...], itemsize: int) -> bool:
        if self.method != "auto":
            return self.method == "fft"
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
            if folded.size:  # the few positions a boundary mode folds back: a small 0/1 matrix
                uniq, inv = np.unique(i[folded] - lo[a], return_inverse=True)
                onehot = (inv[None, :] == np.arange(uniq.size)[:, None]).astype(G.dtype)
                contrib = np.tensordot(onehot, np.take(G, folded, axis=axis), axes=([1], [axis]))
                sl = [slice(None)] * G.ndim
                sl[axis] = uniq
                out[tuple(sl)] += np.moveaxis(contrib, 0, axis)
            G = out
        return G

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
        fft = self.use_fft(P.shape[0], out, dt.itemsize) if method is None else method == "fft"
        return self._correlate_fft(P, out, conj, dt) if fft else self._correlate_direct(P, out, conj, dt)

    def correlate_t(self, Y: np.ndarray, length: tuple[int, ...], conj: bool, method: str | None = None) -> np.ndarray:
        """Transpose of :meth:`correlate` (no conjugation unless ``conj``): ``(B, C_out, *o) -> (B, C_in, *length)``."""
        dt = np.result_type(Y.dtype, self.weight.dtype)
        out = Y.shape[2:]
        fft = self.use_fft(Y.shape[0], out, dt.itemsize) if method is None else method == "fft"
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
    def _spectrum(self, M: tuple[int, ...], conj: bool, real: bool, reverse: bool, dt: np.dtype) -> np.ndarray:
        """Kernel spectrum ``(F, g, og, cg)`` on the grid ``M``: dilated kernel, reversed for the forward."""
        import scipy.fft as fft

        key = ("spec", M, conj, real, reverse, np.dtype(dt).str)
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
        S = np.ascontiguousarray(S.reshape(self.g, self.og, self.cg, F).transpose(3, 0, 1, 2))
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
        S = self._spectrum(M, conj, real, False, dt)  # (F, g, og, cg)
        Gh = self._contract(np.ascontiguousarray(S.transpose(0, 1, 3, 2)), Uh, self.og, self.cg)
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
class _ConvLinearOperator(LinearOperator):
    """A convolution core used forwards (``role="forward"``) or transposed, conjugated or not.

    The four linear maps around one convolution ``C`` are ``C`` (forward), ``conj(C)`` (forward,
    conjugated weights), ``C.T`` (transpose) and ``C.H`` (transpose, conjugated weights); each
    one's ``.T``/``.H`` is another of the four, computed directly (no extra conjugation passes).
    """

    def __init__(self, plan: _Plan, role: str, conj: bool, dtype: np.dtype, channel_axis: bool, sparse) -> None:
        self._plan, self._role, self._conj = plan, role, conj
        self._channel_axis = channel_axis
        self._sparse = sparse
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

    def _map(self, X: np.ndarray, role: str, conj: bool) -> np.ndarray:
        """Apply to a batch ``(B, C, *spatial)`` of the role's input space."""
        return self._plan.forward(X, conj) if role == "forward" else self._plan.transpose(X, conj)

    def _batch(self, X: np.ndarray, role: str, conj: bool) -> np.ndarray:
        """Columns of ``X`` are vectors: ``(N, K) -> (M, K)``."""
        p = self._plan
        c, sp = (p.cin, p.n) if role == "forward" else (p.cout, p.out)
        X = np.asarray(X)
        dt = np.result_type(X.dtype, self.dtype)
        K = X.shape[1]
        if K == 1:
            batch = np.ascontiguousarray(X.T, dtype=dt).reshape((1, c) + tuple(sp))
            return self._map(batch, role, conj).reshape(1, -1).T
        # a few columns at a time: temporaries stay small and reused instead of batch-sized fresh pages
        m = self.shape[0] if role == self._role else self.shape[1]
        step = max(1, _BATCH_BYTES // (max(X.shape[0], m) * dt.itemsize))
        out = np.empty((K, m), np.result_type(dt, self._plan.weight.dtype))
        for k0 in range(0, K, step):
            k1 = min(K, k0 + step)
            batch = np.ascontiguousarray(X[:, k0:k1].T, dtype=dt).reshape((k1 - k0, c) + tuple(sp))
            out[k0:k1] = self._map(batch, role, conj).reshape(k1 - k0, m)
        return out.T

    def _other(self) -> str:
        return "transpose" if self._role == "forward" else "forward"

    def _matvec(self, x):
        return self._batch(np.reshape(x, (-1, 1)), self._role, self._conj)

    def _matmat(self, X):
        return self._batch(X, self._role, self._conj)

    def _rmatvec(self, x):
        return self._batch(np.reshape(x, (-1, 1)), self._other(), not self._conj)

    def _rmatmat(self, X):
        return self._batch(X, self._other(), not self._conj)

    def _derived(self, role: str, conj: bool, sparse) -> _ConvLinearOperator:
        return _ConvLinearOperator(self._plan, role, conj, self.dtype, self._channel_axis, sparse)

    def _transpose(self) -> _ConvLinearOperator:
        return self._derived(self._other(), self._conj,
                             lambda format, max_bytes: self.to_sparse(max_bytes=max_bytes).T.asformat(format))

    def _adjoint(self) -> _ConvLinearOperator:
        return self._derived(self._other(), not self._conj,
                             lambda format, max_bytes: self.to_sparse(max_bytes=max_bytes).conj().T.asformat(format))

    def to_sparse(self, *, format: str = "csr", max_bytes: Any = "auto") -> Any:
        """The explicit sparse matrix of this operator (refused above ``max_bytes``, as the builders do)."""
        return self._sparse(format=format, max_bytes=max_bytes)

    # ---------------------------------------------------------------- dask entry points
    def _dask_apply(self, x, role: str, conj: bool, name: str):
        p = self._plan
        n_in = self.shape[1] if role == self._role else self.shape[0]
        c, sp = (p.cin, p.n) if role == "forward" else (p.cout, p.out)
        vol = ((c,) if self._channel_axis else ()) + tuple(sp)
        shaped = tuple(x.shape) == vol
        if x.ndim == 2 and x.shape[0] == n_in and not shaped:  # a batch of columns: one batch chunk per task
            rows = self.shape[0] if role == self._role else self.shape[1]
            return _dask_columns(lambda b: self._batch(b, role, conj), x, rows, np.result_type(x.dtype, self.dtype))
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
        """``A @ x``; a dask ``x`` (flat, or shaped like the input volume) gives a lazy dask result."""
        if _is_dask(x):
            return self._dask_apply(x, self._role, self._conj, "matvec")
        return super().matvec(x)

    def rmatvec(self, x: Any) -> Any:
        """``A.H @ x``; accepts dask arrays like :meth:`matvec`."""
        if _is_dask(x):
            return self._dask_apply(x, self._other(), not self._conj, "rmatvec")
        return super().rmatvec(x)

    def matmat(self, X: Any) -> Any:
        """``A @ X`` for a batch of column vectors; a dask ``X`` is processed one column chunk per task."""
        if _is_dask(X):
            if X.ndim != 2:
                raise ValueError(f"matmat expects a 2-D array (vectors as columns); got shape {X.shape}")
            return self._dask_apply(X, self._role, self._conj, "matmat")
        return super().matmat(X)

    def rmatmat(self, X: Any) -> Any:
        """``A.H @ X``; accepts dask arrays like :meth:`matmat`."""
        if _is_dask(X):
            if X.ndim != 2:
                raise ValueError(f"rmatmat expects a 2-D array (vectors as columns); got shape {X.shape}")
            return self._dask_apply(X, self._other(), not self._conj, "rmatmat")
        return super().rmatmat(X)

    def dot(self, x: Any) -> Any:
        if _is_dask(x):
            return self.matvec(x) if x.ndim == 1 or tuple(x.shape) == self.input_vector_shape else self.matmat(x)
        return super().dot(x)

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
        kernel spectrum is small enough to cache.

    Attributes
    ----------
    geometry : Geometry
        The validated geometry, the same object ``conv_matrix`` builds from.
    shape : tuple of int
        ``(C_out * prod(output_shape), C_in * prod(input_shape))``.
    input_vector_shape, output_vector_shape : tuple of int
        ``(C_in, *input_shape)`` and ``(C_out, *output_shape)`` (spatial only for a spatial kernel).

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
    ) -> None:
        k = V.kernel_array(kernel)
        mdtype = V.result_dtype(k, dtype)
        _check_flip(flip)
        method = _method_name(method)
        geom = conv_geometry(k.shape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                             padding_mode=padding_mode)
        odtype = _operator_dtype(mdtype)
        weight = k.reshape((geom.out_channels, geom.in_per_group) + geom.kernel_shape).astype(odtype)
        if flip:
            weight = weight[(slice(None), slice(None)) + (slice(None, None, -1),) * geom.ndim]
        plan = _Plan(weight, geom.input_shape, geom.output_shape, geom.stride, geom.dilation,
                     tuple(p[0] for p in geom.padding), geom.padding_mode, geom.groups, method)
        self.geometry: Geometry = geom
        self.kernel = k
        self.method = method
        self._keywords = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                              padding_mode=padding_mode, flip=flip, dtype=dtype)
        super().__init__(plan, "forward", False, odtype, geom.channel_axis, self._build)

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
    ) -> None:
        k = V.kernel_array(kernel)
        mdtype = V.result_dtype(k, dtype)
        V.padding_mode_name(padding_mode, allowed=("zeros",))
        method = _method_name(method)
        geom = conv_transpose_geometry(k.shape, input_shape, stride=stride, padding=padding,
                                       output_padding=output_padding, dilation=dilation, groups=groups,
                                       output_shape=output_shape)
        odtype = _operator_dtype(mdtype)
        # the weight (C_in, C_out/g, *k) is the conv weight of the convolution N-space -> n-space
        weight = k.reshape((geom.in_channels, geom.out_per_group) + geom.kernel_shape).astype(odtype)
        plan = _Plan(weight, geom.output_shape, geom.input_shape, geom.stride, geom.dilation,
                     tuple(p[0] for p in geom.padding), "zeros", geom.groups, method)
        self.geometry: Geometry = geom
        self.kernel = k
        self.method = method
        self._keywords = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
                              groups=groups, output_shape=output_shape, padding_mode=padding_mode, dtype=dtype)
        super().__init__(plan, "transpose", False, odtype, geom.channel_axis, self._build)

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
        X = np.asarray(X)
        return C.matvec(X) if X.ndim == 1 else C.matmat(X)
    if not (hasattr(C, "shape") and len(getattr(C, "shape", ())) == 2):
        raise TypeError(f"C must be a 2-D matrix (sparse or dense) or a LinearOperator; got {type(C).__name__}")
    if not _is_dask(X):
        return C @ X
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
