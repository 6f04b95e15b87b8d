"""Independent numpy/scipy references: sliding windows, scipy.signal, zero insertion and the seed's fusion.

They read only the validated numbers of a geometry, never the builders or the index maps."""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._common import _NUMPY_MODES

__all__ = []


# ============================================================================ the problem
@dataclass
class _Conv:
    """A forward convolution in PyTorch's orientation, as the independent references see it.

    ``C`` maps ``x`` of shape ``(c_in, *in_shape)`` to ``(c_out, *out_shape)``:
    ``np.pad`` by ``pads`` in ``mode``, then a valid cross-correlation with ``weight``
    ``(c_out, c_in/groups, *k)`` at ``stride`` and ``dilation``, keeping the first ``out_shape``
    positions.  ``scipy_kernel`` is the kernel scipy.signal.convolve should use when the user
    asked for a flipped kernel (true convolution), else ``None`` (use correlate).
    """

    weight: np.ndarray
    groups: int
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    mode: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    scipy_kernel: np.ndarray | None = None

    @property
    def nd(self) -> int:
        return len(self.in_shape)

    @property
    def c_out(self) -> int:
        return int(self.weight.shape[0])

    @property
    def c_in(self) -> int:
        return int(self.weight.shape[1]) * self.groups

    @property
    def k(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[2:])

    @property
    def padded(self) -> tuple[int, ...]:
        return tuple(n + b + a for n, (b, a) in zip(self.in_shape, self.pads, strict=False))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.c_out * math.prod(self.out_shape), self.c_in * math.prod(self.in_shape))

    def natural_out(self) -> tuple[int, ...]:
        """Sizes of the un-cropped valid correlation of the padded input."""
        return tuple((P - d * (k - 1) - 1) // s + 1
                     for P, k, s, d in zip(self.padded, self.k, self.stride, self.dilation, strict=False))

    def absolute(self) -> _Conv:
        return _Conv(np.abs(self.weight), self.groups, self.stride, self.dilation, self.pads, self.mode,
                     self.in_shape, self.out_shape, None if self.scipy_kernel is None else np.abs(self.scipy_kernel))

    def terms(self) -> int:
        """Upper bound on the number of products summed into one entry of ``C x`` or ``Cᵀ y``."""
        fold = 1 if self.mode == "zeros" else 3 ** self.nd
        per = int(self.weight.shape[1]) * math.prod(self.k)
        back = self.c_out // self.groups * math.prod(
            -(-(d * (k - 1) + 1) // s) for k, s, d in zip(self.k, self.stride, self.dilation, strict=False))
        return max(per, back) * fold


_LETTERS = string.ascii_uppercase  # spatial/tap subscripts; lowercase g, i, o are channels


def _einsum_correlate(windows: np.ndarray, w: np.ndarray, groups: int, nd: int) -> np.ndarray:
    """``windows`` (c_in, *out, *k), ``w`` (c_out, c_in/g, *k) -> (c_out, *out)."""
    c_in = windows.shape[0]
    cpi = c_in // groups
    cpo = w.shape[0] // groups
    win = windows.reshape((groups, cpi, *windows.shape[1:]))
    wt = w.reshape((groups, cpo, cpi, *w.shape[2:]))
    pos, taps = _LETTERS[:nd], _LETTERS[13:13 + nd]
    out: np.ndarray = np.einsum(f"gi{pos}{taps},goi{taps}->go{pos}", win, wt)
    return out.reshape((groups * cpo, *out.shape[2:]))


def _correlate(xp: np.ndarray, w: np.ndarray, stride: Sequence[int], dilation: Sequence[int], groups: int,
               out_shape: Sequence[int]) -> np.ndarray:
    """Valid, strided, dilated, grouped cross-correlation of the padded ``xp`` (c_in, *P)."""
    from numpy.lib.stride_tricks import sliding_window_view

    nd = xp.ndim - 1
    extent = tuple(d * (k - 1) + 1 for k, d in zip(w.shape[2:], dilation, strict=False))
    win = sliding_window_view(xp, extent, axis=tuple(range(1, nd + 1)))
    sl = (slice(None), *(slice(0, o * s, s) for o, s in zip(out_shape, stride, strict=False)),
          *(slice(None, None, d) for d in dilation))
    return _einsum_correlate(win[sl], w, groups, nd)


def _pad_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index of each padded position (``np.pad`` of ``arange(n)`` in ``mode``); -1 = zero."""
    if mode == "zeros":
        return np.pad(np.arange(n), (before, after), mode="constant", constant_values=-1)
    return np.pad(np.arange(n), (before, after), mode=_NUMPY_MODES[mode])


def _pad(p: _Conv, x: np.ndarray) -> np.ndarray:
    """``np.pad`` of ``x`` (c, *in_shape) by ``p.pads`` in the boundary mode; a negative zero padding
    crops (a transposed convolution's negative padding: its forward map reads a cropped input)."""
    if p.mode != "zeros":
        return np.pad(x, ((0, 0), *p.pads), mode=_NUMPY_MODES[p.mode])
    xp = np.pad(x, ((0, 0), *((max(b, 0), max(e, 0)) for b, e in p.pads)), mode="constant")
    return xp[(slice(None), *(slice(max(-b, 0), max(-b, 0) + P) for (b, _), P in zip(p.pads, p.padded)))]


def _ref_forward(p: _Conv, x: np.ndarray) -> np.ndarray:
    """``C x``: ``np.pad`` in the boundary mode, then sliding windows."""
    xp = _pad(p, x)
    return _correlate(xp, p.weight, p.stride, p.dilation, p.groups, p.out_shape)


def _phase_split(p: _Conv) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Shapes that turn a dilated correlation into a plain one, axis by axis.

    An axis of dilation ``d > 1`` is zero-extended to ``L d`` (``L = ceil(P / d)``) and split into
    ``(L, d)``: position ``q d + r`` is row ``q`` of phase column ``r``, the kernel becomes
    ``(k, 1)``, and the valid correlation ``(L - k + 1, d)`` read row-major is the dilated one at
    positions ``0 .. (L - k + 1) d - 1``.  Returns (extended shape, split shape, kernel shape,
    merged valid shape); an axis with ``d = 1`` stays as it is.
    """
    ext: list[int] = []
    split: list[int] = []
    kshape: list[int] = []
    valid: list[int] = []
    for P, k, d in zip(p.padded, p.k, p.dilation, strict=False):
        if d == 1:
            ext.append(P)
            split.append(P)
            kshape.append(k)
            valid.append(P - k + 1)
        else:
            L = -(-P // d)
            ext.append(L * d)
            split.extend((L, d))
            kshape.extend((k, 1))
            valid.append((L - k + 1) * d)
    return tuple(ext), tuple(split), tuple(kshape), tuple(valid)


def _ref_scipy(p: _Conv, x: np.ndarray) -> np.ndarray:
    """``C x`` with ``scipy.signal.correlate`` (or ``convolve`` for a flipped kernel), one channel pair at a time.

    The dilation is a reshape (:func:`_phase_split`), so the direct method costs ``O(P K)`` per
    channel pair, not ``O(P d^ndim K)`` as with a zero-stuffed kernel.
    """
    from scipy import signal

    xp = _pad(p, x)
    kernels = p.weight if p.scipy_kernel is None else p.scipy_kernel
    ext, split, kshape, valid = _phase_split(p)
    sub = tuple(slice(0, o * s, s) for o, s in zip(p.out_shape, p.stride, strict=False))
    dtype = np.result_type(xp, kernels)
    out = np.zeros((p.c_out, *p.out_shape), dtype=dtype)
    xe = np.zeros(ext, dtype=xp.dtype)
    inside = tuple(slice(0, P) for P in p.padded)
    cpi, cpo = p.weight.shape[1], p.c_out // p.groups
    for co in range(p.c_out):  # loop over kernel slices (channel pairs), not pixels
        for i in range(cpi):
            ci = (co // cpo) * cpi + i
            xe[inside] = xp[ci]
            kern = kernels[co, i].reshape(kshape)
            if p.scipy_kernel is None:  # correlate conjugates its second argument
                r = signal.correlate(xe.reshape(split), np.conj(kern), mode="valid", method="direct")
            else:
                r = signal.convolve(xe.reshape(split), kern, mode="valid", method="direct")
            out[co] += r.reshape(valid)[sub]
    return out


def _fold(p: _Conv, z: np.ndarray) -> np.ndarray:
    """Adjoint of the padding: (c, *padded) -> (c, *in_shape), adding what the mode copied.

    Zero padding folds to a crop; the other modes scatter-add each padded position onto its
    source (``np.add.at`` along one axis at a time: memory linear in the array, whatever the
    padding).
    """
    if p.mode == "zeros":  # input i sits at padded position i + b (a negative b or e: a crop, folded back as zeros)
        z = np.pad(z, ((0, 0), *((max(-b, 0), max(-e, 0)) for b, e in p.pads)))
        return z[(slice(None), *(slice(max(b, 0), max(b, 0) + n) for n, (b, _) in zip(p.in_shape, p.pads)))]
    for a, (n, (b, e)) in enumerate(zip(p.in_shape, p.pads, strict=False)):
        idx = _pad_index(n, b, e, p.mode)
        zt = np.moveaxis(z, 1 + a, 0)
        out = np.zeros((n, *zt.shape[1:]), dtype=z.dtype)
        np.add.at(out, idx, zt)
        z = np.moveaxis(out, 0, 1 + a)
    return z


def _ref_fusion(p: _Conv, y: np.ndarray) -> np.ndarray:
    """``Cᵀ y`` as the seed builds it: one kernel copy per pixel of ``y``, placed at stride ``s``, summed."""
    nd, g = p.nd, p.groups
    cpo, cpi = p.c_out // g, p.weight.shape[1]
    pos, taps = _LETTERS[:nd], _LETTERS[13:13 + nd]
    yg = y.reshape((g, cpo, *p.out_shape))
    wg = p.weight.reshape((g, cpo, cpi, *p.k))
    # copies[g, i, pixel, tap]: the pixel's "full convolution" with the kernel (pixel value x kernel)
    copies = np.einsum(f"go{pos},goi{taps}->gi{pos}{taps}", yg, wg)
    copies = copies.reshape((g * cpi, *copies.shape[2:]))
    padded = p.padded
    # target[c, pixel, tap]: flat index in the padded input, built in place (one int64 per copy)
    target = np.empty(copies.shape, dtype=np.int64)
    target[...] = np.arange(p.c_in).reshape((-1,) + (1,) * (2 * nd)) * math.prod(padded)
    stride_in = [math.prod(padded[a + 1:]) for a in range(nd)]
    for a in range(nd):  # position of (pixel, tap) along axis a: pixel*s + tap*d
        j = np.arange(p.out_shape[a]) * p.stride[a]
        t = np.arange(p.k[a]) * p.dilation[a]
        shape_j = [1] * (1 + 2 * nd)
        shape_j[1 + a] = -1
        shape_t = [1] * (1 + 2 * nd)
        shape_t[1 + nd + a] = -1
        target += j.reshape(shape_j) * stride_in[a]
        target += t.reshape(shape_t) * stride_in[a]
    out = np.zeros(p.c_in * math.prod(padded), dtype=copies.dtype)
    np.add.at(out, target.reshape(-1), copies.reshape(-1))
    del copies, target
    return _fold(p, out.reshape((p.c_in, *padded)))


def _ref_zero_insertion(p: _Conv, y: np.ndarray) -> np.ndarray:
    """``Cᵀ y``: insert ``s-1`` zeros, pad by ``d(k-1)-p`` (negative: crop), correlate with the rotated kernel."""
    nd, g = p.nd, p.groups
    cpo, cpi = p.c_out // g, p.weight.shape[1]
    # for a boundary mode, work on the padded grid and fold afterwards
    before = [b if p.mode == "zeros" else 0 for b, _ in p.pads]
    target = list(p.in_shape) if p.mode == "zeros" else list(p.padded)
    up = np.zeros((p.c_out, *((o - 1) * s + 1 for o, s in zip(p.out_shape, p.stride, strict=False))), dtype=y.dtype)
    up[(slice(None), *(slice(None, None, s) for s in p.stride))] = y
    for a in range(nd):
        span = p.dilation[a] * (p.k[a] - 1)
        lo = span - before[a]
        hi = target[a] + span - up.shape[1 + a] - lo
        widths = [(0, 0)] * (nd + 1)
        widths[1 + a] = (max(lo, 0), max(hi, 0))
        up = np.pad(up, widths)
        crop = [slice(None)] * (nd + 1)
        crop[1 + a] = slice(max(-lo, 0), up.shape[1 + a] - max(-hi, 0))
        up = up[tuple(crop)]
    # rotated kernel with its channel roles swapped: (c_in, c_out/g, *k)
    w = p.weight.reshape((g, cpo, cpi, *p.k)).swapaxes(1, 2).reshape((g * cpi, cpo, *p.k))
    w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
    out = _correlate(up, w, (1,) * nd, p.dilation, g, target)
    return out if p.mode == "zeros" else _fold(p, out)
