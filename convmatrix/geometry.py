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

import contextvars
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from . import _validate as V
from ._axis import ROW_CHUNK, TABLE_ENTRIES, Axis, Run, fold_index, kernel_tap, strip_count

__all__ = [
    "ROW_CHUNK",
    "TABLE_ENTRIES",
    "Axis",
    "Geometry",
    "Run",
    "conv_geometry",
    "conv_output_size",
    "conv_transpose_geometry",
    "conv_transpose_output_size",
    "fold_index",
    "same_padding",
    "scipy_geometry",
    "strip_count",
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




# ----------------------------------------------------------------------------- N-D geometry
class _Cache(TypedDict, total=False):
    """What a :class:`Geometry` computes once: its axes, the entries along each, and (when its memory model
    asked for it) the builder's plan: per-axis counts, the runs that become boxes, the position codes."""

    axes: list[Axis]
    nnz_axes: list[int]
    plan: tuple[list[npt.NDArray[np.unsignedinteger]], list[list[Run]], list[npt.NDArray[np.uint8]]]


#: set while this module's factories make a Geometry from arguments they validated (the fields' check is then skipped)
_FACTORY: contextvars.ContextVar[bool] = contextvars.ContextVar("convmatrix_geometry_factory", default=False)
_SHAPE_FIELDS = ("input_shape", "output_shape", "kernel_shape", "stride", "dilation", "output_padding")


def _symbolic(value: object) -> bool:
    """Whether ``value`` holds a symbolic size (:mod:`convmatrix.proofs` runs geometries of its z3 integers)."""
    items = value if type(value) is tuple else (value,)
    return any(type(v).__module__.startswith(("z3", "sympy", "convmatrix.proofs")) for v in items)


def _check_fields(g: Geometry) -> None:
    """The rules of :class:`Geometry`'s fields, each error naming its field (see ``Geometry.__post_init__``);
    a geometry of symbolic sizes (the proofs') is checked by the proofs themselves."""
    if any(_symbolic(getattr(g, name)) for name in _SHAPE_FIELDS):
        return
    if g.kind not in ("conv", "conv_transpose"):
        raise ValueError(f"kind must be 'conv' or 'conv_transpose'; got {V._describe(g.kind)}")
    shape = g.input_shape
    nd = len(shape) if type(shape) is tuple else 0
    for name in _SHAPE_FIELDS:
        value = getattr(g, name)
        if type(value) is not tuple or len(value) != nd or nd == 0 or any(type(v) is not int for v in value):
            raise TypeError(f"{name} must be a tuple of ints, one per spatial axis of input_shape"
                            f"{f' ({nd})' if nd else ''}; got {V._describe(value)}")
        if min(value) < (0 if name == "output_padding" else 1):
            raise ValueError(f"{name} must hold {'non-negative' if name == 'output_padding' else 'positive'} "
                             f"integers; got {value}")
    pads = g.padding
    if type(pads) is not tuple or len(pads) != nd or any(
            type(p) is not tuple or len(p) != 2 or type(p[0]) is not int or type(p[1]) is not int for p in pads):
        raise TypeError(f"padding must be a tuple of (before, after) int pairs, one per axis ({nd}); got "
                        f"{V._describe(pads)}")
    transposed = g.kind == "conv_transpose"  # (a negative padding: extra zero outputs, or a forward map's crop)
    if g.padding_mode not in (("zeros",) if transposed else V.PADDING_MODES):
        raise ValueError(f"padding_mode must be one of {('zeros',) if transposed else V.PADDING_MODES} for kind "
                         f"{g.kind!r}; got {V._describe(g.padding_mode)}")
    if not transposed and any(g.output_padding):
        raise ValueError(f"output_padding is for transposed convolutions; got {g.output_padding} with kind 'conv'")
    for name in ("in_channels", "out_channels", "groups"):
        value = getattr(g, name)
        if type(value) is not int or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {V._describe(value)}")
    if g.in_channels % g.groups or g.out_channels % g.groups:
        raise ValueError(f"groups must divide in_channels and out_channels; got groups {g.groups} with "
                         f"{g.in_channels} and {g.out_channels} channels")
    if type(g.channel_axis) is not bool:
        raise TypeError(f"channel_axis must be a bool; got {V._describe(g.channel_axis)}")
    if transposed:
        want = tuple(conv_transpose_output_size(n, k, s, b, a, d, o) for n, k, s, (b, a), d, o in
                     zip(shape, g.kernel_shape, g.stride, pads, g.dilation, g.output_padding, strict=True))
    else:
        want = tuple(conv_output_size(n, k, s, b, a, d) for n, k, s, (b, a), d in
                     zip(shape, g.kernel_shape, g.stride, pads, g.dilation, strict=True))
    # a convolution may keep only its first outputs (the forward map of a transposed convolution whose
    # output_padding reaches the stride: see Geometry.forward)
    if want != g.output_shape and (transposed or any(o > w for o, w in zip(g.output_shape, want, strict=True))):
        raise ValueError(f"output_shape must be {want}{'' if transposed else ' (or fewer outputs per axis)'} for "
                         f"these sizes, strides, paddings and dilations; got {g.output_shape}")


def _made(*args: Any, **kwargs: Any) -> Geometry:
    """``Geometry(*args, **kwargs)`` from a factory of this module, whose arguments are validated already."""
    token = _FACTORY.set(True)
    try:
        return Geometry(*args, **kwargs)
    finally:
        _FACTORY.reset(token)


@dataclass(frozen=True)
class Geometry:
    """Validated geometry of a (transposed) convolution; every builder and operator reads it.

    ``input_shape``/``output_shape`` are the spatial shapes of the vectors the matrix maps
    between (for ``kind="conv_transpose"`` the input is the transposed convolution's input).
    Made by :func:`conv_geometry`, :func:`conv_transpose_geometry` or :func:`scipy_geometry`,
    which validate the arguments; every fact derived from the sizes is a property or method.

    Attributes
    ----------
    kind : {"conv", "conv_transpose"}
        A convolution or a transposed convolution.
    input_shape, output_shape : tuple of int
        Spatial shapes of the vectors the matrix maps between.
    kernel_shape : tuple of int
        Spatial kernel shape.
    stride, dilation : tuple of int
        Per axis.
    padding : tuple of (int, int)
        ``(before, after)`` per axis.
    padding_mode : {"zeros", "circular", "reflect", "replicate", "symmetric"}
        How the padded positions read the input.
    output_padding : tuple of int
        Per axis (transposed convolutions; zeros otherwise).
    in_channels, out_channels, groups : int
        Channels of the input and output vectors, and channel groups.
    channel_axis : bool
        Whether the vectors carry a leading channel axis (the kernel was given in PyTorch's
        weight layout).

    See Also
    --------
    convmatrix.conv_matrix : Builds the matrix of a geometry.
    convmatrix.conv_output_shape : The output shape alone.
    """

    kind: V.Kind
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: V.PaddingPairs
    padding_mode: V.PaddingMode
    output_padding: tuple[int, ...]
    in_channels: int
    out_channels: int
    groups: int
    channel_axis: bool  # whether vectors carry a leading channel axis (weight layout given)
    _cache: _Cache = field(default_factory=_Cache, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        """Refuse fields that are not one (transposed) convolution: a Geometry made directly, not by the factories
        (which validate their arguments and derive ``output_shape``), must not give wrong counts."""
        if not _FACTORY.get():
            _check_fields(self)

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
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
        """Input channels per group, ``in_channels // groups``."""
        return self.in_channels // self.groups

    @property
    def out_per_group(self) -> int:
        """Output channels per group, ``out_channels // groups``."""
        return self.out_channels // self.groups

    @property
    def extent(self) -> tuple[int, ...]:
        """Dilated kernel extent per axis, ``d*(k-1) + 1``: how far one copy of the kernel reaches."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_shape, self.dilation))

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """Spatial shape of the padded input a convolution slides over, ``n + p_before + p_after``.

        For a transposed convolution: of the zero-inserted, ``d*(k-1)``-padded input of the
        equivalent stride-1 convolution (before the padding ``p`` is taken off), ``(n-1)*s + 1 +
        2*d*(k-1)``."""
        if self.kind == "conv":
            return tuple(n + b + a for n, (b, a) in zip(self.input_shape, self.padding))
        return tuple((n - 1) * s + 2 * e - 1 for n, s, e in zip(self.input_shape, self.stride, self.extent,
                                                                strict=True))

    @property
    def read_shape(self) -> tuple[int, ...]:
        """Padded-input positions the outputs of a convolution read, ``(o-1)*s + d*(k-1) + 1`` per axis;
        for a transposed convolution, the fused result before cropping, ``(n-1)*s + d*(k-1) + 1``."""
        if self.kind == "conv":
            return tuple((o - 1) * s + e for o, s, e in zip(self.output_shape, self.stride, self.extent))
        return tuple((n - 1) * s + e for n, s, e in zip(self.input_shape, self.stride, self.extent))

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """Shape of the kernel array this geometry was made for: spatial, or PyTorch's weight layout
        ``(C_out, C_in/groups, *k)`` (``(C_in, C_out/groups, *k)`` for a transposed convolution)."""
        if not self.channel_axis:
            return self.kernel_shape
        if self.kind == "conv":
            return (self.out_channels, self.in_per_group, *self.kernel_shape)
        return (self.in_channels, self.out_per_group, *self.kernel_shape)

    @property
    def forward(self) -> Geometry:
        """The convolution whose matrix this one transposes (``self`` for a convolution).

        Its input is the transposed output and its output the transposed input (exactly: when
        ``output_padding >= stride`` its formula would give more outputs, of which the transposed
        convolution uses the first ``n``); its weight is PyTorch's transposed weight read as a
        convolution weight."""
        if self.kind == "conv":
            return self
        return _made(
            "conv", self.output_shape, self.input_shape, self.kernel_shape, self.stride, self.dilation, self.padding,
            "zeros", (0,) * self.ndim, in_channels=self.out_channels, out_channels=self.in_channels,
            groups=self.groups, channel_axis=self.channel_axis,
        )

    @property
    def input_vector_shape(self) -> tuple[int, ...]:
        """Shape of the vectors the matrix multiplies: ``(in_channels, *input_shape)``, or spatial only."""
        return ((self.in_channels,) if self.channel_axis else ()) + self.input_shape

    @property
    def output_vector_shape(self) -> tuple[int, ...]:
        """Shape of the result vectors: ``(out_channels, *output_shape)``, or spatial only."""
        return ((self.out_channels,) if self.channel_axis else ()) + self.output_shape

    def axes(self) -> list[Axis]:
        """The per-axis descriptions (the same objects on every call: they cache their tables).

        Returns
        -------
        list of Axis
            One per spatial axis: its index maps, runs and entry counts in closed form.
        """
        if "axes" not in self._cache:
            self._cache["axes"] = self._make_axes()
        return self._cache["axes"]

    def _make_axes(self) -> list[Axis]:
        transposed = self.kind == "conv_transpose"
        return [
            Axis(n, k, s, d, p, self.padding_mode, o, transposed)
            for n, k, s, d, p, o in zip(
                self.input_shape, self.kernel_shape, self.stride, self.dilation, self.padding, self.output_shape,
                strict=True,
            )
        ]

    @property
    def nnz(self) -> int:
        """Exact number of stored entries (every kernel tap counted as structurally nonzero)."""
        if "nnz_axes" not in self._cache:
            self._cache["nnz_axes"] = [ax.entries() for ax in self.axes()]
        per_axis = math.prod(self._cache["nnz_axes"])
        return self.out_channels * self.in_per_group * per_axis

    def count_bytes(self) -> int:
        """Peak bytes of computing :attr:`nnz` (closed form; 0 once known or when every axis counts in O(k)).

        Returns
        -------
        int
            The predicted peak, in bytes.
        """
        if "nnz_axes" in self._cache:
            return 0
        return max(ax.count_bytes() for ax in self.axes())

    def nnz_bounds(self) -> tuple[int, int]:
        """Cheap ``(lower, upper)`` bounds of :attr:`nnz` (equal unless reflect/symmetric edges are long).

        Returns
        -------
        tuple of (int, int)
            ``lower <= nnz <= upper``.
        """
        if "nnz_axes" in self._cache:
            return self.nnz, self.nnz
        lows, highs = zip(*(ax.entries_bounds() for ax in self.axes()))
        c = self.out_channels * self.in_per_group
        return c * math.prod(lows), c * math.prod(highs)

    def engine_weight(self, kernel: np.ndarray, flip: bool = False) -> np.ndarray:
        """The kernel in the builders' layout ``(out_channels, in_per_group, *taps)``.

        A conv kernel is only reshaped (``flip``: rotated 180 degrees, a true convolution); a
        transposed one, PyTorch's ``(C_in, C_out/groups, *k)``, has its channel axes exchanged per
        group and its taps flipped to match the transposed index maps (works for any array type
        with numpy indexing, e.g. SymPy object arrays).

        Parameters
        ----------
        kernel : ndarray
            The kernel, of shape :attr:`weight_shape`.
        flip : bool
            Rotate a convolution's kernel by 180 degrees (an error for a transposed convolution).

        Returns
        -------
        ndarray
            The kernel as ``(out_channels, in_per_group, *kernel_shape)`` (a view where possible).

        Raises
        ------
        ValueError
            ``flip=True`` for a transposed convolution.
        """
        if self.kind == "conv":
            w = kernel.reshape((self.out_channels, self.in_per_group, *self.kernel_shape))
            return self._reversed_taps(w) if flip else w
        if flip:
            raise ValueError("flip applies to convolutions; pass the rotated kernel for a transposed convolution")
        w = kernel.reshape((self.groups, self.in_per_group, self.out_per_group, *self.kernel_shape)).swapaxes(1, 2)
        w = w.reshape((self.out_channels, self.in_per_group, *self.kernel_shape))
        return self._reversed_taps(w)

    def _reversed_taps(self, w: np.ndarray) -> np.ndarray:
        """``w`` (builders' layout) with tap ``t`` of every spatial axis holding tap ``kernel_tap(t, k)`` (``k-1-t``).

        :func:`~convmatrix._axis.kernel_tap` is the one definition of the flip: the transposed
        index maps read the taps through it too, and :mod:`convmatrix.proofs` proves them with it.
        """
        taps = np.ix_(*(kernel_tap(np.arange(k, dtype=np.int64), k) for k in self.kernel_shape))
        return w[(slice(None), slice(None), *taps)]

    def index_dtype(self) -> np.dtype[np.int32 | np.int64]:
        """The index dtype of the CSR arrays the builders make.

        Returns
        -------
        numpy.dtype
            int32 when the shape and ``nnz`` fit in it, else int64.
        """
        return _index_dtype_for(self.shape, self.nnz)

    def predicted_bytes(self, dtype: npt.DTypeLike) -> int:
        """Bytes of the CSR arrays (data + indices + indptr).

        Parameters
        ----------
        dtype : dtype
            The dtype of the matrix's values.

        Returns
        -------
        int
            The bytes of the three arrays of the CSR matrix.
        """
        it = self.index_dtype().itemsize
        return self.nnz * (np.dtype(dtype).itemsize + it) + (self.shape[0] + 1) * it


_INT32, _INT64 = np.dtype(np.int32), np.dtype(np.int64)
_INT32_MAX = int(np.iinfo(np.int32).max)


def _index_dtype_for(shape: tuple[int, int], nnz: int) -> np.dtype[np.int32 | np.int64]:
    """The CSR index dtype of a matrix of ``shape`` with ``nnz`` stored entries: int32 when both fit in it."""
    return _INT32 if max(*shape, nnz) <= _INT32_MAX else _INT64


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


def _check_extent(ax: int, total: int, what: str) -> None:
    """Refuse an axis whose index arithmetic could leave int64 (every single value is <= 2**62 already)."""
    if total > V.MAX_INT:
        raise ValueError(
            f"input_shape, kernel size, stride, padding and dilation along axis {ax} are too large together: "
            f"{what} = {total:,} exceeds 2**62 (matrix indices are int64)"
        )


def _check_boundary_width(pads: V.PaddingPairs, input_shape: tuple[int, ...], mode: V.PaddingMode,
                          wide_ok: bool) -> None:
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


def _fixed_keyword_pads(spec: str, kshape: Sequence[int], d: Sequence[int]) -> V.PaddingPairs:
    """The pads of ``padding="valid"`` (none) and ``"full"`` (``d*(k-1)`` on each side), per axis."""
    if spec == "valid":
        return ((0, 0),) * len(kshape)
    return tuple((di * (ki - 1), di * (ki - 1)) for ki, di in zip(kshape, d))


def conv_geometry(
    kernel_shape: Sequence[int],
    input_shape: V.IntOrSequence,
    *,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    dilation: V.IntOrSequence = 1,
    groups: int = 1,
    padding_mode: V.PaddingMode = "zeros",
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
    spec = V.padding_spec(padding, nd)
    keyword = spec if isinstance(spec, str) else None
    pad: V.PaddingPairs
    if not isinstance(spec, str):
        pad = spec
    elif spec in ("valid", "full"):
        pad = _fixed_keyword_pads(spec, kshape, d)
    else:
        lower = spec == "same_lower"
        pad = tuple(same_padding(n, k, si, di, lower=lower) for n, k, si, di in zip(shape, kshape, s, d))
    try:
        _check_boundary_width(pad, shape, mode, wide_padding)
    except ValueError as exc:
        if keyword is None:
            raise
        raise ValueError(f"padding={keyword!r} cannot be honoured with padding_mode={mode!r}: {exc}") from None
    out = []
    for ax, (n, k, si, di, (b, a)) in enumerate(zip(shape, kshape, s, d, pad)):
        _check_extent(ax, n + b + a + di * (k - 1) + si, "n + p_before + p_after + d*(k-1) + s")
        o = conv_output_size(n, k, si, b, a, di)
        if o < 1:
            raise ValueError(
                f"kernel is larger than the padded input along axis {ax}: dilated kernel extent "
                f"d*(k-1)+1 = {di * (k - 1) + 1} > padded input n+p_before+p_after = {n + b + a}"
            )
        out.append(o)
    return _made(
        "conv", shape, tuple(out), kshape, s, d, tuple(pad), mode, (0,) * nd,
        in_channels=c_in_g * g, out_channels=c_out, groups=g, channel_axis=channel_axis,
    )


def conv_transpose_geometry(
    kernel_shape: Sequence[int],
    input_shape: V.IntOrSequence,
    *,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    output_padding: V.IntOrSequence = 0,
    dilation: V.IntOrSequence = 1,
    groups: int = 1,
    output_shape: V.IntOrSequence | None = None,
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
    spec = V.padding_spec(padding, nd, minimum=None)  # negative: extra zero outputs (ONNX SAME, stride > extent)
    want: tuple[int, ...] | None = None
    if output_shape is not None:
        want = V.input_shape_tuple(output_shape, "output_shape")
        if len(want) > nd:  # PyTorch accepts (N, C, *spatial) too: keep the spatial tail
            want = want[-nd:]
        if len(want) != nd:
            raise ValueError(f"output_shape must have one size per spatial axis ({nd}); got {output_shape!r}")
        if any(a):
            raise ValueError(f"give either output_padding or output_shape, not both; got output_padding={a}")
    pad: V.PaddingPairs
    if not isinstance(spec, str):
        pad = spec
    elif spec in ("valid", "full"):
        pad = _fixed_keyword_pads(spec, kshape, d)
    else:
        if want is None:
            want = tuple(n * si for n, si in zip(shape, s))
        for ax, (w, n, si) in enumerate(zip(want, shape, s)):
            if -(-w // si) != n:
                raise ValueError(
                    f"padding={spec!r} needs ceil(output_shape/stride) == input size; got output_shape[{ax}]={w}, "
                    f"stride {si}, input size {n}"
                )
        pad = tuple(same_padding(w, k, si, di, lower=(spec == "same_lower"))
                    for w, k, si, di in zip(want, kshape, s, d))
    out = []
    a_final = []
    for ax, (n, k, si, di, (pb, pa), ai) in enumerate(zip(shape, kshape, s, d, pad, a)):
        _check_extent(ax, (n - 1) * si + pb + pa + di * (k - 1) + max(ai, 0 if want is None else want[ax]) + si,
                      "(n-1)*s + p_before + p_after + d*(k-1) + output_padding + s")
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
        _check_extent(ax, o, "the transposed output size")
        if o < 1:
            raise ValueError(
                f"padding is too large along axis {ax}: transposed output size (n-1)*s - p_before - p_after "
                f"+ d*(k-1) + output_padding + 1 = {o} < 1"
            )
        out.append(o)
        a_final.append(ai)
    return _made(
        "conv_transpose", shape, tuple(out), kshape, s, d, tuple(pad), "zeros", tuple(a_final),
        in_channels=c_in, out_channels=c_out_g * g, groups=g, channel_axis=channel_axis,
    )


# ----------------------------------------------------------------------------- scipy.signal and MATLAB
_BOUNDARIES: dict[str, V.PaddingMode] = {"fill": "zeros", "pad": "zeros", "wrap": "circular", "circular": "circular",
               "symm": "symmetric", "symmetric": "symmetric"}
_MODES = ("full", "same", "valid")
_CONVENTIONS = ("scipy", "matlab", "numpy")


def scipy_geometry(
    kernel_shape: tuple[int, ...], input_shape: tuple[int, ...], mode: V.ScipyMode, boundary: V.Boundary,
    convention: V.Convention, *, correlate: bool = False,
) -> Geometry:
    """Geometry of ``scipy.signal.convolve`` (true convolution, kernel flipped by the caller).

    Per axis the output is the window ``start .. start + length - 1`` of the full result
    (``n + k - 1`` values):

    ========  ======================  ================================================  ===============
    mode      scipy                   matlab                                            numpy
    ========  ======================  ================================================  ===============
    full      ``0``, ``n+k-1``        as scipy                                          as scipy
    same      ``(k-1)//2``, ``n``     ``k//2``, ``n``                                   see below
    valid     ``min(n,k)-1``, ``|n-k|+1`` (all axes ``n >= k`` or all ``k >= n``)      per axis
    ========  ======================  ================================================  ===============

    ``convention="numpy"`` is ``np.convolve`` / ``np.correlate`` / ``scipy.linalg.convolution_matrix``
    applied per axis: ``"same"`` keeps ``max(n, k)`` values from ``(min(n,k)-1)//2``, except that
    ``np.correlate`` with the kernel strictly longer swaps its operands and reverses the result,
    which starts the window at ``min(n,k)//2`` (``correlate=True``); ``"valid"`` keeps
    ``|n-k|+1`` values on each axis whichever operand is longer there.  It pads with zeros only.
    """
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"mode must be one of 'full', 'same', 'valid'; got {mode!r}")
    if not isinstance(boundary, str) or boundary not in _BOUNDARIES:
        raise ValueError(f"boundary must be one of 'fill', 'wrap', 'symm'; got {boundary!r}")
    if not isinstance(convention, str) or convention not in _CONVENTIONS:
        raise ValueError(f"convention must be 'scipy', 'matlab' or 'numpy'; got {convention!r}")
    numpy_rule = convention == "numpy"
    if numpy_rule and _BOUNDARIES[boundary] != "zeros":
        raise ValueError(f"boundary must be 'fill' with convention='numpy' (np.convolve pads with zeros; the "
                         f"boundaries are scipy.signal.convolve2d's: use convention='scipy'); got {boundary!r}")
    if len(kernel_shape) != len(input_shape):
        raise ValueError(
            f"kernel must have as many dims as input_shape ({len(input_shape)}); got kernel shape {kernel_shape}"
        )
    pads = []
    if mode == "valid" and not numpy_rule:
        bigger = [n >= k for n, k in zip(input_shape, kernel_shape)]
        smaller = [k >= n for n, k in zip(input_shape, kernel_shape)]
        if not (all(bigger) or all(smaller)):
            raise ValueError(
                f"mode='valid' needs the input to be at least as large as the kernel in every dimension, or the "
                f"kernel at least as large as the input in every dimension; got input_shape {input_shape} and "
                f"kernel shape {kernel_shape} (convention='numpy' allows either, axis by axis)"
            )
    for n, k in zip(input_shape, kernel_shape):
        if mode == "full":
            start, length = 0, n + k - 1
        elif mode == "same" and numpy_rule:
            m = min(n, k)
            start, length = (m // 2 if correlate and k > n else (m - 1) // 2), max(n, k)
        elif mode == "same":
            start, length = ((k - 1) // 2 if convention == "scipy" else k // 2), n
        else:  # scipy swaps the operands when the kernel is the larger one; no boundary is read
            start, length = min(n, k) - 1, abs(n - k) + 1
        pb = k - 1 - start
        pads.append((pb, length + k - 1 - n - pb))
    # 'valid' never reads the boundary (when swapped, the padding only surrounds the smaller operand)
    bmode = "zeros" if mode == "valid" else _BOUNDARIES[boundary]
    return conv_geometry(kernel_shape, input_shape, padding=tuple(pads), padding_mode=bmode, wide_padding=True)
