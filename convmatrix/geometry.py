"""The single source of truth for convolution geometry.

A :class:`Geometry` holds, per spatial axis, the input size ``n``, kernel size
``k``, stride ``s``, dilation ``d``, padding ``(p_before, p_after)`` and boundary
mode, plus channels and groups; from that it derives the output shape, the exact
number of stored entries and the per-axis *index maps*

    (output position, tap) -> input index, or -1 when the tap falls on zero padding

that every consumer (the sparse builder, the matrix-free operator, the symbolic
layer, the verification routes) reads.  This module never imports scipy.sparse.

Formulas (per axis, ``a`` = output padding)::

    conv:            o = floor((n + p_b + p_a - d*(k-1) - 1) / s) + 1
    conv_transpose:  o = (n-1)*s - p_b - p_a + d*(k-1) + a + 1
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _validate as V

__all__ = [
    "Axis",
    "Geometry",
    "conv_output_size",
    "conv_transpose_output_size",
    "same_padding",
    "conv_geometry",
    "conv_transpose_geometry",
    "fold_index",
]


# ----------------------------------------------------------------------------- scalar formulas
def conv_output_size(n: int, k: int, s: int = 1, p_before: int = 0, p_after: int = 0, d: int = 1) -> int:
    """Output length of a cross-correlation along one axis (may be < 1 if the kernel does not fit)."""
    return (n + p_before + p_after - d * (k - 1) - 1) // s + 1


def conv_transpose_output_size(
    n: int, k: int, s: int = 1, p_before: int = 0, p_after: int = 0, d: int = 1, a: int = 0
) -> int:
    """Output length of a transposed convolution along one axis (PyTorch's formula)."""
    return (n - 1) * s - p_before - p_after + d * (k - 1) + a + 1


def same_padding(n: int, k: int, s: int = 1, d: int = 1, *, lower: bool = False) -> tuple[int, int]:
    """TF/JAX ``SAME`` padding: output ``ceil(n/s)``; the odd element goes after (before if ``lower``)."""
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


def fold_index(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Map (possibly out-of-range) indices into ``[0, n)`` by the boundary ``mode``; -1 means dropped.

    ``circular`` wraps, ``reflect`` mirrors without repeating the edge (numpy ``reflect``),
    ``symmetric`` mirrors repeating the edge, ``replicate`` clamps; all work for any width.
    """
    i = np.asarray(i, dtype=np.int64)
    if mode == "zeros":
        return np.where((i >= 0) & (i < n), i, -1)
    if mode == "circular":
        return np.mod(i, n)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    if mode == "symmetric":
        m = np.mod(i, 2 * n)
        return np.where(m >= n, 2 * n - 1 - m, m)
    if mode == "reflect":
        if n == 1:
            return np.zeros_like(i)
        period = 2 * (n - 1)
        m = np.mod(i, period)
        return np.where(m >= n, period - m, m)
    raise ValueError(f"padding_mode must be one of {V.PADDING_MODES}; got {mode!r}")  # pragma: no cover


# ----------------------------------------------------------------------------- one axis
@dataclass(frozen=True)
class Axis:
    """One spatial axis of a convolution (``transposed``: rows are the transposed output)."""

    n: int  # length of the axis in the vector the matrix multiplies
    k: int
    s: int
    d: int
    pad: tuple[int, int]
    mode: str
    out: int  # length of the axis in the result vector
    transposed: bool = False

    def index_map(self, rows: np.ndarray | None = None) -> np.ndarray:
        """``(out, k)`` int64 array: input index of each (output position, tap), -1 if dropped.

        For a transposed axis the taps are listed flipped (tap ``t`` is kernel index ``k-1-t``),
        which makes every row increasing.  ``rows`` restricts the map to those output positions.
        """
        j = (np.arange(self.out, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64))[:, None]
        t = np.arange(self.k, dtype=np.int64)[None, :]
        if not self.transposed:
            return fold_index(j * self.s + t * self.d - self.pad[0], self.n, self.mode)
        q = j + self.pad[0] - (self.k - 1 - t) * self.d  # = input_index * s when it is a hit
        hit = (q >= 0) & (q % self.s == 0) & (q // self.s < self.n)
        return np.where(hit, q // self.s, -1)

    def slots(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Unique input indices per output position.

        Returns ``(cols, assign, count)``: ``cols`` is ``(out, k)``, the distinct input indices of
        each row in increasing order (-1 marks an unused slot); ``assign`` is ``None`` when every
        tap has its own slot (``cols`` is then the index map itself), else the ``(out, k)`` slot of
        each tap (-1 if dropped), for boundary modes that send two taps to one input; ``count`` is
        the number of used slots per row.
        """
        idx = self.index_map()
        valid = idx >= 0
        count = valid.sum(axis=1)
        # identity layout works when the valid indices of each row are strictly increasing
        masked = np.where(valid, idx, -1)
        running = np.maximum.accumulate(masked, axis=1)
        prev = np.concatenate([np.full((idx.shape[0], 1), -1, np.int64), running[:, :-1]], axis=1)
        if np.all(~valid | (idx > prev)):
            return idx, None, count
        big = np.where(valid, idx, np.iinfo(np.int64).max)
        srt = np.sort(big, axis=1)
        first = np.ones_like(srt, dtype=bool)
        first[:, 1:] = srt[:, 1:] != srt[:, :-1]
        first &= srt != np.iinfo(np.int64).max
        count = first.sum(axis=1)
        rank = np.cumsum(first, axis=1) - 1  # slot number of each sorted position
        cols = np.full_like(idx, -1)
        rows = np.nonzero(first)
        cols[rows[0], rank[rows]] = srt[rows]
        # slot of each tap: position of its index among the unique ones
        assign = np.full_like(idx, -1)
        for t in range(self.k):  # loop over taps only
            hit = valid[:, t]
            r = np.nonzero(hit)[0]
            assign[r, t] = np.argmax(cols[r] == idx[r, t][:, None], axis=1)
        return cols, assign, count

    def entries(self) -> int:
        """Stored entries contributed along this axis: sum over rows of distinct valid inputs.

        Computed without materialising the map of a long axis: rows whose taps all fall inside
        the input contribute ``k`` each; only the boundary rows are mapped.
        """
        if self.transposed:  # same entries as the forward axis it transposes (input o, output n)
            return Axis(self.out, self.k, self.s, self.d, self.pad, "zeros", self.n).entries()
        lo = min(self.out, -(-self.pad[0] // self.s))
        hi = (self.n - 1 + self.pad[0] - (self.k - 1) * self.d) // self.s + 1
        hi = max(lo, min(self.out, hi))
        edge = np.concatenate([np.arange(lo), np.arange(hi, self.out)])
        idx = self.index_map(edge)
        srt = np.sort(np.where(idx >= 0, idx, -1), axis=1)
        distinct = (srt >= 0) & np.concatenate([np.ones((len(edge), 1), bool), srt[:, 1:] != srt[:, :-1]], axis=1)
        return (hi - lo) * self.k + int(distinct.sum())


# ----------------------------------------------------------------------------- N-D geometry
@dataclass(frozen=True)
class Geometry:
    """Validated geometry of a (transposed) convolution; every builder and operator reads it.

    ``input_shape``/``output_shape`` are the spatial shapes of the vectors the matrix maps
    between (for ``kind="conv_transpose"`` the input is the transposed convolution's input).
    """

    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    padding_mode: str
    output_padding: tuple[int, ...]
    in_channels: int
    out_channels: int
    groups: int
    channel_axis: bool  # whether vectors carry a leading channel axis (weight layout given)
    _cache: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    @property
    def ndim(self) -> int:
        return len(self.input_shape)

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the matrix: ``(out_channels*prod(output_shape), in_channels*prod(input_shape))``."""
        return (
            self.out_channels * math.prod(self.output_shape),
            self.in_channels * math.prod(self.input_shape),
        )

    @property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups

    @property
    def input_vector_shape(self) -> tuple[int, ...]:
        return ((self.in_channels,) if self.channel_axis else ()) + self.input_shape

    @property
    def output_vector_shape(self) -> tuple[int, ...]:
        return ((self.out_channels,) if self.channel_axis else ()) + self.output_shape

    def axes(self) -> list[Axis]:
        transposed = self.kind == "conv_transpose"
        return [
            Axis(n, k, s, d, p, self.padding_mode, o, transposed)
            for n, k, s, d, p, o in zip(
                self.input_shape, self.kernel_shape, self.stride, self.dilation, self.padding, self.output_shape
            )
        ]

    def axis_slots(self) -> list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
        if "slots" not in self._cache:
            self._cache["slots"] = [ax.slots() for ax in self.axes()]
        return self._cache["slots"]

    @property
    def nnz(self) -> int:
        """Exact number of stored entries (every kernel tap counted as structurally nonzero)."""
        if "nnz_axes" not in self._cache:
            self._cache["nnz_axes"] = [ax.entries() for ax in self.axes()]
        per_axis = math.prod(self._cache["nnz_axes"])
        return self.out_channels * self.in_per_group * per_axis

    def engine_weight(self, kernel: np.ndarray) -> np.ndarray:
        """The kernel in the builders' layout ``(out_channels, in_per_group, *taps)``.

        A conv kernel is only reshaped; a transposed one, PyTorch's ``(C_in, C_out/groups, *k)``,
        has its channel axes exchanged per group and its taps flipped to match the transposed
        index maps (works for any array type with numpy indexing, e.g. SymPy object arrays).
        """
        if self.kind == "conv":
            return kernel.reshape((self.out_channels, self.in_per_group) + self.kernel_shape)
        w = kernel.reshape((self.groups, self.in_per_group, self.out_per_group) + self.kernel_shape).swapaxes(1, 2)
        w = w.reshape((self.out_channels, self.in_per_group) + self.kernel_shape)
        return w[(slice(None), slice(None)) + (slice(None, None, -1),) * self.ndim]

    def index_dtype(self) -> np.dtype:
        big = max(max(self.shape), self.nnz)
        return np.dtype(np.int32) if big <= np.iinfo(np.int32).max else np.dtype(np.int64)

    def predicted_bytes(self, dtype: Any) -> int:
        """Bytes of the CSR arrays (data + indices + indptr)."""
        it = self.index_dtype().itemsize
        return self.nnz * (np.dtype(dtype).itemsize + it) + (self.shape[0] + 1) * it


# ----------------------------------------------------------------------------- constructors
def _split_kernel(kernel_shape: tuple[int, ...], ndim: int, layout: str) -> tuple[tuple[int, ...], int, int, bool]:
    """(spatial kernel shape, leading dim 0, leading dim 1, channel_axis) from the kernel's shape."""
    if len(kernel_shape) == ndim:
        return tuple(kernel_shape), 1, 1, False
    if len(kernel_shape) == ndim + 2:
        return tuple(kernel_shape[2:]), kernel_shape[0], kernel_shape[1], True
    raise ValueError(
        f"kernel must have {ndim} dims (spatial, one channel) or {ndim + 2} dims ({layout}) for a "
        f"{ndim}-D input_shape; got {len(kernel_shape)} dims with shape {tuple(kernel_shape)}"
    )


def _check_boundary_width(pads, input_shape, mode: str, wide_ok: bool) -> None:
    if wide_ok:
        return
    for ax, ((b, a), n) in enumerate(zip(pads, input_shape)):
        if mode == "circular" and max(b, a) > n:
            raise ValueError(
                f"circular padding must not be wider than the input (wrapping more than once); "
                f"got padding {(b, a)} for input size {n} along axis {ax}"
            )
        if mode == "reflect" and max(b, a) >= n:
            raise ValueError(
                f"reflect padding must be smaller than the input size; got padding {(b, a)} for input size {n} "
                f"along axis {ax}"
            )


def conv_geometry(
    kernel_shape: tuple[int, ...],
    input_shape: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    padding_mode: str = "zeros",
    wide_padding: bool = False,
) -> Geometry:
    """Validate and build the geometry of ``conv_matrix`` (PyTorch ``conv{d}d`` semantics).

    ``wide_padding`` lets circular/reflect padding wrap more than once (scipy's boundaries).
    """
    shape = V.input_shape_tuple(input_shape)
    nd = len(shape)
    kshape, c_out, c_in_g, channel_axis = _split_kernel(tuple(kernel_shape), nd, "C_out, C_in/groups, *k")
    s = V.int_tuple(stride, nd, "stride")
    d = V.int_tuple(dilation, nd, "dilation")
    g = V.as_int(groups, "groups", minimum=1)
    mode = V.padding_mode_name(padding_mode)
    if c_out % g:
        raise ValueError(f"groups must divide out_channels; got groups={g} and out_channels (kernel.shape[0])={c_out}")
    pad = V.padding_spec(padding, nd)
    keyword = pad if isinstance(pad, str) else None
    if keyword == "valid":
        pad = ((0, 0),) * nd
    elif keyword == "full":
        pad = tuple((di * (ki - 1),) * 2 for ki, di in zip(kshape, d))
    elif keyword is not None:
        pad = tuple(same_padding(n, k, si, di, lower=(keyword == "same_lower")) for n, k, si, di in zip(shape, kshape, s, d))
    try:
        _check_boundary_width(pad, shape, mode, wide_padding)
    except ValueError as exc:
        if keyword is None:
            raise
        raise ValueError(f"padding={keyword!r} cannot be honoured with padding_mode={mode!r}: {exc}") from None
    out = []
    for ax, (n, k, si, di, (b, a)) in enumerate(zip(shape, kshape, s, d, pad)):
        o = conv_output_size(n, k, si, b, a, di)
        if o < 1:
            raise ValueError(
                f"kernel is larger than the padded input along axis {ax}: dilated kernel extent "
                f"d*(k-1)+1 = {di * (k - 1) + 1} > padded input n+p_before+p_after = {n + b + a}"
            )
        out.append(o)
    return Geometry(
        "conv", shape, tuple(out), kshape, s, d, tuple(pad), mode, (0,) * nd,
        in_channels=c_in_g * g, out_channels=c_out, groups=g, channel_axis=channel_axis,
    )


def conv_transpose_geometry(
    kernel_shape: tuple[int, ...],
    input_shape: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    output_shape: Any = None,
) -> Geometry:
    """Validate and build the geometry of ``conv_transpose_matrix`` (PyTorch ``conv_transpose{d}d``).

    String paddings mean the padding of the forward convolution this one transposes:
    ``"same"`` gives output ``n*s`` (TF/JAX ``conv_transpose`` with ``SAME``), ``"valid"`` 0,
    ``"full"`` ``d*(k-1)`` on both sides.
    """
    shape = V.input_shape_tuple(input_shape)
    nd = len(shape)
    kshape, c_in, c_out_g, channel_axis = _split_kernel(tuple(kernel_shape), nd, "C_in, C_out/groups, *k")
    s = V.int_tuple(stride, nd, "stride")
    d = V.int_tuple(dilation, nd, "dilation")
    g = V.as_int(groups, "groups", minimum=1)
    if c_in % g:
        raise ValueError(f"groups must divide in_channels; got groups={g} and in_channels (kernel.shape[0])={c_in}")
    a = V.int_tuple(output_padding, nd, "output_padding", minimum=0)
    pad = V.padding_spec(padding, nd)
    want = None
    if output_shape is not None:
        want = V.input_shape_tuple(output_shape, "output_shape")
        if len(want) > nd:  # PyTorch accepts (N, C, *spatial) too: keep the spatial tail
            want = want[-nd:]
        if len(want) != nd:
            raise ValueError(f"output_shape must have one size per spatial axis ({nd}); got {output_shape!r}")
        if any(a):
            raise ValueError(f"give either output_padding or output_shape, not both; got output_padding={a}")
    if isinstance(pad, str):
        if pad == "valid":
            pad = ((0, 0),) * nd
        elif pad == "full":
            pad = tuple((di * (ki - 1),) * 2 for ki, di in zip(kshape, d))
        else:
            if want is None:
                want = tuple(n * si for n, si in zip(shape, s))
            for ax, (w, n, si) in enumerate(zip(want, shape, s)):
                if -(-w // si) != n:
                    raise ValueError(
                        f"padding={pad!r} needs ceil(output_shape/stride) == input size; got output_shape[{ax}]={w}, "
                        f"stride {si}, input size {n}"
                    )
            pad = tuple(same_padding(w, k, si, di, lower=(pad == "same_lower")) for w, k, si, di in zip(want, kshape, s, d))
    out = []
    a_final = []
    for ax, (n, k, si, di, (pb, pa), ai) in enumerate(zip(shape, kshape, s, d, pad, a)):
        base = conv_transpose_output_size(n, k, si, pb, pa, di, 0)
        if want is not None:
            ai = want[ax] - base
            if not 0 <= ai < si:
                raise ValueError(
                    f"output_shape[{ax}]={want[ax]} is unreachable: with this geometry the output size along axis "
                    f"{ax} can be {base} to {base + si - 1}"
                )
        if not (ai < si or ai < di):
            raise ValueError(
                f"output_padding must be smaller than either stride or dilation; got output_padding[{ax}]={ai} "
                f"with stride {si} and dilation {di}"
            )
        o = base + ai
        if o < 1:
            raise ValueError(
                f"padding is too large along axis {ax}: transposed output size (n-1)*s - p_before - p_after "
                f"+ d*(k-1) + output_padding + 1 = {o} < 1"
            )
        out.append(o)
        a_final.append(ai)
    return Geometry(
        "conv_transpose", shape, tuple(out), kshape, s, d, tuple(pad), "zeros", tuple(a_final),
        in_channels=c_in, out_channels=c_out_g * g, groups=g, channel_axis=channel_axis,
    )
