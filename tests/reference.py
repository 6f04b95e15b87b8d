"""Naive, obviously-correct references for the tests.  Shares NO code with ``convmatrix``.

Everything here is written from the definitions (PyTorch's and scipy's documentation, the
seed article), with explicit Python loops over output positions and kernel taps.  Sizes in
the tests are small, so speed does not matter; what matters is that each function can be
checked by reading it.

Array layout follows PyTorch: activations ``(..., C, *spatial)`` (any number of leading batch
axes, so that a whole identity basis can go through at once), conv weights
``(C_out, C_in/groups, *k)``, transposed-conv weights ``(C_in, C_out/groups, *k)``.

Contents
--------
resolve_padding        padding keyword -> (before, after) pairs (TF/JAX SAME rule)
correlate_nd           PyTorch conv{d}d: F.pad in a mode, then strided/dilated grouped correlation
correlate_windows      the same, vectorized over sliding windows (for medium sizes; checked against correlate_nd)
conv_transpose_fusion  PyTorch conv_transpose{d}d as the seed's "fusion" (scatter-add kernel copies)
conv_transpose_zero_insertion   the same by zero insertion + convolution with the rotated kernel
                       (``correlate=correlate_windows`` for medium sizes)
dense_matrix           dense matrix of a linear function, column by column from basis vectors
full_convolve          N-D full true convolution of an extended input (boundary fill/wrap/symm)
scipy_convolve         scipy.signal.convolve / convolve2d / MATLAB conv2 ("same" centring by convention)
scipy_correlate        scipy.signal.correlate / correlate2d (kernel conjugated)
brute_output_size      count of window positions that fit in the padded input
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "NUMPY_PAD_MODE",
    "SCIPY_BOUNDARY",
    "brute_output_size",
    "conv_transpose_fusion",
    "conv_transpose_zero_insertion",
    "correlate_nd",
    "correlate_windows",
    "dense_matrix",
    "full_convolve",
    "pad_spatial",
    "resolve_padding",
    "scipy_convolve",
    "scipy_correlate",
]

#: PyTorch padding_mode (plus numpy's "symmetric") -> np.pad mode
NUMPY_PAD_MODE = {
    "zeros": "constant",
    "circular": "wrap",
    "reflect": "reflect",
    "replicate": "edge",
    "symmetric": "symmetric",
}

#: scipy.signal.convolve2d boundary -> np.pad mode
SCIPY_BOUNDARY = {"fill": "constant", "wrap": "wrap", "symm": "symmetric"}


def _tuple(value, nd):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * nd


def resolve_padding(padding, input_shape, kernel_shape, stride=1, dilation=1):
    """(before, after) per axis for every padding form the builders accept.

    ``"same"`` is TensorFlow's SAME rule written from its documentation: the output has
    ``ceil(n/s)`` positions and the total padding ``max((out-1)*s + extent - n, 0)`` is split
    with the smaller half before (``"same_lower"``: the smaller half after).
    """
    nd = len(input_shape)
    s, d = _tuple(stride, nd), _tuple(dilation, nd)
    pairs = []
    for ax in range(nd):
        n, k = input_shape[ax], kernel_shape[ax]
        extent = d[ax] * (k - 1) + 1
        if isinstance(padding, str):
            if padding == "valid":
                pairs.append((0, 0))
            elif padding == "full":
                pairs.append((extent - 1, extent - 1))
            elif padding in ("same", "same_lower"):
                out = -(-n // s[ax])
                total = max((out - 1) * s[ax] + extent - n, 0)
                small, big = total // 2, total - total // 2
                pairs.append((small, big) if padding == "same" else (big, small))
            else:
                raise AssertionError(padding)
        elif isinstance(padding, int):
            pairs.append((padding, padding))
        else:
            p = padding[ax]
            pairs.append((p, p) if isinstance(p, int) else tuple(p))
    return pairs


def pad_spatial(x, pairs, np_mode):
    """np.pad the last ``len(pairs)`` axes; leading (batch/channel) axes untouched."""
    lead = [(0, 0)] * (x.ndim - len(pairs))
    return np.pad(x, lead + [tuple(p) for p in pairs], mode=np_mode)


def correlate_nd(x, w, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """PyTorch ``conv{d}d`` (cross-correlation), any number of spatial dims.

    ``x``: ``(..., C_in, *n)``; ``w``: ``(C_out, C_in/groups, *k)``; ``padding``: anything
    :func:`resolve_padding` takes.  The input is padded with ``np.pad`` in the numpy mode that
    matches ``padding_mode`` (PyTorch's ``F.pad``), then every output position ``o`` and tap
    ``t`` reads the padded input at ``o*s + t*d``.
    """
    x, w = np.asarray(x), np.asarray(w)
    nd = w.ndim - 2
    n, k = x.shape[-nd:], w.shape[2:]
    s, d = _tuple(stride, nd), _tuple(dilation, nd)
    pairs = resolve_padding(padding, n, k, s, d)
    xp = pad_spatial(x, pairs, NUMPY_PAD_MODE[padding_mode])
    c_out, cig = w.shape[0], w.shape[1]
    cog = c_out // groups
    assert x.shape[-nd - 1] == cig * groups and c_out % groups == 0
    out_shape = tuple((xp.shape[-nd + a] - d[a] * (k[a] - 1) - 1) // s[a] + 1 for a in range(nd))
    assert min(out_shape) >= 1, "kernel does not fit"
    batch = x.shape[: -nd - 1]
    out = np.zeros(batch + (c_out,) + out_shape, dtype=np.result_type(x, w))
    for g in range(groups):
        cin = slice(g * cig, (g + 1) * cig)
        cout = slice(g * cog, (g + 1) * cog)
        for o in itertools.product(*map(range, out_shape)):
            for t in itertools.product(*map(range, k)):
                pos = tuple(o[a] * s[a] + t[a] * d[a] for a in range(nd))
                xs = xp[(Ellipsis, cin) + pos]  # (..., cig)
                ws = w[(cout, slice(None)) + t]  # (cog, cig)
                out[(Ellipsis, cout) + o] += xs @ ws.T
    return out


def correlate_windows(x, w, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """:func:`correlate_nd` without the pixel loops: ``np.pad``, then every dilated window at
    once (``sliding_window_view`` keeping every ``d``-th element, every ``s``-th start), then a
    matrix product per group.  For the medium-size tests; checked against :func:`correlate_nd`."""
    x, w = np.asarray(x), np.asarray(w)
    nd = w.ndim - 2
    n, k = x.shape[-nd:], w.shape[2:]
    s, d = _tuple(stride, nd), _tuple(dilation, nd)
    xp = pad_spatial(x, resolve_padding(padding, n, k, s, d), NUMPY_PAD_MODE[padding_mode])
    spatial = tuple(range(xp.ndim - nd, xp.ndim))
    extent = tuple(d[a] * (k[a] - 1) + 1 for a in range(nd))
    win = np.lib.stride_tricks.sliding_window_view(xp, extent, axis=spatial)
    win = win[(Ellipsis,) + tuple(slice(None, None, si) for si in s) + tuple(slice(None, None, di) for di in d)]
    batch, out_shape = x.shape[: -nd - 1], win.shape[-2 * nd:-nd]
    c_out, cig = w.shape[0], w.shape[1]
    cog = c_out // groups
    win = win.reshape((-1, groups, cig) + out_shape + tuple(k))  # (B, g, cig, *o, *k)
    win = np.moveaxis(win, 2, 2 + nd)  # (B, g, *o, cig, *k)
    win = win.reshape(win.shape[0], groups, math.prod(out_shape), cig * math.prod(k))
    wg = w.reshape(groups, cog, cig * math.prod(k))
    out = np.einsum("bgom,gcm->bgco", win, wg)  # (B, g, cog, O)
    return out.reshape(batch + (c_out,) + out_shape)


def _transpose_args(x, w, stride, padding, output_padding, dilation, groups):
    """Arrays and per-axis parameters of a transposed convolution (numeric padding only)."""
    x, w = np.asarray(x), np.asarray(w)
    nd = w.ndim - 2
    s, d, a = _tuple(stride, nd), _tuple(dilation, nd), _tuple(output_padding, nd)
    if isinstance(padding, int):
        pairs = [(padding, padding)] * nd
    else:
        pairs = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
    c_in, cog = w.shape[0], w.shape[1]
    assert x.shape[-nd - 1] == c_in and c_in % groups == 0
    return x, w, nd, x.shape[-nd:], w.shape[2:], s, d, a, pairs, c_in // groups, cog


def conv_transpose_fusion(x, w, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    """PyTorch ``conv_transpose{d}d`` the seed's way: one kernel copy per input pixel.

    Each input pixel ``i`` scatters ``x[i] * w`` into the full output at ``i*s + t*d`` (copies
    overlap and add: the seed's "fusion", ``out = (in-1)*s + k``); then ``padding`` crops
    ``p_before``/``p_after`` and ``output_padding`` appends zeros-receiving positions at the
    end.  ``x``: ``(..., C_in, *n)``; ``w``: ``(C_in, C_out/groups, *k)``.
    """
    x, w, nd, n, k, s, d, a, pairs, cig, cog = _transpose_args(x, w, stride, padding, output_padding, dilation,
                                                                groups)
    full = [(n[ax] - 1) * s[ax] + d[ax] * (k[ax] - 1) + 1 for ax in range(nd)]
    out_len = [full[ax] - pairs[ax][0] - pairs[ax][1] + a[ax] for ax in range(nd)]
    assert min(out_len) >= 1
    buf_len = [max(full[ax], pairs[ax][0] + out_len[ax]) for ax in range(nd)]
    batch = x.shape[: -nd - 1]
    buf = np.zeros(batch + (cog * groups,) + tuple(buf_len), dtype=np.result_type(x, w))
    for g in range(groups):
        cin = slice(g * cig, (g + 1) * cig)
        cout = slice(g * cog, (g + 1) * cog)
        for i in itertools.product(*map(range, n)):
            xs = x[(Ellipsis, cin) + i]  # (..., cig)
            for t in itertools.product(*map(range, k)):
                pos = tuple(i[ax] * s[ax] + t[ax] * d[ax] for ax in range(nd))
                buf[(Ellipsis, cout) + pos] += xs @ w[(cin, slice(None)) + t]
    crop = tuple(slice(pairs[ax][0], pairs[ax][0] + out_len[ax]) for ax in range(nd))
    return buf[(Ellipsis, slice(None)) + crop]


def conv_transpose_zero_insertion(x, w, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
                                  correlate=correlate_nd):
    """PyTorch ``conv_transpose{d}d`` by zero insertion (the seed's 3x3 -> 7x7 -> 5x5 picture).

    Insert ``s-1`` zeros between input pixels, pad ``d*(k-1) - p`` on each side (negative means
    crop; ``output_padding`` adds after), then a stride-1 dilated correlation with the kernel
    rotated 180 degrees and its two channel axes swapped (per group).
    """
    x, w, nd, n, k, s, d, a, pairs, cig, cog = _transpose_args(x, w, stride, padding, output_padding, dilation,
                                                                groups)
    lead = x.shape[: -nd]
    up = np.zeros(lead + tuple((n[ax] - 1) * s[ax] + 1 for ax in range(nd)), dtype=x.dtype)
    up[(Ellipsis,) + tuple(slice(None, None, s[ax]) for ax in range(nd))] = x
    for ax in range(nd):  # pad (or crop) one axis at a time
        axis = up.ndim - nd + ax
        before = d[ax] * (k[ax] - 1) - pairs[ax][0]
        after = d[ax] * (k[ax] - 1) - pairs[ax][1] + a[ax]
        widths = [(0, 0)] * up.ndim
        widths[axis] = (max(before, 0), max(after, 0))
        up = np.pad(up, widths)
        stop = up.shape[axis] - max(-after, 0)
        up = np.take(up, np.arange(max(-before, 0), stop), axis=axis)
    rotated = w[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
    w2 = np.zeros((cog * groups, cig) + tuple(k), dtype=w.dtype)
    for g in range(groups):
        for i in range(cig):
            for o in range(cog):
                w2[g * cog + o, i] = rotated[g * cig + i, o]
    return correlate(up, w2, stride=1, padding=0, dilation=d, groups=groups)


def dense_matrix(fn, in_shape, dtype=np.float64, batched=True):
    """Dense matrix ``M`` of the linear ``fn`` on arrays of shape ``in_shape``: ``M[:, j] = fn(e_j).ravel()``.

    With ``batched=True`` ``fn`` must accept a leading batch axis, and all basis vectors go
    through at once; otherwise one basis vector per call.
    """
    size = math.prod(in_shape)
    basis = np.eye(size, dtype=dtype).reshape((size,) + tuple(in_shape))
    if batched:
        cols = fn(basis).reshape(size, -1)
    else:
        cols = np.stack([np.asarray(fn(e)).ravel() for e in basis])
    return cols.T


def full_convolve(x, h, boundary="fill"):
    """N-D full true convolution ``out[i] = sum_t h[t] * xe[i - t]``, ``i`` in ``[0, n+k-1)``.

    ``xe`` is ``x`` extended by ``boundary`` (zeros, periodic, or mirrored with the edge
    repeated), any width; ``x`` may carry leading batch axes.
    """
    x, h = np.asarray(x), np.asarray(h)
    nd = h.ndim
    n, k = x.shape[-nd:], h.shape
    xe = pad_spatial(x, [(kk - 1, kk - 1) for kk in k], SCIPY_BOUNDARY[boundary])
    out_shape = tuple(n[a] + k[a] - 1 for a in range(nd))
    out = np.zeros(x.shape[:-nd] + out_shape, dtype=np.result_type(x, h))
    for i in itertools.product(*map(range, out_shape)):
        for t in itertools.product(*map(range, k)):
            # xe index of x[i - t] is i - t + (k - 1)
            pos = tuple(i[a] - t[a] + k[a] - 1 for a in range(nd))
            out[(Ellipsis,) + i] += h[t] * xe[(Ellipsis,) + pos]
    return out


def scipy_convolve(x, h, mode="full", boundary="fill", convention="scipy"):
    """``scipy.signal.convolve`` (N-D) / ``convolve2d`` / MATLAB ``conv2``-``convn``.

    ``full``: the whole ``n+k-1``.  ``same``: ``n`` values starting at ``(k-1)//2`` (scipy's
    ``_centered``) or ``k//2`` (MATLAB: the kernel's centre element ``floor((k+1)/2)``, 1-based).
    ``valid``: ``|n-k|+1`` values starting at ``min(n,k)-1`` (scipy swaps the operands when the
    kernel is larger); never reads the boundary.
    """
    x, h = np.asarray(x), np.asarray(h)
    nd = h.ndim
    n, k = x.shape[-nd:], h.shape
    full = full_convolve(x, h, "fill" if mode == "valid" else boundary)
    if mode == "full":
        return full
    sl = []
    for a in range(nd):
        if mode == "same":
            start = (k[a] - 1) // 2 if convention == "scipy" else k[a] // 2
            sl.append(slice(start, start + n[a]))
        else:
            start = min(n[a], k[a]) - 1
            sl.append(slice(start, start + abs(n[a] - k[a]) + 1))
    return full[(Ellipsis,) + tuple(sl)]


def scipy_correlate(x, h, mode="full", boundary="fill", convention="scipy"):
    """``scipy.signal.correlate`` (``convention="scipy"``) / ``correlate2d`` = MATLAB ``filter2``.

    Correlation is convolution with the conjugated kernel rotated 180 degrees; the ``"same"``
    centring is then taken from that full result exactly as for :func:`scipy_convolve`
    (``correlate``: start ``(k-1)//2``; ``correlate2d``/``filter2``: start ``k//2``).
    """
    h = np.asarray(h)
    return scipy_convolve(x, np.conj(h[(slice(None, None, -1),) * h.ndim]), mode, boundary, convention)


def brute_output_size(n, k, s=1, p_before=0, p_after=0, d=1):
    """Number of window starts ``0, s, 2s, ...`` whose dilated window fits in the padded input."""
    padded = n + p_before + p_after
    count = 0
    start = 0
    while start + d * (k - 1) < padded:
        count += 1
        start += s
    return count
